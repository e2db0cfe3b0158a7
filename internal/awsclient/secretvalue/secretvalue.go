// Package secretvalue reads a Secrets Manager secret's value (the log
// cursor key). It is its own package so only the functions that read a
// secret link the Secrets Manager client.
package secretvalue

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Source returns a function that reads the current string value of the
// secret id (name or ARN) with cfg.
func Source(cfg aws.Config, id string) func(context.Context) ([]byte, error) {
	client := secretsmanager.NewFromConfig(cfg)
	return func(ctx context.Context) ([]byte, error) {
		out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			return nil, fmt.Errorf("read secret %s: %w", id, err)
		}
		if out.SecretString == nil || *out.SecretString == "" {
			return nil, errors.New("read secret " + id + ": no string value")
		}
		return []byte(*out.SecretString), nil
	}
}
