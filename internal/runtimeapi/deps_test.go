package runtimeapi

import (
	"os/exec"
	"regexp"
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
