package cloudce

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/cloudce/userdata"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/secret"
	"github.com/ceforge/ceforge/internal/tags"
)

// ClientToken is the RunInstances idempotency token of a run. Note: the
// emulator does not honour it, and AWS honours it only for a few hours;
// ceforge's own idempotency is the run record written before the launch
// (with the Idempotency-Key guard) plus the reconciler adopting an instance
// found by its ceforge:run-id tag.
func ClientToken(runID string) string { return "ceforge-" + runID }

// Check validates the run against the CE before anything is written.
func (p *Platform) Check(ce *computeenv.ComputeEnv, r *run.Run) error {
	if ce.Cloud == nil {
		return fmt.Errorf("compute environment %s has no cloud options", ce.ID)
	}
	if r.HeadJobCpus != 0 {
		return apierr.Invalid("headJobCpus", "AWS Cloud runs use the compute environment's instance type (%s); headJobCpus does not apply", ce.Cloud.InstanceType)
	}
	if r.HeadJobMemoryMb != 0 {
		return apierr.Invalid("headJobMemoryMb", "AWS Cloud runs use the compute environment's instance type (%s); headJobMemoryMb does not apply", ce.Cloud.InstanceType)
	}
	if r.Studio != nil {
		if r.Studio.Port == 0 {
			r.Studio.Port = DefaultStudioPort
		}
		if r.Studio.Spot && !ce.Cloud.SpotStudios {
			return apierr.Invalid("studio.spot", "compute environment %s does not allow Spot studios (cloud.spotStudios)", ce.ID)
		}
	}
	if r.WorkDir != ce.WorkDir {
		b, _, err := computeenv.ParseS3URI("workDir", r.WorkDir)
		if err != nil {
			return err
		}
		if !slices.Contains(buckets(ce), b) {
			return apierr.Invalid("workDir", "bucket %q is neither the compute environment's work-dir bucket nor in cloud.allowBuckets", b)
		}
	}
	if _, err := userdata.Build(p.spec(ce, r)); err != nil {
		if errors.Is(err, userdata.ErrTooLarge) {
			return apierr.Invalid(largestField(ce, r), "the instance's start-up script is over EC2's 16 KB user-data limit even compressed: shorten the scripts, configuration or params")
		}
		return err
	}
	return nil
}

// largestField names the user text that contributes most to the user-data.
func largestField(ce *computeenv.ComputeEnv, r *run.Run) string {
	fields := []struct {
		name string
		n    int
	}{
		{"configText", len(r.ConfigText)}, {"paramsText", len(r.ParamsText)},
		{"preRunScript", len(r.PreRunScript) + len(ce.PreRunScript)},
		{"postRunScript", len(r.PostRunScript) + len(ce.PostRunScript)},
	}
	best := fields[0]
	for _, f := range fields[1:] {
		if f.n > best.n {
			best = f
		}
	}
	return best.name
}

func joinText(parts ...string) string {
	var out []string
	for _, s := range parts {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, "\n")
}

// spec builds the user-data spec of a run.
func (p *Platform) spec(ce *computeenv.ComputeEnv, r *run.Run) userdata.Spec {
	s := userdata.Spec{
		RunID: r.ID, Region: ce.Region, LogGroup: p.logGroup(), WorkDir: r.WorkDir, MaxRunHours: ce.Cloud.MaxRunHours,
		PreRunScript: joinText(ce.PreRunScript, r.PreRunScript), PostRunScript: joinText(ce.PostRunScript, r.PostRunScript),
	}
	for _, e := range ce.Environment {
		// One instance runs the head and the tasks: every variable applies.
		s.Env = append(s.Env, userdata.EnvVar{Name: e.Name, Value: e.Value})
	}
	// Registry passwords (studios pull images too): names only; the head
	// reads the values with the instance's role.
	s.SecretPrefix = secret.SecretName(p.Prefix, "")
	for _, rc := range ce.RegistryCredentials {
		s.Registries = append(s.Registries, userdata.Registry{Host: rc.Registry, Username: rc.Username, PasswordSecret: rc.PasswordSecret})
	}
	if r.Kind == run.KindStudio && r.Studio != nil {
		s.StudioImage, s.StudioPort = r.Studio.Image, r.Studio.Port
		return s
	}
	s.Pipeline, s.Revision, s.ConfigProfiles, s.ParamsText = r.Pipeline, r.Revision, r.ConfigProfiles, r.ParamsText
	s.ConfigText = joinText(ce.NextflowConfig, r.ConfigText)
	s.Resume = r.ResumeSessionID
	if t := r.Trace; t != nil && t.Enabled {
		s.TraceURL, s.TraceSecret = t.Endpoint, t.Secret
	}
	// Pipeline secrets and the Seqera token, by name as well.
	s.Secrets, s.SeqeraTokenSecret = r.Secrets, ce.SeqeraTokenSecret
	return s
}

