package forge

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/tags"
)

// DefaultBatchLogGroup is where Batch's awslogs driver writes when no group is set.
const DefaultBatchLogGroup = "/aws/batch/job"

// JobDefSpec is the head job definition of a CE: registered once at CE
// creation so that a launch is a single SubmitJob.
type JobDefSpec struct {
	Name             string
	Region           string
	Image            string
	Fargate          bool
	Cpus             int
	MemoryMb         int
	JobRoleARN       string
	ExecutionRoleARN string
	LogGroup         string
	Env              map[string]string
	Tags             tags.Tags
	// HostMounts are host paths (where the hosts mount EFS or FSx) bound
	// into the head container at the same path; none on Fargate.
	HostMounts []string
}

// HeadJobDef is the head job definition of a forged CE's design; the
// roles it names are those the user gave or, else, those forge created
// (recorded in ce).
func HeadJobDef(ce *computeenv.ComputeEnv, d Design) JobDefSpec {
	spec := JobDefSpec{
		Name: d.Names.JobDefinition, Region: d.Region, Fargate: d.FargateHead, Cpus: d.HeadCpus, MemoryMb: d.HeadMemoryMb,
		JobRoleARN: d.HeadJobRoleARN, ExecutionRoleARN: d.ExecutionRoleARN, LogGroup: d.LogGroup, Env: d.HeadEnv, Tags: d.Tags,
		HostMounts: d.HostMounts(),
	}
	if r := Find(ce, TypeRole, d.Names.HeadJobRole); r != nil && spec.JobRoleARN == "" {
		spec.JobRoleARN = r.ARN
	}
	if r := Find(ce, TypeRole, d.Names.ExecutionRole); r != nil && spec.ExecutionRoleARN == "" {
		spec.ExecutionRoleARN = r.ARN
	}
	return spec
}

// RegisterHeadJobDefinition registers spec, or returns the active revision a
// previous attempt registered (found by name and ownership tag).
func RegisterHeadJobDefinition(ctx context.Context, b BatchAPI, spec JobDefSpec) (string, error) {
	got, err := b.DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(spec.Name), Status: aws.String("ACTIVE")})
	if err != nil {
		return "", Wrap("describe job definition "+spec.Name, err)
	}
	best, rev := "", int32(-1)
	for _, jd := range got.JobDefinitions {
		if jd.Tags[tags.CEID] == spec.Tags[tags.CEID] && aws.ToInt32(jd.Revision) > rev {
			best, rev = aws.ToString(jd.JobDefinitionArn), aws.ToInt32(jd.Revision)
		}
	}
	if best != "" {
		return best, nil
	}
	out, err := b.RegisterJobDefinition(ctx, HeadJobDefinitionInput(spec))
	if err != nil {
		return "", Wrap("register job definition "+spec.Name, err)
	}
	return aws.ToString(out.JobDefinitionArn), nil
}

// HeadJobDefinitionInput renders spec as a RegisterJobDefinition request.
func HeadJobDefinitionInput(spec JobDefSpec) *batch.RegisterJobDefinitionInput {
	image := spec.Image
	if image == "" {
		image = NextflowImage
	}
	cpus, mem := spec.Cpus, spec.MemoryMb
	if cpus <= 0 {
		cpus = DefaultHeadCpus
	}
	if mem <= 0 {
		mem = DefaultHeadMemoryMb
	}
	cp := &btypes.ContainerProperties{
		Image:   aws.String(image),
		Command: []string{"bash", "-c", "echo 'ceforge: the launch supplies the command'; exit 1"},
	}
	names := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		cp.Environment = append(cp.Environment, btypes.KeyValuePair{Name: aws.String(k), Value: aws.String(spec.Env[k])})
	}
	if spec.JobRoleARN != "" {
		cp.JobRoleArn = aws.String(spec.JobRoleARN)
	}
	if spec.ExecutionRoleARN != "" {
		cp.ExecutionRoleArn = aws.String(spec.ExecutionRoleARN)
	}
	opts := map[string]string{"awslogs-region": spec.Region}
	if spec.LogGroup != "" && spec.LogGroup != DefaultBatchLogGroup {
		opts["awslogs-group"] = spec.LogGroup
	}
	cp.LogConfiguration = &btypes.LogConfiguration{LogDriver: btypes.LogDriverAwslogs, Options: opts}
	in := &batch.RegisterJobDefinitionInput{
		JobDefinitionName: aws.String(spec.Name), Type: btypes.JobDefinitionTypeContainer,
		PropagateTags: aws.Bool(true), Tags: spec.Tags, ContainerProperties: cp,
		RetryStrategy: &btypes.RetryStrategy{Attempts: aws.Int32(1)},
	}
	if spec.Fargate {
		// Fargate takes only resourceRequirements and needs networking settings.
		cp.ResourceRequirements = []btypes.ResourceRequirement{
			{Type: btypes.ResourceTypeVcpu, Value: aws.String(fmt.Sprint(cpus))},
			{Type: btypes.ResourceTypeMemory, Value: aws.String(fmt.Sprint(mem))},
		}
		cp.NetworkConfiguration = &btypes.NetworkConfiguration{AssignPublicIp: btypes.AssignPublicIpEnabled}
		cp.FargatePlatformConfiguration = &btypes.FargatePlatformConfiguration{PlatformVersion: aws.String("LATEST")}
		in.PlatformCapabilities = []btypes.PlatformCapability{btypes.PlatformCapabilityFargate}
	} else {
		// The legacy vcpus/memory fields are what DescribeJobs echoes back as numbers.
		cp.Vcpus, cp.Memory = aws.Int32(int32(cpus)), aws.Int32(int32(mem))
	}
	if !spec.Fargate {
		for i, p := range spec.HostMounts {
			name := fmt.Sprintf("host%d", i)
			cp.Volumes = append(cp.Volumes, btypes.Volume{Name: aws.String(name), Host: &btypes.Host{SourcePath: aws.String(p)}})
			cp.MountPoints = append(cp.MountPoints, btypes.MountPoint{SourceVolume: aws.String(name), ContainerPath: aws.String(p)})
		}
	}
	return in
}

