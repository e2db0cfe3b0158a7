package cloudce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forgedrole"
	"github.com/ceforge/ceforge/internal/tags"
)

// ManagedPolicies are attached to the instance role ceforge creates (S3
// read-only is cut to the allowed buckets by the permissions boundary).
// SSM core lets users reach studios through Session Manager port
// forwarding, with no inbound rule (ceforge studio connect).
var ManagedPolicies = []string{
	forgedrole.ManagedPolicyARN(forgedrole.PolicyCloudWatchAgent),
	forgedrole.ManagedPolicyARN(forgedrole.PolicyS3ReadOnly),
	forgedrole.ManagedPolicyARN(forgedrole.PolicyECRPullOnly),
	forgedrole.ManagedPolicyARN(forgedrole.PolicySSMCore),
}

// ec2TrustPolicy lets EC2 (the head instances) assume the instance role.
var ec2TrustPolicy = func() string {
	doc, err := forgedrole.TrustPolicy(forgedrole.PrincipalEC2)
	if err != nil {
		panic(err)
	}
	return doc
}()

// boundary is the permissions boundary of the CE's account.
func (p *Platform) boundary(ce *computeenv.ComputeEnv) string {
	if p.Boundary == "" {
		return ""
	}
	role := ""
	if ce.Credentials != nil {
		role = ce.Credentials.RoleARN
	}
	return forgedrole.BoundaryIn(p.Boundary, role)
}

// Bound puts the CE's instance role under the permissions boundary (a role
// forged before ceforge set one); the reconciler calls it for every stable
// CE. It reports whether the record changed.
func (p *Platform) Bound(ctx context.Context, ce *computeenv.ComputeEnv) (bool, error) {
	if p.ProvisionElsewhere || p.Boundary == "" || !forged(ce) {
		return false, nil
	}
	b := p.boundary(ce)
	r := ce.Resource(ResRole)
	if r == nil || r.State != StateReady || r.PermissionsBoundary == b {
		return false, nil
	}
	if _, err := forgedrole.Ensure(ctx, p.ClientsFor(ce).IAM, r.Name, b); err != nil {
		if errorCode(err) == "NoSuchEntity" {
			return false, nil // deleted outside ceforge: nothing to bound
		}
		return false, err
	}
	r.PermissionsBoundary = b
	return true, nil
}

type policyDoc struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string         `json:"Sid,omitempty"`
	Effect    string         `json:"Effect"`
	Action    any            `json:"Action"`
	Resource  any            `json:"Resource"`
	Condition map[string]any `json:"Condition,omitempty"`
}

