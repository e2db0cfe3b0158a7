package batchce_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/testenv"
)

// A compute environment forged before roles carried a permissions
// boundary (no boundary on its roles or in its record, and a forged Batch
// service role) is brought under the boundary by the reconciler, once;
// its legacy service role is left as Batch needs it, and deleted with it.
func TestReconcilerBoundsLegacyForgedRoles(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("legacy"))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	names := forge.NamesFor(prefixName, ce.ID)
	iamc := iam.NewFromConfig(h.AWS.Config(region))
	roles := []string{names.InstanceRole, names.HeadJobRole, names.ComputeJobRole}

	// Turn it into what an older ceforge left behind.
	for _, r := range roles {
		_, err := iamc.DeleteRolePermissionsBoundary(ctx, &iam.DeleteRolePermissionsBoundaryInput{RoleName: aws.String(r)})
		require.NoError(t, err)
	}
	svc, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(names.ServiceRole), AssumeRolePolicyDocument: aws.String(forge.TrustPolicy("batch.amazonaws.com"))})
	require.NoError(t, err)
	_, err = iamc.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(names.ServiceRole), PolicyArn: aws.String("arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole")})
	require.NoError(t, err)
	var rec computeenv.ComputeEnv
	v, err := h.Store.Get(ctx, store.KindCE, ce.ID, &rec)
	require.NoError(t, err)
	for i := range rec.ForgedResources {
		rec.ForgedResources[i].PermissionsBoundary = ""
	}
	rec.ForgedResources = append(rec.ForgedResources, computeenv.Resource{Type: forge.TypeRole, Name: names.ServiceRole, ARN: aws.ToString(svc.Role.Arn), State: forge.StateCreated})
	_, err = h.Store.Save(ctx, store.KindCE, ce.ID, &rec, v)
	require.NoError(t, err)

	require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	require.Equal(t, len(roles), h.Calls.Count("IAM.PutRolePermissionsBoundary"))
	for _, r := range roles {
		got, err := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(r)})
		require.NoError(t, err)
		require.NotNil(t, got.Role.PermissionsBoundary, r)
		require.Equal(t, testenv.Boundary(prefixName), aws.ToString(got.Role.PermissionsBoundary.PermissionsBoundaryArn), r)
	}
	got, err := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(names.ServiceRole)})
	require.NoError(t, err)
	require.Nil(t, got.Role.PermissionsBoundary, "the legacy Batch service role keeps what Batch needs")
	after := settle(t, h, ce.ID)
	for _, r := range roles {
		require.Equal(t, testenv.Boundary(prefixName), forge.Find(&after, forge.TypeRole, r).PermissionsBoundary, r)
	}

	// Idempotent, and free once recorded: no IAM call on the next pass.
	getRoles := h.Calls.Count("IAM.GetRole")
	require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	require.Equal(t, len(roles), h.Calls.Count("IAM.PutRolePermissionsBoundary"))
	require.Equal(t, getRoles, h.Calls.Count("IAM.GetRole"))

	// Deleting the CE removes the legacy service role too.
	res := h.Do(t, "DELETE", "/compute-envs/"+ce.ID, nil)
	require.Equal(t, 202, res.Status, string(res.Body))
	require.Equal(t, computeenv.StatusDeleted, settle(t, h, ce.ID).Status)
	_, err = iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(names.ServiceRole)})
	require.Error(t, err)
}
