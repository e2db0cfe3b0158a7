package batchce_test

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	fsxtypes "github.com/aws/aws-sdk-go-v2/service/fsx/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/forgedrole"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/testenv"
)

type dryRun struct {
	ComputeEnv computeenv.ComputeEnv `json:"computeEnv"`
	Plan       computeenv.Plan       `json:"plan"`
}

func planOf(t testing.TB, h *apptest.Harness, req computeenv.CreateRequest) dryRun {
	t.Helper()
	res := h.Do(t, "POST", "/compute-envs?dryRun=true", req)
	require.Equal(t, 200, res.Status, string(res.Body))
	var out dryRun
	res.JSON(t, &out)
	return out
}

// normalize renders a plan with the CE id (random per dry run) replaced.
func normalize(t *testing.T, p computeenv.Plan, id string) string {
	b, err := json.Marshal(p)
	require.NoError(t, err)
	return strings.ReplaceAll(string(b), id, "<id>")
}

// planImage is the imageId a plan gives a Batch compute environment.
func planImage(t *testing.T, p computeenv.Plan, name string) string {
	t.Helper()
	for _, r := range p.Resources {
		if r.Type == forge.TypeComputeEnv && r.Name == name {
			id, _ := r.Properties["imageId"].(string)
			return id
		}
	}
	t.Fatalf("plan has no compute environment %s", name)
	return ""
}

func created(p computeenv.Plan) []string {
	var out []string
	for _, r := range p.Resources {
		if r.Action == "create" {
			out = append(out, r.Type+" "+r.Name)
		}
	}
	sort.Strings(out)
	return out
}

// forged lists what forge made (not the AMIs resolved at validation, which
// exist on their own).
func forged(ce computeenv.ComputeEnv) []string {
	var out []string
	for _, r := range ce.ForgedResources {
		if r.State != forge.StateUsed {
			out = append(out, r.Type+" "+r.Name)
		}
	}
	sort.Strings(out)
	return out
}

// describe returns the Batch CEs and queues named by a CE's design.
func describe(t *testing.T, h *apptest.Harness, names forge.Names) (map[string]btypes.ComputeEnvironmentDetail, map[string]btypes.JobQueueDetail) {
	t.Helper()
	ctx := context.Background()
	b := batch.NewFromConfig(h.AWS.Config(region))
	ces, err := b.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{ComputeEnvironments: []string{names.HeadCE, names.WorkCE}})
	require.NoError(t, err)
	qs, err := b.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: []string{names.HeadQueue, names.WorkQueue}})
	require.NoError(t, err)
	ceMap, qMap := map[string]btypes.ComputeEnvironmentDetail{}, map[string]btypes.JobQueueDetail{}
	for _, c := range ces.ComputeEnvironments {
		ceMap[aws.ToString(c.ComputeEnvironmentName)] = c
	}
	for _, q := range qs.JobQueues {
		qMap[aws.ToString(q.JobQueueName)] = q
	}
	return ceMap, qMap
}

func queueCE(t *testing.T, q btypes.JobQueueDetail) string {
	t.Helper()
	require.Len(t, q.ComputeEnvironmentOrder, 1)
	return aws.ToString(q.ComputeEnvironmentOrder[0].ComputeEnvironment)
}

