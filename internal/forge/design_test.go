package forge

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge/hostinit"
	"github.com/ceforge/ceforge/internal/forgedrole"
)

func ce(mutate func(b *computeenv.BatchOptions, f *computeenv.ForgeOptions)) *computeenv.ComputeEnv {
	f := &computeenv.ForgeOptions{Type: "SPOT", MaxCpus: 64, InstanceTypes: []string{"optimal"}, AllocStrategy: "SPOT_PRICE_CAPACITY_OPTIMIZED",
		Subnets: []string{"subnet-1", "subnet-2"}, SecurityGroups: []string{"sg-1"}, AllowBuckets: []string{"s3://other/x"}}
	b := &computeenv.BatchOptions{HeadJobCpus: 1, HeadJobMemoryMb: 4096, Forge: f}
	if mutate != nil {
		mutate(b, f)
	}
	return &computeenv.ComputeEnv{ID: "abc123def456gh", Region: "eu-west-1", WorkDir: "s3://work/dir", Labels: map[string]string{"team": "x"}, Batch: b}
}

func planJSON(t *testing.T, c *computeenv.ComputeEnv) string {
	b, err := json.Marshal(NewDesign("ceforge-", c).Plan())
	require.NoError(t, err)
	return string(b)
}

func types(p computeenv.Plan) []string {
	var out []string
	for _, r := range p.Resources {
		out = append(out, r.Action+" "+r.Type+" "+r.Name)
	}
	return out
}

func TestPlanIsDeterministicAndOrdered(t *testing.T) {
	first := planJSON(t, ce(nil))
	for i := 0; i < 20; i++ {
		require.Equal(t, first, planJSON(t, ce(nil)))
	}
	got := types(NewDesign("ceforge-", ce(nil)).Plan())
	require.Equal(t, []string{
		"create iam-role ceforge-abc123def456gh-instance",
		"create iam-instance-profile ceforge-abc123def456gh-instance",
		"create iam-role ceforge-abc123def456gh-computejob",
		"create iam-role ceforge-abc123def456gh-headjob",
		"use iam-role AWSServiceRoleForBatch",
		"create logs-log-group /aws/batch/job/ceforge-abc123def456gh",
		"create ec2-launch-template ceforge-abc123def456gh",
		"create batch-compute-environment ceforge-abc123def456gh-head",
		"create batch-compute-environment ceforge-abc123def456gh-work",
		"create batch-job-queue ceforge-abc123def456gh-head",
		"create batch-job-queue ceforge-abc123def456gh-work",
		"create batch-job-definition ceforge-abc123def456gh-head",
	}, got)
}

