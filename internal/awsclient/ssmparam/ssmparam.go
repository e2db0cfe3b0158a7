// Package ssmparam reads SSM parameters (the public ECS-optimized AMI ids)
// with one GetParameter call sent by awsclient/signed: the SDK's SSM client
// package costs about 1.2 MB of binary and a few milliseconds of every cold
// start (its schemas), which the api function's 12 MB budget cannot hold.
package ssmparam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/awsclient/signed"
)

// Reader reads parameters with one configuration.
type Reader struct{ client *signed.Client }

// New returns a Reader acting with cfg.
func New(cfg aws.Config) awsclient.ParameterReader { return &Reader{client: signed.New(cfg)} }

// Parameter returns a parameter's value. AWS errors (ParameterNotFound,
// AccessDenied…) stay reachable as smithy.APIError for the caller to classify.
func (r *Reader) Parameter(ctx context.Context, name string) (string, error) {
	body, err := json.Marshal(map[string]string{"Name": name})
	if err != nil {
		return "", err
	}
	var out struct {
		Parameter *struct{ Value *string }
	}
	if err := r.client.Call(ctx, signed.Request{Service: "ssm", Target: "AmazonSSM.GetParameter", Body: body}, &out); err != nil {
		return "", fmt.Errorf("read parameter %s: %w", name, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", errors.New("read parameter " + name + ": no value")
	}
	return *out.Parameter.Value, nil
}
