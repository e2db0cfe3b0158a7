// Package membertest sets up a member account in the emulator as the
// member stack would: the role ceforge assumes (trusting the control
// plane's function roles with an External ID), a managed policy per
// permission group granting the actions verification checks (the infra
// tests hold those actions to the CDK app's group policies), and the
// inline policy that lets the role read its own policies.
package membertest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/ceforge/ceforge/internal/emulator"
	"github.com/ceforge/ceforge/internal/member"
	"github.com/ceforge/ceforge/internal/testenv"
)

// Account is the member account tests use.
const Account = "222233334444"

// ControlPlaneCaller is the principal the trust proxy sees for the control
// plane's calls: the API function's role.
func ControlPlaneCaller(prefix string) string {
	return "arn:aws:iam::" + testenv.Account + ":role/" + member.FunctionRoleName(prefix, "api")
}

// Seed creates the member role in account with a trust policy naming
// externalID, and every permission group but those in without. It returns
// the role's ARN.
func Seed(t testing.TB, endpoint, account, prefix, externalID string, without ...string) string {
	t.Helper()
	ctx := context.Background()
	c := iam.NewFromConfig(testenv.InAccount(endpoint, account))
	trust, err := json.Marshal(member.TrustPolicy("aws", testenv.Account, prefix, externalID))
	if err != nil {
		t.Fatal(err)
	}
	// As testenv does for the control plane's account (moto would name a
	// created Batch service-linked role differently from AWS).
	if err := emulator.SeedAccount(ctx, c); err != nil {
		t.Fatal(err)
	}
	role := member.RoleName(prefix)
	out, err := c.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(role), AssumeRolePolicyDocument: aws.String(string(trust))})
	if err != nil {
		t.Fatalf("create member role: %v", err)
	}
	for _, g := range member.Groups {
		if slices.Contains(without, g.Name) {
			continue
		}
		doc := policy(g.Actions, "*")
		p, err := c.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String(prefix + "member-" + g.Name), PolicyDocument: aws.String(doc)})
		if err != nil {
			t.Fatalf("create %s policy: %v", g.Name, err)
		}
		if _, err := c.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(role), PolicyArn: p.Policy.Arn}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("read-own-policies"),
		PolicyDocument: aws.String(policy(member.SelfReadActions, "*"))}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Role.Arn)
}

func policy(actions []string, resource string) string {
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{
		map[string]any{"Effect": "Allow", "Action": actions, "Resource": resource},
	}})
	return string(b)
}
