// Package cloudce is the AWS Cloud platform: a compute environment is one
// IAM role and instance profile; each run (pipeline or studio) is a single
// EC2 head instance that runs Nextflow or the Studio container and
// terminates itself when done.
//
// Everything a launch needs (AMI, subnets, instance profile, root device) is
// resolved when the CE is created and stored on its record, so a launch is
// exactly one EC2 call (RunInstances).
package cloudce

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/awsclient/profileread"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/run"
)

// SupportedRegions are the regions the AWS Cloud platform runs in (the
// reference's list). Configuration may narrow it further.
var SupportedRegions = []string{
	"eu-west-1", "us-east-1", "us-west-2", "eu-west-2", "us-east-2",
	"eu-central-1", "us-west-1", "eu-west-3", "ap-southeast-1",
}

// Defaults of the CE options.
const (
	DefaultBootDiskGiB  = 50
	DefaultMaxRunHours  = 168
	MaxMaxRunHours      = 24 * 30
	MaxBootDiskGiB      = 16384
	DefaultStudioPort   = run.DefaultStudioPort
	DefaultInstanceX86  = "m6i.xlarge"
	DefaultInstanceArm  = "m7g.xlarge"
	DefaultInstanceGPU  = "g5.xlarge"
	defaultRootDevice   = "/dev/xvda"
	adoptGrace          = 10 * time.Minute
	profileRetryBackoff = 2 * time.Second
)

// SSM parameters of the ECS-optimized Amazon Linux 2023 AMIs (Docker
// preinstalled). The parents hold JSON the SDK cannot decode; the image_id
// leaves are plain strings.
const (
	ssmAMIx86   = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
	ssmAMIArm64 = "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id"
	ssmAMIGPU   = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
)

// Resource types recorded in a CE's forgedResources.
const (
	ResRole    = "iam-role"
	ResProfile = "iam-instance-profile"
	ResImage   = "ec2-image" // resolved, not created: Name is the root device
	StateUsed  = "USED"      // exists already; never deleted by ceforge
	StateReady = "CREATED"
	StateGone  = "DELETED"
)

// Clients are the SDK clients of one region and account.
type Clients struct {
	EC2 EC2API
	// IAM creates and deletes roles; nil unless the function links the IAM
	// client (cloudce/cloudiam), as functions that provision here do.
	IAM IAMAPI
	// Profiles reads instance profiles: the IAM client, or
	// awsclient/profileread where IAM is not linked.
	Profiles ProfileReader
	S3       S3API
	// SSM reads the public AMI parameters; nil in functions that never
	// validate a CE (their cold start skips the SSM client).
	SSM awsclient.ParameterReader
}

