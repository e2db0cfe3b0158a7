package profileread_test

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/awsclient/profileread"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// The reader sees what the SDK's IAM client created in the emulator, and
// a missing profile is the SDK's NoSuchEntity.
func TestReadsWhatTheSDKCreated(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	cfg := env.AWS.Config(testenv.Region)
	sdk := iam.NewFromConfig(cfg)
	_, err := sdk.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("profileread-role"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	require.NoError(t, err)
	for _, name := range []string{"profileread-with-role", "profileread-empty"} {
		_, err = sdk.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String(name)})
		require.NoError(t, err)
	}
	_, err = sdk.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String("profileread-with-role"), RoleName: aws.String("profileread-role")})
	require.NoError(t, err)

	r := profileread.New(cfg)
	for _, name := range []string{"profileread-with-role", "profileread-empty"} {
		want, err := sdk.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
		require.NoError(t, err)
		got, err := r.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
		require.NoError(t, err)
		require.Equal(t, aws.ToString(want.InstanceProfile.Arn), aws.ToString(got.InstanceProfile.Arn))
		require.Equal(t, len(want.InstanceProfile.Roles), len(got.InstanceProfile.Roles), name)
		for i := range want.InstanceProfile.Roles {
			require.Equal(t, aws.ToString(want.InstanceProfile.Roles[i].Arn), aws.ToString(got.InstanceProfile.Roles[i].Arn))
		}
	}
	_, err = r.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String("profileread-missing")})
	var ae smithy.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "NoSuchEntity", ae.ErrorCode())
}
