// Package ssmparam reads SSM parameters (the public ECS-optimized AMI ids).
// It is its own package because the SSM client's package init (its schemas)
// costs about 1.2 MB and a few milliseconds of every cold start: only the
// functions that resolve AMIs import it and hand New to the platforms
// (awsclient.ParameterReader).
package ssmparam

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ceforge/ceforge/internal/awsclient"
)

// Reader reads parameters with one SSM client.
type Reader struct{ client *ssm.Client }

// New returns a Reader acting with cfg.
func New(cfg aws.Config) awsclient.ParameterReader { return &Reader{client: ssm.NewFromConfig(cfg)} }

// Parameter returns a parameter's value. AWS errors (ParameterNotFound,
// AccessDenied…) stay reachable through errors.As for the caller to classify.
func (r *Reader) Parameter(ctx context.Context, name string) (string, error) {
	out, err := r.client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("read parameter %s: %w", name, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", errors.New("read parameter " + name + ": no value")
	}
	return *out.Parameter.Value, nil
}
