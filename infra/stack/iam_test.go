package stack_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ceforge/ceforge/infra/stack"
)

func TestOneRolePerFunction(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		s.count(t, "AWS::IAM::Role", len(stack.FunctionNames))
		roles := map[string]string{}
		for _, name := range stack.FunctionNames {
			role := flat(props(s.resources("AWS::Lambda::Function")[s.functionID(t, name)])["Role"])
			if other, dup := roles[role]; dup {
				t.Errorf("%s and %s share role %s", name, other, role)
			}
			roles[role] = name
		}
		for id, r := range s.resources("AWS::IAM::Role") {
			p := props(r)
			name, _ := p["RoleName"].(string)
			// The control plane's roles must not match <prefix>*: the api
			// and reconciler may rewrite roles with that prefix.
			if name == "" || strings.HasPrefix(name, s.cfg.Prefix) {
				t.Errorf("role %s named %q: want an explicit name outside %s*", id, name, s.cfg.Prefix)
			}
			trust, _ := json.Marshal(p["AssumeRolePolicyDocument"])
			if !strings.Contains(string(trust), `"Service":"lambda.amazonaws.com"`) {
				t.Errorf("role %s is not a Lambda role: %s", id, trust)
			}
			if _, ok := p["Policies"]; ok {
				t.Errorf("role %s has inline Policies", id)
			}
		}
	}
}

// Each role holds exactly its permission groups.
func TestRoleGroups(t *testing.T) {
	s := synthDefault(t)
	groupIDs := map[string]string{} // logical id -> group
	for id := range s.resources("AWS::IAM::ManagedPolicy") {
		for _, g := range []string{stack.GroupValidate, stack.GroupCreateIdentity, stack.GroupCreate, stack.GroupDelete, stack.GroupLaunch, stack.GroupObserve, stack.GroupLogs, stack.GroupEvents, stack.GroupSweep, stack.GroupAssume, stack.GroupStop, stack.GroupSecrets} {
			if regexp.MustCompile("^Permissions" + g + "[0-9A-F]{8}$").MatchString(id) {
				groupIDs[id] = g
			}
		}
	}
	if len(groupIDs) != 12 {
		t.Fatalf("managed policies %v", groupIDs)
	}
	for _, name := range stack.FunctionNames {
		fn := props(s.resources("AWS::Lambda::Function")[s.functionID(t, name)])
		roleID := strings.Trim(flat(fn["Role"]), "${}")
		roleID = strings.TrimSuffix(roleID, ".Arn")
		var got []string
		arns, _ := props(s.resources("AWS::IAM::Role")[roleID])["ManagedPolicyArns"].([]any)
		for _, arn := range arns {
			got = append(got, groupIDs[strings.Trim(flat(arn), "${}")])
		}
		want := slices.Clone(stack.FunctionGroups[name])
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", name, got, want)
		}
	}
}

