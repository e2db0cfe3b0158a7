// Package member is the contract between ceforge's control plane and a
// member account (an AWS account whose compute environments ceforge runs
// through a role there): the role the member stack creates, the trust
// policy that lets only the control plane's function roles assume it, and
// only with the External ID ceforge generated, the permission groups the
// role must hold (checked when credentials are verified), and the event
// bus that receives the account's forwarded Batch and EC2 events. The CDK
// app builds both stacks from it; the credential checks and the tests read
// the same definitions.
package member

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
)

// RoleName is the role the member stack creates in a member account.
func RoleName(prefix string) string { return prefix + "member" }

// EventsRoleName is the role EventBridge uses, in a member account, to put
// the forwarded events on the control plane's bus.
func EventsRoleName(prefix string) string { return prefix + "member-events" }

// EventBusName is the control plane's bus that receives member accounts'
// Batch and EC2 events.
func EventBusName(prefix string) string { return prefix + "events" }

// FunctionRoleName is the IAM role of a control-plane function. It never
// starts with the prefix: roles named <prefix>* are the ones ceforge
// forges (and may delete).
func FunctionRoleName(prefix, fn string) string { return "lambda-" + prefix + fn }

// Functions are the control-plane functions that act in member accounts
// (each holds the assume group), in deployment order.
var Functions = []string{"api", "logs", "batchevents", "ec2events", "reconciler", "sweeper"}

// externalIDBytes of randomness: 160 bits, as hex after the prefix.
const externalIDBytes = 20

// NewExternalID returns a random External ID: the prefix, then 40 hex
// digits. Callers never choose it; it is not a secret (AWS: it guards the
// confused deputy, it does not authenticate), but it is unguessable, so
// nobody who merely knows a role ARN can make ceforge assume it.
func NewExternalID(prefix string) string {
	b := make([]byte, externalIDBytes)
	if _, err := rand.Read(b); err != nil {
		panic("member: crypto/rand failed: " + err.Error())
	}
	return prefix + hex.EncodeToString(b)
}

var externalIDRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// ValidExternalID reports whether s is an External ID NewExternalID made
// for this prefix.
func ValidExternalID(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	return ok && externalIDRE.MatchString(rest)
}

// TrustPolicy is the member role's trust policy: only the control plane's
// function roles (by ARN, through aws:PrincipalArn so a recreated role
// keeps working) may assume it, and only with externalID.
func TrustPolicy(partition, controlPlaneAccount, prefix, externalID string) map[string]any {
	var principals []string
	for _, fn := range Functions {
		principals = append(principals, "arn:"+partition+":iam::"+controlPlaneAccount+":role/"+FunctionRoleName(prefix, fn))
	}
	return map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":       "ControlPlaneFunctionsWithTheExternalId",
			"Effect":    "Allow",
			"Principal": map[string]any{"AWS": "arn:" + partition + ":iam::" + controlPlaneAccount + ":root"},
			"Action":    "sts:AssumeRole",
			"Condition": map[string]any{
				"StringEquals": map[string]any{"sts:ExternalId": externalID},
				"ArnEquals":    map[string]any{"aws:PrincipalArn": principals},
			},
		}},
	}
}

// Group is one permission group the member role holds: what ceforge does
// in the account with it, the permission policies of the CDK app that make
// it up (infra/stack group names), and the actions a verification checks
// the role is allowed (a sample of each policy's grants that no other
// group gives).
type Group struct {
	Name        string
	Description string
	Policies    []string
	Actions     []string
}

// Groups are the permission groups of the member role, in the order
// verification reports them.
var Groups = []Group{
	{Name: "validate", Description: "read-only checks of compute environment inputs", Policies: []string{"Validate"},
		Actions: []string{"ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeImages", "batch:DescribeJobQueues", "ssm:GetParameter", "s3:GetBucketLocation"}},
	{Name: "create", Description: "forge roles, instance profiles, Batch resources, launch templates and log groups named with the prefix", Policies: []string{"CreateIdentity", "Create"},
		Actions: []string{"iam:CreateRole", "iam:AttachRolePolicy", "iam:CreateInstanceProfile", "iam:PassRole", "batch:CreateComputeEnvironment", "batch:CreateJobQueue", "ec2:CreateLaunchTemplate", "logs:CreateLogGroup"}},
	{Name: "launch", Description: "start, tag and stop runs (EC2 head instances, Batch head jobs); write the pipeline secrets they read; delete ended runs' progress tokens", Policies: []string{"Launch", "Secrets", "Stop"},
		Actions: []string{"ec2:RunInstances", "ec2:TerminateInstances", "batch:SubmitJob", "batch:TerminateJob", "batch:DescribeJobs", "ec2:DescribeInstances",
			"secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"}},
	{Name: "delete", Description: "dispose of what create made", Policies: []string{"Delete"},
		Actions: []string{"iam:DeleteRole", "iam:DeleteInstanceProfile", "batch:DeleteComputeEnvironment", "batch:DeleteJobQueue", "ec2:DeleteLaunchTemplate", "logs:DeleteLogGroup"}},
	{Name: "logs", Description: "read run logs and run artifacts", Policies: []string{"Logs"},
		Actions: []string{"logs:GetLogEvents", "s3:GetObject"}},
	{Name: "sweep", Description: "find and delete orphaned ceforge-owned resources", Policies: []string{"Sweep"},
		Actions: []string{"ec2:DescribeVolumes", "ec2:DeleteVolume", "batch:ListJobs"}},
}

// SelfReadActions are what verification calls on the member role itself to
// read its policies (the member stack grants them on the role and its own
// policies only).
var SelfReadActions = []string{
	"iam:GetRole", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies", "iam:GetRolePolicy",
	"iam:GetPolicy", "iam:GetPolicyVersion",
}