func TestDesignVariants(t *testing.T) {
	cases := []struct {
		name  string
		mut   func(b *computeenv.BatchOptions, f *computeenv.ForgeOptions)
		check func(t *testing.T, d Design, plan []string)
	}{
		{"user roles are used, not created", func(b *computeenv.BatchOptions, _ *computeenv.ForgeOptions) {
			b.HeadJobRole, b.ComputeJobRole = "arn:aws:iam::111122223333:role/h", "arn:aws:iam::111122223333:role/c"
		}, func(t *testing.T, d Design, plan []string) {
			require.Len(t, d.Roles, 1, "the instance role only")
			require.Contains(t, plan, "use iam-role arn:aws:iam::111122223333:role/h")
			require.Contains(t, plan, "use iam-role arn:aws:iam::111122223333:role/c")
		}},
		{"fargate head gets an execution role and a FARGATE CE", func(b *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			b.WaveEnabled, b.Fusion2Enabled, f.FargateHeadEnabled = true, true, true
		}, func(t *testing.T, d Design, plan []string) {
			require.Contains(t, plan, "create iam-role ceforge-abc123def456gh-execution")
			require.Equal(t, "FARGATE", d.ComputeEnvs[0].Type)
			require.True(t, d.BootDiskGP3)
			require.Equal(t, 100, d.BootDiskGiB)
			require.Equal(t, 325, d.BootThroughput)
		}},
		{"fusion with NVMe keeps the boot disk", func(b *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			b.WaveEnabled, b.Fusion2Enabled, f.FastStorage = true, true, true
		}, func(t *testing.T, d Design, _ []string) {
			require.False(t, d.BootDiskGP3)
			require.Equal(t, DefaultBootDiskGiB, d.BootDiskGiB)
		}},
		{"on-demand shares one CE", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.Type = "EC2" }, func(t *testing.T, d Design, _ []string) {
			require.Len(t, d.ComputeEnvs, 1)
			require.Equal(t, d.Names.WorkCE, d.Queues[0].CE)
			require.Equal(t, d.Names.WorkCE, d.Queues[1].CE)
		}},
		{"gpu uses the NVIDIA image", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.GpuEnabled = true }, func(t *testing.T, d Design, _ []string) {
			work := d.ComputeEnvs[len(d.ComputeEnvs)-1]
			require.Equal(t, "ECS_AL2023_NVIDIA", work.ImageType)
			require.Equal(t, AMIParamGPU, work.AMIParam)
		}},
		{"custom AMI skips SSM", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.ImageID = "ami-0123456789abcdef0" }, func(t *testing.T, d Design, _ []string) {
			for _, c := range d.ComputeEnvs {
				require.Empty(t, c.AMIParam)
				require.Equal(t, "ami-0123456789abcdef0", c.ImageID)
			}
		}},
		{"given log group is used", func(b *computeenv.BatchOptions, _ *computeenv.ForgeOptions) { b.LogGroup = "/mine" }, func(t *testing.T, d Design, plan []string) {
			require.False(t, d.CreateLogGroup)
			require.Contains(t, plan, "use logs-log-group /mine")
		}},
		{"efs and fsx created", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.EfsCreate, f.EfsMount, f.FsxSize, f.FsxMount = true, "/mnt/efs", 1200, "/mnt/fsx"
		}, func(t *testing.T, d Design, plan []string) {
			require.Contains(t, plan, "create efs-file-system ceforge-abc123def456gh")
			require.Contains(t, plan, "create fsx-file-system ceforge-abc123def456gh")
		}},
		{"ebs autoscale lets instances grow volumes", func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.EbsAutoScale, f.EbsBlockSize = true, 50
		}, func(t *testing.T, d Design, _ []string) {
			require.Contains(t, JSON(d.Roles[0].Inline), "ec2:CreateVolume")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDesign("ceforge-", ce(tc.mut))
			tc.check(t, d, types(d.Plan()))
		})
	}
}

func TestPoliciesScopeBuckets(t *testing.T) {
	d := NewDesign("ceforge-", ce(nil))
	require.Equal(t, d.Names.InstanceRole, d.Roles[0].Name)
	inline := JSON(d.Roles[0].Inline)
	require.Contains(t, inline, "arn:aws:s3:::work/*")
	require.Contains(t, inline, "arn:aws:s3:::other/*")
	require.Contains(t, TrustPolicy("batch.amazonaws.com"), `"Service":"batch.amazonaws.com"`)
}

// Every role a design forges trusts a compute service only and gets only
// AWS managed policies the reconciler may attach; no design forges a Batch
// service role (compute environments use Batch's service-linked role).
func TestDesignRolesWithinForgedRoleRules(t *testing.T) {
	d := NewDesign("ceforge-", ce(func(b *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.FargateHeadEnabled, f.EbsAutoScale, f.EbsBlockSize = true, true, 100
	}))
	require.Len(t, d.Roles, 4, "instance, compute job, head job and execution roles")
	for _, r := range d.Roles {
		require.Contains(t, forgedrole.Principals, r.Principal, r.Name)
		require.NotEqual(t, d.Names.ServiceRole, r.Name)
		for _, m := range r.Managed {
			require.True(t, forgedrole.Attachable(m), m)
		}
	}
	require.Contains(t, TrustPolicy("lambda.amazonaws.com"), "forged roles trust only")
}

func TestUserDataCarriesTheHostSetup(t *testing.T) {
	d := NewDesign("ceforge-", ce(func(b *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		b.WaveEnabled, b.Fusion2Enabled, f.FastStorage = true, true, true
		f.EcsConfig, f.EfsCreate, f.EfsMount, f.FsxName, f.FsxMount = "ECS_ENABLE_GPU_SUPPORT=true", true, "/mnt/efs", "fs-0123456789abcdef0.fsx.eu-west-1.amazonaws.com", "/mnt/fsx"
	}))
	spec := d.HostSpec("fs-0aaaaaaaaaaaaaaaa", "fs-0123456789abcdef0.fsx.eu-west-1.amazonaws.com", "abcd1234")
	require.Equal(t, hostinit.Spec{
		Region: "eu-west-1", EcsConfig: "ECS_ENABLE_GPU_SUPPORT=true",
		EFSID: "fs-0aaaaaaaaaaaaaaaa", EFSMount: "/mnt/efs",
		FSxDNS: "fs-0123456789abcdef0.fsx.eu-west-1.amazonaws.com", FSxMountName: "abcd1234", FSxMount: "/mnt/fsx",
		FastStorage: true, FastStorageMount: "/scratch", DockerDir: "/scratch/docker", TaskScratchDir: "/scratch/tasks",
	}, spec)
	raw, err := base64.StdEncoding.DecodeString(d.UserData("fs-0aaaaaaaaaaaaaaaa", "fs-0123456789abcdef0.fsx.eu-west-1.amazonaws.com", "abcd1234"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(raw), "MIME-Version: 1.0"))
	require.Contains(t, string(raw), hostinit.Render(spec))

	// The instance role may tag its own instance with the setup outcome, and nothing else.
	require.Equal(t, d.Names.InstanceRole, d.Roles[0].Name)
	inline := JSON(d.Roles[0].Inline)
	require.Contains(t, inline, `"Sid":"ReportHostSetup"`)
	require.Contains(t, inline, `"aws:ResourceTag/ceforge:ce-id":"abc123def456gh"`)
	require.Contains(t, inline, `"aws:TagKeys":["ceforge:host-setup"]`)
}