// buckets returns the work-dir bucket and the allowed buckets, deduplicated.
func buckets(ce *computeenv.ComputeEnv) []string {
	var out []string
	add := func(uri string) {
		if b, _, err := computeenv.ParseS3URI("", uri); err == nil && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	add(ce.WorkDir)
	if ce.Cloud != nil {
		for _, b := range ce.Cloud.AllowBuckets {
			add(b)
		}
	}
	return out
}

// InlinePolicies returns the instance role's inline policies by name: object
// read/write on the work-dir and allowed buckets, read of secrets under the
// prefix, KMS through S3 only.
func (p *Platform) InlinePolicies(ce *computeenv.ComputeEnv) map[string]string {
	names := p.inlinePolicyNames(ce.ID)
	var s3 []statement
	for i, b := range buckets(ce) {
		arn := "arn:aws:s3:::" + b
		s3 = append(s3,
			statement{Sid: fmt.Sprintf("ListBucket%d", i), Effect: "Allow", Action: []string{"s3:ListBucket"}, Resource: arn},
			statement{Sid: fmt.Sprintf("AllObjectActions%d", i), Effect: "Allow", Action: "s3:*Object", Resource: arn + "/*"},
			statement{Sid: fmt.Sprintf("ObjectTagging%d", i), Effect: "Allow", Action: []string{"s3:PutObjectTagging", "s3:GetObjectTagging"}, Resource: arn + "/*"},
		)
	}
	viaS3 := map[string]any{"StringLike": map[string]string{"kms:ViaService": "s3.*.amazonaws.com"}}
	docs := []policyDoc{
		{Version: "2012-10-17", Statement: s3},
		// No ListSecrets: it takes no resource, so on these ARNs it never
		// applied (and the permissions boundary leaves it out).
		{Version: "2012-10-17", Statement: []statement{{
			Sid: "ReadPrefixedSecrets", Effect: "Allow", Action: []string{"secretsmanager:GetSecretValue"},
			Resource: []string{fmt.Sprintf("arn:aws:secretsmanager:%s:*:secret:%s*", ce.Region, p.prefix())},
		}, {
			// Runs' progress tokens (internal/runtoken, <prefix>trace/<run>)
			// of this compute environment only: with another's, a pipeline
			// could report progress (a crossed cost limit cancels) for runs
			// it does not own.
			Sid: "OnlyThisCEsRunTokens", Effect: "Deny", Action: []string{"secretsmanager:GetSecretValue"},
			Resource:  []string{fmt.Sprintf("arn:aws:secretsmanager:%s:*:secret:%strace/*", ce.Region, p.prefix())},
			Condition: map[string]any{"StringNotEquals": map[string]string{"aws:ResourceTag/" + tags.CEID: ce.ID}},
		}}},
		{Version: "2012-10-17", Statement: []statement{
			{Sid: "KmsS3Read", Effect: "Allow", Action: []string{"kms:Decrypt", "kms:DescribeKey"}, Resource: "arn:aws:kms:*:*:key/*", Condition: viaS3},
			{Sid: "KmsS3Write", Effect: "Allow", Action: []string{"kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"}, Resource: "arn:aws:kms:*:*:key/*", Condition: viaS3},
		}},
	}
	out := map[string]string{}
	for i, d := range docs {
		b, _ := json.Marshal(d)
		out[names[i]] = string(b)
	}
	return out
}

// forged reports whether ceforge creates the CE's instance profile.
func forged(ce *computeenv.ComputeEnv) bool {
	return ce.Cloud == nil || ce.Cloud.InstanceProfileARN == ""
}

// Plan lists what the CE uses and what Advance creates.
func (p *Platform) Plan(_ context.Context, ce *computeenv.ComputeEnv) (computeenv.Plan, error) {
	c := ce.Cloud
	plan := computeenv.Plan{Resources: []computeenv.PlannedResource{
		{Action: "use", Type: ResImage, Name: c.ImageID, Properties: map[string]any{"architecture": string(arch(c)), "instanceType": c.InstanceType, "ebsBootSize": c.EbsBootSize}},
		{Action: "use", Type: "ec2-vpc", Name: c.VpcID, Properties: map[string]any{"subnetIds": c.SubnetIDs, "securityGroups": c.SecurityGroups}},
	}}
	if !forged(ce) {
		plan.Resources = append(plan.Resources, computeenv.PlannedResource{Action: "use", Type: ResProfile, Name: c.InstanceProfileARN})
		return plan, nil
	}
	name := p.RoleName(ce.ID)
	inline := map[string]any{}
	for k, v := range p.InlinePolicies(ce) {
		inline[k] = json.RawMessage(v)
	}
	plan.Resources = append(plan.Resources,
		computeenv.PlannedResource{Action: "create", Type: ResRole, Name: name, Properties: map[string]any{
			"assumeRolePolicy": json.RawMessage(ec2TrustPolicy), "managedPolicies": ManagedPolicies, "inlinePolicies": inline,
			"tags": p.tags(ce), "permissionsBoundary": p.boundary(ce),
		}},
		computeenv.PlannedResource{Action: "create", Type: ResProfile, Name: name, Properties: map[string]any{"role": name}},
	)
	return plan, nil
}

func (p *Platform) tags(ce *computeenv.ComputeEnv) tags.Tags {
	return tags.Merge(ce.Labels, tags.Ownership(ce.ID, ""))
}

func (p *Platform) iamTags(ce *computeenv.ComputeEnv) []iamtypes.Tag {
	t := p.tags(ce)
	out := make([]iamtypes.Tag, 0, len(t))
	for _, k := range t.Keys() {
		out = append(out, iamtypes.Tag{Key: aws.String(k), Value: aws.String(t[k])})
	}
	return out
}

// errNoBoundary refuses to forge a role without a permissions boundary.
var errNoBoundary = errors.New("no permissions boundary is configured (CEFORGE_PERMISSIONS_BOUNDARY); ceforge forges no role without one")

// permanentCodes are IAM errors a retry cannot fix: the CE becomes ERRORED.
var permanentCodes = []string{
	"AccessDenied", "AccessDeniedException", "MalformedPolicyDocument", "LimitExceeded",
	"InvalidInput", "UnmodifiableEntity", "ValidationError", "PolicyNotAttachable",
}

// Advance creates the instance role and profile (CREATING → AVAILABLE) or
// removes them (DELETING → DELETED). Every step is idempotent: "already
// exists" on create and "not found" on delete count as done, so a retry
// after a crash resumes where it stopped.
func (p *Platform) Advance(ctx context.Context, ce *computeenv.ComputeEnv) error {
	if p.ProvisionElsewhere && forged(ce) && !ce.Stable() {
		return computeenv.ErrProvisionElsewhere // the IAM calls are the reconciler's
	}
	switch ce.Status {
	case computeenv.StatusCreating:
		if !forged(ce) {
			ce.Status = computeenv.StatusAvailable
			return nil
		}
		err := p.create(ctx, p.ClientsFor(ce).IAM, ce)
		if err == nil {
			ce.Status, ce.StatusReason = computeenv.StatusAvailable, ""
			return nil
		}
		if errors.Is(err, errNoBoundary) || slices.Contains(permanentCodes, errorCode(err)) {
			ce.Status, ce.StatusReason = computeenv.StatusErrored, err.Error()
			return nil
		}
		return err
	case computeenv.StatusDeleting:
		if forged(ce) {
			if err := p.teardown(ctx, p.ClientsFor(ce).IAM, ce); err != nil {
				ce.StatusReason = err.Error()
				return err
			}
		}
		for i := range ce.ForgedResources {
			if ce.ForgedResources[i].State != StateUsed {
				ce.ForgedResources[i].State = StateGone
			}
		}
		ce.Status, ce.StatusReason = computeenv.StatusDeleted, ""
	}
	return nil
}

func (p *Platform) create(ctx context.Context, api IAMAPI, ce *computeenv.ComputeEnv) error {
	name := p.RoleName(ce.ID)
	role := aws.String(name)
	boundary := p.boundary(ce)
	if boundary == "" {
		return errNoBoundary
	}
	var roleARN string
	out, err := api.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName: role, AssumeRolePolicyDocument: aws.String(ec2TrustPolicy), Tags: p.iamTags(ce),
		Description:         aws.String("ceforge instance role of compute environment " + ce.ID),
		PermissionsBoundary: aws.String(boundary),
	})
	switch {
	case err == nil:
		roleARN = aws.ToString(out.Role.Arn)
	case errorCode(err) == "EntityAlreadyExists":
		got, gerr := api.GetRole(ctx, &iam.GetRoleInput{RoleName: role})
		if gerr != nil {
			return fmt.Errorf("read instance role %s: %w", name, gerr)
		}
		roleARN = aws.ToString(got.Role.Arn)
		// A previous attempt created it; one that predates boundaries did so without.
		if _, err := forgedrole.Ensure(ctx, api, name, boundary); err != nil {
			return err
		}
	default:
		return fmt.Errorf("create instance role %s: %w", name, err)
	}
	setResource(ce, computeenv.Resource{Type: ResRole, Name: name, ARN: roleARN, State: "CREATING", PermissionsBoundary: boundary})
	for _, arn := range ManagedPolicies {
		if _, err := api.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: role, PolicyArn: aws.String(arn)}); err != nil {
			return fmt.Errorf("attach %s to %s: %w", arn, name, err)
		}
	}
	for pname, doc := range p.InlinePolicies(ce) {
		if _, err := api.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: role, PolicyName: aws.String(pname), PolicyDocument: aws.String(doc)}); err != nil {
			return fmt.Errorf("put inline policy %s on %s: %w", pname, name, err)
		}
	}
	var profileARN string
	prof, err := api.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: role, Tags: p.iamTags(ce)})
	var roles []iamtypes.Role
	switch {
	case err == nil:
		profileARN = aws.ToString(prof.InstanceProfile.Arn)
	case errorCode(err) == "EntityAlreadyExists":
		got, gerr := api.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: role})
		if gerr != nil {
			return fmt.Errorf("read instance profile %s: %w", name, gerr)
		}
		profileARN, roles = aws.ToString(got.InstanceProfile.Arn), got.InstanceProfile.Roles
	default:
		return fmt.Errorf("create instance profile %s: %w", name, err)
	}
	if !slices.ContainsFunc(roles, func(r iamtypes.Role) bool { return aws.ToString(r.RoleName) == name }) {
		_, err := api.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: role, RoleName: role})
		if err != nil && errorCode(err) != "LimitExceeded" { // LimitExceeded: the role is in already
			return fmt.Errorf("add role to instance profile %s: %w", name, err)
		}
	}
	setResource(ce, computeenv.Resource{Type: ResRole, Name: name, ARN: roleARN, State: StateReady, PermissionsBoundary: boundary})
	setResource(ce, computeenv.Resource{Type: ResProfile, Name: name, ARN: profileARN, State: StateReady})
	return nil
}

