package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/smithy-go"
)

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

// Wrap classifies a failed call of a step: a refusal becomes a
// *StepError, anything transient stays a plain wrapped error.
func Wrap(step string, err error) error {
	if err == nil {
		return nil
	}
	if Transient(err) {
		return fmt.Errorf("%s: %w", step, err)
	}
	return &StepError{Step: step, Err: err}
}
