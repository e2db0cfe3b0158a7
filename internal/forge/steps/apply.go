package steps

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	etypes "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	efstypes "github.com/aws/aws-sdk-go-v2/service/efs/types"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	fsxtypes "github.com/aws/aws-sdk-go-v2/service/fsx/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	itypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/forgedrole"
	"github.com/ceforge/ceforge/internal/tags"
)

// step is one idempotent stage: it reports done=false while AWS is still
// settling (the reconciler calls again).
type step func(context.Context, *computeenv.ComputeEnv, forge.Design) (bool, error)

// Create takes the next steps towards the design and reports whether
// everything exists and is usable. A *forge.StepError is a refusal (the CE is
// ERRORED); other errors are transient.
func (f *Forger) Create(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	for _, s := range []step{f.roles, f.batchServiceRole, f.logGroup, f.efs, f.fsx, f.launchTemplate, f.computeEnvs, f.queues, f.jobDefinition} {
		ok, err := s(ctx, ce, d)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (f *Forger) roles(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	for _, r := range d.Roles {
		if !forge.Done(ce, forge.TypeRole, r.Name) {
			arn, err := f.ensureRole(ctx, r, d.Tags, d.Boundary)
			if err != nil {
				return false, err
			}
			forge.Record(ce, computeenv.Resource{Type: forge.TypeRole, Name: r.Name, ARN: arn, State: forge.StateCreated, PermissionsBoundary: d.Boundary})
		}
		if r.Profile && !forge.Done(ce, forge.TypeInstanceProfile, r.Name) {
			arn, err := f.ensureProfile(ctx, r.Name, d.Tags)
			if err != nil {
				return false, err
			}
			forge.Record(ce, computeenv.Resource{Type: forge.TypeInstanceProfile, Name: r.Name, ARN: arn, State: forge.StateCreated})
		}
	}
	return true, nil
}

func iamTags(t tags.Tags) []itypes.Tag {
	out := make([]itypes.Tag, 0, len(t))
	for _, k := range t.Keys() {
		out = append(out, itypes.Tag{Key: aws.String(k), Value: aws.String(t[k])})
	}
	return out
}

// ensureRole creates a role under the design's permissions boundary, or
// adopts the one a previous attempt created (putting it under the boundary
// if that attempt predates it). A trust principal or managed policy outside
// forgedrole's lists, or no boundary, is a refusal: IAM would deny it too.
func (f *Forger) ensureRole(ctx context.Context, r forge.Role, t tags.Tags, boundary string) (string, error) {
	trust, err := forgedrole.TrustPolicy(r.Principal)
	if err != nil {
		return "", &forge.StepError{Step: "role " + r.Name, Err: err}
	}
	if boundary == "" {
		return "", &forge.StepError{Step: "role " + r.Name, Err: errors.New("no permissions boundary is configured (CEFORGE_PERMISSIONS_BOUNDARY); ceforge forges no role without one")}
	}
	for _, p := range r.Managed {
		if !forgedrole.Attachable(p) {
			return "", &forge.StepError{Step: "role " + r.Name, Err: fmt.Errorf("policy %s is not one ceforge may attach", p)}
		}
	}
	var arn string
	out, err := f.IAM.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName: aws.String(r.Name), AssumeRolePolicyDocument: aws.String(trust),
		Description: aws.String("ceforge " + t[tags.CEID]), Tags: iamTags(t), PermissionsBoundary: aws.String(boundary),
	})
	switch {
	case err == nil:
		arn = aws.ToString(out.Role.Arn)
	case forge.Code(err) == "EntityAlreadyExists":
		// A previous attempt created it: adopt it (its tags prove ownership).
		got, gerr := f.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(r.Name)})
		if gerr != nil {
			return "", forge.Wrap("get role "+r.Name, gerr)
		}
		arn = aws.ToString(got.Role.Arn)
		if _, err := forgedrole.Ensure(ctx, f.IAM, r.Name, boundary); err != nil {
			return "", forge.Wrap("bound role "+r.Name, err)
		}
	default:
		return "", forge.Wrap("create role "+r.Name, err)
	}
	for _, p := range r.Managed {
		if _, err := f.IAM.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(r.Name), PolicyArn: aws.String(p)}); err != nil {
			return "", forge.Wrap("attach "+p+" to role "+r.Name, err)
		}
	}
	if r.Inline != nil {
		if _, err := f.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(r.Name), PolicyName: aws.String("ceforge"), PolicyDocument: aws.String(forge.JSON(r.Inline))}); err != nil {
			return "", forge.Wrap("put policy of role "+r.Name, err)
		}
	}
	return arn, nil
}

