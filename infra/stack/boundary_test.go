package stack_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ceforge/ceforge/infra/stack"
	"github.com/ceforge/ceforge/internal/cloudce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/forge/hostinit"
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

// grant is one action on one resource a forged role's own policy names.
type grant struct{ role, action, resource string }

// designedGrants lists what ceforge writes into the roles it forges: a
// Batch forge CE with every option that adds a grant (EBS auto-scaling,
// fast storage and file systems, whose hosts report their setup; Fargate
// head; forged job roles), and an AWS Cloud CE's instance role.
func designedGrants(t *testing.T, prefix, bucket string) []grant {
	t.Helper()
	var out []grant
	add := func(role string, doc any) {
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		var d struct{ Statement []map[string]any }
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		for _, st := range d.Statement {
			for _, a := range strs(st["Action"]) {
				for _, r := range strs(st["Resource"]) {
					out = append(out, grant{role, a, r})
				}
			}
		}
	}
	f := &computeenv.ForgeOptions{
		Type: "SPOT", MaxCpus: 64, Subnets: []string{"subnet-1"}, SecurityGroups: []string{"sg-1"},
		FargateHeadEnabled: true, FastStorage: true, EbsAutoScale: true, EbsBlockSize: 100,
		EfsCreate: true, EfsMount: "/mnt/efs", AllowBuckets: []string{"s3://" + bucket + "-data"},
	}
	ce := &computeenv.ComputeEnv{
		ID: "abc123def456gh", Region: "eu-west-1", WorkDir: "s3://" + bucket + "/work",
		Batch: &computeenv.BatchOptions{HeadJobCpus: 1, HeadJobMemoryMb: 4096, Forge: f},
	}
	for _, r := range forge.NewDesign(prefix, ce).Roles {
		if r.Inline != nil {
			add(r.Name, r.Inline)
		}
	}
	cloud := &computeenv.ComputeEnv{
		ID: "abc123def456gh", Region: "eu-west-1", WorkDir: "s3://" + bucket + "/work",
		Cloud: &computeenv.CloudOptions{AllowBuckets: []string{"s3://" + bucket + "-data"}},
	}
	for name, doc := range (&cloudce.Platform{Prefix: prefix}).InlinePolicies(cloud) {
		var d any
		if err := json.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatal(err)
		}
		add(name, d)
	}
	return out
}

// globMatch reports whether pattern (IAM '*' and '?' wildcards, CloudFormation
// tokens counting as '*') covers s.
func globMatch(pattern, s string) bool {
	pattern = regexp.MustCompile(`\$\{[^}]+\}`).ReplaceAllString(pattern, "*")
	var re strings.Builder
	re.WriteString("^")
	for _, c := range pattern {
		switch c {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(s)
}

// Whatever ceforge grants a forged role, the boundary lets it do: a grant
// the boundary cuts off is a feature that fails only on AWS (a host that
// cannot report its setup, EBS auto-scaling that cannot create a volume).
// A grant on "*" needs the action; one on a resource needs a boundary
// statement whose resources cover it. Wildcard actions need some action
// of theirs allowed.
func TestBoundaryCoversForgedRoles(t *testing.T) {
	s := synthDefault(t)
	id := s.boundaryID(t)
	var boundary []statement
	for _, st := range s.statements() {
		if st.owner == id && st.effect == "Allow" {
			boundary = append(boundary, st)
		}
	}
	grants := designedGrants(t, s.cfg.Prefix, s.cfg.Prefix+"work")
	if len(grants) < 30 {
		t.Fatalf("only %d grants read from the designs: the walk is broken", len(grants))
	}
	for _, g := range grants {
		ok := false
		for _, st := range boundary {
			for _, a := range st.actions {
				if !globMatch(g.action, a) {
					continue
				}
				for _, r := range st.resources {
					ok = ok || g.resource == "*" || globMatch(r, g.resource)
				}
			}
		}
		if !ok {
			t.Errorf("%s may %s on %s, but the boundary does not allow it", g.role, g.action, g.resource)
		}
	}
}

// EBS auto-scaling and host reporting write EC2 from forged hosts: every
// such write in the boundary is held to ceforge's own resources. Volumes
// are created only tagged ceforge:managed=true and tagged only in that
// call; instances get only the host-setup tag, and only ceforge's.
func TestBoundaryEC2WritesAreCeforgesOnly(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		id := s.boundaryID(t)
		instance := "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:instance/*"
		volume := "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:volume/*"
		reportsSetup := false
		for _, st := range s.statements() {
			if st.owner != id || st.effect != "Allow" {
				continue
			}
			eq, _ := st.condition["StringEquals"].(map[string]any)
			for _, a := range st.actions {
				if !strings.HasPrefix(a, "ec2:") || strings.HasPrefix(a, "ec2:Describe") {
					continue
				}
				switch a {
				case "ec2:CreateVolume":
					if !slices.Equal(st.resources, []string{volume}) || !slices.Equal(strs(eq["aws:RequestTag/ceforge:managed"]), []string{"true"}) {
						t.Errorf("%s: CreateVolume on %v without the ceforge:managed request tag", st.where, st.resources)
					}
				case "ec2:CreateTags":
					switch {
					case slices.Equal(st.resources, []string{volume}):
						if !slices.Equal(strs(eq["ec2:CreateAction"]), []string{"CreateVolume"}) {
							t.Errorf("%s: CreateTags on volumes outside CreateVolume", st.where)
						}
					case slices.Equal(st.resources, []string{instance}):
						all, _ := st.condition["ForAllValues:StringEquals"].(map[string]any)
						if !slices.Equal(strs(eq["aws:ResourceTag/ceforge:managed"]), []string{"true"}) || !slices.Equal(strs(all["aws:TagKeys"]), []string{hostinit.SetupTag}) {
							t.Errorf("%s: CreateTags on instances beyond ceforge's host-setup tag: %v", st.where, st.condition)
						}
						reportsSetup = true
					default:
						t.Errorf("%s: CreateTags on %v", st.where, st.resources)
					}
				default:
					if !slices.Equal(strs(eq["aws:ResourceTag/ceforge:managed"]), []string{"true"}) {
						t.Errorf("%s: %s on resources not ceforge's (%v)", st.where, a, st.resources)
					}
				}
			}
		}
		if !reportsSetup {
			t.Errorf("%s: forged hosts cannot tag their setup outcome (%s)", s.cfg.Prefix, hostinit.SetupTag)
		}
	}
}