// JobDefinitionAPI is the part of AWS Batch that studio launches use.
type JobDefinitionAPI interface {
	DescribeJobDefinitions(context.Context, *batch.DescribeJobDefinitionsInput, ...func(*batch.Options)) (*batch.DescribeJobDefinitionsOutput, error)
	RegisterJobDefinition(context.Context, *batch.RegisterJobDefinitionInput, ...func(*batch.Options)) (*batch.RegisterJobDefinitionOutput, error)
}

// RegisterStudioJobDefinition returns the active revision of spec.Name
// that runs spec.Image for spec's CE (ownership tag), registering it on
// the first studio of that image: Batch cannot override a job's image, so
// each image gets its revision, reused by every later studio.
func RegisterStudioJobDefinition(ctx context.Context, b JobDefinitionAPI, spec JobDefSpec) (string, error) {
	in := &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(spec.Name), Status: aws.String("ACTIVE")}
	best, rev := "", int32(-1)
	for {
		got, err := b.DescribeJobDefinitions(ctx, in)
		if err != nil {
			return "", Wrap("describe job definition "+spec.Name, err)
		}
		for _, jd := range got.JobDefinitions {
			cp := jd.ContainerProperties
			if jd.Tags[tags.CEID] == spec.Tags[tags.CEID] && cp != nil && aws.ToString(cp.Image) == spec.Image && aws.ToInt32(jd.Revision) > rev {
				best, rev = aws.ToString(jd.JobDefinitionArn), aws.ToInt32(jd.Revision)
			}
		}
		if aws.ToString(got.NextToken) == "" {
			break
		}
		in.NextToken = got.NextToken
	}
	if best != "" {
		return best, nil
	}
	out, err := b.RegisterJobDefinition(ctx, StudioJobDefinitionInput(spec))
	if err != nil {
		return "", Wrap("register job definition "+spec.Name, err)
	}
	return aws.ToString(out.JobDefinitionArn), nil
}

// StudioJobDefinitionInput is the head job definition of spec with the
// studio's image, which runs its own entrypoint (no command), never
// privileged (the api's IAM grant requires it). EC2 only: Session Manager
// reaches instances, not Fargate tasks.
func StudioJobDefinitionInput(spec JobDefSpec) *batch.RegisterJobDefinitionInput {
	spec.Fargate = false
	in := HeadJobDefinitionInput(spec)
	in.ContainerProperties.Command = nil
	in.ContainerProperties.Privileged = aws.Bool(false)
	return in
}

// DeregisterJobDefinitions deregisters every active revision of name that
// carries ceID's ownership tag.
func DeregisterJobDefinitions(ctx context.Context, b BatchAPI, name, ceID string) error {
	in := &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(name), Status: aws.String("ACTIVE")}
	var arns []*string
	for {
		got, err := b.DescribeJobDefinitions(ctx, in)
		if err != nil {
			return Wrap("describe job definition "+name, err)
		}
		for _, jd := range got.JobDefinitions {
			if jd.Tags[tags.CEID] == ceID {
				arns = append(arns, jd.JobDefinitionArn)
			}
		}
		if aws.ToString(got.NextToken) == "" {
			break
		}
		in.NextToken = got.NextToken
	}
	for _, arn := range arns {
		if _, err := b.DeregisterJobDefinition(ctx, &batch.DeregisterJobDefinitionInput{JobDefinition: arn}); err != nil && Code(err) != "ClientException" {
			return Wrap("deregister job definition "+name, err)
		}
	}
	return nil
}
