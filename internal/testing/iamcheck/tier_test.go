package iamcheck_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/awsclient/ecsread"
	"github.com/ceforge/ceforge/internal/awsclient/fsread"
	"github.com/ceforge/ceforge/internal/awsclient/profileread"
	"github.com/ceforge/ceforge/internal/awsclient/ssmparam"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/iamcheck"
)

// narrowed returns the deployed role of function with one statement
// (by Sid) changed by edit; edit returning false drops the statement.
func narrowed(t *testing.T, d iamcheck.Deployment, function, sid string, edit func(st map[string]any) bool) iamcheck.Role {
	t.Helper()
	role, err := iamcheck.FunctionRole(function, d)
	require.NoError(t, err)
	found := false
	for i, p := range role.Policies {
		var doc map[string]any
		b, err := json.Marshal(p.Document)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &doc)) // a deep copy
		var kept []any
		for _, s := range doc["Statement"].([]any) {
			st := s.(map[string]any)
			if st["Sid"] == sid {
				found = true
				if !edit(st) {
					continue
				}
			}
			kept = append(kept, st)
		}
		doc["Statement"] = kept
		role.Policies[i].Document = doc
	}
	require.True(t, found, "no statement %s in the %s role", sid, function)
	return role
}

// only evaluates function's calls against role; other functions' calls
// against their deployed roles.
func only(d iamcheck.Deployment, function string, role iamcheck.Role) iamcheck.Principals {
	deployed := iamcheck.DeploymentRoles(d)
	return func(c *iamcheck.Call) (iamcheck.Role, bool, error) {
		if c.Function == function && c.ActingAs == "" {
			return role, true, nil
		}
		return deployed(c)
	}
}

