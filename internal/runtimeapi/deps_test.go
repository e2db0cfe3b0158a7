package runtimeapi

import (
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// schemaPackage matches the per-service schema packages of the SDK's
// schema-based (de)serialization: each initializes a schema for every shape
// of its service's API at start-up, which the linker cannot drop.
var schemaPackage = regexp.MustCompile(`^github\.com/aws/aws-sdk-go-v2/service/[^/]+/schemas$`)

// TestFunctionsLinkNoSchemaPackages keeps the SDK pins of go.mod (README,
// "SDK pins"): an upgrade of a pinned service module past its last release
// before schema-based serde fails here, naming the function and package,
// rather than surfacing as a bootstrap over the size target.
func TestFunctionsLinkNoSchemaPackages(t *testing.T) {
	// One line per function: its import path, then every package it links.
	cmd := exec.Command("go", "list", "-tags", "lambda.norpc", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}", "./functions/...")
	cmd.Dir = root(t)
	cmd.Env = append(cmd.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Equal(t, len(functions(t)), len(lines), "go list reports every function")
	for _, line := range lines {
		fields := strings.Fields(line)
		var linked []string
		for _, pkg := range fields[1:] {
			if schemaPackage.MatchString(pkg) {
				linked = append(linked, pkg)
			}
		}
		require.Empty(t, linked, "%s links schema-serde packages (see README, SDK pins)", fields[0])
	}
}

// TestSDKClientsOnlyWhereNeeded keeps the heavy SDK clients out of the
// functions that only read with them (awsclient/signed): the api links no
// IAM client (cloudce/cloudiam), no SSM, EFS, FSx or ECS client; only the
// reconciler provisions AWS Cloud roles. Each costs the api 0.1-0.4 MB of
// its 12 MB budget.
func TestSDKClientsOnlyWhereNeeded(t *testing.T) {
	cmd := exec.Command("go", "list", "-tags", "lambda.norpc", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}", "./functions/...")
	cmd.Dir = root(t)
	cmd.Env = append(cmd.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	const cloudiam = "github.com/ceforge/ceforge/internal/cloudce/cloudiam"
	forbidden := map[string][]string{
		"api": {cloudiam, "github.com/aws/aws-sdk-go-v2/service/ssm", "github.com/aws/aws-sdk-go-v2/service/efs", "github.com/aws/aws-sdk-go-v2/service/fsx",
			"github.com/aws/aws-sdk-go-v2/service/ecs"}, // studio hosts: awsclient/ecsread
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		name := fields[0][strings.LastIndex(fields[0], "/")+1:]
		seen[name] = true
		deps := map[string]bool{}
		for _, pkg := range fields[1:] {
			deps[pkg] = true
		}
		for _, pkg := range forbidden[name] {
			require.False(t, deps[pkg], "%s links %s", name, pkg)
		}
		if name == "reconciler" {
			require.True(t, deps[cloudiam], "the reconciler provisions AWS Cloud roles: it must link %s", cloudiam)
		}
	}
	require.True(t, seen["api"] && seen["reconciler"], "go list names the api and the reconciler")
}

// TestBootstrapsLinkOnlyTheirFeatures: a function's bootstrap holds the
// code of the features it wires and no other's. The packages are linked by
// all (internal/app imports them); what must stay out is their code, which
// only a wiring reachable from every main (a shared table of all functions'
// features) would pull in — it did once: the log follower grew from 9.7 to
// 11.7 MB with the forge, sweep, trace and AWS Cloud code it never runs.
func TestBootstrapsLinkOnlyTheirFeatures(t *testing.T) {
	const mod = "github.com/ceforge/ceforge/internal/"
	cases := map[string][]string{
		"logs":        {"batchce", "cloudce", "forge", "sweep", "trace"},
		"batchevents": {"cloudce", "forge", "sweep", "trace"},
		"ec2events":   {"batchce", "forge", "sweep", "trace"},
	}
	dir := t.TempDir()
	for name, absent := range cases {
		bin := build(t, name, false, runtime.GOARCH, dir)
		out, err := exec.Command("go", "tool", "nm", bin).CombinedOutput()
		require.NoError(t, err, string(out))
		code := map[string][]string{} // package -> its functions linked
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 || f[1] != "T" || !strings.HasPrefix(f[2], mod) || strings.HasSuffix(f[2], ".init") {
				continue
			}
			pkg, _, _ := strings.Cut(strings.TrimPrefix(f[2], mod), ".")
			code[pkg] = append(code[pkg], f[2])
		}
		require.NotEmpty(t, code["app"], "%s: nm lists the module's functions", name)
		for _, pkg := range absent {
			require.Empty(t, code[pkg], "%s links code of internal/%s, a feature it does not wire", name, pkg)
		}
	}
}
