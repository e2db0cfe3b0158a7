package batchce_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/store"
)

// nothingCreated checks a refused create left no trace: no call that
// creates, no record.
func nothingCreated(t *testing.T, h *apptest.Harness) {
	t.Helper()
	for _, op := range []string{"IAM.CreateRole", "Batch.CreateComputeEnvironment", "Batch.CreateJobQueue", "EC2.CreateLaunchTemplate", "EFS.CreateFileSystem", "FSx.CreateFileSystem"} {
		require.Zero(t, h.Calls.Count(op), op)
	}
	page, err := h.Store.List(context.Background(), store.Query{Kind: store.KindCE, Limit: store.MaxPageSize})
	require.NoError(t, err)
	require.Empty(t, page.Items)
}

// The options that name things in the account are checked when the CE is
// created: a 4xx naming the field, and nothing created.
func TestForgeValidatesWhatItNames(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	e := ec2.NewFromConfig(h.AWS.Config(region))
	_, err := e.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("mine")})
	require.NoError(t, err)
	subnets := planOf(t, h, forgeBody("probe")).ComputeEnv.Batch.Forge.Subnets
	require.Greater(t, len(subnets), 1)
	fsc := efs.NewFromConfig(h.AWS.Config(region))
	bare, err := fsc.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("bare")})
	require.NoError(t, err)
	half, err := fsc.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("half")})
	require.NoError(t, err)
	_, err = fsc.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: half.FileSystemId, SubnetId: aws.String(subnets[0])})
	require.NoError(t, err)
	h.Calls.Reset()

	type mut = func(*computeenv.BatchOptions, *computeenv.ForgeOptions)
	for _, tc := range []struct {
		name, code, field string
		status            int
		mut               mut
	}{
		{"unknown AMI", "image_not_found", "batch.forge.imageId", 422, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.ImageID = "ami-0123456789abcdef0" }},
		{"arm64 AMI for x86 instances", "image_architecture", "batch.forge.imageId", 422, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.ImageID = "ami-0e9271c829888680e" }},
		{"unknown key pair", "key_pair_not_found", "batch.forge.ec2KeyPair", 422, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EC2KeyPair = "nope" }},
		{"unknown EFS", "efs_not_found", "batch.forge.efsId", 422, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EfsID = "fs-0123456789abcdef0" }},
		{"EFS without mount targets", "efs_unreachable", "batch.forge.efsId", 422, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.EfsID = aws.ToString(bare.FileSystemId)
		}},
		{"EFS reachable from one zone only", "efs_unreachable", "batch.forge.efsId", 422, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.EfsID = aws.ToString(half.FileSystemId)
		}},
		{"unknown FSx", "fsx_not_found", "batch.forge.fsxName", 422, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.FsxName = "fs-0123456789abcdef0.fsx.us-east-1.amazonaws.com"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/compute-envs?dryRun=true", "/compute-envs"} {
				res := h.Do(t, "POST", path, forgeBody("named", tc.mut))
				require.Equal(t, tc.status, res.Status, string(res.Body))
				code, field, msg := res.Error(t)
				require.Equal(t, tc.code, code, msg)
				require.Equal(t, tc.field, field)
			}
			nothingCreated(t, h)
		})
	}
	// The zones the EFS misses are named.
	res := h.Do(t, "POST", "/compute-envs", forgeBody("named", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.EfsID = aws.ToString(half.FileSystemId)
	}))
	_, _, msg := res.Error(t)
	require.Contains(t, msg, "has no mount target in VPC vpc-")
	first, err := e.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: subnets[:1]})
	require.NoError(t, err)
	require.NotContains(t, msg, aws.ToString(first.Subnets[0].AvailabilityZone), "the covered zone is not listed")
	require.Contains(t, msg, "us-east-1")

	// With everything in place the CE forges, and its hosts mount the EFS.
	for _, sn := range subnets[1:] {
		_, err = fsc.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: half.FileSystemId, SubnetId: aws.String(sn)})
		require.NoError(t, err)
	}
	ce := createCE(t, h, forgeBody("named", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.ImageID, f.EC2KeyPair, f.EfsID = "ami-12c6146b", "mine", aws.ToString(half.FileSystemId)
	}))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	lt, err := e.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: aws.String(forge.NamesFor(prefix, ce.ID).LaunchTemplate)})
	require.NoError(t, err)
	ud, err := base64.StdEncoding.DecodeString(aws.ToString(lt.LaunchTemplateVersions[0].LaunchTemplateData.UserData))
	require.NoError(t, err)
	require.Contains(t, string(ud), "CEFORGE_EFS_ID='"+aws.ToString(half.FileSystemId)+"'")
	require.Contains(t, string(ud), "CEFORGE_EFS_MOUNT='/mnt/efs'")
}