// profileARN is the instance profile runs use.
func profileARN(ce *computeenv.ComputeEnv) string {
	if ce.Cloud.InstanceProfileARN != "" {
		return ce.Cloud.InstanceProfileARN
	}
	if r := resource(ce, ResProfile); r != nil {
		return r.ARN
	}
	return ""
}

func rootDevice(ce *computeenv.ComputeEnv) string {
	if r := resource(ce, ResImage); r != nil && r.Name != "" {
		return r.Name
	}
	return defaultRootDevice
}

// RunInput builds the RunInstances request of a run in a subnet.
func (p *Platform) RunInput(ce *computeenv.ComputeEnv, r *run.Run, subnet string, ud []byte) *ec2.RunInstancesInput {
	c := ce.Cloud
	labels := map[string]string{}
	for k, v := range ce.Labels {
		labels[k] = v
	}
	for k, v := range r.Labels {
		labels[k] = v
	}
	reserved := tags.Ownership(ce.ID, r.ID)
	reserved[tags.Name] = p.prefix() + r.RunName
	t := tags.Merge(labels, reserved)
	ec2Tags := make([]ec2types.Tag, 0, len(t))
	for _, k := range t.Keys() {
		ec2Tags = append(ec2Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(t[k])})
	}
	in := &ec2.RunInstancesInput{
		ImageId: aws.String(c.ImageID), InstanceType: ec2types.InstanceType(c.InstanceType),
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String(ClientToken(r.ID)),
		SubnetId: aws.String(subnet),
		MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{
			HttpTokens: ec2types.HttpTokensStateRequired, HttpEndpoint: ec2types.InstanceMetadataEndpointStateEnabled,
			// 2 hops: Nextflow and task containers reach IMDS through the Docker bridge.
			HttpPutResponseHopLimit: aws.Int32(2),
		},
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{
			DeviceName: aws.String(rootDevice(ce)),
			Ebs: &ec2types.EbsBlockDevice{
				VolumeSize: aws.Int32(int32(c.EbsBootSize)), VolumeType: ec2types.VolumeTypeGp3,
				Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true),
			},
		}},
		InstanceInitiatedShutdownBehavior: ec2types.ShutdownBehaviorTerminate,
		UserData:                          aws.String(base64.StdEncoding.EncodeToString(ud)),
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeInstance, Tags: ec2Tags},
			{ResourceType: ec2types.ResourceTypeVolume, Tags: ec2Tags},
		},
	}
	if len(c.SecurityGroups) > 0 {
		in.SecurityGroupIds = c.SecurityGroups
	}
	if c.EC2KeyPair != "" {
		in.KeyName = aws.String(c.EC2KeyPair)
	}
	if arn := profileARN(ce); arn != "" {
		in.IamInstanceProfile = &ec2types.IamInstanceProfileSpecification{Arn: aws.String(arn)}
	}
	if r.Kind == run.KindStudio && r.Studio != nil && r.Studio.Spot {
		in.InstanceMarketOptions = &ec2types.InstanceMarketOptionsRequest{
			MarketType: ec2types.MarketTypeSpot,
			SpotOptions: &ec2types.SpotMarketOptions{
				SpotInstanceType: ec2types.SpotInstanceTypeOneTime, InstanceInterruptionBehavior: ec2types.InstanceInterruptionBehaviorTerminate,
			},
		}
	}
	return in
}