// EC2API is the part of EC2 this package calls.
type EC2API interface {
	DescribeInstanceTypes(context.Context, *ec2.DescribeInstanceTypesInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DescribeKeyPairs(context.Context, *ec2.DescribeKeyPairsInput, ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error)
	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// IAMAPI is the part of IAM this package calls.
type IAMAPI interface {
	CreateRole(context.Context, *iam.CreateRoleInput, ...func(*iam.Options)) (*iam.CreateRoleOutput, error)
	GetRole(context.Context, *iam.GetRoleInput, ...func(*iam.Options)) (*iam.GetRoleOutput, error)
	DeleteRole(context.Context, *iam.DeleteRoleInput, ...func(*iam.Options)) (*iam.DeleteRoleOutput, error)
	AttachRolePolicy(context.Context, *iam.AttachRolePolicyInput, ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error)
	DetachRolePolicy(context.Context, *iam.DetachRolePolicyInput, ...func(*iam.Options)) (*iam.DetachRolePolicyOutput, error)
	ListAttachedRolePolicies(context.Context, *iam.ListAttachedRolePoliciesInput, ...func(*iam.Options)) (*iam.ListAttachedRolePoliciesOutput, error)
	PutRolePolicy(context.Context, *iam.PutRolePolicyInput, ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error)
	DeleteRolePolicy(context.Context, *iam.DeleteRolePolicyInput, ...func(*iam.Options)) (*iam.DeleteRolePolicyOutput, error)
	ListRolePolicies(context.Context, *iam.ListRolePoliciesInput, ...func(*iam.Options)) (*iam.ListRolePoliciesOutput, error)
	CreateInstanceProfile(context.Context, *iam.CreateInstanceProfileInput, ...func(*iam.Options)) (*iam.CreateInstanceProfileOutput, error)
	GetInstanceProfile(context.Context, *iam.GetInstanceProfileInput, ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
	DeleteInstanceProfile(context.Context, *iam.DeleteInstanceProfileInput, ...func(*iam.Options)) (*iam.DeleteInstanceProfileOutput, error)
	AddRoleToInstanceProfile(context.Context, *iam.AddRoleToInstanceProfileInput, ...func(*iam.Options)) (*iam.AddRoleToInstanceProfileOutput, error)
	RemoveRoleFromInstanceProfile(context.Context, *iam.RemoveRoleFromInstanceProfileInput, ...func(*iam.Options)) (*iam.RemoveRoleFromInstanceProfileOutput, error)
	PutRolePermissionsBoundary(context.Context, *iam.PutRolePermissionsBoundaryInput, ...func(*iam.Options)) (*iam.PutRolePermissionsBoundaryOutput, error)
}

// ProfileReader reads an instance profile (validation).
type ProfileReader interface {
	GetInstanceProfile(context.Context, *iam.GetInstanceProfileInput, ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
}

// newIAM is the IAM client constructor cloudce/cloudiam registers; nil in
// functions that never create IAM (the api).
var newIAM func(aws.Config) IAMAPI

// RegisterIAM links the IAM client constructor; cloudce/cloudiam calls it.
func RegisterIAM(f func(aws.Config) IAMAPI) { newIAM = f }

// CanProvision says whether this binary links the IAM client, which
// creating and deleting a CE's role and instance profile needs.
func CanProvision() bool { return newIAM != nil }

// S3API is the part of S3 this package calls.
type S3API interface {
	GetBucketLocation(context.Context, *s3.GetBucketLocationInput, ...func(*s3.Options)) (*s3.GetBucketLocationOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Platform implements computeenv.Provisioner, run.Launcher, run.Reconciler
// and the EC2 event sink.
type Platform struct {
	// ClientsFor returns the clients acting in a CE's account and region.
	ClientsFor func(ce *computeenv.ComputeEnv) Clients
	Runs       *run.Service
	Prefix     string
	LogGroup   string
	// AllowedRegions narrows SupportedRegions when non-empty.
	AllowedRegions []string
	Log            *slog.Logger
	Now            func() time.Time
	// ProvisionElsewhere leaves creating and deleting the CE's IAM role and
	// profile to another function (the API hands them to the reconciler,
	// so it holds no IAM write permission).
	ProvisionElsewhere bool
	// Boundary is the permissions boundary (ARN in the control plane's
	// account) the instance role is created under; see forgedrole.
	Boundary string
	// Sleep waits between launch retries (tests shorten it).
	Sleep func(time.Duration)
	// Account is the control plane's account (config.Config.Account):
	// events about runs in it must come from it ("": not checked).
	Account string
}

// Config configures New.
type Config struct {
	AWS            *awsclient.Factory
	Runs           *run.Service
	Prefix         string
	LogGroup       string
	AllowedRegions []string
	// Parameters, when set, reads SSM parameters in a CE's account and
	// region (ssmparam.New); only functions that validate CEs need it.
	Parameters func(aws.Config) awsclient.ParameterReader
	// ProvisionElsewhere: see Platform.ProvisionElsewhere.
	ProvisionElsewhere bool
	// Boundary: see Platform.Boundary.
	Boundary string
	// Account: see Platform.Account.
	Account string
	Log     *slog.Logger
}

// New returns the platform with SDK clients from the factory, acting
// through the CE's credentials (assumed role) in the CE's region. Clients
// are built once per region and role and kept across warm invocations.
func New(c Config) *Platform {
	pathStyle := c.AWS.Endpoint() != "" // the emulator has no bucket subdomains
	var mu sync.Mutex
	cache := map[[3]string]Clients{}
	return &Platform{
		ClientsFor: func(ce *computeenv.ComputeEnv) Clients {
			var creds awsclient.Credentials
			if ce.Credentials != nil {
				creds = awsclient.Credentials{RoleARN: ce.Credentials.RoleARN, ExternalID: ce.Credentials.ExternalID}
			}
			key := [3]string{ce.Region, creds.RoleARN, creds.ExternalID}
			mu.Lock()
			defer mu.Unlock()
			if cl, ok := cache[key]; ok {
				return cl
			}
			cfg := c.AWS.ForRole(ce.Region, creds)
			cl := Clients{
				EC2: ec2.NewFromConfig(cfg),
				S3: s3.NewFromConfig(cfg, func(o *s3.Options) {
					o.UsePathStyle = pathStyle
					o.DisableLogOutputChecksumValidationSkipped = true // tiny exit-status objects; no log noise
				}),
			}
			if c.Parameters != nil {
				cl.SSM = c.Parameters(cfg)
			}
			if newIAM != nil {
				cl.IAM = newIAM(cfg)
				cl.Profiles = cl.IAM
			} else {
				cl.Profiles = profileread.New(cfg)
			}
			cache[key] = cl
			return cl
		},
		Runs: c.Runs, Prefix: c.Prefix, LogGroup: c.LogGroup, AllowedRegions: c.AllowedRegions, Log: c.Log,
		ProvisionElsewhere: c.ProvisionElsewhere, Boundary: c.Boundary, Account: c.Account,
	}
}

func (p *Platform) now() time.Time {
	if p.Now != nil {
		return p.Now().UTC()
	}
	return time.Now().UTC()
}

func (p *Platform) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

func (p *Platform) sleep(d time.Duration) {
	if p.Sleep != nil {
		p.Sleep(d)
		return
	}
	time.Sleep(d)
}

func (p *Platform) prefix() string {
	if p.Prefix == "" {
		return "ceforge-"
	}
	return p.Prefix
}

func (p *Platform) logGroup() string {
	if p.LogGroup == "" {
		return "/ceforge/runs"
	}
	return p.LogGroup
}

func (p *Platform) regionAllowed(region string) bool {
	if !slices.Contains(SupportedRegions, region) {
		return false
	}
	return len(p.AllowedRegions) == 0 || slices.Contains(p.AllowedRegions, region)
}

// RoleName is the name of the instance role (and profile) of a CE.
func (p *Platform) RoleName(ceID string) string { return p.prefix() + ceID + "-instance" }

// Inline policy names.
func (p *Platform) inlinePolicyNames(ceID string) []string {
	base := p.prefix() + ceID
	return []string{base + "-s3", base + "-secrets", base + "-kms-s3"}
}

// errorCode returns the AWS error code of err ("" when not an API error).
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// resource returns the CE's resource of a type, or nil.
func resource(ce *computeenv.ComputeEnv, typ string) *computeenv.Resource { return ce.Resource(typ) }

// setResource records r, replacing the entry of the same type.
func setResource(ce *computeenv.ComputeEnv, r computeenv.Resource) {
	if cur := resource(ce, r.Type); cur != nil {
		*cur = r
		return
	}
	ce.ForgedResources = append(ce.ForgedResources, r)
}