// Bound puts the CE's forged roles under d.Boundary: roles forged before
// ceforge created roles under a boundary, or under another one. The legacy
// Batch service role stays as it is (see forge.Names.ServiceRole); the
// reconciler may no longer change its policies, which need the boundary.
func (f *Forger) Bound(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	changed := false
	for i := range ce.ForgedResources {
		r := &ce.ForgedResources[i]
		if r.Type != forge.TypeRole || r.State != forge.StateCreated || r.Name == d.Names.ServiceRole || r.PermissionsBoundary == d.Boundary {
			continue
		}
		if _, err := forgedrole.Ensure(ctx, f.IAM, r.Name, d.Boundary); err != nil {
			if forge.Code(err) == "NoSuchEntity" {
				continue // deleted outside ceforge: nothing to bound
			}
			return changed, err
		}
		r.PermissionsBoundary, changed = d.Boundary, true
	}
	return changed, nil
}

// batchServiceRole finds (or has IAM create) Batch's service-linked role,
// which forged compute environments name as their service role. It is
// recorded as used: ceforge never deletes it.
func (f *Forger) batchServiceRole(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	if len(d.ComputeEnvs) == 0 || forge.Find(ce, forge.TypeRole, forge.BatchServiceLinkedRole) != nil || legacyServiceRole(ce, d) != nil {
		return true, nil
	}
	var arn string
	got, err := f.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(forge.BatchServiceLinkedRole)})
	switch {
	case err == nil:
		arn = aws.ToString(got.Role.Arn)
	case forge.Code(err) == "NoSuchEntity":
		out, err := f.IAM.CreateServiceLinkedRole(ctx, &iam.CreateServiceLinkedRoleInput{AWSServiceName: aws.String(forgedrole.PrincipalBatch)})
		if exists := forge.Code(err) == "InvalidInput" || forge.Code(err) == "EntityAlreadyExists"; err != nil && !exists { // created meanwhile
			return false, forge.Wrap("create the Batch service-linked role", err)
		}
		if err == nil {
			arn = aws.ToString(out.Role.Arn)
			break
		}
		got, err := f.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(forge.BatchServiceLinkedRole)})
		if err != nil {
			return false, forge.Wrap("get the Batch service-linked role", err)
		}
		arn = aws.ToString(got.Role.Arn)
	default:
		return false, forge.Wrap("get the Batch service-linked role", err)
	}
	forge.Record(ce, computeenv.Resource{Type: forge.TypeRole, Name: forge.BatchServiceLinkedRole, ARN: arn, State: forge.StateUsed})
	return true, nil
}

// legacyServiceRole is the Batch service role a CE forged before
// compute environments used the service-linked role (nil for newer CEs).
func legacyServiceRole(ce *computeenv.ComputeEnv, d forge.Design) *computeenv.Resource {
	if r := forge.Find(ce, forge.TypeRole, d.Names.ServiceRole); r != nil && r.State == forge.StateCreated && r.ARN != "" {
		return r
	}
	return nil
}