func TestTransientClassification(t *testing.T) {
	require.True(t, Transient(errString("connection reset")))
	require.True(t, Transient(&smithy.GenericAPIError{Code: "ThrottlingException"}))
	require.False(t, Transient(&smithy.GenericAPIError{Code: "AccessDeniedException"}))
	err := Wrap("create role x", &smithy.GenericAPIError{Code: "ValidationError", Message: "bad"})
	var se *StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "create role x: ValidationError: bad", se.Error())
}

type errString string

func (e errString) Error() string { return string(e) }

// A work dir on EFS or FSx with no bucket to reach: no S3 statement at all
// (one with an empty Resource is a MalformedPolicyDocument to IAM), and no
// inline policy on a role left with no statement.
func TestFileSystemWorkDirWithoutBuckets(t *testing.T) {
	for _, fs := range []string{"efs", "fsx"} {
		t.Run(fs, func(t *testing.T) {
			c := ce(func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
				f.AllowBuckets = nil
				if fs == "efs" {
					f.EfsCreate, f.EfsMount = true, "/mnt/efs"
				} else {
					f.FsxSize, f.FsxMount = 1200, "/mnt/fsx"
				}
			})
			c.WorkDir = "/mnt/" + fs + "/work"
			d := NewDesign("ceforge-", c)
			inline := map[string]map[string]any{}
			for _, r := range d.Roles {
				if r.Inline == nil {
					continue
				}
				inline[r.Name] = r.Inline
				var doc struct {
					Statement []map[string]any
				}
				require.NoError(t, json.Unmarshal([]byte(JSON(r.Inline)), &doc))
				require.NotEmpty(t, doc.Statement, r.Name)
				for _, st := range doc.Statement {
					res := st["Resource"]
					require.NotNil(t, res, "%s: %v", r.Name, st)
					if list, ok := res.([]any); ok {
						require.NotEmpty(t, list, "%s: statement %v has an empty Resource", r.Name, st["Sid"])
					}
					require.NotEqual(t, "WorkAndAllowedBuckets", st["Sid"], r.Name)
				}
			}
			require.NotContains(t, JSON(inline[d.Names.ComputeJobRole]), "s3:", "nothing on S3 for the tasks")
			require.Contains(t, JSON(inline[d.Names.ComputeJobRole]), "ReadPipelineSecrets", "tasks read the pipeline secrets they declare")
			require.NotContains(t, JSON(inline[d.Names.InstanceRole]), "s3:", "hosts report their setup, nothing on S3")
			require.Contains(t, inline, d.Names.HeadJobRole, "the head still drives Batch")
			require.Equal(t, []string{"/mnt/" + fs}, d.HostMounts())
		})
	}
}

func TestEbsAutoScaleRoleCoversTheDaemon(t *testing.T) {
	d := NewDesign("ceforge-", ce(func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		f.EbsAutoScale, f.EbsBlockSize = true, 100
	}))
	require.Equal(t, d.Names.InstanceRole, d.Roles[0].Name)
	inline := JSON(d.Roles[0].Inline)
	// The daemon copies the instance's tags (ceforge:managed, ceforge:ce-id)
	// onto its volumes: it must be able to read them.
	for _, a := range []string{"ec2:DescribeTags", "ec2:CreateVolume", "ec2:AttachVolume", "ec2:DeleteVolume", "ec2:ModifyInstanceAttribute", "ec2:CreateTags"} {
		require.Contains(t, inline, a)
	}
}