// fillBatch creates, outside ceforge, n job queues on one Fargate compute
// environment (plus ces-1 more compute environments).
func fillBatch(t *testing.T, h *apptest.Harness, ces, queues int) {
	t.Helper()
	ctx := context.Background()
	role, err := iam.NewFromConfig(h.AWS.Config(region)).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("filler"), AssumeRolePolicyDocument: aws.String(forge.TrustPolicy("batch.amazonaws.com"))})
	require.NoError(t, err)
	dr := planOf(t, h, forgeBody("probe"))
	b := batch.NewFromConfig(h.AWS.Config(region))
	var first *string
	for i := 0; i < ces; i++ {
		c, err := b.CreateComputeEnvironment(ctx, &batch.CreateComputeEnvironmentInput{
			ComputeEnvironmentName: aws.String(fmt.Sprintf("filler-%d", i)), Type: btypes.CETypeManaged, ServiceRole: role.Role.Arn,
			ComputeResources: &btypes.ComputeResource{Type: btypes.CRTypeFargate, MaxvCpus: aws.Int32(4), Subnets: dr.ComputeEnv.Batch.Forge.Subnets, SecurityGroupIds: dr.ComputeEnv.Batch.Forge.SecurityGroups},
		})
		require.NoError(t, err)
		if first == nil {
			first = c.ComputeEnvironmentArn
		}
	}
	for i := 0; i < queues; i++ {
		_, err := b.CreateJobQueue(ctx, &batch.CreateJobQueueInput{JobQueueName: aws.String(fmt.Sprintf("filler-%d", i)), Priority: aws.Int32(1), State: btypes.JQStateEnabled,
			ComputeEnvironmentOrder: []btypes.ComputeEnvironmentOrder{{Order: aws.Int32(1), ComputeEnvironment: first}}})
		require.NoError(t, err)
	}
}

// AWS Batch allows 50 job queues (and 50 compute environments) per account
// and region: a forge create that would pass either is a 409 up front.
func TestForgeRespectsBatchQuotas(t *testing.T) {
	t.Run("job queues", func(t *testing.T) {
		h := newHarness(t)
		fillBatch(t, h, 1, 49)
		h.Calls.Reset()
		res := h.Do(t, "POST", "/compute-envs", forgeBody("full"))
		require.Equal(t, 409, res.Status, string(res.Body))
		code, field, msg := res.Error(t)
		require.Equal(t, "job_queue_quota", code)
		require.Equal(t, "batch.forge", field)
		require.Contains(t, msg, "has 49 of the 50 job queues")
		nothingCreated(t, h)
		// On demand shares one compute environment but still needs two queues.
		res = h.Do(t, "POST", "/compute-envs?dryRun=true", forgeBody("full", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.Type = "EC2" }))
		require.Equal(t, 409, res.Status, string(res.Body))

		b := batch.NewFromConfig(h.AWS.Config(region))
		ctx := context.Background()
		_, err := b.UpdateJobQueue(ctx, &batch.UpdateJobQueueInput{JobQueue: aws.String("filler-0"), State: btypes.JQStateDisabled})
		require.NoError(t, err)
		_, err = b.DeleteJobQueue(ctx, &batch.DeleteJobQueueInput{JobQueue: aws.String("filler-0")})
		require.NoError(t, err)
		ce := createCE(t, h, forgeBody("fits"))
		require.Equal(t, computeenv.StatusAvailable, ce.Status, "48 + 2 = 50 fits: %s", ce.StatusReason)
	})
	t.Run("compute environments", func(t *testing.T) {
		h := newHarness(t)
		fillBatch(t, h, 49, 0)
		h.Calls.Reset()
		res := h.Do(t, "POST", "/compute-envs", forgeBody("full"))
		require.Equal(t, 409, res.Status, string(res.Body))
		code, _, _ := res.Error(t)
		require.Equal(t, "compute_environment_quota", code)
		nothingCreated(t, h)
	})
}