func (f *Forger) ensureProfile(ctx context.Context, name string, t tags.Tags) (string, error) {
	var arn string
	out, err := f.IAM.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String(name), Tags: iamTags(t)})
	switch {
	case err == nil:
		arn = aws.ToString(out.InstanceProfile.Arn)
	case forge.Code(err) == "EntityAlreadyExists":
		got, gerr := f.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
		if gerr != nil {
			return "", forge.Wrap("get instance profile "+name, gerr)
		}
		arn = aws.ToString(got.InstanceProfile.Arn)
		for _, r := range got.InstanceProfile.Roles {
			if aws.ToString(r.RoleName) == name {
				return arn, nil
			}
		}
	default:
		return "", forge.Wrap("create instance profile "+name, err)
	}
	_, err = f.IAM.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String(name), RoleName: aws.String(name)})
	if err != nil && forge.Code(err) != "LimitExceeded" { // LimitExceeded: the role is in it already
		return "", forge.Wrap("add role to instance profile "+name, err)
	}
	return arn, nil
}

func (f *Forger) logGroup(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	if !d.CreateLogGroup || forge.Done(ce, forge.TypeLogGroup, d.LogGroup) {
		return true, nil
	}
	_, err := f.Logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(d.LogGroup), Tags: d.Tags})
	if err != nil && forge.Code(err) != "ResourceAlreadyExistsException" {
		return false, forge.Wrap("create log group "+d.LogGroup, err)
	}
	forge.Record(ce, computeenv.Resource{Type: forge.TypeLogGroup, Name: d.LogGroup, State: forge.StateCreated})
	return true, nil
}

func (f *Forger) efs(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	name := d.Names.Base
	if !d.EFSCreate || forge.Done(ce, forge.TypeEFS, name) {
		return true, nil
	}
	var fs *efstypes.FileSystemDescription
	got, err := f.EFS.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{CreationToken: aws.String(name)})
	if err != nil {
		return false, forge.Wrap("describe EFS "+name, err)
	}
	if len(got.FileSystems) > 0 {
		fs = &got.FileSystems[0]
	} else {
		t := tags.Merge(map[string]string{tags.Name: name}, d.Tags)
		if v, ok := ce.Labels[tags.Name]; ok {
			t[tags.Name] = v // a user's Name label wins over the default
		}
		var et []efstypes.Tag
		for _, k := range t.Keys() {
			et = append(et, efstypes.Tag{Key: aws.String(k), Value: aws.String(t[k])})
		}
		out, err := f.EFS.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String(name), Encrypted: aws.Bool(true), Tags: et})
		if err != nil {
			return false, forge.Wrap("create EFS "+name, err)
		}
		fs = &efstypes.FileSystemDescription{FileSystemId: out.FileSystemId, LifeCycleState: out.LifeCycleState}
	}
	id := aws.ToString(fs.FileSystemId)
	forge.Record(ce, computeenv.Resource{Type: forge.TypeEFS, Name: name, ID: id, State: forge.StatePending})
	if fs.LifeCycleState != efstypes.LifeCycleStateAvailable {
		return false, nil
	}
	mts, err := f.EFS.DescribeMountTargets(ctx, &efs.DescribeMountTargetsInput{FileSystemId: aws.String(id)})
	if err != nil {
		return false, forge.Wrap("describe EFS mount targets", err)
	}
	have := map[string]bool{}
	for _, mt := range mts.MountTargets {
		have[aws.ToString(mt.SubnetId)] = true
	}
	for _, sn := range d.Subnets {
		if have[sn] {
			continue
		}
		_, err := f.EFS.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: aws.String(id), SubnetId: aws.String(sn), SecurityGroups: d.SecurityGroups})
		if err != nil && forge.Code(err) != "MountTargetConflict" { // one per availability zone
			return false, forge.Wrap("create EFS mount target in "+sn, err)
		}
	}
	forge.Record(ce, computeenv.Resource{Type: forge.TypeEFS, Name: name, ID: id, State: forge.StateCreated})
	return true, nil
}

