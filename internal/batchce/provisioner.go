package batchce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	etypes "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/forgedrole"
	"github.com/ceforge/ceforge/internal/tags"
)

// Provisioner is the aws-batch computeenv.Provisioner.
type Provisioner struct {
	AWS    *awsclient.Factory
	Prefix string
	// Applier builds what forges a design in the CE's account (forge/steps
	// in the functions that provision). Without it Advance hands every step
	// that calls AWS on (computeenv.ErrProvisionElsewhere): the API function
	// leaves them to the reconciler, linking none of the forge clients and
	// holding none of their permissions.
	Applier forge.ApplierFactory
	// Parameters reads the ECS-optimized AMI ids at validation
	// (awsclient/ssmparam), so the reconciler forges with ids decided at
	// creation and never needs SSM. Nil: AWS Batch picks the AMI of the
	// image type itself.
	Parameters func(aws.Config) awsclient.ParameterReader
	// FileSystems reads the EFS and FSx file systems a forge-mode CE names,
	// to validate them at creation (awsclient/fsread). Nil in functions
	// that never validate a CE.
	FileSystems func(aws.Config) awsclient.FileSystemReader
	// Boundary is the permissions boundary (ARN in the control plane's
	// account) every forged role is created under; see forgedrole.
	Boundary string
	Log      *slog.Logger
}

var _ computeenv.Provisioner = (*Provisioner)(nil)

func (p *Provisioner) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// design is the CE's forge design, its roles under the boundary of the
// account they are forged in.
func (p *Provisioner) design(ce *computeenv.ComputeEnv) forge.Design {
	d := forge.NewDesign(p.Prefix, ce)
	role := ""
	if ce.Credentials != nil {
		role = ce.Credentials.RoleARN
	}
	if p.Boundary != "" {
		d.Boundary = forgedrole.BoundaryIn(p.Boundary, role)
	}
	return d
}

// Bound puts the roles a forged CE recorded under the permissions
// boundary (roles forged before ceforge set one); the reconciler calls it
// for every stable CE. It reports whether the record changed.
func (p *Provisioner) Bound(ctx context.Context, ce *computeenv.ComputeEnv) (bool, error) {
	if p.Applier == nil || p.Boundary == "" || ce.ConfigMode == computeenv.ModeManual || ce.Batch == nil || ce.Batch.Forge == nil {
		return false, nil
	}
	return p.Applier(configFor(p.AWS, ce)).Bound(ctx, ce, p.design(ce))
}

// config returns the AWS configuration acting in the CE's account and region.
func configFor(f *awsclient.Factory, ce *computeenv.ComputeEnv) aws.Config {
	var c awsclient.Credentials
	if ce.Credentials != nil {
		c = awsclient.Credentials{RoleARN: ce.Credentials.RoleARN, ExternalID: ce.Credentials.ExternalID}
	}
	return f.ForRole(ce.Region, c)
}

// Prepare checks every option rule, fills the defaults (allocation
// strategy, instance types, head memory, network of the default VPC…) and
// checks, read-only, what the options refer to in the account: subnets and
// security groups, the work dir bucket's region, and in manual mode the
// two queues. In forge mode it also resolves the ECS-optimized AMIs the
// design needs and records them (forge.TypeAMI, used, never deleted).
func (p *Provisioner) Prepare(ctx context.Context, ce *computeenv.ComputeEnv) ([]string, error) {
	warn, err := check(ce)
	if err != nil {
		return nil, err
	}
	if err := p.checkPassable(ce); err != nil {
		return nil, err
	}
	cfg := configFor(p.AWS, ce)
	if ce.ConfigMode == computeenv.ModeManual {
		client := batch.NewFromConfig(cfg)
		if err := checkQueues(ctx, client, ce.Batch); err != nil {
			return nil, err
		}
		if ce.Batch.WorkDirMount != "" {
			fargate, err := headQueueIsFargate(ctx, client, ce.Batch.HeadQueue)
			if err != nil {
				return nil, err
			}
			if fargate {
				return nil, apierr.Unprocessable("head_queue_fargate", "batch.workDirMount", "the head queue %q runs on Fargate, which cannot bind a host path: use an EC2 head queue whose hosts mount the file system, or an S3 work directory", ce.Batch.HeadQueue)
			}
		}
	} else {
		if err := resolveNetwork(ctx, ec2.NewFromConfig(cfg), ce.Batch.Forge); err != nil {
			return nil, err
		}
		if err := p.checkForgeInputs(ctx, cfg, ce); err != nil {
			return nil, err
		}
		warn = append(warn, p.resolveAMIs(ctx, cfg, ce)...)
	}
	w, err := p.checkBucket(ctx, cfg, ce)
	if err != nil {
		return nil, err
	}
	return append(warn, w...), nil
}

