package batchce

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/awsclient/ecsread"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/run"
)

// Studios on AWS Batch: a studio is a head job whose container is the
// studio's image (Batch cannot override a job's image, so each image gets
// its own revision of the CE's studio job definition, registered at the
// first launch and reused). Batch runs EC2 jobs in the host's network, so
// the studio listens on its port on the host, which users reach with
// Session Manager port forwarding to that host: the EC2 instance behind the
// container instance Batch reports the job on. That needs EC2 hosts (not
// Fargate), and an S3 work directory (EFS and FSx work directories break a
// studio's checkpoints; the file systems are still mounted in it).

// HostFinder tells which EC2 instance an ECS container instance is
// (awsclient/ecsread).
type HostFinder interface {
	EC2InstanceOf(ctx context.Context, containerInstanceARN string) (string, error)
}

// reservedHostPorts are taken on every Batch host (SSH, the Docker daemon,
// the ECS agent's introspection and credentials endpoints): a studio that
// shares the host's network cannot listen there.
var reservedHostPorts = map[int]bool{22: true, 2375: true, 2376: true, 51678: true, 51679: true, 51680: true}

// checkStudio validates a studio run against a Batch CE.
func checkStudio(ce *computeenv.ComputeEnv, r *run.Run) error {
	if r.Studio.Port == 0 {
		r.Studio.Port = run.DefaultStudioPort
	}
	if headsOnFargate(ce) {
		return apierr.Unprocessable("studio_needs_ec2_head", "computeEnvId",
			"compute environment %s runs its head jobs on Fargate; studios need EC2 hosts (Session Manager reaches instances): use a compute environment whose heads run on EC2", ce.ID)
	}
	if !strings.HasPrefix(r.WorkDir, "s3://") {
		return apierr.Unprocessable("studio_needs_s3_work_dir", "workDir",
			"studios need an S3 work directory, and %s is on a shared file system (EFS or FSx, which stay mounted in the studio): give an s3:// workDir or use a compute environment with one", r.WorkDir)
	}
	if r.Studio.Spot {
		return apierr.Invalid("studio.spot", "studio.spot applies to AWS Cloud compute environments; on AWS Batch a studio runs on the head queue's instances")
	}
	if reservedHostPorts[r.Studio.Port] {
		return apierr.Invalid("studio.port", "port %d is taken on AWS Batch hosts (the studio shares the host's network); choose another", r.Studio.Port)
	}
	for field, script := range map[string]string{"preRunScript": r.PreRunScript, "postRunScript": r.PostRunScript} {
		if script != "" {
			return apierr.Invalid(field, "a studio on AWS Batch runs its image's own entrypoint: %s does not apply", field)
		}
	}
	return nil
}

// headsOnFargate reports whether the CE's head jobs run on Fargate: forge
// says so in its options, a manual CE's head queue decided it (recorded with
// its head job definition).
func headsOnFargate(ce *computeenv.ComputeEnv) bool {
	if f := ce.Batch.Forge; f != nil {
		return f.FargateHeadEnabled
	}
	jd := forge.FindType(ce, forge.TypeJobDefinition)
	return jd != nil && jd.Platform == string(btypes.PlatformCapabilityFargate)
}

// studioJobDef is the CE's head job definition with the studio's image.
func (l *Launcher) studioJobDef(ce *computeenv.ComputeEnv, image string) forge.JobDefSpec {
	var spec forge.JobDefSpec
	if ce.Batch.Forge != nil {
		spec = forge.HeadJobDef(ce, forge.NewDesign(l.Prefix, ce))
	} else {
		spec = manualHeadJobDef(l.Prefix, ce)
	}
	spec.Name, spec.Image = forge.NamesFor(l.Prefix, ce.ID).StudioJobDefinition, image
	return spec
}

func (l *Launcher) jobDefs(ce *computeenv.ComputeEnv) forge.JobDefinitionAPI {
	if l.JobDefs != nil {
		return l.JobDefs(ce)
	}
	return batch.NewFromConfig(configFor(l.AWS, ce))
}

// launchStudio submits a studio's head job: its image's job definition
// (found or registered), then one SubmitJob to the head queue.
func (l *Launcher) launchStudio(ctx context.Context, ce *computeenv.ComputeEnv, r *run.Run) (run.Backend, *run.LogRef, error) {
	head, _ := Queues(l.Prefix, ce)
	jd, err := forge.RegisterStudioJobDefinition(ctx, l.jobDefs(ce), l.studioJobDef(ce, r.Studio.Image))
	if err != nil {
		var se *forge.StepError
		if errors.As(err, &se) {
			return run.Backend{}, nil, apierr.Unprocessable("submit_refused", "studio.image", "AWS Batch refused the studio's job definition: %s", forge.Reason(err))
		}
		return run.Backend{}, nil, fmt.Errorf("studio job definition: %w", err)
	}
	port := strconv.Itoa(r.Studio.Port)
	env := map[string]string{
		"CEFORGE_RUN_ID": r.ID, "CEFORGE_REGION": ce.Region, "CEFORGE_WORK_DIR": r.WorkDir,
		"CEFORGE_STUDIO_IMAGE": r.Studio.Image, "CEFORGE_STUDIO_PORT": port, "PORT": port,
		"AWS_REGION": ce.Region, "AWS_DEFAULT_REGION": ce.Region,
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	ov := &btypes.ContainerOverrides{}
	for _, k := range names {
		ov.Environment = append(ov.Environment, btypes.KeyValuePair{Name: aws.String(k), Value: aws.String(env[k])})
	}
	// The head job's size is the studio's (the CE's head job values, or the launch's).
	if r.HeadJobCpus != 0 {
		ov.Vcpus = aws.Int32(int32(r.HeadJobCpus))
	}
	if r.HeadJobMemoryMb != 0 {
		ov.Memory = aws.Int32(int32(r.HeadJobMemoryMb))
	}
	jobID, err := l.submitOnce(ctx, l.jobs(ce), head, &batch.SubmitJobInput{
		JobName: aws.String(HeadJobName(l.Prefix, r.ID)), JobQueue: aws.String(head), JobDefinition: aws.String(jd),
		ContainerOverrides: ov, Tags: runTags(ce, r), PropagateTags: aws.Bool(true),
	})
	if err != nil {
		if !forge.Transient(err) {
			return run.Backend{}, nil, apierr.Unprocessable("submit_refused", "computeEnvId", "AWS Batch refused the studio's job: %s", forge.Reason(err))
		}
		return run.Backend{}, nil, fmt.Errorf("submit studio job: %w", err)
	}
	cpus, mem := headSize(ce, r)
	return run.Backend{Type: run.BackendBatch, JobID: jobID, JobQueue: head, Region: ce.Region, HeadCpus: cpus, HeadMemoryMb: mem},
		&run.LogRef{Group: LogGroup(l.Prefix, ce)}, nil
}

// StudioHost implements run.HostLocator: the EC2 instance behind the
// container instance Batch reported the studio's job on.
func (l *Launcher) StudioHost(ctx context.Context, ce *computeenv.ComputeEnv, r *run.Run) (string, error) {
	if r.Backend == nil || r.Backend.ContainerInstanceARN == "" {
		return "", nil
	}
	var hosts HostFinder
	if l.Hosts != nil {
		hosts = l.Hosts(ce)
	} else {
		hosts = ecsread.New(configFor(l.AWS, ce))
	}
	return hosts.EC2InstanceOf(ctx, r.Backend.ContainerInstanceARN)
}
