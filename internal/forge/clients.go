package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

// IAMAPI is the part of IAM forge calls.
type IAMAPI interface {
	CreateRole(context.Context, *iam.CreateRoleInput, ...func(*iam.Options)) (*iam.CreateRoleOutput, error)
	GetRole(context.Context, *iam.GetRoleInput, ...func(*iam.Options)) (*iam.GetRoleOutput, error)
	AttachRolePolicy(context.Context, *iam.AttachRolePolicyInput, ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error)
	PutRolePolicy(context.Context, *iam.PutRolePolicyInput, ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error)
	CreateInstanceProfile(context.Context, *iam.CreateInstanceProfileInput, ...func(*iam.Options)) (*iam.CreateInstanceProfileOutput, error)
	GetInstanceProfile(context.Context, *iam.GetInstanceProfileInput, ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
	AddRoleToInstanceProfile(context.Context, *iam.AddRoleToInstanceProfileInput, ...func(*iam.Options)) (*iam.AddRoleToInstanceProfileOutput, error)
	RemoveRoleFromInstanceProfile(context.Context, *iam.RemoveRoleFromInstanceProfileInput, ...func(*iam.Options)) (*iam.RemoveRoleFromInstanceProfileOutput, error)
	DeleteInstanceProfile(context.Context, *iam.DeleteInstanceProfileInput, ...func(*iam.Options)) (*iam.DeleteInstanceProfileOutput, error)
	ListAttachedRolePolicies(context.Context, *iam.ListAttachedRolePoliciesInput, ...func(*iam.Options)) (*iam.ListAttachedRolePoliciesOutput, error)
	DetachRolePolicy(context.Context, *iam.DetachRolePolicyInput, ...func(*iam.Options)) (*iam.DetachRolePolicyOutput, error)
	ListRolePolicies(context.Context, *iam.ListRolePoliciesInput, ...func(*iam.Options)) (*iam.ListRolePoliciesOutput, error)
	DeleteRolePolicy(context.Context, *iam.DeleteRolePolicyInput, ...func(*iam.Options)) (*iam.DeleteRolePolicyOutput, error)
	DeleteRole(context.Context, *iam.DeleteRoleInput, ...func(*iam.Options)) (*iam.DeleteRoleOutput, error)
}

// EC2API is the part of EC2 forge calls.
type EC2API interface {
	CreateLaunchTemplate(context.Context, *ec2.CreateLaunchTemplateInput, ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error)
	DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DeleteLaunchTemplate(context.Context, *ec2.DeleteLaunchTemplateInput, ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error)
}

// BatchAPI is the part of AWS Batch forge calls.
type BatchAPI interface {
	CreateComputeEnvironment(context.Context, *batch.CreateComputeEnvironmentInput, ...func(*batch.Options)) (*batch.CreateComputeEnvironmentOutput, error)
	DescribeComputeEnvironments(context.Context, *batch.DescribeComputeEnvironmentsInput, ...func(*batch.Options)) (*batch.DescribeComputeEnvironmentsOutput, error)
	UpdateComputeEnvironment(context.Context, *batch.UpdateComputeEnvironmentInput, ...func(*batch.Options)) (*batch.UpdateComputeEnvironmentOutput, error)
	DeleteComputeEnvironment(context.Context, *batch.DeleteComputeEnvironmentInput, ...func(*batch.Options)) (*batch.DeleteComputeEnvironmentOutput, error)
	CreateJobQueue(context.Context, *batch.CreateJobQueueInput, ...func(*batch.Options)) (*batch.CreateJobQueueOutput, error)
	DescribeJobQueues(context.Context, *batch.DescribeJobQueuesInput, ...func(*batch.Options)) (*batch.DescribeJobQueuesOutput, error)
	UpdateJobQueue(context.Context, *batch.UpdateJobQueueInput, ...func(*batch.Options)) (*batch.UpdateJobQueueOutput, error)
	DeleteJobQueue(context.Context, *batch.DeleteJobQueueInput, ...func(*batch.Options)) (*batch.DeleteJobQueueOutput, error)
	RegisterJobDefinition(context.Context, *batch.RegisterJobDefinitionInput, ...func(*batch.Options)) (*batch.RegisterJobDefinitionOutput, error)
	DescribeJobDefinitions(context.Context, *batch.DescribeJobDefinitionsInput, ...func(*batch.Options)) (*batch.DescribeJobDefinitionsOutput, error)
	DeregisterJobDefinition(context.Context, *batch.DeregisterJobDefinitionInput, ...func(*batch.Options)) (*batch.DeregisterJobDefinitionOutput, error)
}

// LogsAPI is the part of CloudWatch Logs forge calls.
type LogsAPI interface {
	CreateLogGroup(context.Context, *cloudwatchlogs.CreateLogGroupInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error)
	DeleteLogGroup(context.Context, *cloudwatchlogs.DeleteLogGroupInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DeleteLogGroupOutput, error)
}

// SSMAPI reads the public AMI parameters.
type SSMAPI interface {
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// EFSAPI is the part of EFS forge calls.
type EFSAPI interface {
	CreateFileSystem(context.Context, *efs.CreateFileSystemInput, ...func(*efs.Options)) (*efs.CreateFileSystemOutput, error)
	DescribeFileSystems(context.Context, *efs.DescribeFileSystemsInput, ...func(*efs.Options)) (*efs.DescribeFileSystemsOutput, error)
	DeleteFileSystem(context.Context, *efs.DeleteFileSystemInput, ...func(*efs.Options)) (*efs.DeleteFileSystemOutput, error)
	CreateMountTarget(context.Context, *efs.CreateMountTargetInput, ...func(*efs.Options)) (*efs.CreateMountTargetOutput, error)
	DescribeMountTargets(context.Context, *efs.DescribeMountTargetsInput, ...func(*efs.Options)) (*efs.DescribeMountTargetsOutput, error)
	DeleteMountTarget(context.Context, *efs.DeleteMountTargetInput, ...func(*efs.Options)) (*efs.DeleteMountTargetOutput, error)
}

// FSxAPI is the part of FSx forge calls.
type FSxAPI interface {
	CreateFileSystem(context.Context, *fsx.CreateFileSystemInput, ...func(*fsx.Options)) (*fsx.CreateFileSystemOutput, error)
	DescribeFileSystems(context.Context, *fsx.DescribeFileSystemsInput, ...func(*fsx.Options)) (*fsx.DescribeFileSystemsOutput, error)
	DeleteFileSystem(context.Context, *fsx.DeleteFileSystemInput, ...func(*fsx.Options)) (*fsx.DeleteFileSystemOutput, error)
}

// Forger applies and tears down designs with one set of clients (one
// account and region).
type Forger struct {
	IAM   IAMAPI
	EC2   EC2API
	Batch BatchAPI
	Logs  LogsAPI
	SSM   SSMAPI
	EFS   EFSAPI
	FSx   FSxAPI
}

// New returns a Forger whose clients use cfg (the CE's region and role).
func New(cfg aws.Config) *Forger {
	return &Forger{
		IAM: iam.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg), Batch: batch.NewFromConfig(cfg),
		Logs: cloudwatchlogs.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), EFS: efs.NewFromConfig(cfg), FSx: fsx.NewFromConfig(cfg),
	}
}

// StepError is an AWS refusal that retrying will not fix (validation,
// access denied, limits): the CE goes ERRORED with it as the reason.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + Reason(e.Err) }

func (e *StepError) Unwrap() error { return e.Err }

// Reason renders an AWS error as a stable, searchable "Code: message".
func Reason(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return err.Error()
}

// Code returns the AWS error code of err ("" if none).
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

var transientCodes = map[string]bool{
	"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true, "TooManyRequestsException": true,
	"ServiceUnavailable": true, "InternalFailure": true, "InternalError": true, "ServerException": true,
	"RequestTimeout": true, "RequestTimeoutException": true, "ConcurrentModification": true, "OperationAborted": true,
}

// Transient reports whether err is worth retrying later (throttling, 5xx,
// network) rather than a refusal.
func Transient(err error) bool {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= http.StatusInternalServerError {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return true // network, context, signing: not an answer from AWS
	}
	return transientCodes[ae.ErrorCode()]
}

// wrap classifies a failed call of a step.
func wrap(step string, err error) error {
	if err == nil {
		return nil
	}
	if Transient(err) {
		return fmt.Errorf("%s: %w", step, err)
	}
	return &StepError{Step: step, Err: err}
}