func TestForgeSpotCE(t *testing.T) {
	h := newHarness(t)
	req := forgeBody("spot")
	p := planOf(t, h, req)
	require.Equal(t, "forge", p.ComputeEnv.ConfigMode)
	require.Equal(t, "SPOT_PRICE_CAPACITY_OPTIMIZED", p.ComputeEnv.Batch.Forge.AllocStrategy)
	require.Equal(t, 4096, p.ComputeEnv.Batch.HeadJobMemoryMb)
	require.NotEmpty(t, p.ComputeEnv.Batch.Forge.Subnets, "default VPC subnets are filled in")
	require.NotEmpty(t, p.ComputeEnv.Batch.Forge.SecurityGroups)
	p2 := planOf(t, h, req)
	require.Equal(t, normalize(t, p.Plan, p.ComputeEnv.ID), normalize(t, p2.Plan, p2.ComputeEnv.ID), "plans are deterministic")
	require.Zero(t, h.Calls.Count("IAM.CreateRole")+h.Calls.Count("Batch.CreateComputeEnvironment"), "a dry run creates nothing")

	ce := createCE(t, h, req)
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	names := forge.NamesFor("ceforge-", ce.ID)
	// Plan and resources match (names of the plan are per CE id: rebuild it for this id).
	planned := forge.NewDesign("ceforge-", &ce).Plan()
	require.Equal(t, created(planned), forged(ce))
	for _, r := range ce.ForgedResources {
		if r.Type != forge.TypeAMI && r.Name != forge.BatchServiceLinkedRole {
			require.Equal(t, forge.StateCreated, r.State, r.Name)
		}
	}
	// Batch's service-linked role is the compute environments' service role:
	// used, never forged (nor deleted).
	slr := forge.Find(&ce, forge.TypeRole, forge.BatchServiceLinkedRole)
	require.NotNil(t, slr)
	require.Equal(t, forge.StateUsed, slr.State)
	ceMap, _ := describe(t, h, names)
	for name, c := range ceMap {
		require.Equal(t, slr.ARN, aws.ToString(c.ServiceRole), name)
	}
	// The AMI was resolved once, at validation (the API function), and the
	// reconciler forged with that id: it needs no SSM access of its own.
	ami := forge.Find(&ce, forge.TypeAMI, forge.AMIParamX86)
	require.NotNil(t, ami, "the x86 ECS AMI is recorded at validation")
	require.Equal(t, forge.StateUsed, ami.State)
	require.Regexp(t, `^ami-`, ami.ID)
	require.Equal(t, ami.ID, planImage(t, p.Plan, forge.NamesFor("ceforge-", p.ComputeEnv.ID).WorkCE), "the dry run shows the AMI it would use")

	ces, qs := describe(t, h, names)
	require.Len(t, ces, 2)
	head, work := ces[names.HeadCE], ces[names.WorkCE]
	require.Equal(t, btypes.CRTypeEc2, head.ComputeResources.Type, "Spot CEs run the head on demand")
	require.Equal(t, btypes.CRTypeSpot, work.ComputeResources.Type)
	require.Equal(t, btypes.CRAllocationStrategySpotPriceCapacityOptimized, work.ComputeResources.AllocationStrategy)
	require.Equal(t, int32(64), aws.ToInt32(work.ComputeResources.MaxvCpus))
	require.Equal(t, "ECS_AL2023", aws.ToString(work.ComputeResources.Ec2Configuration[0].ImageType))
	require.Equal(t, ami.ID, aws.ToString(work.ComputeResources.Ec2Configuration[0].ImageIdOverride))
	require.Equal(t, ami.ID, aws.ToString(head.ComputeResources.Ec2Configuration[0].ImageIdOverride))
	require.Equal(t, "true", work.Tags["ceforge:managed"])
	require.Equal(t, ce.ID, work.Tags["ceforge:ce-id"])
	require.Len(t, qs, 2)
	require.Equal(t, aws.ToString(head.ComputeEnvironmentArn), queueCE(t, qs[names.HeadQueue]))
	require.Equal(t, aws.ToString(work.ComputeEnvironmentArn), queueCE(t, qs[names.WorkQueue]))
	require.Greater(t, aws.ToInt32(qs[names.HeadQueue].Priority), aws.ToInt32(qs[names.WorkQueue].Priority))

	// Launch template: IMDSv2, boot disk, ownership tags on instances and volumes.
	ctx := context.Background()
	lt, err := ec2.NewFromConfig(h.AWS.Config(region)).DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: aws.String(names.LaunchTemplate)})
	require.NoError(t, err)
	data := lt.LaunchTemplateVersions[0].LaunchTemplateData
	require.Equal(t, "required", string(data.MetadataOptions.HttpTokens))
	require.Equal(t, int32(50), aws.ToInt32(data.BlockDeviceMappings[0].Ebs.VolumeSize))
	kinds := map[string]bool{}
	for _, ts := range data.TagSpecifications {
		for _, tg := range ts.Tags {
			if aws.ToString(tg.Key) == "ceforge:ce-id" && aws.ToString(tg.Value) == ce.ID {
				kinds[string(ts.ResourceType)] = true
			}
		}
	}
	require.True(t, kinds["instance"] && kinds["volume"], "ownership tags on instances and volumes: %v", kinds)

	// Roles: instance (+profile), head and compute job roles, each under the
	// permissions boundary and trusted by a compute service only; no
	// execution role without Fargate, no forged Batch service role.
	iamc := iam.NewFromConfig(h.AWS.Config(region))
	for _, role := range []string{names.InstanceRole, names.HeadJobRole, names.ComputeJobRole} {
		got, err := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(role)})
		require.NoError(t, err, role)
		require.NotNil(t, got.Role.PermissionsBoundary, role)
		require.Equal(t, testenv.Boundary(prefixName), aws.ToString(got.Role.PermissionsBoundary.PermissionsBoundaryArn), role)
		require.Equal(t, testenv.Boundary(prefixName), forge.Find(&ce, forge.TypeRole, role).PermissionsBoundary, role)
		requireComputeTrust(t, aws.ToString(got.Role.AssumeRolePolicyDocument))
	}
	for _, role := range []string{names.ExecutionRole, names.ServiceRole} {
		_, err = iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(role)})
		require.Error(t, err, role)
	}

	// Head job definition registered at creation.
	jd, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(names.JobDefinition), Status: aws.String("ACTIVE")})
	require.NoError(t, err)
	require.Len(t, jd.JobDefinitions, 1)
	require.Equal(t, names.LogGroup, jd.JobDefinitions[0].ContainerProperties.LogConfiguration.Options["awslogs-group"])

	// A second pass changes nothing.
	h.Calls.Reset()
	require.NoError(t, h.Reconciler.ComputeEnvs.Advance(ctx, ce.ID))
	require.Zero(t, h.Calls.Total("Batch")+h.Calls.Total("IAM"))
}