// teardown removes the profile and role; "not found" counts as done.
func (p *Platform) teardown(ctx context.Context, api IAMAPI, ce *computeenv.ComputeEnv) error {
	name := p.RoleName(ce.ID)
	role := aws.String(name)
	gone := func(err error) bool { return err == nil || errorCode(err) == "NoSuchEntity" }
	if _, err := api.RemoveRoleFromInstanceProfile(ctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: role, RoleName: role}); !gone(err) {
		return fmt.Errorf("remove role from instance profile %s: %w", name, err)
	}
	if _, err := api.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: role}); !gone(err) {
		return fmt.Errorf("delete instance profile %s: %w", name, err)
	}
	attached, err := api.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: role})
	if errorCode(err) == "NoSuchEntity" {
		return nil // the role is gone, and its policies with it
	}
	if err != nil {
		return fmt.Errorf("list policies of %s: %w", name, err)
	}
	for _, pol := range attached.AttachedPolicies {
		if _, err := api.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: role, PolicyArn: pol.PolicyArn}); !gone(err) {
			return fmt.Errorf("detach %s from %s: %w", aws.ToString(pol.PolicyArn), name, err)
		}
	}
	inline, err := api.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: role})
	if err != nil && !gone(err) {
		return fmt.Errorf("list inline policies of %s: %w", name, err)
	}
	if inline != nil {
		for _, pn := range inline.PolicyNames {
			if _, err := api.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: role, PolicyName: aws.String(pn)}); !gone(err) {
				return fmt.Errorf("delete inline policy %s of %s: %w", pn, name, err)
			}
		}
	}
	if _, err := api.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: role}); !gone(err) {
		return fmt.Errorf("delete instance role %s: %w", name, err)
	}
	return nil
}