// The capabilities of each function, as the design assigns them.
func TestFunctionCapabilities(t *testing.T) {
	s := synthDefault(t)
	must := map[string][]string{
		stack.FnAPI: {
			"ec2:DescribeSubnets", "ec2:DescribeImages", "ssm:GetParameter", "iam:GetInstanceProfile", "iam:PassRole",
			"ec2:RunInstances", "ec2:CreateTags", "batch:SubmitJob", "batch:TerminateJob",
			"ec2:TerminateInstances", "dynamodb:PutItem", "dynamodb:Query", "lambda:InvokeFunction", "sts:AssumeRole",
			"logs:GetLogEvents", "s3:GetObject",
			// Validation of what a CE names (issue 14): key pair, file systems, Batch quotas.
			"ec2:DescribeKeyPairs", "elasticfilesystem:DescribeFileSystems", "elasticfilesystem:DescribeMountTargets",
			"fsx:DescribeFileSystems", "batch:DescribeJobQueues", "batch:DescribeComputeEnvironments",
			// Studios on Batch (issue 16): the image's job definition, the job's host.
			"batch:RegisterJobDefinition", "batch:DescribeJobDefinitions", "ecs:DescribeContainerInstances",
		},
		stack.FnReconciler: {
			"iam:CreateRole", "iam:DeleteRole", "batch:CreateComputeEnvironment", "batch:DeleteJobQueue",
			"ec2:DescribeInstances", "batch:DescribeJobs", "dynamodb:UpdateItem", "iam:PassRole", "s3:GetObject",
			// Drift: queues changed outside ceforge, hosts tagged with a failed setup.
			"batch:DescribeJobQueues",
			"ec2:TerminateInstances", // duplicate head instances of a run
		},
		stack.FnBatchEvents: {"dynamodb:UpdateItem", "s3:GetObject", "batch:DescribeJobs", "sqs:ReceiveMessage", "sqs:DeleteMessage"},
		stack.FnEC2Events:   {"dynamodb:UpdateItem", "s3:GetObject", "batch:DescribeJobs", "sqs:ReceiveMessage", "sqs:DeleteMessage"},
		stack.FnLogs:        {"logs:GetLogEvents", "s3:GetObject", "dynamodb:GetItem", "dynamodb:Query", "secretsmanager:GetSecretValue"},
		stack.FnSweeper: {
			"ec2:DescribeVolumes", "ec2:DeleteVolume", "ec2:DescribeInstances", "ec2:TerminateInstances",
			"batch:ListJobs", "batch:DescribeJobs", "batch:TerminateJob", "dynamodb:PutItem", "dynamodb:DeleteItem",
		},
	}
	mustNot := map[string][]string{
		// The reconciler forges and tears down; the api never does (it
		// registers studio job definitions, a launch's, not a CE's).
		stack.FnAPI: {
			"iam:CreateRole", "iam:DeleteRole", "iam:CreateInstanceProfile", "batch:CreateComputeEnvironment",
			"batch:DeleteComputeEnvironment", "batch:DeregisterJobDefinition", "ec2:CreateLaunchTemplate",
			"logs:CreateLogGroup", "logs:DeleteLogGroup", "elasticfilesystem:CreateFileSystem", "fsx:CreateFileSystem",
		},
		stack.FnReconciler:  {"ec2:RunInstances", "batch:SubmitJob", "lambda:InvokeFunction"},
		stack.FnBatchEvents: {"iam:CreateRole", "iam:PassRole", "ec2:RunInstances", "ec2:TerminateInstances", "lambda:InvokeFunction"},
		stack.FnEC2Events:   {"iam:CreateRole", "iam:PassRole", "ec2:RunInstances", "ec2:TerminateInstances", "lambda:InvokeFunction"},
		stack.FnLogs:        {"dynamodb:UpdateItem", "iam:PassRole", "ec2:RunInstances", "lambda:InvokeFunction"},
		stack.FnSweeper:     {"iam:CreateRole", "iam:DeleteRole", "iam:PassRole", "ec2:RunInstances", "batch:SubmitJob", "lambda:InvokeFunction", "ec2:CreateTags", "ec2:DeleteTags"},
	}
	for fn, actions := range must {
		have := s.actionsOf(t, fn)
		for _, a := range actions {
			if len(have[a]) == 0 {
				t.Errorf("%s lacks %s", fn, a)
			}
		}
		for _, a := range mustNot[fn] {
			if len(have[a]) > 0 {
				t.Errorf("%s must not have %s (%s)", fn, a, have[a][0].where)
			}
		}
	}
	// The logs function writes follow-slot leases only (partition key LEASE#*).
	for _, a := range []string{"dynamodb:PutItem", "dynamodb:DeleteItem"} {
		sts := s.actionsOf(t, stack.FnLogs)[a]
		if len(sts) == 0 {
			t.Errorf("logs lacks %s for follow slots", a)
		}
		for _, st := range sts {
			like, _ := st.condition["ForAllValues:StringLike"].(map[string]any)
			if got := strs(like["dynamodb:LeadingKeys"]); !slices.Equal(got, []string{"LEASE#*"}) {
				t.Errorf("logs %s (%s) beyond the lease records: %v", a, st.sid, got)
			}
		}
	}
	// The api registers job definitions (studios) only tagged as ceforge's
	// and never privileged.
	for _, st := range s.actionsOf(t, stack.FnAPI)["batch:RegisterJobDefinition"] {
		eq, _ := st.condition["StringEquals"].(map[string]any)
		b, _ := st.condition["Bool"].(map[string]any)
		if !slices.Equal(strs(eq["aws:RequestTag/ceforge:managed"]), []string{"true"}) || !slices.Equal(strs(b["batch:Privileged"]), []string{"false"}) {
			t.Errorf("api batch:RegisterJobDefinition (%s) without the ownership request tag or batch:Privileged=false: %v", st.sid, st.condition)
		}
	}
	// Only the api invokes, and only the sweeper and the reconciler.
	allowed := map[string]bool{
		"${" + s.functionID(t, stack.FnSweeper) + ".Arn}":    true,
		"${" + s.functionID(t, stack.FnReconciler) + ".Arn}": true,
	}
	invoked := map[string]bool{}
	for _, st := range s.actionsOf(t, stack.FnAPI)["lambda:InvokeFunction"] {
		for _, r := range st.resources {
			if !allowed[r] {
				t.Errorf("api may invoke %s, want only the sweeper and the reconciler", r)
			}
			invoked[r] = true
		}
	}
	if len(invoked) != len(allowed) {
		t.Errorf("api invokes %v, want both the sweeper and the reconciler", invoked)
	}
}

