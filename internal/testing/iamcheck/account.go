package iamcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// RoleFromAccount reads a role's policies as the account holds them: its
// inline policies, the default versions of its attached managed policies
// (the emulator keeps AWS's managed policy documents) and its permissions
// boundary. A boundary the account does not hold (a stack's policy the
// test never deployed) is taken from boundaries by ARN.
func RoleFromAccount(ctx context.Context, api *iam.Client, name string, boundaries map[string]Policy) (Role, error) {
	got, err := api.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	if err != nil {
		return Role{}, fmt.Errorf("role %s: %w", name, err)
	}
	role := Role{ARN: aws.ToString(got.Role.Arn)}
	inline, err := api.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(name)})
	if err != nil {
		return Role{}, fmt.Errorf("inline policies of %s: %w", name, err)
	}
	for _, p := range inline.PolicyNames {
		out, err := api.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(p)})
		if err != nil {
			return Role{}, fmt.Errorf("inline policy %s of %s: %w", p, name, err)
		}
		doc, err := document(aws.ToString(out.PolicyDocument))
		if err != nil {
			return Role{}, fmt.Errorf("inline policy %s of %s: %w", p, name, err)
		}
		role.Policies = append(role.Policies, Policy{Name: p, Document: doc})
	}
	attached, err := api.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
	if err != nil {
		return Role{}, fmt.Errorf("attached policies of %s: %w", name, err)
	}
	for _, p := range attached.AttachedPolicies {
		pol, err := managed(ctx, api, aws.ToString(p.PolicyArn))
		if err != nil {
			return Role{}, fmt.Errorf("attached policy of %s: %w", name, err)
		}
		role.Policies = append(role.Policies, pol)
	}
	if b := got.Role.PermissionsBoundary; b != nil && aws.ToString(b.PermissionsBoundaryArn) != "" {
		arn := aws.ToString(b.PermissionsBoundaryArn)
		pol, err := managed(ctx, api, arn)
		if err != nil {
			known, ok := boundaries[arn]
			if !ok {
				return Role{}, fmt.Errorf("permissions boundary of %s: %w", name, err)
			}
			pol = known
		}
		role.Boundaries = append(role.Boundaries, pol)
	}
	return role, nil
}

// managed reads the default version of a managed policy.
func managed(ctx context.Context, api *iam.Client, arn string) (Policy, error) {
	p, err := api.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
	if err != nil {
		return Policy{}, fmt.Errorf("policy %s: %w", arn, err)
	}
	v, err := api.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: p.Policy.DefaultVersionId})
	if err != nil {
		return Policy{}, fmt.Errorf("policy %s: %w", arn, err)
	}
	doc, err := document(aws.ToString(v.PolicyVersion.Document))
	if err != nil {
		return Policy{}, fmt.Errorf("policy %s: %w", arn, err)
	}
	return Policy{Name: aws.ToString(p.Policy.PolicyName), Document: doc}, nil
}

// document decodes a policy document as IAM returns it (URL-encoded JSON).
func document(s string) (any, error) {
	if u, err := url.QueryUnescape(s); err == nil {
		s = u
	}
	var doc any
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// Evaluate evaluates requests against role (one call's requests, or any
// set of requests a test expects a role to allow or deny).
func Evaluate(role Role, reqs []Request) ([]Verdict, error) {
	s, err := Shared()
	if err != nil {
		return nil, err
	}
	for i := range reqs {
		if reqs[i].Context == nil {
			reqs[i].Context = map[string]any{}
		}
	}
	v, _, err := s.Check(role, reqs, nil)
	return v, err
}
