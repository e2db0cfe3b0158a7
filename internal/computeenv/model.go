// Package computeenv is the compute-environment model: the request shape,
// the common validation rules, lifecycle states, and the Provisioner each
// platform implements to validate, plan, create and tear down its resources.
package computeenv

import (
	"strings"
	"time"
)

// Platforms.
const (
	PlatformBatch = "aws-batch"
	PlatformCloud = "aws-cloud"
)

// Configuration modes of the Batch platform.
const (
	ModeForge  = "forge"
	ModeManual = "manual"
)

// Status of a compute environment.
const (
	StatusCreating  = "CREATING"
	StatusAvailable = "AVAILABLE"
	StatusErrored   = "ERRORED"
	StatusDeleting  = "DELETING"
	StatusDeleted   = "DELETED"
	StatusInvalid   = "INVALID" // drift: something it relies on changed outside ceforge
)

// ComputeEnv is a compute environment: what the user asked for plus what
// ceforge made of it. The same shape is the API response and the stored record.
type ComputeEnv struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Platform   string `json:"platform"`
	ConfigMode string `json:"configMode,omitempty"`
	Region     string `json:"region"`
	WorkDir    string `json:"workDir"`
	// CredentialsID names the registered credentials (a member account's
	// role) the CE acts through; empty: the control plane's own account.
	CredentialsID string `json:"credentialsId,omitempty"`
	// Credentials are the role and External ID of CredentialsID, copied
	// from the registered credentials when the CE is created (never from
	// a request).
	Credentials    *Credentials      `json:"credentials,omitempty"`
	PreRunScript   string            `json:"preRunScript,omitempty"`
	PostRunScript  string            `json:"postRunScript,omitempty"`
	NextflowConfig string            `json:"nextflowConfig,omitempty"`
	Environment    []EnvVar          `json:"environment,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Batch          *BatchOptions     `json:"batch,omitempty"`
	Cloud          *CloudOptions     `json:"cloud,omitempty"`
	// TraceEnabled false: runs do not report progress to ceforge.
	TraceEnabled *bool `json:"traceEnabled,omitempty"`
	// Secrets are pipeline secrets (names) every run of the CE gets, kept
	// in the CE's account and region (internal/secret).
	Secrets []string `json:"secrets,omitempty"`
	// SeqeraTokenSecret names the pipeline secret that holds a Seqera
	// access token: the head gives it to Nextflow (TOWER_ACCESS_TOKEN) for
	// Wave and Fusion.
	SeqeraTokenSecret string `json:"seqeraTokenSecret,omitempty"`
	// RegistryCredentials log the head host into private container
	// registries with passwords kept as pipeline secrets (AWS Cloud).
	RegistryCredentials []RegistryCredential `json:"registryCredentials,omitempty"`

	Status          string     `json:"status"`
	StatusReason    string     `json:"statusReason,omitempty"`
	Warnings        []string   `json:"warnings,omitempty"`
	ForgedResources []Resource `json:"forgedResources,omitempty"`
	// Dispose records, at delete time, whether forged resources are removed.
	Dispose   bool       `json:"dispose,omitempty"`
	CreatedBy string     `json:"createdBy,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
	DeletedAt *time.Time `json:"deletedAt,omitempty"`
	Version   int64      `json:"version"`
}

// Credentials name the IAM role ceforge assumes in a member account, as
// registered credentials hold it (internal/credential). The External ID is
// ceforge's, not the caller's; it is not a secret; no secret is stored.
type Credentials struct {
	RoleARN    string `json:"roleArn"`
	ExternalID string `json:"externalId,omitempty"`
}

// RegistryCredential is a private registry login whose password (or
// token) is a pipeline secret.
type RegistryCredential struct {
	Registry       string `json:"registry"`
	Username       string `json:"username"`
	PasswordSecret string `json:"passwordSecret"`
}

// EnvVar is an environment variable for the head job, the compute jobs, or both.
type EnvVar struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	Head    bool   `json:"head"`
	Compute bool   `json:"compute"`
}

// Resource is one AWS resource ceforge created (or adopted) for a CE.
type Resource struct {
	Type  string `json:"type"` // e.g. "iam-role", "batch-compute-environment"
	Name  string `json:"name,omitempty"`
	ARN   string `json:"arn,omitempty"`
	ID    string `json:"id,omitempty"`
	State string `json:"state,omitempty"` // platform-specific progress, e.g. "CREATING", "DELETED"
	// PermissionsBoundary is the boundary policy a forged IAM role carries
	// (set when ceforge created it under one or put it there).
	PermissionsBoundary string `json:"permissionsBoundary,omitempty"`
	// Platform is where a job definition's jobs run (EC2 or FARGATE), for
	// the head job definition of a manual-mode CE: its queue decides.
	Platform string `json:"platform,omitempty"`
}

