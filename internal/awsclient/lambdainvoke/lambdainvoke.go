// Package lambdainvoke starts another ceforge function asynchronously (an
// Event invoke): the API hands sweeps to the sweeper and CE provisioning to
// the reconciler this way. It is its own package so that only the API
// function links the Lambda client (its package init weighs ~0.5 MB).
package lambdainvoke

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// Invoker invokes one function.
type Invoker struct {
	client   *lambda.Client
	function string
}

// New returns an Invoker of function (name or ARN) acting with cfg.
func New(cfg aws.Config, function string) *Invoker {
	return &Invoker{client: lambda.NewFromConfig(cfg), function: function}
}

// Invoke queues one asynchronous invocation with payload; Lambda retries
// failed ones itself.
func (i *Invoker) Invoke(ctx context.Context, payload []byte) error {
	_, err := i.client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(i.function),
		InvocationType: types.InvocationTypeEvent, Payload: payload})
	if err != nil {
		return fmt.Errorf("invoke %s: %w", i.function, err)
	}
	return nil
}

// Func returns Invoke of a new Invoker: the shape app's features take.
func Func(cfg aws.Config, function string) func(context.Context, []byte) error {
	return New(cfg, function).Invoke
}