// The tier's point: a permission removed from or narrowed in a function's
// deployed role is reported as denied, naming the function, the action,
// the resource ARN and the condition value the request lacks. One
// end-to-end flow (an AWS Cloud CE created by the api and the reconciler, a
// pipeline launched, its running event consumed) is evaluated against the
// deployed roles (no finding) and against each narrowed role.
func TestANarrowedRoleIsReportedDenied(t *testing.T) {
	h := apptest.New(t)
	ctx := context.Background()
	_, err := s3.NewFromConfig(h.AWS.Config(region), func(o *s3.Options) { o.UsePathStyle = true }).
		CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	res := h.Do(t, "POST", "/compute-envs", computeenv.CreateRequest{Name: "cloud", Platform: computeenv.PlatformCloud, Region: region, WorkDir: "s3://" + bucket + "/work"})
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	res = h.Do(t, "POST", "/runs", run.LaunchRequest{Kind: run.KindPipeline, LaunchSettings: run.LaunchSettings{ComputeEnvID: ce.ID, Pipeline: "nf-core/demo"}})
	require.Equal(t, 201, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	raw, err := os.ReadFile("../../../events/ec2-running.json")
	require.NoError(t, err)
	body := strings.ReplaceAll(string(raw), "i-0abcd1234ef567890", r.Backend.InstanceID)
	failed, _ := h.EC2Events.EC2Events.Process(ctx, []eventsrc.Message{{ID: "m1", Body: body}})
	require.Empty(t, failed)
	calls := h.TakeCalls()
	d := h.Deployment

	require.Empty(t, iamcheck.Check(calls, iamcheck.DeploymentRoles(d)), "the deployed roles allow the flow")

	instanceRole := "arn:aws:iam::" + acct + ":role/" + h.Config.Prefix + ce.ID + "-instance"
	for _, tc := range []struct {
		name, function, sid string
		edit                func(map[string]any) bool
		// want is what the finding must name: function, action, resource,
		// and the condition key and value the request does not satisfy.
		want []string
	}{
		{
			name: "RunInstances removed from the api", function: "api", sid: "RunTaggedHeadInstances",
			edit: func(map[string]any) bool { return false },
			want: []string{"function api", "role lambda-ceforge-api", "DENIED ec2:RunInstances on arn:aws:ec2:" + region + ":" + acct + ":instance/*", "statement RunInstancesWithInputs allows the action only on"},
		},
		{
			name: "PassRole narrowed to Batch", function: "api", sid: "PassForgedRolesToComputeServices",
			edit: func(st map[string]any) bool {
				st["Condition"] = map[string]any{"StringEquals": map[string]any{"iam:PassedToService": "batch.amazonaws.com"}}
				return true
			},
			want: []string{"function api", "DENIED iam:PassRole on " + instanceRole, `StringEquals iam:PassedToService ["batch.amazonaws.com"] fails: the request has "ec2.amazonaws.com"`},
		},
		{
			name: "CreateRole held to another permissions boundary", function: "reconciler", sid: "ForgeRolesUnderBoundary",
			edit: func(st map[string]any) bool {
				st["Condition"] = map[string]any{"StringEquals": map[string]any{"iam:PermissionsBoundary": "arn:aws:iam::" + acct + ":policy/other-boundary"}}
				return true
			},
			want: []string{"function reconciler", "DENIED iam:CreateRole on " + instanceRole,
				`StringEquals iam:PermissionsBoundary ["arn:aws:iam::` + acct + `:policy/other-boundary"] fails: the request has "arn:aws:iam::` + acct + `:policy/ceforge-boundary"`},
		},
		{
			name: "owned instances only, by another tag value", function: "api", sid: "RunTaggedHeadInstances",
			edit: func(st map[string]any) bool {
				st["Condition"] = map[string]any{"StringEquals": map[string]any{"aws:RequestTag/ceforge:managed": "yes"}}
				return true
			},
			want: []string{"function api", "DENIED ec2:RunInstances", `aws:RequestTag/ceforge:managed ["yes"] fails: the request has "true"`},
		},
		{
			name: "table writes removed from ec2events", function: "ec2events", sid: "TableReadWrite",
			edit: func(st map[string]any) bool {
				st["Action"] = []any{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
				return true
			},
			want: []string{"function ec2events", "DENIED dynamodb:", "table/" + testenv.Table},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			findings := iamcheck.Check(calls, only(d, tc.function, narrowed(t, d, tc.function, tc.sid, tc.edit)))
			require.NotEmpty(t, findings)
			var msgs []string
			for _, f := range findings {
				require.Equal(t, iamcheck.FindingDenied, f.Kind, f.String())
				require.Equal(t, tc.function, f.Call.Function)
				msgs = append(msgs, f.String())
			}
			all := strings.Join(msgs, "\n")
			for _, w := range tc.want {
				require.Contains(t, all, w)
			}
		})
	}
}

// A call the tier has no mapping for fails the test that makes it, naming
// the operation and where to add it; a mapping whose ARN matches none of
// the action's resource types is caught by iam-data.
func TestUnmappedAndMisMappedCalls(t *testing.T) {
	deployed := iamcheck.DeploymentRoles(iamcheck.Deployment{Prefix: "ceforge-", Region: region, Table: testenv.Table})
	f := iamcheck.Check([]*iamcheck.Call{{Function: "api", Service: "EC2", Operation: "ImportKeyPair", Region: region}}, deployed)
	require.Len(t, f, 1)
	require.Equal(t, iamcheck.FindingUnmapped, f[0].Kind)
	require.Contains(t, f[0].String(), `add "EC2.ImportKeyPair" to internal/testing/iamcheck/requests.go`)

	role, err := iamcheck.FunctionRole("api", iamcheck.Deployment{Prefix: "ceforge-", Region: region, Table: testenv.Table})
	require.NoError(t, err)
	v, err := iamcheck.Evaluate(role, []iamcheck.Request{
		{Action: "s3:GetObject", Resource: "arn:aws:s3:::bucket"},    // a bucket, not an object
		{Action: "ec2:DescribeInstances", Resource: "arn:aws:ec2:x"}, // takes no resource type
		{Action: "ec2:TerminateInstances", Resource: "*"},            // takes instances
		{Action: "ec2:RunInstances", Resource: "arn:aws:ec2:" + region + ":" + acct + ":instance/*", Context: map[string]any{"iam:PassedToService": "ec2.amazonaws.com"}},
	})
	require.NoError(t, err)
	require.Contains(t, strings.Join(v[0].Mapping, " "), "matches none of the resource types s3:GetObject takes")
	require.Contains(t, strings.Join(v[1].Mapping, " "), `takes no resource type, so the resource must be "*"`)
	require.Contains(t, strings.Join(v[2].Mapping, " "), "takes resource types instance")
	require.Contains(t, strings.Join(v[3].Mapping, " "), "condition key iam:PassedToService does not apply to ec2:RunInstances")
}

// Every deployed function (app's table, which functions/*/main.go and
// apptest wire) has its role in policies.json, as the stack deploys it.
func TestEveryFunctionHasARole(t *testing.T) {
	d := iamcheck.Deployment{Prefix: "ceforge-", Region: region, Table: testenv.Table}
	require.Equal(t, app.FunctionNames(), iamcheck.Functions())
	for _, fn := range app.FunctionNames() {
		r, err := iamcheck.FunctionRole(fn, d)
		require.NoError(t, err)
		require.Equal(t, "arn:aws:iam::"+acct+":role/lambda-ceforge-"+fn, r.ARN)
		require.NotEmpty(t, r.Policies)
	}
}

// awsclient/signed sends the api's EFS and FSx describes, SSM
// GetParameter, IAM GetInstanceProfile and ECS DescribeContainerInstances
// without SDK clients (no
// middleware sees them): the function factory's HTTP client
// records them as the function's, named as the SDK names them, and they
// meet its role like any other call; calls through a customer's role are
// counted apart.
func TestHandSignedCallsAreChecked(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	fs, err := efs.NewFromConfig(env.AWS.Config(region)).CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("data")})
	require.NoError(t, err)
	id := aws.ToString(fs.FileSystemId)
	api := env.Function(app.FnAPI)
	reader := fsread.New(api.Config(region))
	got, err := reader.EFS(ctx, id)
	require.NoError(t, err)
	require.Equal(t, id, got.ID)
	_, err = reader.FSxByDNSName(ctx, "fs-0123.fsx."+region+".amazonaws.com")
	require.NoError(t, err)
	// SSM and IAM reads the api sends the same way.
	_, err = ssmparam.New(api.Config(region)).Parameter(ctx, "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id")
	require.NoError(t, err)
	_, err = profileread.New(api.Config(region)).GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String("ceforge-missing")})
	require.Error(t, err, "no such profile: the call is still made, and checked")
	_, err = ecsread.New(api.Config(region)).EC2InstanceOf(ctx, "arn:aws:ecs:"+region+":"+acct+":container-instance/AWSBatch-studio/0123456789abcdef")
	require.NoError(t, err, "no such cluster: no host")
	customer := "arn:aws:iam::210987654321:role/ceforge-customer"
	api.UseRegistry(anyRole) // the test stands in for the credentials registry
	other, err := fsread.New(api.ForRole(region, awsclient.Credentials{RoleARN: customer, ExternalID: externalID})).EFS(ctx, id)
	require.NoError(t, err)
	require.Nil(t, other, "the customer's account holds no such file system")

	calls := env.TakeCalls()
	var names []string
	for _, c := range calls {
		require.Equal(t, app.FnAPI, c.Function)
		if c.ActingAs == "" && c.Service != "STS" {
			names = append(names, c.Name())
		}
	}
	require.Equal(t, []string{"EFS.DescribeFileSystems", "EFS.DescribeMountTargets", "FSx.DescribeFileSystems", "SSM.GetParameter", "IAM.GetInstanceProfile", "ECS.DescribeContainerInstances"}, names)
	var acting []string
	for _, c := range calls {
		if c.ActingAs == customer {
			acting = append(acting, c.Name())
		}
	}
	require.Equal(t, []string{"EFS.DescribeFileSystems"}, acting, "the assumed role's call")

	d := env.Deployment
	require.Empty(t, iamcheck.Check(calls, iamcheck.DeploymentRoles(d)), "the api role allows validation's reads")
	role := narrowed(t, d, app.FnAPI, "DescribeComputeInputs", func(st map[string]any) bool {
		var kept []any
		for _, a := range st["Action"].([]any) {
			if a != "elasticfilesystem:DescribeMountTargets" {
				kept = append(kept, a)
			}
		}
		st["Action"] = kept
		return true
	})
	findings := iamcheck.Check(calls, only(d, app.FnAPI, role))
	require.Len(t, findings, 1)
	require.Equal(t, iamcheck.FindingDenied, findings[0].Kind)
	require.Contains(t, findings[0].String(), "function api (role lambda-ceforge-api) would be DENIED elasticfilesystem:DescribeMountTargets on arn:aws:elasticfilesystem:"+region+":"+acct+":file-system/"+id)
}