func TestForgeEC2CE(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("ondemand", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.Type, f.InstanceTypes, f.MinCpus = "EC2", []string{"m6i.xlarge", "c6i"}, 0
	}))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	require.Equal(t, "BEST_FIT_PROGRESSIVE", ce.Batch.Forge.AllocStrategy)
	names := forge.NamesFor("ceforge-", ce.ID)
	ces, qs := describe(t, h, names)
	require.Len(t, ces, 1, "on-demand CEs share one Batch CE between head and tasks")
	work := ces[names.WorkCE]
	require.Equal(t, btypes.CRTypeEc2, work.ComputeResources.Type)
	require.Equal(t, []string{"m6i.xlarge", "c6i"}, work.ComputeResources.InstanceTypes)
	require.Equal(t, aws.ToString(work.ComputeEnvironmentArn), queueCE(t, qs[names.HeadQueue]))
	require.Equal(t, aws.ToString(work.ComputeEnvironmentArn), queueCE(t, qs[names.WorkQueue]))
}

func TestForgeFargateHeadCE(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("fargate", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.FargateHeadEnabled, f.Arm64Enabled = true, true
	}))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	require.Equal(t, []string{"m6g", "c6g", "r6g"}, ce.Batch.Forge.InstanceTypes)
	names := forge.NamesFor("ceforge-", ce.ID)
	ces, qs := describe(t, h, names)
	require.Equal(t, btypes.CRTypeFargate, ces[names.HeadCE].ComputeResources.Type)
	require.Equal(t, aws.ToString(ces[names.HeadCE].ComputeEnvironmentArn), queueCE(t, qs[names.HeadQueue]))
	ctx := context.Background()
	_, err := iam.NewFromConfig(h.AWS.Config(region)).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(names.ExecutionRole)})
	require.NoError(t, err, "Fargate needs an execution role")
	jd, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(names.JobDefinition)})
	require.NoError(t, err)
	require.Equal(t, []btypes.PlatformCapability{btypes.PlatformCapabilityFargate}, jd.JobDefinitions[0].PlatformCapabilities)
	// A run asking a head size Fargate does not offer is refused before anything is submitted.
	res := h.Do(t, "POST", "/runs", map[string]any{"kind": "pipeline", "computeEnvId": ce.ID, "pipeline": "nf-core/rnaseq", "headJobCpus": 3})
	require.Equal(t, 400, res.Status, string(res.Body))
	_, field, _ := res.Error(t)
	require.Equal(t, "headJobCpus", field)
	r := launch(t, h, ce.ID, func(l *run.LaunchRequest) { l.HeadJobCpus, l.HeadJobMemoryMb = 2, 8192 })
	require.Equal(t, names.HeadQueue, r.Backend.JobQueue)

	// Fusion without NVMe: 100 GiB gp3 boot disk at 325 MB/s.
	lt, err := ec2.NewFromConfig(h.AWS.Config(region)).DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: aws.String(names.LaunchTemplate)})
	require.NoError(t, err)
	disk := lt.LaunchTemplateVersions[0].LaunchTemplateData.BlockDeviceMappings[0].Ebs
	require.Equal(t, int32(100), aws.ToInt32(disk.VolumeSize))
	require.Equal(t, "gp3", string(disk.VolumeType))
	require.Equal(t, int32(325), aws.ToInt32(disk.Throughput))
}

