// Package forge turns the options of an AWS Batch compute environment into a
// deterministic design (the AWS resources and IAM policies it needs), shows
// it as a plan, and applies or tears it down idempotently, one resumable
// step at a time: every step finds what exists by its deterministic name
// before creating it, and treats NotFound as done when deleting.
package forge

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/ceforge/ceforge/internal/cloudinit"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge/hostinit"
	"github.com/ceforge/ceforge/internal/forgedrole"
	"github.com/ceforge/ceforge/internal/tags"
)

// Resource types recorded in ComputeEnv.ForgedResources and shown in plans.
const (
	TypeRole            = "iam-role"
	TypeInstanceProfile = "iam-instance-profile"
	TypeLogGroup        = "logs-log-group"
	TypeLaunchTemplate  = "ec2-launch-template"
	TypeEFS             = "efs-file-system"
	TypeFSx             = "fsx-file-system"
	TypeComputeEnv      = "batch-compute-environment"
	TypeJobQueue        = "batch-job-queue"
	TypeJobDefinition   = "batch-job-definition"
	TypeAMI             = "ssm-parameter" // resolved at validation: Name is the parameter, ID the AMI
)

// Defaults of forge mode.
const (
	DefaultHeadMemoryMb   = 4096
	DefaultHeadCpus       = 1
	DefaultBootDiskGiB    = 50
	FusionBootDiskGiB     = 100
	FusionBootThroughput  = 325 // MB/s
	DefaultEbsBlockGiB    = 50
	DefaultEfsMount       = "/mnt/efs"
	DefaultFsxMount       = "/mnt/fsx"
	NextflowImage         = "public.ecr.aws/seqera-labs/nextflow:24.10.5"
	HeadQueuePriority     = 100
	ComputeQueuePriority  = 10
	RunnableTimeLimitSecs = 600 // misconfigured jobs never get capacity: cancel after 10 minutes
	CapacityTimeLimitSecs = 3600
	HeadCEMaxCpus         = 256
)

// Fast instance storage: the NVMe instance stores are assembled (RAID 0
// when several) and mounted at FastStorageMount; Docker's data root lives
// on it (DockerDir, bound onto /var/lib/docker) and so does the tasks'
// /tmp (TaskScratchDir, bound by Nextflow's aws.batch.volumes).
const (
	FastStorageMount         = "/scratch"
	DockerDir                = "/scratch/docker"
	TaskScratchDir           = "/scratch/tasks"
	TaskScratchContainerPath = "/tmp"
)

// AMI parameters (public SSM paths of the ECS-optimized Amazon Linux 2023 AMIs).
const (
	AMIParamX86   = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
	AMIParamARM64 = "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id"
	AMIParamGPU   = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
)

// EbsAutoScaleActions are the EC2 calls amazon-ebs-autoscale makes from a
// compute host (its documented instance-profile policy).
var EbsAutoScaleActions = []string{
	"ec2:AttachVolume", "ec2:CreateTags", "ec2:CreateVolume", "ec2:DeleteVolume", "ec2:DescribeTags",
	"ec2:DescribeVolumeAttribute", "ec2:DescribeVolumeStatus", "ec2:DescribeVolumes", "ec2:ModifyInstanceAttribute",
}

// AWS managed policies attached to forged roles (forgedrole.AttachablePolicies).
var (
	PolicyECSForEC2        = forgedrole.ManagedPolicyARN(forgedrole.PolicyECSForEC2)
	PolicySSMCore          = forgedrole.ManagedPolicyARN(forgedrole.PolicySSMCore)
	PolicyECSTaskExecution = forgedrole.ManagedPolicyARN(forgedrole.PolicyECSTaskExecution)
)

// BatchServiceLinkedRole is the service role of forged compute
// environments (see forgedrole.BatchServiceLinkedRole).
const BatchServiceLinkedRole = forgedrole.BatchServiceLinkedRole

