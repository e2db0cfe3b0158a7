package emulator

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"
)

// RoleCreator is the part of IAM SeedAccount calls.
type RoleCreator interface {
	CreateRole(context.Context, *iam.CreateRoleInput, ...func(*iam.Options)) (*iam.CreateRoleOutput, error)
}

// SeedAccount gives the emulator's account what an AWS account that has
// used AWS Batch has: the Batch service-linked role under its real name.
// moto's CreateServiceLinkedRole names it AWSServiceRoleForbatch, so a
// second lookup by AWS's name would miss it. Idempotent.
func SeedAccount(ctx context.Context, c RoleCreator) error {
	_, err := c.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName: aws.String("AWSServiceRoleForBatch"), Path: aws.String("/aws-service-role/batch.amazonaws.com/"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
	})
	var ae smithy.APIError
	if err != nil && !(errors.As(err, &ae) && ae.ErrorCode() == "EntityAlreadyExists") {
		return fmt.Errorf("seed the Batch service-linked role: %w", err)
	}
	return nil
}