func TestForgeGPUCE(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("gpu", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.GpuEnabled = true }))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	names := forge.NamesFor("ceforge-", ce.ID)
	ces, _ := describe(t, h, names)
	work := ces[names.WorkCE]
	require.Equal(t, []string{"g4dn", "g5"}, work.ComputeResources.InstanceTypes)
	require.Equal(t, "ECS_AL2023_NVIDIA", aws.ToString(work.ComputeResources.Ec2Configuration[0].ImageType))
	require.Equal(t, "ECS_AL2023", aws.ToString(ces[names.HeadCE].ComputeResources.Ec2Configuration[0].ImageType), "the head needs no GPU")
}

func TestDeleteWithAndWithoutDispose(t *testing.T) {
	ctx := context.Background()
	for _, dispose := range []bool{true, false} {
		t.Run(map[bool]string{true: "dispose", false: "keep"}[dispose], func(t *testing.T) {
			h := newHarness(t)
			ce := createCE(t, h, forgeBody("del", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.DisposeOnDeletion = aws.Bool(dispose) }))
			require.Equal(t, computeenv.StatusAvailable, ce.Status)
			res := h.Do(t, "DELETE", "/compute-envs/"+ce.ID, nil)
			require.Equal(t, 202, res.Status, string(res.Body))
			ce = settle(t, h, ce.ID)
			require.Equal(t, computeenv.StatusDeleted, ce.Status, ce.StatusReason)
			require.Equal(t, dispose, ce.Dispose)

			names := forge.NamesFor("ceforge-", ce.ID)
			ces, qs := describe(t, h, names)
			iamc := iam.NewFromConfig(h.AWS.Config(region))
			_, roleErr := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(names.InstanceRole)})
			_, profErr := iamc.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(names.InstanceRole)})
			lts, ltErr := ec2.NewFromConfig(h.AWS.Config(region)).DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{})
			require.NoError(t, ltErr)
			lg, err := cloudwatchlogs.NewFromConfig(h.AWS.Config(region)).DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String(names.LogGroup)})
			require.NoError(t, err)
			jd, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(names.JobDefinition), Status: aws.String("ACTIVE")})
			require.NoError(t, err)
			if dispose {
				require.Empty(t, ces)
				require.Empty(t, qs)
				require.Error(t, roleErr)
				require.Error(t, profErr)
				require.Empty(t, lts.LaunchTemplates)
				require.Empty(t, lg.LogGroups)
				require.Empty(t, jd.JobDefinitions)
				for _, r := range ce.ForgedResources {
					want := forge.StateDeleted
					if r.Type == forge.TypeAMI || r.Name == forge.BatchServiceLinkedRole {
						want = forge.StateUsed // public AMIs and Batch's own role are never ours to delete
					}
					require.Equal(t, want, r.State, r.Type+" "+r.Name)
				}
			} else {
				require.Len(t, ces, 2)
				require.Len(t, qs, 2)
				require.NoError(t, roleErr)
				require.NoError(t, profErr)
				require.Len(t, lts.LaunchTemplates, 1)
				require.Len(t, lg.LogGroups, 1)
				require.Len(t, jd.JobDefinitions, 1)
			}
			// The name is free again.
			res = h.Do(t, "POST", "/compute-envs?dryRun=true", forgeBody("del"))
			require.Equal(t, 200, res.Status, string(res.Body))
		})
	}
}