// capacityCodes mean "try another subnet (Availability Zone)".
var capacityCodes = []string{"InsufficientInstanceCapacity", "Unsupported", "InsufficientFreeAddressesInSubnet"}

// Launch starts the run's head instance: one RunInstances call on the
// happy path. It moves to the next subnet on a capacity error and waits a
// little when a fresh instance profile has not propagated yet.
func (p *Platform) Launch(ctx context.Context, ce *computeenv.ComputeEnv, r *run.Run) (run.Backend, *run.LogRef, error) {
	ud, err := userdata.Build(p.spec(ce, r))
	if err != nil {
		return run.Backend{}, nil, fmt.Errorf("render user-data: %w", err)
	}
	subnets := ce.Cloud.SubnetIDs
	if len(subnets) == 0 {
		return run.Backend{}, nil, fmt.Errorf("compute environment %s has no subnets", ce.ID)
	}
	h := fnv.New32a()
	h.Write([]byte(r.ID))
	start := int(h.Sum32() % uint32(len(subnets))) // spread runs over the AZs
	api := p.ClientsFor(ce).EC2
	var lastErr error
	profileRetries := 0
	for i := 0; i < len(subnets); {
		subnet := subnets[(start+i)%len(subnets)]
		out, err := api.RunInstances(ctx, p.RunInput(ce, r, subnet, ud))
		if err == nil {
			if len(out.Instances) == 0 {
				return run.Backend{}, nil, errors.New("RunInstances returned no instance")
			}
			id := aws.ToString(out.Instances[0].InstanceId)
			spot := r.Kind == run.KindStudio && r.Studio != nil && r.Studio.Spot
			return run.Backend{Type: run.BackendEC2, InstanceID: id, Region: ce.Region, InstanceType: ce.Cloud.InstanceType, Spot: spot},
				&run.LogRef{Group: p.logGroup(), Stream: r.ID}, nil
		}
		lastErr = err
		code := errorCode(err)
		switch {
		case slices.Contains(capacityCodes, code):
			i++
		case code == "InvalidParameterValue" && strings.Contains(strings.ToLower(err.Error()), "instance profile") && profileRetries < 3:
			// A new instance profile takes seconds to reach EC2.
			profileRetries++
			p.sleep(profileRetryBackoff * (1 << profileRetries))
		default:
			return run.Backend{}, nil, fmt.Errorf("RunInstances: %w", err)
		}
	}
	return run.Backend{}, nil, fmt.Errorf("RunInstances: no subnet had capacity: %w", lastErr)
}

// Cancel terminates the head instance; an instance that is gone is done.
// Without a recorded instance (a crash between launch and record) it finds
// the run's instances by their run tag.
func (p *Platform) Cancel(ctx context.Context, ce *computeenv.ComputeEnv, r *run.Run) error {
	api := p.ClientsFor(ce).EC2
	var ids []string
	if r.Backend != nil && r.Backend.InstanceID != "" {
		ids = []string{r.Backend.InstanceID}
	} else {
		out, err := api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
			{Name: aws.String("tag:" + tags.RunID), Values: []string{r.ID}},
			{Name: aws.String("tag:" + tags.CEID), Values: []string{ce.ID}},
		}})
		if err != nil {
			return fmt.Errorf("find instances of run %s: %w", r.ID, err)
		}
		for _, res := range out.Reservations {
			for _, inst := range res.Instances {
				ids = append(ids, aws.ToString(inst.InstanceId))
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	if err != nil && errorCode(err) != "InvalidInstanceID.NotFound" {
		return fmt.Errorf("terminate %v: %w", ids, err)
	}
	return nil
}