// BatchOptions are the AWS Batch platform options (forge when Forge is set,
// else manual with HeadQueue and ComputeQueue).
type BatchOptions struct {
	HeadQueue       string        `json:"headQueue,omitempty"`
	ComputeQueue    string        `json:"computeQueue,omitempty"`
	HeadJobCpus     int           `json:"headJobCpus,omitempty"`
	HeadJobMemoryMb int           `json:"headJobMemoryMb,omitempty"`
	HeadJobRole     string        `json:"headJobRole,omitempty"`
	ComputeJobRole  string        `json:"computeJobRole,omitempty"`
	ExecutionRole   string        `json:"executionRole,omitempty"`
	CliPath         string        `json:"cliPath,omitempty"`
	LogGroup        string        `json:"logGroup,omitempty"`
	WaveEnabled     bool          `json:"waveEnabled,omitempty"`
	Fusion2Enabled  bool          `json:"fusion2Enabled,omitempty"`
	FusionSnapshots bool          `json:"fusionSnapshots,omitempty"`
	Forge           *ForgeOptions `json:"forge,omitempty"`

	// WorkDirMount (manual mode) is the host path where the user's Batch
	// hosts mount a shared file system (EFS, FSx): ceforge binds it into
	// the head and task containers at the same path. Required when workDir
	// is a path on that file system rather than S3.
	WorkDirMount string `json:"workDirMount,omitempty"`
}

// ForgeOptions describe the Batch resources ceforge creates in forge mode.
type ForgeOptions struct {
	Type               string   `json:"type,omitempty"` // SPOT | EC2
	MinCpus            int      `json:"minCpus"`
	MaxCpus            int      `json:"maxCpus,omitempty"`
	InstanceTypes      []string `json:"instanceTypes,omitempty"`
	AllocStrategy      string   `json:"allocStrategy,omitempty"`
	BidPercentage      int      `json:"bidPercentage,omitempty"`
	GpuEnabled         bool     `json:"gpuEnabled,omitempty"`
	Arm64Enabled       bool     `json:"arm64Enabled,omitempty"`
	FargateHeadEnabled bool     `json:"fargateHeadEnabled,omitempty"`
	FastStorage        bool     `json:"fastStorage,omitempty"`
	ImageID            string   `json:"imageId,omitempty"`
	EC2KeyPair         string   `json:"ec2KeyPair,omitempty"`
	VpcID              string   `json:"vpcId,omitempty"`
	Subnets            []string `json:"subnets,omitempty"`
	SecurityGroups     []string `json:"securityGroups,omitempty"`
	EbsAutoScale       bool     `json:"ebsAutoScale,omitempty"`
	EbsBlockSize       int      `json:"ebsBlockSize,omitempty"`
	EbsBootSize        int      `json:"ebsBootSize,omitempty"`
	EfsCreate          bool     `json:"efsCreate,omitempty"`
	EfsID              string   `json:"efsId,omitempty"`
	EfsMount           string   `json:"efsMount,omitempty"`
	FsxName            string   `json:"fsxName,omitempty"`
	FsxSize            int      `json:"fsxSize,omitempty"`
	FsxMount           string   `json:"fsxMount,omitempty"`
	AllowBuckets       []string `json:"allowBuckets,omitempty"`
	DisposeOnDeletion  *bool    `json:"disposeOnDeletion,omitempty"`
	EcsConfig          string   `json:"ecsConfig,omitempty"`
}

// CloudOptions are the AWS Cloud platform options (one EC2 instance per run).
type CloudOptions struct {
	InstanceType       string   `json:"instanceType,omitempty"`
	Arm64Enabled       bool     `json:"arm64Enabled,omitempty"`
	GpuEnabled         bool     `json:"gpuEnabled,omitempty"`
	ImageID            string   `json:"imageId,omitempty"`
	EC2KeyPair         string   `json:"ec2KeyPair,omitempty"`
	VpcID              string   `json:"vpcId,omitempty"`
	SubnetIDs          []string `json:"subnetIds,omitempty"`
	SecurityGroups     []string `json:"securityGroups,omitempty"`
	InstanceProfileARN string   `json:"instanceProfileArn,omitempty"`
	EbsBootSize        int      `json:"ebsBootSize,omitempty"`
	AllowBuckets       []string `json:"allowBuckets,omitempty"`
	MaxRunHours        int      `json:"maxRunHours,omitempty"`
	SpotStudios        bool     `json:"spotStudios,omitempty"`
}

// AccountID is the member account the CE lives in ("" for the control
// plane's own account).
func (ce *ComputeEnv) AccountID() string {
	if ce.Credentials == nil {
		return ""
	}
	parts := strings.SplitN(ce.Credentials.RoleARN, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

// Active reports whether the CE can still run or is being built.
func (ce *ComputeEnv) Active() bool {
	return ce.Status != StatusDeleted && ce.Status != StatusDeleting
}

// Stable reports whether the CE needs no more provisioning steps.
func (ce *ComputeEnv) Stable() bool {
	return ce.Status != StatusCreating && ce.Status != StatusDeleting
}

// Resource returns the first recorded resource of a type, or nil.
func (ce *ComputeEnv) Resource(typ string) *Resource {
	for i := range ce.ForgedResources {
		if ce.ForgedResources[i].Type == typ {
			return &ce.ForgedResources[i]
		}
	}
	return nil
}

// BucketRegion turns an S3 GetBucketLocation constraint into a region name
// (S3 answers "" for us-east-1 and the legacy "EU" for eu-west-1).
func BucketRegion(constraint string) string {
	switch constraint {
	case "":
		return "us-east-1"
	case "EU":
		return "eu-west-1"
	}
	return constraint
}