func TestForgeRefusalErrorsWithReasonAndLeftovers(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("refused", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.InstanceTypes = []string{"zz9.large"} // well-formed, but AWS knows no such type
	}))
	require.Equal(t, computeenv.StatusErrored, ce.Status)
	require.Contains(t, ce.StatusReason, "create compute environment")
	require.Contains(t, ce.StatusReason, "zz9.large")
	require.Contains(t, ce.StatusReason, "iam-role")
	// Deleting an errored CE removes what was created.
	res := h.Do(t, "DELETE", "/compute-envs/"+ce.ID, nil)
	require.Equal(t, 202, res.Status, string(res.Body))
	ce = settle(t, h, ce.ID)
	require.Equal(t, computeenv.StatusDeleted, ce.Status, ce.StatusReason)
	_, err := iam.NewFromConfig(h.AWS.Config(region)).GetRole(context.Background(), &iam.GetRoleInput{RoleName: aws.String(forge.NamesFor(prefixName, ce.ID).InstanceRole)})
	require.Error(t, err)
}

const prefixName = "ceforge-"

// A crash after AWS created things but before the record was saved: the
// retry finds every resource by name and adopts it, creating no duplicates.
func TestForgeRetryAfterCrashAdopts(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("crash"))
	require.Equal(t, computeenv.StatusAvailable, ce.Status)
	want := forged(ce)
	// What the lost save would have left: the record as created (with the
	// AMIs resolved at validation), nothing forged.
	var resolved []computeenv.Resource
	for _, r := range ce.ForgedResources {
		if r.Type == forge.TypeAMI {
			resolved = append(resolved, r)
		}
	}
	ce.ForgedResources, ce.Status = resolved, computeenv.StatusCreating
	_, err := h.Store.Save(context.Background(), "CE", ce.ID, &ce, ce.Version)
	require.NoError(t, err)
	h.Calls.Reset()
	ce = settle(t, h, ce.ID)
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	require.Equal(t, want, forged(ce))
	for _, op := range []string{"Batch.CreateComputeEnvironment", "Batch.CreateJobQueue", "Batch.RegisterJobDefinition"} {
		require.Zero(t, h.Calls.Count(op), op)
	}
	ces, qs := describe(t, h, forge.NamesFor(prefixName, ce.ID))
	require.Len(t, ces, 2)
	require.Len(t, qs, 2)
}