// Names are the deterministic names of a CE's forged resources: prefix + CE
// id + role, so IAM policies can be scoped to the prefix and a retry after a
// crash finds what the previous attempt created.
type Names struct {
	Base string // prefix + CE id
	// ServiceRole is the Batch service role forged before compute
	// environments used Batch's service-linked role; only legacy records
	// name it (torn down with the CE, never put under the boundary: Batch
	// cannot move a compute environment to the service-linked role and
	// the boundary would strip what Batch needs from it).
	ServiceRole    string
	InstanceRole   string // also the instance profile
	HeadJobRole    string
	ComputeJobRole string
	ExecutionRole  string
	LaunchTemplate string
	HeadCE         string
	WorkCE         string
	HeadQueue      string
	WorkQueue      string
	JobDefinition  string
	// StudioJobDefinition holds the revisions registered for studios (one
	// per image), at launch.
	StudioJobDefinition string
	LogGroup            string
}

// NamesFor returns the names of ceID's resources.
func NamesFor(prefix, ceID string) Names {
	b := prefix + ceID
	return Names{
		Base: b, ServiceRole: b + "-service", InstanceRole: b + "-instance", HeadJobRole: b + "-headjob",
		ComputeJobRole: b + "-computejob", ExecutionRole: b + "-execution", LaunchTemplate: b,
		HeadCE: b + "-head", WorkCE: b + "-work", HeadQueue: b + "-head", WorkQueue: b + "-work",
		JobDefinition: b + "-head", StudioJobDefinition: b + "-studio", LogGroup: "/aws/batch/job/" + b,
	}
}

// Role is an IAM role to create.
type Role struct {
	Name      string
	Principal string // service principal of the trust policy
	Managed   []string
	Inline    map[string]any // policy document of the one inline policy ("ceforge"), nil for none
	Profile   bool           // also an instance profile of the same name
}

// ComputeEnvSpec is a Batch compute environment to create.
type ComputeEnvSpec struct {
	Name          string
	Type          string // EC2 | SPOT | FARGATE
	MinCpus       int
	MaxCpus       int
	InstanceTypes []string
	AllocStrategy string
	BidPercentage int
	ImageType     string // ECS_AL2023 | ECS_AL2023_NVIDIA
	ImageID       string // custom AMI, or AMIParam's value resolved at validation; empty: Batch picks
	AMIParam      string
	KeyPair       string
}

// QueueSpec is a Batch job queue to create.
type QueueSpec struct {
	Name       string
	Priority   int
	CE         string // compute environment name, order 1
	TimeLimits bool   // cancel jobs stuck RUNNABLE on misconfiguration or capacity
}

// Design is everything forge creates for one CE, fully resolved and deterministic.
type Design struct {
	Names  Names
	Region string
	// Boundary is the permissions boundary every forged role is created
	// under (forgedrole); empty refuses to forge any role.
	Boundary string
	Tags     tags.Tags
	Roles    []Role
	Profile  bool
	// Role ARNs given by the user (used, not created).
	HeadJobRoleARN, ComputeJobRoleARN, ExecutionRoleARN string

	LogGroup       string
	CreateLogGroup bool

	LaunchTemplate bool
	BootDiskGiB    int
	BootDiskGP3    bool
	BootThroughput int
	EcsConfig      string
	EbsAutoScale   bool
	EbsBlockSize   int
	FastStorage    bool

	EFSCreate  bool
	EFSID      string
	EFSMount   string
	FSxCreate  bool
	FSxSize    int
	FSxDNSName string
	FSxMount   string

	Subnets        []string
	SecurityGroups []string

	ComputeEnvs []ComputeEnvSpec
	Queues      []QueueSpec

	// Head job definition.
	FargateHead  bool
	HeadCpus     int
	HeadMemoryMb int
	HeadEnv      map[string]string
}

// HostMounts are the paths where the hosts mount the CE's shared file
// systems (EFS, FSx); the head job binds them at the same path, and
// Nextflow binds them into every task.
func (d Design) HostMounts() []string {
	var out []string
	if d.EFSCreate || d.EFSID != "" {
		out = append(out, d.EFSMount)
	}
	if d.FSxCreate || d.FSxDNSName != "" {
		out = append(out, d.FSxMount)
	}
	return out
}

// Dispose reports whether the CE's forged resources are deleted with it
// (the default).
func Dispose(ce *computeenv.ComputeEnv) bool {
	if ce.Batch == nil || ce.Batch.Forge == nil || ce.Batch.Forge.DisposeOnDeletion == nil {
		return true
	}
	return *ce.Batch.Forge.DisposeOnDeletion
}