// No Allow statement anywhere has a wildcard action ("*" or "service:*",
// or any action pattern). Deny statements may: the TLS-only queue
// policies deny sqs:* without TLS, which is what cdk-nag SQS4 requires.
func TestNoWildcardActions(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		n := 0
		for _, st := range s.statements() {
			n++
			for _, a := range st.actions {
				if !strings.Contains(a, "*") {
					continue
				}
				if st.effect == "Deny" {
					continue
				}
				t.Errorf("%s: wildcard action %q", st.where, a)
			}
			if st.effect == "Allow" && len(st.actions) == 0 {
				t.Errorf("%s: no Action (NotAction?)", st.where)
			}
		}
		if n < 30 {
			t.Errorf("only %d statements found; the walk is broken", n)
		}
	}
}

// batchSLR is the Batch service-linked role, the service role of forged
// compute environments.
const batchSLR = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch"

func TestPassRoleOnlyForgedRolesToComputeServices(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		found := 0
		for _, st := range s.statements() {
			if !slices.Contains(st.actions, "iam:PassRole") || st.effect != "Allow" {
				continue
			}
			found++
			if len(st.actions) != 1 {
				t.Errorf("%s: PassRole shares a statement with %v", st.where, st.actions)
			}
			eq, _ := st.condition["StringEquals"].(map[string]any)
			services := strs(eq["iam:PassedToService"])
			for _, r := range st.resources {
				if r == batchSLR && slices.Equal(services, []string{"batch.amazonaws.com"}) {
					continue // Batch's own role, to Batch only
				}
				if r != "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"+s.cfg.Prefix+"*" {
					t.Errorf("%s: PassRole on %s", st.where, r)
				}
			}
			if len(services) == 0 {
				t.Errorf("%s: PassRole without iam:PassedToService", st.where)
			}
			for _, svc := range services {
				if !slices.Contains([]string{"ec2.amazonaws.com", "batch.amazonaws.com", "ecs-tasks.amazonaws.com"}, svc) {
					t.Errorf("%s: PassRole to %s", st.where, svc)
				}
			}
		}
		if found == 0 {
			t.Error("no PassRole statement")
		}
	}
}

// DynamoDB permissions name the table and its indexes only.
func TestDynamoDBScopedToTable(t *testing.T) {
	s := synthDefault(t)
	tableID := s.logicalID(t, "AWS::DynamoDB::Table", "BillingMode", "PAY_PER_REQUEST")
	allowed := []string{"${" + tableID + ".Arn}", "${" + tableID + ".Arn}/index/*"}
	for _, st := range s.statements() {
		dynamo := false
		for _, a := range st.actions {
			if strings.HasPrefix(a, "dynamodb:") {
				dynamo = true
			}
		}
		if !dynamo {
			continue
		}
		for _, r := range st.resources {
			if !slices.Contains(allowed, r) {
				t.Errorf("%s: DynamoDB on %s", st.where, r)
			}
		}
		for _, a := range st.actions {
			if !strings.HasPrefix(a, "dynamodb:") {
				t.Errorf("%s: %s mixed into a DynamoDB statement", st.where, a)
			}
		}
	}
}

