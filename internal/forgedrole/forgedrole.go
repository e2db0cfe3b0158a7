// Package forgedrole holds the rules every IAM role ceforge forges obeys,
// on both platforms: it is trusted only by the compute services that run
// Nextflow (EC2, Batch, ECS tasks), it carries the deployment's permissions
// boundary (the managed policy <prefix>boundary, the most a forged role may
// ever do), and it gets no AWS managed policy but the few ceforge attaches.
// The CDK app builds the reconciler's IAM conditions from the same lists,
// so what the code asks for and what IAM allows cannot drift apart.
package forgedrole

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// Service principals a forged role may trust.
const (
	PrincipalEC2      = "ec2.amazonaws.com"
	PrincipalBatch    = "batch.amazonaws.com"
	PrincipalECSTasks = "ecs-tasks.amazonaws.com"
)

// Principals are the only services a forged role's trust policy may name.
var Principals = []string{PrincipalEC2, PrincipalBatch, PrincipalECSTasks}

// BatchServiceLinkedRole is the role AWS Batch manages compute resources
// with (path /aws-service-role/batch.amazonaws.com/). Forged compute
// environments name it as their service role rather than a forged role
// carrying AWSBatchServiceRole, whose EC2, Auto Scaling and ECS powers
// would have to fit under the boundary.
const BatchServiceLinkedRole = "AWSServiceRoleForBatch"

// AWS managed policies ceforge attaches to forged roles, as paths under
// arn:<partition>:iam::aws:policy/.
const (
	PolicyECSForEC2        = "service-role/AmazonEC2ContainerServiceforEC2Role"
	PolicySSMCore          = "AmazonSSMManagedInstanceCore"
	PolicyECSTaskExecution = "service-role/AmazonECSTaskExecutionRolePolicy"
	PolicyCloudWatchAgent  = "CloudWatchAgentServerPolicy"
	PolicyS3ReadOnly       = "AmazonS3ReadOnlyAccess"
	PolicyECRPullOnly      = "AmazonEC2ContainerRegistryPullOnly"
)

// AttachablePolicies are every AWS managed policy a forged role may get
// (the reconciler's iam:AttachRolePolicy is conditioned on exactly these
// ARNs). Each one's actions are within the boundary, or cut by it.
var AttachablePolicies = []string{
	PolicyECSForEC2, PolicySSMCore, PolicyECSTaskExecution,
	PolicyCloudWatchAgent, PolicyS3ReadOnly, PolicyECRPullOnly,
}

// ManagedPolicyARN is the ARN of an AWS managed policy in the aws partition.
func ManagedPolicyARN(path string) string { return "arn:aws:iam::aws:policy/" + path }

// Attachable reports whether arn is one of AttachablePolicies (in any partition).
func Attachable(arn string) bool {
	rest, ok := strings.CutPrefix(arn, "arn:")
	if !ok {
		return false
	}
	_, path, ok := strings.Cut(rest, ":iam::aws:policy/")
	return ok && slices.Contains(AttachablePolicies, path)
}

// TrustPolicy returns the assume-role policy that lets service assume a
// role, and refuses any service but Principals: a forged role is never
// assumable by a person, an account or another function.
func TrustPolicy(service string) (string, error) {
	if !slices.Contains(Principals, service) {
		return "", fmt.Errorf("forged roles trust only %s, not %q", strings.Join(Principals, ", "), service)
	}
	b, err := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect": "Allow", "Principal": map[string]any{"Service": service}, "Action": "sts:AssumeRole",
		}},
	})
	return string(b), err
}

// BoundaryName is the name of the permissions boundary policy of a
// deployment with prefix: the CDK app creates it in the control plane's
// account, and every account a compute environment forges roles in must
// hold a policy of that name.
func BoundaryName(prefix string) string { return prefix + "boundary" }

// BoundaryIn returns boundary (the control plane's boundary ARN) moved to
// the account of roleARN, the role a compute environment acts through in
// another account; boundary itself when roleARN is empty or malformed.
func BoundaryIn(boundary, roleARN string) string {
	acct := account(roleARN)
	if acct == "" {
		return boundary
	}
	parts := strings.SplitN(boundary, ":", 6)
	if len(parts) != 6 {
		return boundary
	}
	parts[4] = acct
	return strings.Join(parts, ":")
}

func account(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || len(parts[4]) != 12 {
		return ""
	}
	return parts[4]
}

// BoundaryAPI is the part of IAM Ensure calls.
type BoundaryAPI interface {
	GetRole(context.Context, *iam.GetRoleInput, ...func(*iam.Options)) (*iam.GetRoleOutput, error)
	PutRolePermissionsBoundary(context.Context, *iam.PutRolePermissionsBoundaryInput, ...func(*iam.Options)) (*iam.PutRolePermissionsBoundaryOutput, error)
}

// Ensure puts role under boundary unless it is already; it reports whether
// it changed the role. Idempotent: a role under boundary costs one GetRole.
func Ensure(ctx context.Context, api BoundaryAPI, role, boundary string) (bool, error) {
	if boundary == "" {
		return false, fmt.Errorf("bound role %s: no permissions boundary configured", role)
	}
	got, err := api.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(role)})
	if err != nil {
		return false, fmt.Errorf("read role %s: %w", role, err)
	}
	if pb := got.Role.PermissionsBoundary; pb != nil && aws.ToString(pb.PermissionsBoundaryArn) == boundary {
		return false, nil
	}
	if _, err := api.PutRolePermissionsBoundary(ctx, &iam.PutRolePermissionsBoundaryInput{
		RoleName: aws.String(role), PermissionsBoundary: aws.String(boundary),
	}); err != nil {
		return false, fmt.Errorf("put permissions boundary on role %s: %w", role, err)
	}
	return true, nil
}
