package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := FromLookup(lookup(nil))
	require.NoError(t, err)
	require.Equal(t, "ceforge", c.Table)
	require.Equal(t, "ceforge-", c.Prefix)
	require.Equal(t, "/ceforge/runs", c.RunLogGroup)
	require.Equal(t, 30*time.Minute, c.SweepGrace)
	require.Equal(t, 0.08, c.SweepGP3Price)
	require.Equal(t, 4000, c.SweepMaxDeletions)
	require.Empty(t, c.SweeperFunction)
	require.Empty(t, c.ReconcilerFunction)
	require.Empty(t, c.AllowedRegions)
}

func TestValues(t *testing.T) {
	c, err := FromLookup(lookup(map[string]string{
		"CEFORGE_ALLOWED_REGIONS": " eu-west-1, us-east-1 ,", "CEFORGE_SWEEP_GP3_PRICE": "0.1",
		"CEFORGE_SWEEP_MAX_DELETIONS": "10", "CEFORGE_SWEEPER_FUNCTION": "ceforge-sweeper",
		"CEFORGE_RECONCILER_FUNCTION": "ceforge-reconciler",
		"CEFORGE_LOGS_URL":            "https://x.lambda-url.us-east-1.on.aws/", "CEFORGE_SWEEP_DRY_RUN": "true",
		"CEFORGE_PERMISSIONS_BOUNDARY": "arn:aws:iam::123456789012:policy/ceforge-boundary",
	}))
	require.NoError(t, err)
	require.Equal(t, "arn:aws:iam::123456789012:policy/ceforge-boundary", c.PermissionsBoundary)
	require.Equal(t, []string{"eu-west-1", "us-east-1"}, c.AllowedRegions)
	require.Equal(t, 0.1, c.SweepGP3Price)
	require.Equal(t, 10, c.SweepMaxDeletions)
	require.Equal(t, "ceforge-sweeper", c.SweeperFunction)
	require.Equal(t, "ceforge-reconciler", c.ReconcilerFunction)
	require.True(t, c.SweepDryRun)
	require.NotEmpty(t, c.LogsURL)
}

func TestInvalid(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"prefix":        {"CEFORGE_PREFIX": "Bad_Prefix"},
		"dry run":       {"CEFORGE_SWEEP_DRY_RUN": "maybe"},
		"grace":         {"CEFORGE_SWEEP_GRACE": "soon"},
		"price":         {"CEFORGE_SWEEP_GP3_PRICE": "-1"},
		"max deletions": {"CEFORGE_SWEEP_MAX_DELETIONS": "0"},
		"log level":     {"CEFORGE_LOG_LEVEL": "loud"},
		"boundary":      {"CEFORGE_PERMISSIONS_BOUNDARY": "arn:aws:iam::aws:policy/AdministratorAccess"},
		"boundary role": {"CEFORGE_PERMISSIONS_BOUNDARY": "arn:aws:iam::123456789012:role/x"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromLookup(lookup(env))
			require.Error(t, err)
		})
	}
}