// Resource-level scoping: prefix, ownership tag or create-action
// conditions wherever AWS supports them.
func TestScoping(t *testing.T) {
	s := synthDefault(t)
	p := s.cfg.Prefix
	cond := func(st statement, op, key string) []string {
		m, _ := st.condition[op].(map[string]any)
		return strs(m[key])
	}
	for _, fn := range stack.FunctionNames {
		for _, st := range s.roleStatements(t, fn) {
			for _, a := range st.actions {
				where := fmt.Sprintf("%s %s (%s)", fn, a, st.sid)
				switch {
				case a == "ec2:DeleteVolume" || a == "ec2:TerminateInstances" || a == "ec2:DeleteLaunchTemplate" || a == "ec2:DeleteTags":
					if got := cond(st, "StringEquals", "aws:ResourceTag/ceforge:managed"); !slices.Equal(got, []string{"true"}) {
						t.Errorf("%s: not conditioned on aws:ResourceTag/ceforge:managed=true", where)
					}
				case a == "ec2:CreateTags":
					if len(cond(st, "StringEquals", "ec2:CreateAction")) == 0 && len(cond(st, "StringEquals", "aws:ResourceTag/ceforge:managed")) == 0 {
						t.Errorf("%s: CreateTags neither on create nor on owned resources", where)
					}
				case a == "ec2:CreateLaunchTemplate":
					if !slices.Equal(cond(st, "StringEquals", "aws:RequestTag/ceforge:managed"), []string{"true"}) {
						t.Errorf("%s: launch templates created without the ownership tag", where)
					}
				case a == "ec2:RunInstances":
					for _, r := range st.resources {
						if (strings.HasSuffix(r, ":instance/*") || strings.HasSuffix(r, ":volume/*")) &&
							!slices.Equal(cond(st, "StringEquals", "aws:RequestTag/ceforge:managed"), []string{"true"}) {
							t.Errorf("%s: %s without the ownership request tag", where, r)
						}
					}
				case strings.HasPrefix(a, "iam:") && a != "iam:GetRole" && a != "iam:GetInstanceProfile" && a != "iam:CreateServiceLinkedRole":
					for _, r := range st.resources {
						if a == "iam:PassRole" && r == batchSLR {
							continue
						}
						if !strings.HasSuffix(r, ":role/"+p+"*") && !strings.HasSuffix(r, ":instance-profile/"+p+"*") {
							t.Errorf("%s on %s: want %s* roles or instance profiles", where, r, p)
						}
					}
				case a == "sts:AssumeRole":
					for _, r := range st.resources {
						if r != "arn:${AWS::Partition}:iam::*:role/"+p+"*" {
							t.Errorf("%s on %s", where, r)
						}
					}
					// Never a role without a ceforge-generated External ID.
					if got := cond(st, "StringLike", "sts:ExternalId"); !slices.Equal(got, []string{p + "*"}) {
						t.Errorf("%s: not conditioned on a ceforge External ID (sts:ExternalId %s*): %v", where, p, got)
					}
				case strings.HasPrefix(a, "batch:Create") || strings.HasPrefix(a, "batch:Delete") || strings.HasPrefix(a, "batch:Update") ||
					a == "batch:RegisterJobDefinition" || a == "batch:DeregisterJobDefinition":
					for _, r := range st.resources {
						if !regexp.MustCompile(`:batch:\*:\$\{AWS::AccountId\}:(compute-environment|job-queue|job-definition)/` + regexp.QuoteMeta(p) + `\*$`).MatchString(r) {
							t.Errorf("%s on %s: want %s* Batch resources", where, r, p)
						}
					}
				case a == "logs:CreateLogGroup" || a == "logs:DeleteLogGroup":
					for _, r := range st.resources {
						if !strings.Contains(r, ":log-group:/ceforge/") && !strings.Contains(r, ":log-group:/aws/batch/job/"+p) {
							t.Errorf("%s on %s", where, r)
						}
					}
				case a == "s3:ListBucket" || a == "s3:GetBucketLocation":
					for _, r := range st.resources {
						if r != "arn:${AWS::Partition}:s3:::"+p+"*" {
							t.Errorf("%s on %s: bucket-level actions name the allowed buckets (%s*) only", where, r, p)
						}
					}
				case strings.HasPrefix(a, "secretsmanager:") && st.sid != "ReadCursorKey": // the cursor key: TestCursorKeySecret
					// Run token and pipeline secrets only, created tagged,
					// changed and deleted only when owned.
					for _, r := range st.resources {
						if r != "arn:${AWS::Partition}:secretsmanager:*:${AWS::AccountId}:secret:"+p+"trace/*" &&
							r != "arn:${AWS::Partition}:secretsmanager:*:${AWS::AccountId}:secret:"+p+"secrets/*" {
							t.Errorf("%s on %s: want %strace/* or %ssecrets/* secrets", where, r, p, p)
						}
					}
					key := "aws:RequestTag/ceforge:managed"
					if a != "secretsmanager:CreateSecret" && a != "secretsmanager:TagResource" {
						key = "aws:ResourceTag/ceforge:managed"
					}
					if !slices.Equal(cond(st, "StringEquals", key), []string{"true"}) {
						t.Errorf("%s: not conditioned on %s=true", where, key)
					}
				case fn == stack.FnTrace && strings.HasPrefix(a, "dynamodb:"):
					// Fine-grained: the trace function writes progress and task items only.
					keys := cond(st, "ForAllValues:StringLike", "dynamodb:LeadingKeys")
					want := []string{"PROGRESS#*", "TASK#*"}
					if a == "dynamodb:GetItem" || a == "dynamodb:BatchGetItem" {
						want = []string{"RUN#*", "PROGRESS#*", "TASK#*"}
					} else if a != "dynamodb:PutItem" && a != "dynamodb:UpdateItem" {
						t.Errorf("%s: the trace function needs no %s", where, a)
					}
					if !slices.Equal(keys, want) {
						t.Errorf("%s: leading keys %v, want %v", where, keys, want)
					}
				case strings.HasPrefix(a, "s3:") && a != "s3:GetObject":
					t.Errorf("%s: unexpected S3 action", where)
				case a == "s3:GetObject":
					for _, r := range st.resources {
						if r != "arn:${AWS::Partition}:s3:::"+p+"*/.ceforge/runs/*" && r != "arn:${AWS::Partition}:s3:::"+p+"*/*/.ceforge/runs/*" {
							t.Errorf("%s on %s: want run artifacts in the allowed buckets only", where, r)
						}
					}
				case a == "batch:TerminateJob":
					if got := cond(st, "StringEquals", "aws:ResourceTag/ceforge:managed"); !slices.Equal(got, []string{"true"}) {
						t.Errorf("%s: TerminateJob on jobs not tagged ceforge:managed=true", where)
					}
				case a == "batch:TagResource" && slices.Contains(st.resources, "arn:${AWS::Partition}:batch:*:${AWS::AccountId}:job/*"):
					if got := cond(st, "StringEquals", "aws:RequestTag/ceforge:managed"); !slices.Equal(got, []string{"true"}) {
						t.Errorf("%s: jobs tagged without the ownership request tag", where)
					}
				case a == "ec2:DeleteNetworkInterface" || a == "ec2:CreateNetworkInterface":
					if got := cond(st, "Bool", "aws:ViaAWSService"); !slices.Equal(got, []string{"true"}) {
						t.Errorf("%s: network interfaces only through EFS (aws:ViaAWSService)", where)
					}
				case a == "batch:CancelJob":
					t.Errorf("%s: no code cancels jobs (TerminateJob stops them)", where)
				}
			}
		}
	}
}