// checkPassable refuses the roles ceforge passes itself (the head job's
// role and execution role, in its job definition) unless they are named
// with the prefix: the control plane's roles may pass no other
// (iam:PassRole), and registering the job definition would fail. Through
// credentials.roleArn, that role's own policy decides.
func (p *Provisioner) checkPassable(ce *computeenv.ComputeEnv) error {
	if ce.Credentials != nil && ce.Credentials.RoleARN != "" {
		return nil
	}
	prefix := p.Prefix
	if prefix == "" {
		prefix = "ceforge-"
	}
	for _, r := range []struct{ field, arn string }{{"batch.headJobRole", ce.Batch.HeadJobRole}, {"batch.executionRole", ce.Batch.ExecutionRole}} {
		if name := r.arn[strings.LastIndex(r.arn, "/")+1:]; r.arn != "" && !strings.HasPrefix(name, prefix) {
			return apierr.Unprocessable("role_not_passable", r.field,
				"role %q is not named %s*: ceforge may pass only roles named with its prefix to AWS Batch", name, prefix)
		}
	}
	return nil
}

// resolveAMIs records the AMI id behind each public SSM parameter the
// design names. SSM access is optional (a custom imageId needs none): a
// failed read is a warning, and AWS Batch then picks the image type's AMI.
func (p *Provisioner) resolveAMIs(ctx context.Context, cfg aws.Config, ce *computeenv.ComputeEnv) []string {
	if p.Parameters == nil {
		return nil
	}
	var warn []string
	reader := p.Parameters(cfg)
	for _, c := range forge.NewDesign(p.Prefix, ce).ComputeEnvs {
		if c.AMIParam == "" || forge.Find(ce, forge.TypeAMI, c.AMIParam) != nil {
			continue
		}
		id, err := reader.Parameter(ctx, c.AMIParam)
		if err != nil {
			warn = append(warn, fmt.Sprintf("could not read the AMI parameter %s (%s); AWS Batch will pick the latest %s AMI itself", c.AMIParam, forge.Reason(err), c.ImageType))
			continue
		}
		forge.Record(ce, computeenv.Resource{Type: forge.TypeAMI, Name: c.AMIParam, ID: id, State: forge.StateUsed})
	}
	return warn
}

// checkBucket requires the work dir bucket to be in the CE's region (cross
// region traffic is slow and billed).
func (p *Provisioner) checkBucket(ctx context.Context, cfg aws.Config, ce *computeenv.ComputeEnv) ([]string, error) {
	if !strings.HasPrefix(ce.WorkDir, "s3://") {
		return nil, nil
	}
	bucket, _, err := computeenv.ParseS3URI("workDir", ce.WorkDir)
	if err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = p.AWS.Endpoint() != "" })
	out, err := client.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(bucket)})
	switch code := forge.Code(err); {
	case err == nil:
	case code == "NoSuchBucket":
		return nil, apierr.Invalid("workDir", "bucket %q of the work directory does not exist", bucket)
	case code == "AccessDenied" || code == "AllAccessDisabled":
		return []string{fmt.Sprintf("could not check the region of bucket %q (access denied): it must be in %s", bucket, ce.Region)}, nil
	default:
		return nil, fmt.Errorf("check work dir bucket %s: %w", bucket, err)
	}
	region := computeenv.BucketRegion(string(out.LocationConstraint))
	if region != ce.Region {
		return nil, apierr.Invalid("workDir", "bucket %q is in %s; the work directory must be in the compute environment's region %s", bucket, region, ce.Region)
	}
	return nil, nil
}

