package cloudce_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/cloudce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forgedrole"
	"github.com/ceforge/ceforge/internal/testenv"
)

// The instance role is created under the permissions boundary, trusted by
// EC2 only; a role forged before boundaries (or adopted from a crashed
// attempt) is brought under it, once.
func TestInstanceRoleUnderBoundary(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	p := newPlatform(env, app.FnReconciler) // the reconciler forges and repairs roles
	api := iam.NewFromConfig(env.AWS.Config(testenv.Region))
	boundary := testenv.Boundary("ceforge-")
	ce := creatingCE("bound000000001")
	name := p.RoleName(ce.ID)

	require.NoError(t, p.Advance(ctx, ce))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	got, err := api.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	require.NoError(t, err)
	require.NotNil(t, got.Role.PermissionsBoundary)
	require.Equal(t, boundary, aws.ToString(got.Role.PermissionsBoundary.PermissionsBoundaryArn))
	require.Contains(t, aws.ToString(got.Role.AssumeRolePolicyDocument), "ec2.amazonaws.com")
	require.Equal(t, boundary, ce.Resource(cloudce.ResRole).PermissionsBoundary)
	changed, err := p.Bound(ctx, ce)
	require.NoError(t, err)
	require.False(t, changed, "a role created under the boundary needs nothing")

	// What an older ceforge left: no boundary on the role or in the record.
	_, err = api.DeleteRolePermissionsBoundary(ctx, &iam.DeleteRolePermissionsBoundaryInput{RoleName: aws.String(name)})
	require.NoError(t, err)
	ce.Resource(cloudce.ResRole).PermissionsBoundary = ""
	changed, err = p.Bound(ctx, ce)
	require.NoError(t, err)
	require.True(t, changed)
	got, err = api.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	require.NoError(t, err)
	require.NotNil(t, got.Role.PermissionsBoundary)
	require.Equal(t, boundary, aws.ToString(got.Role.PermissionsBoundary.PermissionsBoundaryArn))
	require.Equal(t, boundary, ce.Resource(cloudce.ResRole).PermissionsBoundary)
	changed, err = p.Bound(ctx, ce)
	require.NoError(t, err)
	require.False(t, changed)

	// A CE reached through a role in another account uses the boundary of
	// that account (a policy of the same name there).
	other := creatingCE("bound000000002")
	other.Credentials = &computeenv.Credentials{RoleARN: "arn:aws:iam::210987654321:role/ceforge-access", ExternalID: "x"}
	plan, err := p.Plan(ctx, other)
	require.NoError(t, err)
	found := false
	for _, r := range plan.Resources {
		if r.Type == cloudce.ResRole && r.Action == "create" {
			found = true
			require.Equal(t, "arn:aws:iam::210987654321:policy/ceforge-boundary", r.Properties["permissionsBoundary"])
		}
	}
	require.True(t, found)
}

// The reconciler may attach only forgedrole's exact AWS managed policies:
// one the instance role needs beyond them would fail only on AWS.
func TestInstanceRolePoliciesAreAttachable(t *testing.T) {
	require.NotEmpty(t, cloudce.ManagedPolicies)
	for _, arn := range cloudce.ManagedPolicies {
		require.True(t, forgedrole.Attachable(arn), arn)
	}
	require.Contains(t, cloudce.ManagedPolicies, forgedrole.ManagedPolicyARN(forgedrole.PolicySSMCore), "studio connect needs Session Manager")
}