func (f *Forger) fsx(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	name := d.Names.Base
	if !d.FSxCreate || forge.Done(ce, forge.TypeFSx, name) {
		return true, nil
	}
	fs, err := f.findFSx(ctx, ce, name)
	if err != nil {
		return false, err
	}
	if fs == nil {
		t := tags.Merge(map[string]string{tags.Name: name}, d.Tags)
		var ft []fsxtypes.Tag
		for _, k := range t.Keys() {
			ft = append(ft, fsxtypes.Tag{Key: aws.String(k), Value: aws.String(t[k])})
		}
		out, err := f.FSx.CreateFileSystem(ctx, &fsx.CreateFileSystemInput{
			ClientRequestToken: aws.String(name), FileSystemType: fsxtypes.FileSystemTypeLustre,
			StorageCapacity: aws.Int32(int32(d.FSxSize)), SubnetIds: d.Subnets[:min(1, len(d.Subnets))], SecurityGroupIds: d.SecurityGroups,
			LustreConfiguration: &fsxtypes.CreateFileSystemLustreConfiguration{DeploymentType: fsxtypes.LustreDeploymentTypeScratch2},
			Tags:                ft,
		})
		if err != nil {
			return false, forge.Wrap("create FSx "+name, err)
		}
		fs = out.FileSystem
	}
	r := computeenv.Resource{Type: forge.TypeFSx, Name: name, ID: aws.ToString(fs.FileSystemId), ARN: aws.ToString(fs.ResourceARN), State: forge.StatePending}
	if fs.Lifecycle == fsxtypes.FileSystemLifecycleAvailable {
		r.State = forge.StateCreated
	}
	forge.Record(ce, r)
	return r.State == forge.StateCreated, nil
}

// findFSx finds the CE's FSx file system by its recorded id or its Name tag.
func (f *Forger) findFSx(ctx context.Context, ce *computeenv.ComputeEnv, name string) (*fsxtypes.FileSystem, error) {
	in := &fsx.DescribeFileSystemsInput{}
	if r := forge.Find(ce, forge.TypeFSx, name); r != nil && r.ID != "" {
		in.FileSystemIds = []string{r.ID}
	}
	for {
		out, err := f.FSx.DescribeFileSystems(ctx, in)
		if forge.Code(err) == "FileSystemNotFound" {
			return nil, nil
		}
		if err != nil {
			return nil, forge.Wrap("describe FSx", err)
		}
		for i, fs := range out.FileSystems {
			for _, t := range fs.Tags {
				if aws.ToString(t.Key) == tags.CEID && aws.ToString(t.Value) == ce.ID {
					return &out.FileSystems[i], nil
				}
			}
		}
		if out.NextToken == nil {
			return nil, nil
		}
		in.NextToken = out.NextToken
	}
}

