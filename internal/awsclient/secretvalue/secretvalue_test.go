package secretvalue_test

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/awsclient/secretvalue"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestSource(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	cfg := env.AWS.Config(testenv.Region)
	out, err := secretsmanager.NewFromConfig(cfg).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("control-plane/ceforge-log-cursor-key"), SecretString: aws.String("k3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3y"),
	})
	require.NoError(t, err)
	got, err := secretvalue.Source(cfg, aws.ToString(out.ARN))(ctx)
	require.NoError(t, err)
	require.Equal(t, "k3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3y", string(got))
	_, err = secretvalue.Source(cfg, "no-such-secret")(ctx)
	require.ErrorContains(t, err, "ResourceNotFound")
}
