package ssmparam_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/awsclient/ssmparam"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestParameter(t *testing.T) {
	env := testenv.New(t)
	r := ssmparam.New(env.AWS.Config(testenv.Region))
	ctx := context.Background()

	// moto publishes the ECS-optimized AMI parameters, as AWS does.
	ami, err := r.Parameter(ctx, "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(ami, "ami-"), ami)

	_, err = r.Parameter(ctx, "/ceforge/test/no-such-parameter")
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "the AWS error stays reachable: %v", err)
	require.Equal(t, "ParameterNotFound", ae.ErrorCode())
	require.ErrorContains(t, err, "/ceforge/test/no-such-parameter")
}