// fsxMount returns the DNS and mount names of the CE's FSx (created or given).
func (f *Forger) fsxMount(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (string, string, error) {
	if !d.FSxCreate && d.FSxDNSName == "" {
		return "", "", nil
	}
	in := &fsx.DescribeFileSystemsInput{}
	if d.FSxCreate {
		if r := forge.Find(ce, forge.TypeFSx, d.Names.Base); r != nil && r.ID != "" {
			in.FileSystemIds = []string{r.ID}
		}
	}
	for {
		out, err := f.FSx.DescribeFileSystems(ctx, in)
		if err != nil {
			return "", "", forge.Wrap("describe FSx", err)
		}
		for _, fs := range out.FileSystems {
			dns := aws.ToString(fs.DNSName)
			if (d.FSxCreate || dns == d.FSxDNSName) && fs.LustreConfiguration != nil {
				return dns, aws.ToString(fs.LustreConfiguration.MountName), nil
			}
		}
		if out.NextToken == nil {
			break
		}
		in.NextToken = out.NextToken
	}
	return "", "", &forge.StepError{Step: "find FSx", Err: fmt.Errorf("no FSx for Lustre file system with DNS name %q in %s", d.FSxDNSName, d.Region)}
}

// efsID is the id of the CE's EFS (given, or created by the efs step).
func (f *Forger) efsID(ce *computeenv.ComputeEnv, d forge.Design) string {
	if d.EFSID != "" {
		return d.EFSID
	}
	if r := forge.Find(ce, forge.TypeEFS, d.Names.Base); d.EFSCreate && r != nil {
		return r.ID
	}
	return ""
}

func ec2Tags(t tags.Tags) []etypes.Tag {
	out := make([]etypes.Tag, 0, len(t))
	for _, k := range t.Keys() {
		out = append(out, etypes.Tag{Key: aws.String(k), Value: aws.String(t[k])})
	}
	return out
}

func (f *Forger) launchTemplate(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	name := d.Names.LaunchTemplate
	if forge.Done(ce, forge.TypeLaunchTemplate, name) {
		return true, nil
	}
	dns, mountName, err := f.fsxMount(ctx, ce, d)
	if err != nil {
		return false, err
	}
	ebs := &etypes.LaunchTemplateEbsBlockDeviceRequest{
		VolumeSize: aws.Int32(int32(d.BootDiskGiB)), VolumeType: etypes.VolumeTypeGp2,
		DeleteOnTermination: aws.Bool(true), Encrypted: aws.Bool(true),
	}
	if d.BootDiskGP3 {
		ebs.VolumeType, ebs.Throughput = etypes.VolumeTypeGp3, aws.Int32(int32(d.BootThroughput))
	}
	// Ownership tags on the instances AND their volumes, set at launch, so
	// the sweeper can prove what is ours.
	out, err := f.EC2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(name),
		LaunchTemplateData: &etypes.RequestLaunchTemplateData{
			MetadataOptions: &etypes.LaunchTemplateInstanceMetadataOptionsRequest{
				HttpTokens: etypes.LaunchTemplateHttpTokensStateRequired, HttpEndpoint: etypes.LaunchTemplateInstanceMetadataEndpointStateEnabled,
				HttpPutResponseHopLimit: aws.Int32(2), // containers sit one hop behind the instance
			},
			BlockDeviceMappings: []etypes.LaunchTemplateBlockDeviceMappingRequest{{DeviceName: aws.String("/dev/xvda"), Ebs: ebs}},
			UserData:            aws.String(d.UserData(f.efsID(ce, d), dns, mountName)),
			TagSpecifications: []etypes.LaunchTemplateTagSpecificationRequest{
				{ResourceType: etypes.ResourceTypeInstance, Tags: ec2Tags(d.Tags)},
				{ResourceType: etypes.ResourceTypeVolume, Tags: ec2Tags(d.Tags)},
			},
		},
		TagSpecifications: []etypes.TagSpecification{{ResourceType: etypes.ResourceTypeLaunchTemplate, Tags: ec2Tags(d.Tags)}},
	})
	var id string
	switch {
	case err == nil:
		id = aws.ToString(out.LaunchTemplate.LaunchTemplateId)
	case forge.Code(err) == "InvalidLaunchTemplateName.AlreadyExistsException":
		got, gerr := f.EC2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{name}})
		if gerr != nil || len(got.LaunchTemplates) == 0 {
			return false, forge.Wrap("describe launch template "+name, errors.Join(gerr, errors.New("launch template vanished")))
		}
		id = aws.ToString(got.LaunchTemplates[0].LaunchTemplateId)
	default:
		return false, forge.Wrap("create launch template "+name, err)
	}
	forge.Record(ce, computeenv.Resource{Type: forge.TypeLaunchTemplate, Name: name, ID: id, State: forge.StateCreated})
	return true, nil
}