// externalID is one ceforge would generate (internal/member): the
// functions assume roles only with one.
const externalID = "ceforge-0123456789abcdef0123456789abcdef01234567"

// anyRole stands in for the credentials registry (internal/credential),
// without which a factory assumes no role.
func anyRole(context.Context, awsclient.Credentials) error { return nil }

// Calls acting through a role in another account (a compute environment's
// credentials.roleArn) are evaluated against the role registered for it
// (Deployment.Members, a member stack's role), with resource ARNs and tags
// of that account; calls through an unregistered role are counted apart.
func TestCallsThroughAMemberRole(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	const member = "210987654321"
	memberRole := "arn:aws:iam::" + member + ":role/ceforge-member"
	// An instance of ceforge's in the member account, seen by the tier's
	// lookups through that account.
	seed := ec2.NewFromConfig(env.AWS.Config(region), func(o *ec2.Options) {
		o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("x-moto-account-id", member))
	})
	run, err := seed.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-12c6146b"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("ceforge:managed"), Value: aws.String("true")}}}}})
	require.NoError(t, err)
	id := aws.ToString(run.Instances[0].InstanceId)

	reconciler := env.Function(app.FnReconciler)
	reconciler.UseRegistry(anyRole)
	inMember := ec2.NewFromConfig(reconciler.ForRole(region, awsclient.Credentials{RoleARN: memberRole, ExternalID: externalID}))
	_, err = inMember.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err, "the assumed role acts in the member account")
	_, err = inMember.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err)
	_, err = ec2.NewFromConfig(reconciler.ForRole(region, awsclient.Credentials{RoleARN: "arn:aws:iam::" + member + ":role/ceforge-other", ExternalID: externalID})).
		DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	require.NoError(t, err)
	calls := env.TakeCalls()

	d := env.Deployment
	d.Members = map[string]iamcheck.Role{"ceforge-member": {Policies: []iamcheck.Policy{{Name: "member", Document: map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{
			map[string]any{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"},
			map[string]any{"Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "arn:aws:ec2:*:" + member + ":instance/*",
				"Condition": map[string]any{"StringEquals": map[string]any{"aws:ResourceTag/ceforge:managed": "true"}}},
		},
	}}}}}
	require.Empty(t, iamcheck.Check(calls, iamcheck.DeploymentRoles(d)), "the member role allows both, the instance's tag read in its account")

	d.Members["ceforge-member"].Policies[0].Document.(map[string]any)["Statement"] = []any{
		map[string]any{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"},
	}
	f := iamcheck.Check(calls, iamcheck.DeploymentRoles(d))
	require.Len(t, f, 1)
	require.Equal(t, iamcheck.FindingDenied, f[0].Kind)
	require.Equal(t, memberRole, f[0].Role)
	require.Contains(t, f[0].String(), "DENIED ec2:TerminateInstances on arn:aws:ec2:"+region+":"+member+":instance/"+id)

	// Without a registration, the member stack's role (ceforge-member) is
	// evaluated as synthesized (it allows both); calls through any other
	// role (ceforge-other) are not evaluated.
	require.Empty(t, iamcheck.Check(calls, iamcheck.DeploymentRoles(env.Deployment)))
	var others []*iamcheck.Call
	for _, c := range calls {
		if strings.HasSuffix(c.ActingAs, ":role/ceforge-other") {
			others = append(others, c)
		}
	}
	require.Len(t, others, 1)
	require.Empty(t, iamcheck.Check(others, iamcheck.DeploymentRoles(iamcheck.Deployment{Prefix: "ceforge-", Region: region, Table: testenv.Table,
		Members: map[string]iamcheck.Role{"ceforge-member": {Policies: []iamcheck.Policy{{Name: "nothing", Document: map[string]any{
			"Version": "2012-10-17", "Statement": []any{map[string]any{"Effect": "Deny", "Action": "*", "Resource": "*"}}}}}}},
	})), "ceforge-other's call is counted apart, whatever the member role allows")
}

// The member stack's role, as synthesized (policies.json "member"), is
// what calls through it meet when no test registers another: it holds
// what the functions do in a member account (here the Batch studio grants
// the api holds, and writing pipeline secrets) and never reads a pipeline
// secret. The control plane's functions assume it only with a ceforge
// External ID.
func TestMemberRoleAsSynthesized(t *testing.T) {
	const member = "210987654321"
	roleARN := "arn:aws:iam::" + member + ":role/ceforge-member"
	d := iamcheck.Deployment{Prefix: "ceforge-", Region: region, Table: testenv.Table}
	r, err := iamcheck.MemberRole(d, member)
	require.NoError(t, err)
	require.Equal(t, roleARN, r.ARN)
	tags := map[string]string{"ceforge:managed": "true"}
	acting := func(service, op string, in any) *iamcheck.Call {
		return &iamcheck.Call{Function: app.FnAPI, ActingAs: roleARN, Service: service, Operation: op, Region: region, Input: in}
	}
	allowed := []*iamcheck.Call{
		acting("Batch", "RegisterJobDefinition", &batch.RegisterJobDefinitionInput{JobDefinitionName: aws.String("ceforge-ce0001-studio"), Tags: tags,
			ContainerProperties: &btypes.ContainerProperties{Image: aws.String("jupyter/base-notebook"), Privileged: aws.Bool(false)}}),
		acting("ECS", "DescribeContainerInstances", &ecs.DescribeContainerInstancesInput{Cluster: aws.String("AWSBatch-ceforge-ce0001"),
			ContainerInstances: []string{"arn:aws:ecs:" + region + ":" + member + ":container-instance/AWSBatch-ceforge-ce0001/0123456789abcdef"}}),
		acting("Secrets Manager", "CreateSecret", &secretsmanager.CreateSecretInput{Name: aws.String("ceforge-secrets/DB_PASSWORD"),
			Tags: []smtypes.Tag{{Key: aws.String("ceforge:managed"), Value: aws.String("true")}}}),
		{Function: app.FnAPI, Service: "STS", Operation: "AssumeRole", Region: region, Input: &sts.AssumeRoleInput{RoleArn: aws.String(roleARN),
			ExternalId: aws.String(externalID), RoleSessionName: aws.String("ceforge")}},
	}
	require.Empty(t, iamcheck.Check(allowed, iamcheck.DeploymentRoles(d)))

	denied := []*iamcheck.Call{
		acting("Batch", "RegisterJobDefinition", &batch.RegisterJobDefinitionInput{JobDefinitionName: aws.String("someone-elses"), Tags: tags,
			ContainerProperties: &btypes.ContainerProperties{Image: aws.String("jupyter/base-notebook"), Privileged: aws.Bool(false)}}),
		acting("Secrets Manager", "GetSecretValue", &secretsmanager.GetSecretValueInput{SecretId: aws.String("arn:aws:secretsmanager:" + region + ":" + member + ":secret:ceforge-secrets/DB_PASSWORD-AbCdEf")}),
		{Function: app.FnAPI, Service: "STS", Operation: "AssumeRole", Region: region, Input: &sts.AssumeRoleInput{RoleArn: aws.String(roleARN),
			ExternalId: aws.String("someone-elses-id"), RoleSessionName: aws.String("ceforge")}},
	}
	f := iamcheck.Check(denied, iamcheck.DeploymentRoles(d))
	var got []string
	for _, x := range f {
		require.Equal(t, iamcheck.FindingDenied, x.Kind, x.String())
		got = append(got, x.Request.Action)
	}
	require.Equal(t, []string{"batch:RegisterJobDefinition", "batch:TagResource", "secretsmanager:GetSecretValue", "sts:AssumeRole"}, got)
}

// The report counts what the test environment evaluates when a test ends
// (CheckAndCount), not the tier's own tests' deliberate denials (Check):
// those would fail make test's report.
func TestOnlyTheEndOfTestEvaluationIsCounted(t *testing.T) {
	deployed := iamcheck.DeploymentRoles(iamcheck.Deployment{Prefix: "ceforge-", Region: region, Table: testenv.Table})
	call := func(op string, in any) []*iamcheck.Call {
		return []*iamcheck.Call{{Function: "sweeper", Service: "EC2", Operation: op, Region: region, Input: in}}
	}
	count := func(r iamcheck.Report, action string) (requests, denied int) {
		for _, s := range r.Shapes {
			if s.Function == "sweeper" && s.Action == action {
				requests, denied = requests+s.Requests, denied+s.Denied
			}
		}
		return
	}
	before := iamcheck.Snapshot()
	f := iamcheck.Check(call("TerminateInstances", &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}}), deployed)
	require.Len(t, f, 1, "an untagged instance")
	require.Equal(t, iamcheck.FindingDenied, f[0].Kind)
	mid := iamcheck.Snapshot()
	require.Equal(t, before.Calls, mid.Calls, "Check counts nothing")
	r0, d0 := count(before, "ec2:TerminateInstances")
	r1, d1 := count(mid, "ec2:TerminateInstances")
	require.Equal(t, [2]int{r0, d0}, [2]int{r1, d1})

	require.Empty(t, iamcheck.CheckAndCount(call("DescribeVolumes", &ec2.DescribeVolumesInput{}), deployed))
	after := iamcheck.Snapshot()
	require.Equal(t, mid.Calls+1, after.Calls)
	r2, _ := count(mid, "ec2:DescribeVolumes")
	r3, _ := count(after, "ec2:DescribeVolumes")
	require.Equal(t, r2+1, r3)
}
