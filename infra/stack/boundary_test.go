package stack_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ceforge/ceforge/infra/stack"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/forgedrole"
)

// boundaryID is the logical id of the permissions boundary policy.
func (s *synthesis) boundaryID(t *testing.T) string {
	t.Helper()
	return s.logicalID(t, "AWS::IAM::ManagedPolicy", "ManagedPolicyName", forgedrole.BoundaryName(s.cfg.Prefix))
}

// The stack deploys <prefix>boundary, attached to no role of its own, and
// tells every function its ARN.
func TestBoundaryPolicyDeployedAndConfigured(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		id := s.boundaryID(t)
		for roleID, r := range s.resources("AWS::IAM::Role") {
			for _, arn := range strs(props(r)["ManagedPolicyArns"]) {
				if arn == "${"+id+"}" {
					t.Errorf("role %s holds the boundary as a policy", roleID)
				}
			}
			if props(r)["PermissionsBoundary"] != nil {
				t.Errorf("control-plane role %s has a boundary: it is for forged roles", roleID)
			}
		}
		for _, name := range stack.FunctionNames {
			env, _ := props(s.resources("AWS::Lambda::Function")[s.functionID(t, name)])["Environment"].(map[string]any)
			vars, _ := env["Variables"].(map[string]any)
			if got := flat(vars["CEFORGE_PERMISSIONS_BOUNDARY"]); got != "${"+id+"}" {
				t.Errorf("%s: CEFORGE_PERMISSIONS_BOUNDARY = %q, want the boundary's ARN", name, got)
			}
		}
	}
}

// What the boundary allows: what heads, tasks and instances need, in the
// allowed buckets, and no way to create or change an identity.
func TestBoundaryContents(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		id := s.boundaryID(t)
		allowed := map[string][]statement{}
		for _, st := range s.statements() {
			if st.owner != id || st.effect != "Allow" {
				continue
			}
			for _, a := range st.actions {
				allowed[a] = append(allowed[a], st)
				svc := strings.SplitN(a, ":", 2)[0]
				switch {
				case strings.Contains(a, "*"):
					t.Errorf("%s: wildcard action %s", st.where, a)
				case svc == "iam" && a != "iam:PassRole", svc == "sts", svc == "organizations", svc == "lambda", svc == "dynamodb", svc == "cloudformation":
					t.Errorf("%s: a forged role may never %s", st.where, a)
				case svc == "s3":
					for _, r := range st.resources {
						ok := false
						for _, b := range s.cfg.Buckets() {
							base := "arn:${AWS::Partition}:s3:::" + b
							ok = ok || r == base || r == base+"/*"
						}
						if !ok {
							t.Errorf("%s: %s on %s, outside the allowed buckets %v", st.where, a, r, s.cfg.Buckets())
						}
					}
				}
			}
		}
		for _, st := range allowed["iam:PassRole"] {
			if !slices.Equal(st.resources, []string{"arn:${AWS::Partition}:iam::${AWS::AccountId}:role/" + s.cfg.Prefix + "*"}) {
				t.Errorf("%s: PassRole on %v", st.where, st.resources)
			}
			eq, _ := st.condition["StringEquals"].(map[string]any)
			if got := strs(eq["iam:PassedToService"]); !slices.Equal(got, []string{"batch.amazonaws.com", "ecs-tasks.amazonaws.com"}) {
				t.Errorf("%s: PassRole to %v", st.where, got)
			}
		}
		// What the forged roles do (Nextflow head and tasks, the ECS and
		// SSM agents, the CloudWatch agent, image pulls) stays possible.
		for _, a := range []string{
			"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:DeleteObject", "batch:SubmitJob", "batch:DescribeJobs",
			"batch:RegisterJobDefinition", "batch:TerminateJob", "logs:PutLogEvents", "logs:CreateLogStream", "logs:GetLogEvents",
			"ecs:RegisterContainerInstance", "ecs:Poll", "ecr:GetAuthorizationToken", "ecr:BatchGetImage",
			"ssm:UpdateInstanceInformation", "ssmmessages:OpenDataChannel", "ec2messages:GetMessages",
			"elasticfilesystem:ClientMount", "secretsmanager:GetSecretValue", "iam:PassRole",
		} {
			if len(allowed[a]) == 0 {
				t.Errorf("%s: the boundary lacks %s", s.cfg.Prefix, a)
			}
		}
		// The EC2 calls amazon-ebs-autoscale makes from a forged host.
		for _, a := range forge.EbsAutoScaleActions {
			if len(allowed[a]) == 0 {
				t.Errorf("%s: the boundary lacks %s (EBS auto-scaling)", s.cfg.Prefix, a)
			}
		}
		for _, st := range allowed["ec2:DeleteVolume"] {
			eq, _ := st.condition["StringEquals"].(map[string]any)
			if !slices.Equal(strs(eq["aws:ResourceTag/ceforge:managed"]), []string{"true"}) {
				t.Errorf("%s: DeleteVolume on volumes not ceforge's", st.where)
			}
		}
		for _, st := range allowed["secretsmanager:GetSecretValue"] {
			if !slices.Equal(st.resources, []string{"arn:${AWS::Partition}:secretsmanager:*:${AWS::AccountId}:secret:" + s.cfg.Prefix + "*"}) {
				t.Errorf("%s: secrets %v", st.where, st.resources)
			}
		}
	}
}

