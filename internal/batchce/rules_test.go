package batchce_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/computeenv"
)

type mut = func(b *computeenv.BatchOptions, f *computeenv.ForgeOptions)

func TestOptionRules(t *testing.T) {
	h := newHarness(t)
	makeBucket(t, h, "ceforge-far-away", "eu-west-1")
	makeBucket(t, h, "other-team", region) // exists, but outside the allowed buckets (ceforge-*)
	cases := []struct {
		name   string
		req    computeenv.CreateRequest
		status int
		field  string
	}{
		{"fusion2 needs wave", forgeBody("r", func(b *computeenv.BatchOptions, _ *computeenv.ForgeOptions) { b.Fusion2Enabled = true }), 400, "batch.fusion2Enabled"},
		{"snapshots need fusion2", forgeBody("r", func(b *computeenv.BatchOptions, _ *computeenv.ForgeOptions) { b.FusionSnapshots = true }), 400, "batch.fusionSnapshots"},
		{"fargate needs fusion2", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.FargateHeadEnabled = true }), 400, "batch.forge.fargateHeadEnabled"},
		{"fargate needs spot", forgeBody("r", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.FargateHeadEnabled, f.Type = true, "EC2"
		}), 400, "batch.forge.fargateHeadEnabled"},
		{"fargate excludes EFS", forgeBody("r", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.FargateHeadEnabled, f.EfsCreate = true, true
		}), 400, "batch.forge.fargateHeadEnabled"},
		{"fargate excludes FSx", forgeBody("r", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.FargateHeadEnabled, f.FsxSize = true, 1200
		}), 400, "batch.forge.fargateHeadEnabled"},
		{"fargate head size", forgeBody("r", fusion, func(b *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.FargateHeadEnabled, b.HeadJobMemoryMb = true, 1000
		}), 400, "batch.headJobMemoryMb"},
		{"graviton needs fargate", forgeBody("r", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.Arm64Enabled = true }), 400, "batch.forge.arm64Enabled"},
		{"graviton excludes GPU", forgeBody("r", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.Arm64Enabled, f.FargateHeadEnabled, f.GpuEnabled = true, true, true
		}), 400, "batch.forge.arm64Enabled"},
		{"graviton and optimal", forgeBody("r", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.Arm64Enabled, f.FargateHeadEnabled, f.InstanceTypes = true, true, []string{"optimal"}
		}), 400, "batch.forge.instanceTypes[0]"},
		{"fast storage needs fusion2", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.FastStorage = true }), 400, "batch.forge.fastStorage"},
		{"fast storage rejects c4", forgeBody("r", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.FastStorage, f.InstanceTypes = true, []string{"c4.xlarge"}
		}), 400, "batch.forge.instanceTypes[0]"},
		{"fast storage rejects optimal", forgeBody("r", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.FastStorage, f.InstanceTypes = true, []string{"c6id", "optimal"}
		}), 400, "batch.forge.instanceTypes[1]"},
		{"fast storage rejects non-NVMe", forgeBody("r", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.FastStorage, f.InstanceTypes = true, []string{"m5d.large", "m5.large"}
		}), 400, "batch.forge.instanceTypes[1]"},
		{"EBS autoscale excludes fusion2", forgeBody("r", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EbsAutoScale = true }), 400, "batch.forge.ebsAutoScale"},
		{"block size needs autoscale", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EbsBlockSize = 50 }), 400, "batch.forge.ebsBlockSize"},
		{"bucket in another region", withWorkDir(forgeBody("r"), "s3://ceforge-far-away/work"), 400, "workDir"},
		{"work dir outside the allowed buckets", withWorkDir(forgeBody("r"), "s3://other-team/work"), 400, "workDir"},
		{"allowBuckets outside the allowed buckets", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.AllowBuckets = []string{"s3://other-team"}
		}), 400, "batch.forge.allowBuckets[0]"},
		{"bucket missing", withWorkDir(forgeBody("r"), "s3://ceforge-no-such-bucket/work"), 400, "workDir"},
		{"path work dir outside the mount", withWorkDir(forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EfsCreate = true }), "/data/work"), 400, "workDir"},
		{"path work dir without file system", withWorkDir(forgeBody("r"), "/mnt/efs/work"), 400, "workDir"},
		{"type missing", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.Type = "" }), 400, "batch.forge.type"},
		{"type unknown", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.Type = "FARGATE" }), 400, "batch.forge.type"},
		{"max cpus missing", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.MaxCpus = 0 }), 400, "batch.forge.maxCpus"},
		{"min above max", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.MinCpus = 100 }), 400, "batch.forge.minCpus"},
		{"EC2 alloc strategy", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.Type, f.AllocStrategy = "EC2", "SPOT_CAPACITY_OPTIMIZED"
		}), 400, "batch.forge.allocStrategy"},
		{"spot BEST_FIT", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.AllocStrategy = "BEST_FIT" }), 400, "batch.forge.allocStrategy"},
		{"bid with EC2", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.Type, f.BidPercentage = "EC2", 50 }), 400, "batch.forge.bidPercentage"},
		{"bid above 100", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.BidPercentage = 120 }), 400, "batch.forge.bidPercentage"},
		{"instance type format", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.InstanceTypes = []string{"m6i.xlarge", "big one"}
		}), 400, "batch.forge.instanceTypes[1]"},
		{"ami format", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.ImageID = "ubuntu" }), 400, "batch.forge.imageId"},
		{"boot disk too small", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EbsBootSize = 8 }), 400, "batch.forge.ebsBootSize"},
		{"subnet format", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.Subnets = []string{"my-subnet"} }), 400, "batch.forge.subnets[0]"},
		{"subnet missing", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.Subnets = []string{"subnet-0123456789abcdef0"}
		}), 400, "batch.forge.subnets"},
		{"security group missing", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.SecurityGroups = []string{"sg-0123456789abcdef0"}
		}), 400, "batch.forge.securityGroups"},
		{"EFS id and create", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.EfsID, f.EfsCreate = "fs-12345678", true
		}), 400, "batch.forge.efsCreate"},
		{"FSx size", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.FsxSize = 1000 }), 400, "batch.forge.fsxSize"},
		{"mount without file system", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EfsMount = "/mnt/efs" }), 400, "batch.forge.efsMount"},
		{"ecs config", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EcsConfig = "ECS_OK=1\nrm -rf /" }), 400, "batch.forge.ecsConfig"},
		{"head role", forgeBody("r", func(b *computeenv.BatchOptions, _ *computeenv.ForgeOptions) { b.HeadJobRole = "admin" }), 400, "batch.headJobRole"},
		{"unreadable log group", forgeBody("r", func(b *computeenv.BatchOptions, _ *computeenv.ForgeOptions) { b.LogGroup = "/mine" }), 400, "batch.logGroup"},
		{"head memory", forgeBody("r", func(b *computeenv.BatchOptions, _ *computeenv.ForgeOptions) { b.HeadJobMemoryMb = 100 }), 400, "batch.headJobMemoryMb"},
		{"allow bucket", forgeBody("r", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.AllowBuckets = []string{"other"} }), 400, "batch.forge.allowBuckets[0]"},
		{"forge with manual queue", forgeBody("r", func(b *computeenv.BatchOptions, _ *computeenv.ForgeOptions) { b.HeadQueue = "q" }), 400, "batch.headQueue"},
		{"manual needs compute queue", manualBody(&computeenv.BatchOptions{HeadQueue: "q"}), 400, "batch.computeQueue"},
		{"manual needs head queue", manualBody(&computeenv.BatchOptions{ComputeQueue: "q"}), 400, "batch.headQueue"},
		{"manual queue missing", manualBody(&computeenv.BatchOptions{HeadQueue: "q1", ComputeQueue: "q2"}), 422, "batch.headQueue"},
		{"batch block missing", manualBody(nil), 400, "batch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.Calls.Reset()
			res := h.Do(t, "POST", "/compute-envs", tc.req)
			require.Equal(t, tc.status, res.Status, string(res.Body))
			_, field, msg := res.Error(t)
			require.Equal(t, tc.field, field, msg)
			for _, op := range h.Calls.Operations() {
				require.False(t, strings.Contains(op, ".Create") || strings.Contains(op, ".Put") || strings.Contains(op, ".Register") || strings.Contains(op, "TransactWrite"), "nothing is created: %s", op)
			}
		})
	}
	list := h.Do(t, "GET", "/compute-envs", nil)
	require.Equal(t, 200, list.Status)
	var page struct {
		Items []computeenv.ComputeEnv `json:"items"`
	}
	list.JSON(t, &page)
	require.Empty(t, page.Items)
}