// Region restriction adds aws:RequestedRegion to the compute-environment
// statements, not to IAM, STS, S3 or DynamoDB.
func TestAllowedRegionsCondition(t *testing.T) {
	s := synthVariant(t)
	conditioned := 0
	boundary := s.boundaryID(t)
	regionDeny := false
	for _, st := range s.statements() {
		if st.owner == boundary {
			// The boundary holds one Deny outside the allowed regions
			// instead of a condition on every statement (its size).
			ne, _ := st.condition["StringNotEquals"].(map[string]any)
			if st.effect == "Deny" && slices.Equal(strs(ne["aws:RequestedRegion"]), variantRegions) {
				regionDeny = true
			}
			continue
		}
		eq, _ := st.condition["StringEquals"].(map[string]any)
		regions := strs(eq["aws:RequestedRegion"])
		if len(regions) > 0 {
			conditioned++
			if !slices.Equal(regions, variantRegions) {
				t.Errorf("%s: regions %v", st.where, regions)
			}
		}
		for _, a := range st.actions {
			svc := strings.SplitN(a, ":", 2)[0]
			regional := slices.Contains([]string{"ec2", "batch", "ssm", "elasticfilesystem", "fsx"}, svc)
			if regional && st.effect == "Allow" && len(regions) == 0 {
				t.Errorf("%s: %s without aws:RequestedRegion", st.where, a)
			}
			if slices.Contains([]string{"iam", "sts", "dynamodb", "s3", "lambda", "sqs"}, svc) && len(regions) > 0 {
				t.Errorf("%s: %s must not be region-conditioned", st.where, a)
			}
		}
	}
	if conditioned < 10 {
		t.Errorf("only %d region-conditioned statements", conditioned)
	}
	if !regionDeny {
		t.Error("the permissions boundary does not deny requests outside the allowed regions")
	}
	for _, st := range synthDefault(t).statements() {
		if eq, _ := st.condition["StringEquals"].(map[string]any); eq["aws:RequestedRegion"] != nil {
			t.Errorf("%s: region condition without allowedRegions", st.where)
		}
	}
}