func (f *Forger) computeEnvs(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	names := make([]string, 0, len(d.ComputeEnvs))
	for _, c := range d.ComputeEnvs {
		if !forge.Done(ce, forge.TypeComputeEnv, c.Name) {
			names = append(names, c.Name)
		}
	}
	if len(names) == 0 {
		return true, nil
	}
	for attempt := 0; ; attempt++ {
		got, err := f.Batch.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{ComputeEnvironments: names})
		if err != nil {
			return false, forge.Wrap("describe compute environments", err)
		}
		seen := map[string]btypes.ComputeEnvironmentDetail{}
		for _, c := range got.ComputeEnvironments {
			seen[aws.ToString(c.ComputeEnvironmentName)] = c
		}
		ready, created := true, false
		for _, c := range d.ComputeEnvs {
			if !slices.Contains(names, c.Name) {
				continue
			}
			cur, ok := seen[c.Name]
			if !ok {
				if err := f.createComputeEnv(ctx, ce, d, c); err != nil {
					return false, err
				}
				ready, created = false, true
				continue
			}
			r := computeenv.Resource{Type: forge.TypeComputeEnv, Name: c.Name, ARN: aws.ToString(cur.ComputeEnvironmentArn), State: forge.StatePending}
			switch cur.Status {
			case btypes.CEStatusValid:
				r.State = forge.StateCreated
			case btypes.CEStatusInvalid:
				forge.Record(ce, r)
				return false, &forge.StepError{Step: "compute environment " + c.Name, Err: fmt.Errorf("INVALID: %s", aws.ToString(cur.StatusReason))}
			default:
				ready = false
			}
			forge.Record(ce, r)
		}
		// Batch settles asynchronously; look once more right after creating,
		// which saves a reconcile pass when it is quick.
		if ready || !created || attempt > 0 {
			return ready, nil
		}
	}
}

func (f *Forger) createComputeEnv(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design, c forge.ComputeEnvSpec) error {
	svc := legacyServiceRole(ce, d)
	if svc == nil {
		svc = forge.Find(ce, forge.TypeRole, forge.BatchServiceLinkedRole)
	}
	if svc == nil || svc.ARN == "" {
		return errors.New("service role not recorded yet")
	}
	cr := &btypes.ComputeResource{
		Type: btypes.CRType(c.Type), MaxvCpus: aws.Int32(int32(c.MaxCpus)),
		Subnets: d.Subnets, SecurityGroupIds: d.SecurityGroups,
	}
	if c.Type != "FARGATE" {
		prof := forge.Find(ce, forge.TypeInstanceProfile, d.Names.InstanceRole)
		lt := forge.Find(ce, forge.TypeLaunchTemplate, d.Names.LaunchTemplate)
		if prof == nil || lt == nil {
			return errors.New("instance profile or launch template not recorded yet")
		}
		image := c.ImageID // custom, or resolved when the CE was validated
		cr.MinvCpus = aws.Int32(int32(c.MinCpus))
		cr.InstanceTypes = c.InstanceTypes
		cr.AllocationStrategy = btypes.CRAllocationStrategy(c.AllocStrategy)
		cr.InstanceRole = aws.String(prof.ARN)
		cr.LaunchTemplate = &btypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(lt.ID), Version: aws.String("$Latest")}
		cr.Ec2Configuration = []btypes.Ec2Configuration{{ImageType: aws.String(c.ImageType)}}
		if image != "" {
			// Else AWS Batch picks the latest AMI of the image type.
			cr.Ec2Configuration[0].ImageIdOverride = aws.String(image)
		}
		cr.Tags = d.Tags
		if c.BidPercentage > 0 {
			cr.BidPercentage = aws.Int32(int32(c.BidPercentage))
		}
		if c.KeyPair != "" {
			cr.Ec2KeyPair = aws.String(c.KeyPair)
		}
	}
	_, err := f.Batch.CreateComputeEnvironment(ctx, &batch.CreateComputeEnvironmentInput{
		ComputeEnvironmentName: aws.String(c.Name), Type: btypes.CETypeManaged, State: btypes.CEStateEnabled,
		ServiceRole: aws.String(svc.ARN), ComputeResources: cr, Tags: d.Tags,
	})
	if err != nil {
		if iamNotVisibleYet(ce, err) {
			return fmt.Errorf("create compute environment %s (new IAM roles not visible to Batch yet): %w", c.Name, err)
		}
		return forge.Wrap("create compute environment "+c.Name, err)
	}
	forge.Record(ce, computeenv.Resource{Type: forge.TypeComputeEnv, Name: c.Name, State: forge.StatePending})
	return nil
}