// Buckets returns the S3 buckets the CE's jobs may use: the work dir's and the allowed ones.
func Buckets(ce *computeenv.ComputeEnv) []string {
	set := map[string]bool{}
	if b, _, err := computeenv.ParseS3URI("workDir", ce.WorkDir); err == nil {
		set[b] = true
	}
	if ce.Batch != nil && ce.Batch.Forge != nil {
		for _, u := range ce.Batch.Forge.AllowBuckets {
			if b, _, err := computeenv.ParseS3URI("allowBuckets", u); err == nil {
				set[b] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for b := range set {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}

// HeadEnv returns the head job's CE-level environment variables.
func HeadEnv(ce *computeenv.ComputeEnv) map[string]string {
	env := map[string]string{}
	for _, v := range ce.Environment {
		if v.Head {
			env[v.Name] = v.Value
		}
	}
	return env
}

// NewDesign resolves a forge-mode CE (defaults already filled by the
// provisioner's Prepare) into its design.
func NewDesign(prefix string, ce *computeenv.ComputeEnv) Design {
	b, f := ce.Batch, ce.Batch.Forge
	n := NamesFor(prefix, ce.ID)
	d := Design{
		Names: n, Region: ce.Region, Tags: tags.Merge(ce.Labels, tags.Ownership(ce.ID, "")),
		Subnets: f.Subnets, SecurityGroups: f.SecurityGroups,
		FargateHead: f.FargateHeadEnabled, HeadCpus: b.HeadJobCpus, HeadMemoryMb: b.HeadJobMemoryMb,
		HeadEnv: HeadEnv(ce), LaunchTemplate: true,
	}
	// A work dir on EFS/FSx with no allowed bucket needs no S3 statement
	// (one with an empty Resource is a MalformedPolicyDocument).
	var s3 []any
	if buckets := Buckets(ce); len(buckets) > 0 {
		s3 = []any{s3Statement(buckets)}
	}

	instInline := slices.Clone(s3)
	if f.EbsAutoScale {
		// What amazon-ebs-autoscale calls from the host: it creates, tags
		// (with the instance's own tags, read by DescribeTags), attaches and
		// deletes its volumes, and marks them delete-on-termination.
		instInline = append(instInline, map[string]any{
			"Sid": "EbsAutoScale", "Effect": "Allow", "Resource": "*",
			"Action": EbsAutoScaleActions,
		})
	}
	if f.FastStorage || f.EbsAutoScale || f.EfsCreate || f.EfsID != "" || f.FsxName != "" || f.FsxSize > 0 {
		// A host whose setup failed says so on itself (hostinit): the
		// reconciler reads that tag. Only that key, only on this CE's instances.
		instInline = append(instInline, map[string]any{
			"Sid": "ReportHostSetup", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "arn:aws:ec2:*:*:instance/*",
			"Condition": map[string]any{
				"StringEquals":              map[string]any{"aws:ResourceTag/" + tags.CEID: ce.ID},
				"ForAllValues:StringEquals": map[string]any{"aws:TagKeys": []string{hostinit.SetupTag}},
			},
		})
	}
	d.Roles = append(d.Roles, Role{Name: n.InstanceRole, Principal: forgedrole.PrincipalEC2, Managed: []string{PolicyECSForEC2, PolicySSMCore}, Inline: policyDoc(instInline...), Profile: true})
	d.Profile = true

	// Pipeline secrets (internal/secret): the head and the tasks that
	// declare them read them with their own roles, in the CE's region.
	readSecrets := map[string]any{
		"Sid": "ReadPipelineSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
		"Resource": fmt.Sprintf("arn:aws:secretsmanager:%s:*:secret:%ssecrets/*", ce.Region, prefix),
	}
	d.ComputeJobRoleARN = b.ComputeJobRole
	if b.ComputeJobRole == "" {
		d.Roles = append(d.Roles, Role{Name: n.ComputeJobRole, Principal: forgedrole.PrincipalECSTasks, Inline: policyDoc(append(slices.Clone(s3), readSecrets)...)})
	}
	d.HeadJobRoleARN = b.HeadJobRole
	if b.HeadJobRole == "" {
		d.Roles = append(d.Roles, Role{Name: n.HeadJobRole, Principal: forgedrole.PrincipalECSTasks, Inline: policyDoc(append(slices.Clone(s3), map[string]any{
			"Sid": "NextflowBatch", "Effect": "Allow", "Resource": "*",
			"Action": []string{"batch:CancelJob", "batch:DescribeComputeEnvironments", "batch:DescribeJobDefinitions", "batch:DescribeJobQueues",
				"batch:DescribeJobs", "batch:ListJobs", "batch:RegisterJobDefinition", "batch:SubmitJob", "batch:TagResource", "batch:TerminateJob",
				"ec2:DescribeInstanceAttribute", "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
				"ecs:DescribeContainerInstances", "ecs:DescribeTasks", "logs:GetLogEvents"},
		}, map[string]any{
			"Sid": "PassJobRoles", "Effect": "Allow", "Action": "iam:PassRole",
			"Resource": fmt.Sprintf("arn:aws:iam::*:role/%s*", n.Base),
		}, map[string]any{
			// The run's progress token (internal/runtoken): secrets named
			// <prefix>trace/<run>, of this CE's runs only.
			"Sid": "ReadRunTokens", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
			"Resource":  fmt.Sprintf("arn:aws:secretsmanager:%s:*:secret:%strace/*", ce.Region, prefix),
			"Condition": map[string]any{"StringEquals": map[string]any{"secretsmanager:ResourceTag/ceforge:ce-id": ce.ID}},
		}, readSecrets)...)})
	}
	// Fargate tasks need an execution role to pull the image and write logs.
	d.ExecutionRoleARN = b.ExecutionRole
	if b.ExecutionRole == "" && f.FargateHeadEnabled {
		d.Roles = append(d.Roles, Role{Name: n.ExecutionRole, Principal: forgedrole.PrincipalECSTasks, Managed: []string{PolicyECSTaskExecution}})
	}

	d.LogGroup = b.LogGroup
	if d.LogGroup == "" {
		d.LogGroup, d.CreateLogGroup = n.LogGroup, true
	}

	d.BootDiskGiB = f.EbsBootSize
	if b.Fusion2Enabled && !f.FastStorage {
		// Fusion without local NVMe caches on the boot disk: make it big and fast.
		if d.BootDiskGiB < FusionBootDiskGiB {
			d.BootDiskGiB = FusionBootDiskGiB
		}
		d.BootDiskGP3, d.BootThroughput = true, FusionBootThroughput
	}
	if d.BootDiskGiB == 0 {
		d.BootDiskGiB = DefaultBootDiskGiB
	}

	d.EFSCreate, d.EFSID, d.EFSMount = f.EfsCreate, f.EfsID, f.EfsMount
	d.FSxCreate, d.FSxSize, d.FSxDNSName, d.FSxMount = f.FsxSize > 0 && f.FsxName == "", f.FsxSize, f.FsxName, f.FsxMount
	d.EcsConfig, d.EbsAutoScale, d.EbsBlockSize, d.FastStorage = f.EcsConfig, f.EbsAutoScale, f.EbsBlockSize, f.FastStorage

	amiParam, imageType := AMIParamX86, "ECS_AL2023"
	switch {
	case f.GpuEnabled:
		amiParam, imageType = AMIParamGPU, "ECS_AL2023_NVIDIA"
	case f.Arm64Enabled:
		amiParam = AMIParamARM64
	}
	work := ComputeEnvSpec{
		Name: n.WorkCE, Type: f.Type, MinCpus: f.MinCpus, MaxCpus: f.MaxCpus, InstanceTypes: f.InstanceTypes,
		AllocStrategy: f.AllocStrategy, ImageType: imageType, ImageID: f.ImageID, KeyPair: f.EC2KeyPair,
	}
	if f.ImageID == "" {
		work.AMIParam = amiParam
	}
	if f.Type == "SPOT" {
		work.BidPercentage = f.BidPercentage
	}
	headCE := n.WorkCE
	switch {
	case f.FargateHeadEnabled:
		headCE = n.HeadCE
		d.ComputeEnvs = append(d.ComputeEnvs, ComputeEnvSpec{Name: n.HeadCE, Type: "FARGATE", MaxCpus: HeadCEMaxCpus})
	case f.Type == "SPOT":
		// The head must not be interrupted: it runs on one on-demand instance.
		headCE = n.HeadCE
		head := ComputeEnvSpec{
			Name: n.HeadCE, Type: "EC2", MaxCpus: HeadCEMaxCpus, InstanceTypes: headInstanceTypes(f),
			AllocStrategy: "BEST_FIT_PROGRESSIVE", ImageType: "ECS_AL2023", ImageID: f.ImageID, KeyPair: f.EC2KeyPair,
		}
		if f.ImageID == "" {
			head.AMIParam = AMIParamX86
			if f.Arm64Enabled {
				head.AMIParam = AMIParamARM64
			}
		}
		d.ComputeEnvs = append(d.ComputeEnvs, head)
	}
	d.ComputeEnvs = append(d.ComputeEnvs, work)
	for i := range d.ComputeEnvs {
		// An AMI resolved when the CE was validated pins its parameter.
		if c := &d.ComputeEnvs[i]; c.ImageID == "" && c.AMIParam != "" {
			if r := Find(ce, TypeAMI, c.AMIParam); r != nil {
				c.ImageID = r.ID
			}
		}
	}
	d.Queues = []QueueSpec{
		{Name: n.HeadQueue, Priority: HeadQueuePriority, CE: headCE},
		{Name: n.WorkQueue, Priority: ComputeQueuePriority, CE: n.WorkCE, TimeLimits: true},
	}
	return d
}

func headInstanceTypes(f *computeenv.ForgeOptions) []string {
	if f.Arm64Enabled {
		return []string{"m6g", "c6g", "r6g"}
	}
	return []string{"optimal"}
}

func s3Statement(buckets []string) map[string]any {
	res := make([]string, 0, 2*len(buckets))
	for _, b := range buckets {
		res = append(res, "arn:aws:s3:::"+b, "arn:aws:s3:::"+b+"/*")
	}
	return map[string]any{
		"Sid": "WorkAndAllowedBuckets", "Effect": "Allow", "Resource": res,
		"Action": []string{"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetBucketLocation", "s3:GetObject", "s3:GetObjectTagging",
			"s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:ListMultipartUploadParts", "s3:PutObject", "s3:PutObjectTagging"},
	}
}

// policyDoc is a policy document of the statements; nil (no policy) when
// there are none: IAM refuses an empty Statement list.
func policyDoc(statements ...any) map[string]any {
	if len(statements) == 0 {
		return nil
	}
	return map[string]any{"Version": "2012-10-17", "Statement": statements}
}

// TrustPolicy returns the assume-role policy for a service principal, or
// the refusal of forgedrole for a principal no forged role may trust.
func TrustPolicy(principal string) string {
	doc, err := forgedrole.TrustPolicy(principal)
	if err != nil {
		return err.Error()
	}
	return doc
}

// JSON renders a policy document.
func JSON(doc map[string]any) string {
	b, _ := json.Marshal(doc)
	return string(b)
}

// UserData is the launch template's user data: MIME multi-part (the
// format AWS Batch requires) holding the host setup script
// (forge/hostinit). efsID, fsxDNS and fsxMountName are known only once the
// file systems exist.
func (d Design) UserData(efsID, fsxDNS, fsxMountName string) string {
	script := hostinit.Render(d.HostSpec(efsID, fsxDNS, fsxMountName))
	// The boundary is derived from the script and absent from it: no text in
	// the script can end its part or start another.
	mime := cloudinit.Multipart(cloudinit.Part{Type: cloudinit.ShellScript, Body: script})
	return base64.StdEncoding.EncodeToString([]byte(mime))
}

// HostSpec is what the CE's hosts set up at boot.
func (d Design) HostSpec(efsID, fsxDNS, fsxMountName string) hostinit.Spec {
	s := hostinit.Spec{
		Region: d.Region, EcsConfig: d.EcsConfig,
		FastStorage: d.FastStorage, EbsAutoScale: d.EbsAutoScale, EbsBlockGiB: d.EbsBlockSize,
	}
	if efsID != "" {
		s.EFSID, s.EFSMount = efsID, d.EFSMount
	}
	if fsxDNS != "" {
		s.FSxDNS, s.FSxMountName, s.FSxMount = fsxDNS, fsxMountName, d.FSxMount
	}
	if d.FastStorage {
		s.FastStorageMount, s.DockerDir, s.TaskScratchDir = FastStorageMount, DockerDir, TaskScratchDir
	}
	return s
}