func withWorkDir(r computeenv.CreateRequest, w string) computeenv.CreateRequest {
	r.WorkDir = w
	return r
}

func manualBody(b *computeenv.BatchOptions) computeenv.CreateRequest {
	return computeenv.CreateRequest{Name: "m", Platform: computeenv.PlatformBatch, Region: region, WorkDir: "s3://" + bucket + "/w", Batch: b}
}

func TestWarningsAndDefaults(t *testing.T) {
	h := newHarness(t)
	many := make([]string, 22)
	for i := range many {
		many[i] = fmt.Sprintf("m%d.large", i+5)
	}
	cases := []struct {
		name  string
		mut   []mut
		check func(t *testing.T, ce computeenv.ComputeEnv)
	}{
		{"min cpus cost", []mut{func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.MinCpus = 8 }}, func(t *testing.T, ce computeenv.ComputeEnv) {
			require.Len(t, ce.Warnings, 1)
			require.Contains(t, ce.Warnings[0], "minCpus")
		}},
		{"too many instance types", []mut{func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.InstanceTypes = many }}, func(t *testing.T, ce computeenv.ComputeEnv) {
			require.Len(t, ce.Warnings, 1)
			require.Contains(t, ce.Warnings[0], "20")
		}},
		{"fargate ignores custom AMI", []mut{fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.FargateHeadEnabled, f.ImageID = true, "ami-12c6146b" // an x86 AMI the emulator has
		}}, func(t *testing.T, ce computeenv.ComputeEnv) {
			require.Len(t, ce.Warnings, 1)
			require.Contains(t, ce.Warnings[0], "Fargate")
		}},
		{"spot defaults", nil, func(t *testing.T, ce computeenv.ComputeEnv) {
			require.Empty(t, ce.Warnings)
			f := ce.Batch.Forge
			require.Equal(t, "SPOT_PRICE_CAPACITY_OPTIMIZED", f.AllocStrategy)
			require.Equal(t, []string{"optimal"}, f.InstanceTypes)
			require.Equal(t, 4096, ce.Batch.HeadJobMemoryMb)
			require.Equal(t, aws.Bool(true), f.DisposeOnDeletion)
		}},
		{"ec2 defaults", []mut{func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.Type = "EC2" }}, func(t *testing.T, ce computeenv.ComputeEnv) {
			require.Equal(t, "BEST_FIT_PROGRESSIVE", ce.Batch.Forge.AllocStrategy)
		}},
		{"fast storage picks NVMe types", []mut{fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.FastStorage = true }}, func(t *testing.T, ce computeenv.ComputeEnv) {
			require.Equal(t, []string{"c6id", "m6id", "r6id"}, ce.Batch.Forge.InstanceTypes)
		}},
		{"efs defaults its mount", []mut{func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EfsCreate = true }}, func(t *testing.T, ce computeenv.ComputeEnv) {
			require.Equal(t, "/mnt/efs", ce.Batch.Forge.EfsMount)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, planOf(t, h, forgeBody("w", tc.mut...)).ComputeEnv)
		})
	}
}