func (f *Forger) queues(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	names := make([]string, 0, len(d.Queues))
	for _, q := range d.Queues {
		if !forge.Done(ce, forge.TypeJobQueue, q.Name) {
			names = append(names, q.Name)
		}
	}
	if len(names) == 0 {
		return true, nil
	}
	for attempt := 0; ; attempt++ {
		got, err := f.Batch.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: names})
		if err != nil {
			return false, forge.Wrap("describe job queues", err)
		}
		seen := map[string]btypes.JobQueueDetail{}
		for _, q := range got.JobQueues {
			seen[aws.ToString(q.JobQueueName)] = q
		}
		ready, created := true, false
		for _, q := range d.Queues {
			if !slices.Contains(names, q.Name) {
				continue
			}
			cur, ok := seen[q.Name]
			if !ok {
				if err := f.createQueue(ctx, ce, d, q); err != nil {
					return false, err
				}
				ready, created = false, true
				continue
			}
			r := computeenv.Resource{Type: forge.TypeJobQueue, Name: q.Name, ARN: aws.ToString(cur.JobQueueArn), State: forge.StatePending}
			switch cur.Status {
			case btypes.JQStatusValid:
				r.State = forge.StateCreated
			case btypes.JQStatusInvalid:
				forge.Record(ce, r)
				return false, &forge.StepError{Step: "job queue " + q.Name, Err: fmt.Errorf("INVALID: %s", aws.ToString(cur.StatusReason))}
			default:
				ready = false
			}
			forge.Record(ce, r)
		}
		if ready || !created || attempt > 0 {
			return ready, nil
		}
	}
}

func (f *Forger) createQueue(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design, q forge.QueueSpec) error {
	c := forge.Find(ce, forge.TypeComputeEnv, q.CE)
	if c == nil || c.ARN == "" {
		return fmt.Errorf("compute environment %s not recorded yet", q.CE)
	}
	in := &batch.CreateJobQueueInput{
		JobQueueName: aws.String(q.Name), Priority: aws.Int32(int32(q.Priority)), State: btypes.JQStateEnabled,
		ComputeEnvironmentOrder: []btypes.ComputeEnvironmentOrder{{Order: aws.Int32(1), ComputeEnvironment: aws.String(c.ARN)}},
		Tags:                    d.Tags,
	}
	if q.TimeLimits {
		for _, t := range forge.TimeLimitActions() {
			in.JobStateTimeLimitActions = append(in.JobStateTimeLimitActions, btypes.JobStateTimeLimitAction{
				Reason: aws.String(t.Reason), State: btypes.JobStateTimeLimitActionsState(t.State),
				MaxTimeSeconds: aws.Int32(int32(t.MaxSecs)), Action: btypes.JobStateTimeLimitActionsAction(t.Action),
			})
		}
	}
	if _, err := f.Batch.CreateJobQueue(ctx, in); err != nil {
		return forge.Wrap("create job queue "+q.Name, err)
	}
	forge.Record(ce, computeenv.Resource{Type: forge.TypeJobQueue, Name: q.Name, State: forge.StatePending})
	return nil
}

func (f *Forger) jobDefinition(ctx context.Context, ce *computeenv.ComputeEnv, d forge.Design) (bool, error) {
	if forge.Done(ce, forge.TypeJobDefinition, d.Names.JobDefinition) {
		return true, nil
	}
	arn, err := forge.RegisterHeadJobDefinition(ctx, f.Batch, forge.HeadJobDef(ce, d))
	if err != nil {
		return false, err
	}
	forge.Record(ce, computeenv.Resource{Type: forge.TypeJobDefinition, Name: d.Names.JobDefinition, ARN: arn, State: forge.StateCreated})
	return true, nil
}

// IAMPropagation is how long after a CE's creation Batch refusing its
// roles or instance profile is taken for IAM's eventual consistency (new
// roles take seconds to become usable) rather than a real refusal.
const IAMPropagation = 5 * time.Minute

func iamNotVisibleYet(ce *computeenv.ComputeEnv, err error) bool {
	if forge.Transient(err) || time.Since(ce.CreatedAt) > IAMPropagation {
		return false
	}
	msg := strings.ToLower(forge.Reason(err))
	return strings.Contains(msg, "role") || strings.Contains(msg, "instance profile") || strings.Contains(msg, "instanceprofile")
}