// resolveNetwork fills in the default VPC's subnets and default security
// group when none are given, and checks given ones exist in one VPC.
func resolveNetwork(ctx context.Context, client *ec2.Client, f *computeenv.ForgeOptions) error {
	if len(f.Subnets) == 0 {
		if f.VpcID == "" {
			vpcs, err := client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []etypes.Filter{{Name: aws.String("isDefault"), Values: []string{"true"}}}})
			if err != nil {
				return fmt.Errorf("find default VPC: %w", err)
			}
			if len(vpcs.Vpcs) == 0 {
				return apierr.Unprocessable("no_default_vpc", "batch.forge.subnets", "the region has no default VPC: give batch.forge.vpcId or batch.forge.subnets")
			}
			f.VpcID = aws.ToString(vpcs.Vpcs[0].VpcId)
		}
		sn, err := client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []etypes.Filter{{Name: aws.String("vpc-id"), Values: []string{f.VpcID}}}})
		if err != nil {
			return fmt.Errorf("list subnets of %s: %w", f.VpcID, err)
		}
		for _, s := range sn.Subnets {
			f.Subnets = append(f.Subnets, aws.ToString(s.SubnetId))
		}
		if len(f.Subnets) == 0 {
			return apierr.Unprocessable("no_subnets", "batch.forge.vpcId", "VPC %s has no subnets", f.VpcID)
		}
		slices.Sort(f.Subnets)
	} else {
		sn, err := client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: f.Subnets})
		if forge.Code(err) == "InvalidSubnetID.NotFound" || forge.Code(err) == "InvalidSubnetID.Malformed" {
			return apierr.Invalid("batch.forge.subnets", "%s", forge.Reason(err))
		}
		if err != nil {
			return fmt.Errorf("check subnets: %w", err)
		}
		for _, s := range sn.Subnets {
			vpc := aws.ToString(s.VpcId)
			if f.VpcID == "" {
				f.VpcID = vpc
			}
			if vpc != f.VpcID {
				return apierr.Invalid("batch.forge.subnets", "subnet %s is in %s, not in VPC %s", aws.ToString(s.SubnetId), vpc, f.VpcID)
			}
		}
	}
	if len(f.SecurityGroups) == 0 {
		sg, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []etypes.Filter{
			{Name: aws.String("vpc-id"), Values: []string{f.VpcID}}, {Name: aws.String("group-name"), Values: []string{"default"}},
		}})
		if err != nil {
			return fmt.Errorf("find default security group: %w", err)
		}
		if len(sg.SecurityGroups) == 0 {
			return apierr.Unprocessable("no_security_group", "batch.forge.securityGroups", "VPC %s has no default security group: give batch.forge.securityGroups", f.VpcID)
		}
		f.SecurityGroups = []string{aws.ToString(sg.SecurityGroups[0].GroupId)}
		return nil
	}
	sg, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: f.SecurityGroups})
	if strings.HasPrefix(forge.Code(err), "InvalidGroup") {
		return apierr.Invalid("batch.forge.securityGroups", "%s", forge.Reason(err))
	}
	if err != nil {
		return fmt.Errorf("check security groups: %w", err)
	}
	for _, g := range sg.SecurityGroups {
		if vpc := aws.ToString(g.VpcId); vpc != f.VpcID {
			return apierr.Invalid("batch.forge.securityGroups", "security group %s is in %s, not in VPC %s", aws.ToString(g.GroupId), vpc, f.VpcID)
		}
	}
	return nil
}

// checkQueues requires both manual queues to exist, ENABLED and VALID.
func checkQueues(ctx context.Context, client *batch.Client, b *computeenv.BatchOptions) error {
	out, err := client.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: []string{b.HeadQueue, b.ComputeQueue}})
	if err != nil {
		return fmt.Errorf("describe job queues: %w", err)
	}
	for _, want := range []struct{ field, q string }{{"batch.headQueue", b.HeadQueue}, {"batch.computeQueue", b.ComputeQueue}} {
		var found *btypes.JobQueueDetail
		for i, q := range out.JobQueues {
			if aws.ToString(q.JobQueueName) == want.q || aws.ToString(q.JobQueueArn) == want.q {
				found = &out.JobQueues[i]
			}
		}
		switch {
		case found == nil:
			return apierr.Unprocessable("queue_not_found", want.field, "job queue %q does not exist in this region", want.q)
		case found.State != btypes.JQStateEnabled:
			return apierr.Unprocessable("queue_not_ready", want.field, "job queue %q is %s, not ENABLED", want.q, found.State)
		case found.Status != btypes.JQStatusValid:
			return apierr.Unprocessable("queue_not_ready", want.field, "job queue %q is %s, not VALID: %s", want.q, found.Status, aws.ToString(found.StatusReason))
		}
	}
	return nil
}

