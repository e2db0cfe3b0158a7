package cloudce

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/computeenv"
)

var (
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)
	imageIDRE      = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	vpcIDRE        = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)
	subnetIDRE     = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	sgIDRE         = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)
	keyPairRE      = regexp.MustCompile(`^[\x20-\x7e]+$`) // lengths checked in code: bounded repeats blow up the program
	profileARNRE   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)$`)
)

// Codes of errors that mean "the thing does not exist".
var notFoundCodes = []string{
	"InvalidInstanceType", "InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable",
	"InvalidVpcID.NotFound", "InvalidSubnetID.NotFound", "InvalidGroup.NotFound", "InvalidGroupId.Malformed",
	"InvalidKeyPair.NotFound", "NoSuchEntity", "NoSuchBucket", "NotFound", "ParameterNotFound",
}

var accessDeniedCodes = []string{"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"}

// accountErr maps an AWS error from a validation call to a 422 naming field
// (not found, access denied) or a wrapped transient error.
func accountErr(err error, field, code, format string, args ...any) error {
	c := errorCode(err)
	switch {
	case slices.Contains(notFoundCodes, c):
		return apierr.Unprocessable(code, field, format, args...)
	case slices.Contains(accessDeniedCodes, c):
		return apierr.Unprocessable("access_denied", field, "%s: the credentials may not check this (%s)", fmt.Sprintf(format, args...), c)
	}
	return fmt.Errorf("validate %s: %w", field, err)
}

// checkShape validates the options without calling AWS.
func (p *Platform) checkShape(ce *computeenv.ComputeEnv) error {
	if !p.regionAllowed(ce.Region) {
		return apierr.Invalid("region", "AWS Cloud compute environments are supported in %s; not in %q", strings.Join(SupportedRegions, ", "), ce.Region)
	}
	if !strings.HasPrefix(ce.WorkDir, "s3://") {
		return apierr.Invalid("workDir", "AWS Cloud compute environments need an S3 work dir (s3://bucket/prefix)")
	}
	c := ce.Cloud
	switch {
	case c.InstanceType != "" && (len(c.InstanceType) > 64 || !instanceTypeRE.MatchString(c.InstanceType)):
		return apierr.Invalid("cloud.instanceType", "%q is not an EC2 instance type name", c.InstanceType)
	case c.Arm64Enabled && c.GpuEnabled:
		return apierr.Invalid("cloud.gpuEnabled", "GPU instances are x86_64 only here: do not combine gpuEnabled with arm64Enabled")
	case c.ImageID != "" && !imageIDRE.MatchString(c.ImageID):
		return apierr.Invalid("cloud.imageId", "%q is not an AMI id (ami-…)", c.ImageID)
	case c.EC2KeyPair != "" && (len(c.EC2KeyPair) > 255 || !keyPairRE.MatchString(c.EC2KeyPair)):
		return apierr.Invalid("cloud.ec2KeyPair", "key pair names are 1-255 printable ASCII characters")
	case c.VpcID != "" && !vpcIDRE.MatchString(c.VpcID):
		return apierr.Invalid("cloud.vpcId", "%q is not a VPC id (vpc-…)", c.VpcID)
	case c.InstanceProfileARN != "" && (len(c.InstanceProfileARN) > 2048 || !profileARNRE.MatchString(c.InstanceProfileARN)):
		return apierr.Invalid("cloud.instanceProfileArn", "instanceProfileArn must be an instance profile ARN (arn:aws:iam::<account>:instance-profile/<name>)")
	case c.EbsBootSize < 0 || c.EbsBootSize > MaxBootDiskGiB:
		return apierr.Invalid("cloud.ebsBootSize", "ebsBootSize must be between 1 and %d GiB", MaxBootDiskGiB)
	case c.MaxRunHours < 0 || c.MaxRunHours > MaxMaxRunHours:
		return apierr.Invalid("cloud.maxRunHours", "maxRunHours must be between 1 and %d", MaxMaxRunHours)
	}
	for field, n := range map[string]int{"cloud.subnetIds": len(c.SubnetIDs), "cloud.securityGroups": len(c.SecurityGroups), "cloud.allowBuckets": len(c.AllowBuckets)} {
		if err := computeenv.CheckList(field, n); err != nil {
			return err
		}
	}
	if err := checkIDs("cloud.subnetIds", c.SubnetIDs, subnetIDRE, "subnet id (subnet-…)"); err != nil {
		return err
	}
	if err := checkIDs("cloud.securityGroups", c.SecurityGroups, sgIDRE, "security group id (sg-…)"); err != nil {
		return err
	}
	for i, b := range c.AllowBuckets {
		if _, _, err := computeenv.ParseS3URI(fmt.Sprintf("cloud.allowBuckets[%d]", i), b); err != nil {
			return err
		}
	}
	return nil
}

func checkIDs(field string, ids []string, re *regexp.Regexp, what string) error {
	seen := map[string]bool{}
	for i, id := range ids {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !re.MatchString(id) {
			return apierr.Invalid(f, "%q is not a %s", id, what)
		}
		if seen[id] {
			return apierr.Invalid(f, "%q is given twice", id)
		}
		seen[id] = true
	}
	return nil
}

// Prepare validates the options against the account with read-only calls
// and fills the defaults, so that a launch needs nothing but RunInstances.
func (p *Platform) Prepare(ctx context.Context, ce *computeenv.ComputeEnv) ([]string, error) {
	if ce.Cloud == nil {
		ce.Cloud = &computeenv.CloudOptions{}
	}
	if err := p.checkShape(ce); err != nil {
		return nil, err
	}
	c := ce.Cloud
	if c.EbsBootSize == 0 {
		c.EbsBootSize = DefaultBootDiskGiB
	}
	if c.MaxRunHours == 0 {
		c.MaxRunHours = DefaultMaxRunHours
	}
	if c.InstanceType == "" {
		switch {
		case c.GpuEnabled:
			c.InstanceType = DefaultInstanceGPU
		case c.Arm64Enabled:
			c.InstanceType = DefaultInstanceArm
		default:
			c.InstanceType = DefaultInstanceX86
		}
	}
	cl := p.ClientsFor(ce)
	var warnings []string

	if err := p.checkInstanceType(ctx, cl.EC2, c); err != nil {
		return nil, err
	}
	rootDevice, err := p.resolveImage(ctx, cl, c)
	if err != nil {
		return nil, err
	}
	setResource(ce, computeenv.Resource{Type: ResImage, ID: c.ImageID, Name: rootDevice, State: StateUsed})
	if err := p.resolveNetwork(ctx, cl.EC2, c); err != nil {
		return nil, err
	}
	if len(c.SecurityGroups) == 0 {
		warnings = append(warnings, "no security groups given: instances get the VPC's default security group")
	}
	if c.EC2KeyPair != "" {
		if _, err := cl.EC2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{c.EC2KeyPair}}); err != nil {
			return nil, accountErr(err, "cloud.ec2KeyPair", "key_pair_not_found", "key pair %q does not exist in %s", c.EC2KeyPair, ce.Region)
		}
	}
	if c.InstanceProfileARN != "" {
		name := profileARNRE.FindStringSubmatch(c.InstanceProfileARN)[1]
		out, err := cl.Profiles.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
		if err != nil {
			return nil, accountErr(err, "cloud.instanceProfileArn", "instance_profile_not_found", "instance profile %q does not exist", name)
		}
		if len(out.InstanceProfile.Roles) == 0 {
			return nil, apierr.Unprocessable("instance_profile_without_role", "cloud.instanceProfileArn", "instance profile %q has no role", name)
		}
		// Launching passes the profile's role to EC2, and the control
		// plane's roles may pass only roles named with the prefix
		// (iam:PassRole): anything else would fail at the first launch.
		// Through credentials.roleArn, that role's own policy decides.
		role := aws.ToString(out.InstanceProfile.Roles[0].RoleName)
		if (ce.Credentials == nil || ce.Credentials.RoleARN == "") && !strings.HasPrefix(role, p.prefix()) {
			return nil, apierr.Unprocessable("role_not_passable", "cloud.instanceProfileArn",
				"the role %q of instance profile %q is not named %s*: ceforge may pass only roles named with its prefix to EC2", role, name, p.prefix())
		}
		setResource(ce, computeenv.Resource{Type: ResProfile, Name: name, ARN: c.InstanceProfileARN, State: StateUsed})
		warnings = append(warnings, "a custom instance profile is used as is: keep its role's permissions up to date")
	}
	if err := p.checkBucket(ctx, cl.S3, ce); err != nil {
		return nil, err
	}
	return warnings, nil
}

func (p *Platform) checkInstanceType(ctx context.Context, api EC2API, c *computeenv.CloudOptions) error {
	out, err := api.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{ec2types.InstanceType(c.InstanceType)}})
	if err != nil {
		return accountErr(err, "cloud.instanceType", "instance_type_not_found", "instance type %q does not exist in this region", c.InstanceType)
	}
	if len(out.InstanceTypes) == 0 {
		return apierr.Unprocessable("instance_type_not_found", "cloud.instanceType", "instance type %q does not exist in this region", c.InstanceType)
	}
	it := out.InstanceTypes[0]
	want := arch(c)
	if it.ProcessorInfo == nil || !slices.Contains(it.ProcessorInfo.SupportedArchitectures, want) {
		return apierr.Unprocessable("architecture_mismatch", "cloud.instanceType", "instance type %q does not support %s (arm64Enabled=%t)", c.InstanceType, want, c.Arm64Enabled)
	}
	if c.GpuEnabled && (it.GpuInfo == nil || len(it.GpuInfo.Gpus) == 0) {
		return apierr.Unprocessable("no_gpu", "cloud.instanceType", "instance type %q has no GPU but gpuEnabled is set", c.InstanceType)
	}
	return nil
}

func arch(c *computeenv.CloudOptions) ec2types.ArchitectureType {
	if c.Arm64Enabled {
		return ec2types.ArchitectureTypeArm64
	}
	return ec2types.ArchitectureTypeX8664
}

// resolveImage picks the ECS-optimized AL2023 AMI when none is given, checks
// the AMI's architecture and that the boot disk holds its root volume, and
// returns the root device name (the boot volume's mapping must use it).
func (p *Platform) resolveImage(ctx context.Context, cl Clients, c *computeenv.CloudOptions) (string, error) {
	if c.ImageID == "" {
		param := ssmAMIx86
		switch {
		case c.GpuEnabled:
			param = ssmAMIGPU
		case c.Arm64Enabled:
			param = ssmAMIArm64
		}
		if cl.SSM == nil {
			return "", errors.New("resolve default AMI: this function has no SSM reader (wiring)")
		}
		image, err := cl.SSM.Parameter(ctx, param)
		if err != nil {
			return "", accountErr(err, "cloud.imageId", "image_not_found", "no ECS-optimized Amazon Linux 2023 AMI is published here (%s); give cloud.imageId", param)
		}
		c.ImageID = image
	}
	out, err := cl.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{c.ImageID}})
	if err != nil {
		return "", accountErr(err, "cloud.imageId", "image_not_found", "AMI %q does not exist or is not shared with this account", c.ImageID)
	}
	if len(out.Images) == 0 {
		return "", apierr.Unprocessable("image_not_found", "cloud.imageId", "AMI %q does not exist or is not shared with this account", c.ImageID)
	}
	img := out.Images[0]
	if string(img.Architecture) != string(arch(c)) {
		return "", apierr.Unprocessable("architecture_mismatch", "cloud.imageId", "AMI %q is %s but the instance type needs %s", c.ImageID, img.Architecture, arch(c))
	}
	root := aws.ToString(img.RootDeviceName)
	if root == "" {
		root = defaultRootDevice
	}
	for _, m := range img.BlockDeviceMappings {
		if aws.ToString(m.DeviceName) == root && m.Ebs != nil && m.Ebs.VolumeSize != nil && int(*m.Ebs.VolumeSize) > c.EbsBootSize {
			return "", apierr.Unprocessable("boot_disk_too_small", "cloud.ebsBootSize", "ebsBootSize %d GiB is smaller than the AMI's %d GiB root volume", c.EbsBootSize, *m.Ebs.VolumeSize)
		}
	}
	return root, nil
}

// resolveNetwork checks the VPC, subnets and security groups, defaulting to
// the default VPC and all its subnets.
func (p *Platform) resolveNetwork(ctx context.Context, api EC2API, c *computeenv.CloudOptions) error {
	switch {
	case len(c.SubnetIDs) > 0:
		out, err := api.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("subnet-id"), Values: c.SubnetIDs}}})
		if err != nil {
			return accountErr(err, "cloud.subnetIds", "subnet_not_found", "subnets could not be described")
		}
		vpcOf := map[string]string{}
		for _, s := range out.Subnets {
			vpcOf[aws.ToString(s.SubnetId)] = aws.ToString(s.VpcId)
		}
		for i, id := range c.SubnetIDs {
			field := fmt.Sprintf("cloud.subnetIds[%d]", i)
			vpc, ok := vpcOf[id]
			if !ok {
				return apierr.Unprocessable("subnet_not_found", field, "subnet %q does not exist", id)
			}
			if c.VpcID == "" {
				c.VpcID = vpc
			}
			if vpc != c.VpcID {
				return apierr.Unprocessable("subnet_vpc_mismatch", field, "subnet %q is in %s, not in VPC %s", id, vpc, c.VpcID)
			}
		}
	default:
		filter := ec2types.Filter{Name: aws.String("is-default"), Values: []string{"true"}}
		field := "cloud.vpcId"
		if c.VpcID != "" {
			filter = ec2types.Filter{Name: aws.String("vpc-id"), Values: []string{c.VpcID}}
		}
		vpcs, err := api.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{filter}})
		if err != nil {
			return accountErr(err, field, "vpc_not_found", "VPC could not be described")
		}
		if len(vpcs.Vpcs) == 0 {
			if c.VpcID != "" {
				return apierr.Unprocessable("vpc_not_found", field, "VPC %q does not exist", c.VpcID)
			}
			return apierr.Unprocessable("no_default_vpc", field, "the region has no default VPC: give cloud.vpcId or cloud.subnetIds")
		}
		c.VpcID = aws.ToString(vpcs.Vpcs[0].VpcId)
		out, err := api.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{c.VpcID}}}})
		if err != nil {
			return accountErr(err, field, "subnet_not_found", "subnets of VPC %s could not be described", c.VpcID)
		}
		for _, s := range out.Subnets {
			c.SubnetIDs = append(c.SubnetIDs, aws.ToString(s.SubnetId))
		}
		if len(c.SubnetIDs) == 0 {
			return apierr.Unprocessable("no_subnets", field, "VPC %s has no subnets", c.VpcID)
		}
		slices.Sort(c.SubnetIDs)
	}
	if len(c.SecurityGroups) == 0 {
		return nil
	}
	out, err := api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{{Name: aws.String("group-id"), Values: c.SecurityGroups}}})
	if err != nil {
		return accountErr(err, "cloud.securityGroups", "security_group_not_found", "security groups could not be described")
	}
	vpcOf := map[string]string{}
	for _, g := range out.SecurityGroups {
		vpcOf[aws.ToString(g.GroupId)] = aws.ToString(g.VpcId)
	}
	for i, id := range c.SecurityGroups {
		field := fmt.Sprintf("cloud.securityGroups[%d]", i)
		vpc, ok := vpcOf[id]
		if !ok {
			return apierr.Unprocessable("security_group_not_found", field, "security group %q does not exist", id)
		}
		if vpc != c.VpcID {
			return apierr.Unprocessable("security_group_vpc_mismatch", field, "security group %q is in %s, not in VPC %s", id, vpc, c.VpcID)
		}
	}
	return nil
}

// checkBucket checks the work-dir bucket exists and is in the CE's region
// (the instance writes to it; a cross-region work dir is slow and costly).
func (p *Platform) checkBucket(ctx context.Context, api S3API, ce *computeenv.ComputeEnv) error {
	bucket, _, err := computeenv.ParseS3URI("workDir", ce.WorkDir)
	if err != nil {
		return err
	}
	out, err := api.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(bucket)})
	if err != nil {
		return accountErr(err, "workDir", "bucket_not_found", "bucket %q does not exist", bucket)
	}
	region := computeenv.BucketRegion(string(out.LocationConstraint))
	if region != ce.Region {
		return apierr.Unprocessable("bucket_region_mismatch", "workDir", "bucket %q is in %s, not in the compute environment's region %s", bucket, region, ce.Region)
	}
	return nil
}