// The reconciler (the only function with IAM write access) can create or
// change a role only under the boundary, attach only the exact AWS managed
// policies ceforge uses, and never lift a boundary or rewrite the boundary
// policy: no role it forges can get AdministratorAccess or anything beyond
// the boundary.
func TestForgedRolesCannotBeEscalated(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		boundary := "${" + s.boundaryID(t) + "}"
		wantPolicies := make([]string, 0, len(forgedrole.AttachablePolicies))
		for _, p := range forgedrole.AttachablePolicies {
			wantPolicies = append(wantPolicies, "arn:${AWS::Partition}:iam::aws:policy/"+p)
		}
		bounded := []string{"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"}
		never := []string{
			"iam:DeleteRolePermissionsBoundary", "iam:UpdateAssumeRolePolicy", "iam:CreatePolicy", "iam:CreatePolicyVersion",
			"iam:SetDefaultPolicyVersion", "iam:DeletePolicy", "iam:AttachUserPolicy", "iam:PutUserPolicy", "iam:AttachGroupPolicy",
			"iam:PutGroupPolicy", "iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:UpdateLoginProfile",
			"iam:AddUserToGroup", "iam:PutUserPermissionsBoundary", "iam:DeleteUserPermissionsBoundary",
		}
		found := map[string]int{}
		for _, fn := range stack.FunctionNames {
			for _, st := range s.roleStatements(t, fn) {
				for _, a := range st.actions {
					if slices.Contains(never, a) {
						t.Errorf("%s %s: may %s", fn, st.where, a)
					}
					if !slices.Contains(bounded, a) {
						continue
					}
					found[a]++
					if fn != stack.FnReconciler {
						t.Errorf("%s may %s: only the reconciler forges roles", fn, a)
					}
					eq, _ := st.condition["StringEquals"].(map[string]any)
					if got := strs(eq["iam:PermissionsBoundary"]); !slices.Equal(got, []string{boundary}) {
						t.Errorf("%s %s: %s not conditioned on iam:PermissionsBoundary = the boundary (%v)", fn, st.where, a, got)
					}
					if a != "iam:AttachRolePolicy" {
						continue
					}
					if _, like := st.condition["ArnLike"]; like {
						t.Errorf("%s: AttachRolePolicy with a pattern of policies", st.where)
					}
					arnEq, _ := st.condition["ArnEquals"].(map[string]any)
					got := strs(arnEq["iam:PolicyARN"])
					if !slices.Equal(got, wantPolicies) {
						t.Errorf("%s: AttachRolePolicy for %v, want exactly %v", st.where, got, wantPolicies)
					}
					for _, arn := range got {
						if strings.Contains(arn, "*") || strings.Contains(arn, "AdministratorAccess") || strings.Contains(arn, "IAMFullAccess") || strings.Contains(arn, "PowerUser") {
							t.Errorf("%s: AttachRolePolicy allows %s", st.where, arn)
						}
					}
				}
			}
		}
		for _, a := range bounded {
			if found[a] == 0 {
				t.Errorf("the reconciler lacks %s (the walk is broken, or forging cannot work)", a)
			}
		}
		// The guard rails are explicit denies on the reconciler's role.
		denies := map[string][]string{}
		for _, st := range s.statements() {
			if st.effect == "Deny" && strings.HasPrefix(st.owner, "PermissionsCreateIdentity") {
				for _, a := range st.actions {
					denies[a] = append(denies[a], st.resources...)
				}
			}
		}
		if r := denies["iam:DeleteRolePermissionsBoundary"]; !slices.Equal(r, []string{"arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"}) {
			t.Errorf("DeleteRolePermissionsBoundary is not denied on every role: %v", r)
		}
		for _, a := range []string{"iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"} {
			if !slices.Equal(denies[a], []string{boundary}) {
				t.Errorf("%s is not denied on the boundary policy: %v", a, denies[a])
			}
		}
	}
}