// Plan returns the forge plan, or for manual mode what is used.
func (p *Provisioner) Plan(_ context.Context, ce *computeenv.ComputeEnv) (computeenv.Plan, error) {
	if ce.ConfigMode == computeenv.ModeManual {
		n := forge.NamesFor(p.Prefix, ce.ID)
		return computeenv.Plan{Resources: []computeenv.PlannedResource{
			{Action: "use", Type: forge.TypeJobQueue, Name: ce.Batch.HeadQueue, Properties: map[string]any{"role": "head"}},
			{Action: "use", Type: forge.TypeJobQueue, Name: ce.Batch.ComputeQueue, Properties: map[string]any{"role": "compute"}},
			{Action: "create", Type: forge.TypeJobDefinition, Name: n.JobDefinition, Properties: map[string]any{
				"image": forge.NextflowImage, "vcpus": ce.Batch.HeadJobCpus, "memoryMiB": ce.Batch.HeadJobMemoryMb, "logGroup": LogGroup(p.Prefix, ce),
			}},
		}}, nil
	}
	return p.design(ce).Plan(), nil
}

// Advance is the lifecycle step machine: CREATING → AVAILABLE | ERRORED,
// DELETING → DELETED (with dispose, after tearing down what forge made).
func (p *Provisioner) Advance(ctx context.Context, ce *computeenv.ComputeEnv) error {
	switch ce.Status {
	case computeenv.StatusCreating:
		return p.create(ctx, ce)
	case computeenv.StatusDeleting:
		return p.delete(ctx, ce)
	}
	return nil
}

func (p *Provisioner) create(ctx context.Context, ce *computeenv.ComputeEnv) error {
	if p.Applier == nil {
		return computeenv.ErrProvisionElsewhere
	}
	cfg := configFor(p.AWS, ce)
	var ok bool
	var err error
	if ce.ConfigMode == computeenv.ModeManual {
		ok, err = p.createManual(ctx, batch.NewFromConfig(cfg), ce)
	} else {
		ok, err = p.Applier(cfg).Create(ctx, ce, p.design(ce))
	}
	var se *forge.StepError
	if errors.As(err, &se) {
		ce.Status, ce.StatusReason = computeenv.StatusErrored, se.Error()+left(ce)
		p.log().Warn("compute environment errored", "ce_id", ce.ID, "reason", ce.StatusReason)
		return nil
	}
	if err != nil {
		return err
	}
	if ok {
		ce.Status, ce.StatusReason = computeenv.StatusAvailable, ""
	}
	return nil
}

// left names what was created before a failure (deleting the CE removes it).
func left(ce *computeenv.ComputeEnv) string {
	var have []string
	for _, r := range ce.ForgedResources {
		if r.State != forge.StateDeleted && r.State != forge.StateUsed {
			have = append(have, r.Type+" "+r.Name)
		}
	}
	if len(have) == 0 {
		return "; nothing was created"
	}
	return "; created so far (removed when the compute environment is deleted): " + strings.Join(have, ", ")
}

// createManual creates nothing but the head job definition (so a launch is
// one SubmitJob); it matches the head queue's platform (EC2 or Fargate).
func (p *Provisioner) createManual(ctx context.Context, client forge.BatchAPI, ce *computeenv.ComputeEnv) (bool, error) {
	n := forge.NamesFor(p.Prefix, ce.ID)
	if r := forge.Find(ce, forge.TypeJobDefinition, n.JobDefinition); r != nil && r.State == forge.StateCreated {
		return true, nil
	}
	fargate, err := headQueueIsFargate(ctx, client, ce.Batch.HeadQueue)
	if err != nil {
		return false, err
	}
	spec := manualHeadJobDef(p.Prefix, ce)
	spec.Fargate = fargate
	arn, err := forge.RegisterHeadJobDefinition(ctx, client, spec)
	if err != nil {
		return false, err
	}
	platform := string(btypes.PlatformCapabilityEc2)
	if fargate {
		platform = string(btypes.PlatformCapabilityFargate)
	}
	ce.ForgedResources = append(ce.ForgedResources, computeenv.Resource{Type: forge.TypeJobDefinition, Name: n.JobDefinition, ARN: arn, State: forge.StateCreated, Platform: platform})
	return true, nil
}

