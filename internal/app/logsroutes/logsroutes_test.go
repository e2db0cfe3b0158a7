package logsroutes_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/logsroutes"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/logs"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// The cursor key is the deployment's secret when one is configured, a
// random key per process against the emulator, and nothing derived: in AWS
// without the secret the function refuses to start.
func TestCursorKeySources(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	base, err := config.FromLookup(func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	base.Table, base.Region = testenv.Table, testenv.Region
	opts := app.Options{AWS: env.AWS, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.Discard}
	wire := func(cfg config.Config) (*app.App, error) { return app.New(ctx, cfg, opts, logsroutes.Feature) }

	// Against AWS (no emulator endpoint) without the secret: refused.
	_, err = wire(base)
	require.ErrorContains(t, err, "CEFORGE_CURSOR_KEY_SECRET")

	// Against the emulator: a random key per process, never the same twice.
	local := base
	local.Endpoint = env.Endpoint
	a1, err := wire(local)
	require.NoError(t, err)
	a2, err := wire(local)
	require.NoError(t, err)
	k1, err := a1.CursorKey(ctx)
	require.NoError(t, err)
	k2, err := a2.CursorKey(ctx)
	require.NoError(t, err)
	require.Len(t, k1, logs.MinCursorKeyBytes)
	require.NotEqual(t, k1, k2)

	// The deployment's secret, read from Secrets Manager.
	out, err := secretsmanager.NewFromConfig(env.AWS.Config(testenv.Region)).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("control-plane/ceforge-log-cursor-key"), SecretString: aws.String("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01"),
	})
	require.NoError(t, err)
	deployed := local
	deployed.CursorKeySecret = aws.ToString(out.ARN)
	a3, err := wire(deployed)
	require.NoError(t, err)
	k3, err := a3.CursorKey(ctx)
	require.NoError(t, err)
	require.Equal(t, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01", string(k3))
}