func TestForgeEFSAndExistingFSx(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	dr := planOf(t, h, forgeBody("probe"))
	existing, err := fsx.NewFromConfig(h.AWS.Config(region)).CreateFileSystem(ctx, &fsx.CreateFileSystemInput{
		FileSystemType: fsxtypes.FileSystemTypeLustre, StorageCapacity: aws.Int32(1200), SubnetIds: dr.ComputeEnv.Batch.Forge.Subnets[:1],
		LustreConfiguration: &fsxtypes.CreateFileSystemLustreConfiguration{DeploymentType: fsxtypes.LustreDeploymentTypeScratch2},
	})
	require.NoError(t, err)
	ce := createCE(t, h, forgeBody("shared", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.EfsCreate, f.FsxName = true, aws.ToString(existing.FileSystem.DNSName)
	}))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	require.Equal(t, "/mnt/efs", ce.Batch.Forge.EfsMount)
	require.Equal(t, "/mnt/fsx", ce.Batch.Forge.FsxMount)
	efs := forge.FindType(&ce, forge.TypeEFS)
	require.NotNil(t, efs)
	require.NotEmpty(t, efs.ID)
	require.Nil(t, forge.FindType(&ce, forge.TypeFSx), "an existing FSx is used, not created")
	jd, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(forge.NamesFor(prefixName, ce.ID).JobDefinition)})
	require.NoError(t, err)
	var mounts []string
	for _, m := range jd.JobDefinitions[0].ContainerProperties.MountPoints {
		mounts = append(mounts, aws.ToString(m.ContainerPath))
	}
	require.ElementsMatch(t, []string{"/mnt/efs", "/mnt/fsx"}, mounts)

	res := h.Do(t, "DELETE", "/compute-envs/"+ce.ID, nil)
	require.Equal(t, 202, res.Status)
	ce = settle(t, h, ce.ID)
	require.Equal(t, computeenv.StatusDeleted, ce.Status, ce.StatusReason)
	require.Equal(t, forge.StateDeleted, forge.FindType(&ce, forge.TypeEFS).State)
	left, err := fsx.NewFromConfig(h.AWS.Config(region)).DescribeFileSystems(ctx, &fsx.DescribeFileSystemsInput{})
	require.NoError(t, err)
	require.Len(t, left.FileSystems, 1, "the user's FSx stays")
}

// Creating an FSx waits (CE stays CREATING) until the file system is
// AVAILABLE; deleting the CE meanwhile removes it.
func TestForgeFSxCreateWaitsThenDeletes(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	res := h.Do(t, "POST", "/compute-envs", forgeBody("fsx", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.FsxSize = 2400 }))
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	for i := 0; i < 2; i++ {
		require.NoError(t, h.Reconciler.ComputeEnvs.Advance(ctx, ce.ID))
	}
	got, err := h.Reconciler.ComputeEnvs.Get(ctx, ce.ID)
	require.NoError(t, err)
	require.Equal(t, computeenv.StatusCreating, got.Status)
	fs := forge.FindType(got, forge.TypeFSx)
	require.NotNil(t, fs)
	require.Equal(t, forge.StatePending, fs.State)
	require.Nil(t, forge.FindType(got, forge.TypeComputeEnv), "Batch waits for the file system")

	res = h.Do(t, "DELETE", "/compute-envs/"+ce.ID, nil)
	require.Equal(t, 202, res.Status)
	ce = settle(t, h, ce.ID)
	require.Equal(t, computeenv.StatusDeleted, ce.Status, ce.StatusReason)
	left, err := fsx.NewFromConfig(h.AWS.Config(region)).DescribeFileSystems(ctx, &fsx.DescribeFileSystemsInput{})
	require.NoError(t, err)
	require.Empty(t, left.FileSystems)
}

// requireComputeTrust asserts a forged role's trust policy names only the
// compute services forgedrole allows: no account, user or other service.
func requireComputeTrust(t *testing.T, doc string) {
	t.Helper()
	if u, err := url.QueryUnescape(doc); err == nil {
		doc = u // IAM returns the document URL-encoded
	}
	var p struct {
		Statement []struct {
			Principal map[string]any
		}
	}
	require.NoError(t, json.Unmarshal([]byte(doc), &p), doc)
	require.NotEmpty(t, p.Statement)
	for _, st := range p.Statement {
		require.Len(t, st.Principal, 1, doc)
		var services []string
		switch v := st.Principal["Service"].(type) {
		case string:
			services = []string{v}
		case []any:
			for _, e := range v {
				services = append(services, e.(string))
			}
		default:
			t.Fatalf("trust policy names a non-service principal: %s", doc)
		}
		for _, s := range services {
			require.Contains(t, forgedrole.Principals, s, doc)
		}
	}
}