// manualHeadJobDef is the head job definition of a manual-mode CE (its
// platform aside, which its head queue decides).
func manualHeadJobDef(prefix string, ce *computeenv.ComputeEnv) forge.JobDefSpec {
	b := ce.Batch
	return forge.JobDefSpec{
		Name: forge.NamesFor(prefix, ce.ID).JobDefinition, Region: ce.Region, Cpus: b.HeadJobCpus, MemoryMb: b.HeadJobMemoryMb,
		JobRoleARN: b.HeadJobRole, ExecutionRoleARN: b.ExecutionRole, LogGroup: LogGroup(prefix, ce),
		Env: forge.HeadEnv(ce), Tags: tags.Merge(ce.Labels, tags.Ownership(ce.ID, "")), HostMounts: TaskVolumes(ce),
	}
}

func headQueueIsFargate(ctx context.Context, b forge.BatchAPI, queue string) (bool, error) {
	q, err := b.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: []string{queue}})
	if err != nil {
		return false, fmt.Errorf("describe head queue: %w", err)
	}
	if len(q.JobQueues) == 0 {
		return false, &forge.StepError{Step: "head queue", Err: fmt.Errorf("job queue %q no longer exists", queue)}
	}
	var ces []string
	for _, o := range q.JobQueues[0].ComputeEnvironmentOrder {
		ces = append(ces, aws.ToString(o.ComputeEnvironment))
	}
	if len(ces) == 0 {
		return false, nil
	}
	c, err := b.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{ComputeEnvironments: ces})
	if err != nil {
		return false, fmt.Errorf("describe head queue's compute environments: %w", err)
	}
	for _, e := range c.ComputeEnvironments {
		if e.ComputeResources != nil && strings.HasPrefix(string(e.ComputeResources.Type), "FARGATE") {
			return true, nil
		}
	}
	return false, nil
}

func (p *Provisioner) delete(ctx context.Context, ce *computeenv.ComputeEnv) error {
	ce.Dispose = forge.Dispose(ce)
	if !ce.Dispose {
		// Only the record goes; the AWS resources stay, owned by the user now.
		ce.Status, ce.StatusReason = computeenv.StatusDeleted, ""
		return nil
	}
	if p.Applier == nil {
		return computeenv.ErrProvisionElsewhere
	}
	cfg := configFor(p.AWS, ce)
	var ok bool
	var err error
	if ce.ConfigMode == computeenv.ModeManual {
		n := forge.NamesFor(p.Prefix, ce.ID)
		client := batch.NewFromConfig(cfg)
		err = forge.DeregisterJobDefinitions(ctx, client, n.StudioJobDefinition, ce.ID)
		if err == nil {
			err = forge.DeregisterJobDefinitions(ctx, client, n.JobDefinition, ce.ID)
		}
		if r := forge.Find(ce, forge.TypeJobDefinition, n.JobDefinition); r != nil && err == nil {
			r.State = forge.StateDeleted
		}
		ok = err == nil
	} else {
		ok, err = p.Applier(cfg).Delete(ctx, ce, p.design(ce))
	}
	var se *forge.StepError
	if errors.As(err, &se) {
		// Stay DELETING so the reconciler retries; the reason says what blocks it.
		ce.StatusReason = "delete blocked: " + se.Error()
		return err
	}
	if err != nil {
		return err
	}
	if ok {
		ce.Status, ce.StatusReason = computeenv.StatusDeleted, ""
	}
	return nil
}

// LogGroup is where the CE's head jobs log.
func LogGroup(prefix string, ce *computeenv.ComputeEnv) string {
	if ce.Batch != nil && ce.Batch.LogGroup != "" {
		return ce.Batch.LogGroup
	}
	if ce.ConfigMode == computeenv.ModeManual || ce.Batch == nil || ce.Batch.Forge == nil {
		return forge.DefaultBatchLogGroup
	}
	return forge.NamesFor(prefix, ce.ID).LogGroup
}

// Queues returns the CE's head and compute queue names.
func Queues(prefix string, ce *computeenv.ComputeEnv) (head, compute string) {
	if ce.Batch != nil && ce.Batch.Forge == nil {
		return ce.Batch.HeadQueue, ce.Batch.ComputeQueue
	}
	n := forge.NamesFor(prefix, ce.ID)
	return n.HeadQueue, n.WorkQueue
}