// IAM size quotas: 6,144 characters per managed policy, 10,240 for all
// inline policies of a role (whitespace not counted), measured with
// concrete values for the pseudo parameters and generous ones for ARNs.
func TestPolicySizes(t *testing.T) {
	concrete := func(v any) any {
		var conv func(v any) any
		conv = func(v any) any {
			switch x := v.(type) {
			case map[string]any:
				if ref, ok := x["Ref"].(string); ok {
					// Pseudo parameters at their longest (partition
					// aws-us-gov, a 12-digit account); other references
					// (parameters, resources) generously.
					switch ref {
					case "AWS::Partition":
						return "aws-us-gov"
					case "AWS::AccountId":
						return "123456789012"
					case "AWS::Region":
						return "ap-southeast-1"
					}
					return strings.Repeat("x", 24)
				}
				if _, ok := x["Fn::GetAtt"]; ok {
					return "arn:aws-us-gov:dynamodb:ap-southeast-1:123456789012:table/" + strings.Repeat("x", 80)
				}
				if j, ok := x["Fn::Join"].([]any); ok {
					var parts []string
					for _, p := range j[1].([]any) {
						parts = append(parts, fmt.Sprint(conv(p)))
					}
					return strings.Join(parts, j[0].(string))
				}
				out := map[string]any{}
				for k, e := range x {
					out[k] = conv(e)
				}
				return out
			case []any:
				out := make([]any, len(x))
				for i, e := range x {
					out[i] = conv(e)
				}
				return out
			}
			return v
		}
		return conv(v)
	}
	size := func(doc any) int {
		b, _ := json.Marshal(concrete(doc))
		return len(b)
	}
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		for id, r := range s.resources("AWS::IAM::ManagedPolicy") {
			if n := size(props(r)["PolicyDocument"]); n > 6144*9/10 {
				t.Errorf("%s (%s): managed policy of %d characters, quota 6,144 (keep 10%% headroom)", id, s.cfg.Prefix, n)
			} else {
				t.Logf("%s%s: %d characters", s.cfg.Prefix, id, n)
			}
		}
		inline := map[string]int{}
		for _, r := range s.resources("AWS::IAM::Policy") {
			for _, role := range props(r)["Roles"].([]any) {
				inline[flat(role)] += size(props(r)["PolicyDocument"])
			}
		}
		for role, n := range inline {
			if n > 10240*9/10 {
				t.Errorf("%s: inline policies of %d characters, quota 10,240", role, n)
			}
		}
	}
}
