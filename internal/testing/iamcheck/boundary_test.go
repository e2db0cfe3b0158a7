package iamcheck_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/forgedrole"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/iamcheck"
)

// findings evaluates the calls recorded so far against the deployed roles
// and returns each call's verdict text by "Service.Operation #n" (n counts
// from 1 per operation), "" for an allowed call.
func findings(t *testing.T, env *testenv.Env) map[string]string {
	t.Helper()
	out := map[string]string{}
	seen := map[string]int{}
	for _, c := range env.TakeCalls() {
		seen[c.Name()]++
		key := c.Name() + " #" + strconv.Itoa(seen[c.Name()])
		var msgs []string
		for _, f := range iamcheck.Check([]*iamcheck.Call{c}, iamcheck.DeploymentRoles(env.Deployment)) {
			msgs = append(msgs, f.String())
		}
		out[key] = strings.Join(msgs, "\n")
	}
	return out
}

// The permissions boundary's conditions are evaluated with the values of
// the real calls: the reconciler's role creates and changes forged roles
// only under the deployment's boundary (iam:PermissionsBoundary, the
// request's for CreateRole and PutRolePermissionsBoundary, the role's own
// for PutRolePolicy and AttachRolePolicy), attaches only the AWS managed
// policies ceforge uses (iam:PolicyARN), and never lifts a boundary; a role
// created without the boundary, or changed while it lacks one, is reported
// denied.
func TestBoundaryConditionsHoldTheReconcilersIAMCalls(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	api := iam.NewFromConfig(env.Function(app.FnReconciler).Config(region))
	boundary := testenv.Boundary("ceforge-")
	trust, err := forgedrole.TrustPolicy(forgedrole.PrincipalBatch)
	require.NoError(t, err)
	create := func(name, boundary string) {
		t.Helper()
		in := &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)}
		if boundary != "" {
			in.PermissionsBoundary = aws.String(boundary)
		}
		_, err := api.CreateRole(ctx, in)
		require.NoError(t, err) // the emulator checks no IAM: the tier does
	}
	inline := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`
	put := func(role string) {
		t.Helper()
		_, err := api.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("p"), PolicyDocument: aws.String(inline)})
		require.NoError(t, err)
	}
	attach := func(role, policy string) {
		t.Helper()
		_, err := api.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(role), PolicyArn: aws.String(policy)})
		require.NoError(t, err)
	}

	create("ceforge-bounded-headjob", boundary)                                              // CreateRole #1
	create("ceforge-unbounded-headjob", "")                                                  // CreateRole #2
	create("ceforge-other-headjob", "arn:aws:iam::"+acct+":policy/AdministratorAccess")      // CreateRole #3
	put("ceforge-bounded-headjob")                                                           // PutRolePolicy #1
	put("ceforge-unbounded-headjob")                                                         // PutRolePolicy #2
	attach("ceforge-bounded-headjob", forgedrole.ManagedPolicyARN(forgedrole.PolicySSMCore)) // AttachRolePolicy #1
	attach("ceforge-bounded-headjob", "arn:aws:iam::aws:policy/AdministratorAccess")         // AttachRolePolicy #2
	attach("ceforge-unbounded-headjob", forgedrole.ManagedPolicyARN(forgedrole.PolicySSMCore))
	_, err = api.PutRolePermissionsBoundary(ctx, &iam.PutRolePermissionsBoundaryInput{RoleName: aws.String("ceforge-unbounded-headjob"), PermissionsBoundary: aws.String(boundary)})
	require.NoError(t, err)
	_, err = api.DeleteRolePermissionsBoundary(ctx, &iam.DeleteRolePermissionsBoundaryInput{RoleName: aws.String("ceforge-bounded-headjob")})
	require.NoError(t, err)

	got := findings(t, env)
	role := func(n string) string { return "arn:aws:iam::" + acct + ":role/" + n }
	for call, want := range map[string][]string{
		"IAM.CreateRole #1":       nil,
		"IAM.CreateRole #2":       {"DENIED iam:CreateRole on " + role("ceforge-unbounded-headjob"), `iam:PermissionsBoundary ["` + boundary + `"] fails: the request has no value for it`},
		"IAM.CreateRole #3":       {"DENIED iam:CreateRole", `fails: the request has "arn:aws:iam::` + acct + `:policy/AdministratorAccess"`},
		"IAM.PutRolePolicy #1":    nil,
		"IAM.PutRolePolicy #2":    {"DENIED iam:PutRolePolicy on " + role("ceforge-unbounded-headjob"), "iam:PermissionsBoundary", "the request has no value for it"},
		"IAM.AttachRolePolicy #1": nil,
		"IAM.AttachRolePolicy #2": {"DENIED iam:AttachRolePolicy", `iam:PolicyARN`, `the request has "arn:aws:iam::aws:policy/AdministratorAccess"`},
		// The role had no boundary yet when the policy was attached.
		"IAM.AttachRolePolicy #3":              {"DENIED iam:AttachRolePolicy on " + role("ceforge-unbounded-headjob"), "iam:PermissionsBoundary", "the request has no value for it"},
		"IAM.PutRolePermissionsBoundary #1":    nil,
		"IAM.DeleteRolePermissionsBoundary #1": {"DENIED iam:DeleteRolePermissionsBoundary", "statement NeverLiftTheBoundary denies it explicitly"},
	} {
		f, ok := got[call]
		require.True(t, ok, "%s was not recorded (recorded: %v)", call, got)
		if want == nil {
			require.Empty(t, f, call)
			continue
		}
		for _, w := range want {
			require.Contains(t, f, w, call)
		}
		require.Contains(t, f, "function reconciler (role lambda-ceforge-reconciler)", call)
	}
}

// The other conditions the boundary work relies on, with the values of the
// real calls: the api terminates only jobs tagged ceforge:managed=true
// (aws:ResourceTag, read from the job before the call) and tags jobs only
// with that request tag; the sweeper deletes only volumes so tagged; the
// reconciler's role creates network interfaces only through EFS
// (aws:ViaAWSService), never itself.
func TestResourceTagAndViaServiceConditionsUseTheCallsValues(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	b := batch.NewFromConfig(env.AWS.Config(region))
	role, err := iam.NewFromConfig(env.AWS.Config(region)).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("batch-svc"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
	require.NoError(t, err)
	ce, err := b.CreateComputeEnvironment(ctx, &batch.CreateComputeEnvironmentInput{ComputeEnvironmentName: aws.String("ceforge-jobs"), Type: btypes.CETypeUnmanaged, ServiceRole: role.Role.Arn})
	require.NoError(t, err)
	q, err := b.CreateJobQueue(ctx, &batch.CreateJobQueueInput{JobQueueName: aws.String("ceforge-jobs-head"), Priority: aws.Int32(1), State: btypes.JQStateEnabled,
		ComputeEnvironmentOrder: []btypes.ComputeEnvironmentOrder{{Order: aws.Int32(1), ComputeEnvironment: ce.ComputeEnvironmentArn}}})
	require.NoError(t, err)
	jd, err := b.RegisterJobDefinition(ctx, &batch.RegisterJobDefinitionInput{JobDefinitionName: aws.String("ceforge-head"), Type: btypes.JobDefinitionTypeContainer,
		ContainerProperties: &btypes.ContainerProperties{Image: aws.String("busybox"), Vcpus: aws.Int32(1), Memory: aws.Int32(512)}})
	require.NoError(t, err)
	submit := func(tags map[string]string) string {
		out, err := b.SubmitJob(ctx, &batch.SubmitJobInput{JobName: aws.String("j"), JobQueue: q.JobQueueArn, JobDefinition: jd.JobDefinitionArn, Tags: tags})
		require.NoError(t, err)
		return aws.ToString(out.JobId)
	}
	owned, foreign := submit(map[string]string{"ceforge:managed": "true"}), submit(map[string]string{"team": "x"})
	api := batch.NewFromConfig(env.Function(app.FnAPI).Config(region))
	for _, id := range []string{owned, foreign} {
		_, err := api.TerminateJob(ctx, &batch.TerminateJobInput{JobId: aws.String(id), Reason: aws.String("test")})
		require.NoError(t, err)
	}
	for _, tags := range []map[string]string{{"ceforge:managed": "true", "ceforge:run-id": "r1"}, {"ceforge:run-id": "r1"}} {
		_, err := api.TagResource(ctx, &batch.TagResourceInput{ResourceArn: aws.String("arn:aws:batch:" + region + ":" + acct + ":job/" + owned), Tags: tags})
		require.NoError(t, err)
	}

	e := ec2.NewFromConfig(env.AWS.Config(region))
	volume := func(tags map[string]string) string {
		var ts []ec2types.Tag
		for k, v := range tags {
			ts = append(ts, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		out, err := e.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(region + "a"), Size: aws.Int32(1),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: ts}}})
		require.NoError(t, err)
		return aws.ToString(out.VolumeId)
	}
	ownedVol, foreignVol := volume(map[string]string{"ceforge:managed": "true"}), volume(map[string]string{"team": "x"})
	sweeper := ec2.NewFromConfig(env.Function(app.FnSweeper).Config(region))
	for _, id := range []string{ownedVol, foreignVol} {
		_, err := sweeper.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)})
		require.NoError(t, err)
	}
	// The reconciler creating a network interface itself (not through EFS).
	vpcs, err := e.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	require.NoError(t, err)
	require.NotEmpty(t, vpcs.Subnets)
	_, err = ec2.NewFromConfig(env.Function(app.FnReconciler).Config(region)).CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: vpcs.Subnets[0].SubnetId})
	require.NoError(t, err)

	got := findings(t, env)
	job := func(id string) string { return "arn:aws:batch:" + region + ":" + acct + ":job/" + id }
	vol := func(id string) string { return "arn:aws:ec2:" + region + ":" + acct + ":volume/" + id }
	for call, want := range map[string][]string{
		"Batch.TerminateJob #1": nil,
		"Batch.TerminateJob #2": {"function api", "DENIED batch:TerminateJob on " + job(foreign), `aws:ResourceTag/ceforge:managed ["true"] fails: the request has no value for it`},
		"Batch.TagResource #1":  nil,
		"Batch.TagResource #2":  {"function api", "DENIED batch:TagResource on " + job(owned), `aws:RequestTag/ceforge:managed ["true"] fails: the request has no value for it`},
		"EC2.DeleteVolume #1":   nil,
		"EC2.DeleteVolume #2":   {"function sweeper", "DENIED ec2:DeleteVolume on " + vol(foreignVol), `aws:ResourceTag/ceforge:managed ["true"] fails`},
		"EC2.CreateNetworkInterface #1": {"function reconciler", "DENIED ec2:CreateNetworkInterface",
			`Bool aws:ViaAWSService ["true"] fails: the request has no value for it`},
	} {
		f, ok := got[call]
		require.True(t, ok, "%s was not recorded (recorded: %v)", call, got)
		if want == nil {
			require.Empty(t, f, call)
			continue
		}
		for _, w := range want {
			require.Contains(t, f, w, call)
		}
	}
}

// Fine-grained table access (dynamodb:LeadingKeys) is evaluated with the
// partition keys the real calls name, read through the table's key schema:
// the logs function writes follow leases only, the trace function reads
// runs and writes progress and tasks only. A ForAllValues condition holds
// for a request without the key, so a tier that left it out would pass
// what AWS denies.
func TestLeadingKeysHoldFineGrainedTableAccess(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	item := func(pk string) map[string]ddbtypes.AttributeValue {
		return map[string]ddbtypes.AttributeValue{store.PartitionKey: &ddbtypes.AttributeValueMemberS{Value: pk}}
	}
	table := aws.String(testenv.Table)
	logs := dynamodb.NewFromConfig(env.Function(app.FnLogs).Config(region))
	for _, pk := range []string{"LEASE#caller", "RUN#r1"} {
		_, err := logs.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: item(pk)})
		require.NoError(t, err)
	}
	trace := dynamodb.NewFromConfig(env.Function(app.FnTrace).Config(region))
	for _, pk := range []string{"PROGRESS#r1", "RUN#r1"} {
		_, err := trace.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: table, Key: item(pk),
			UpdateExpression: aws.String("SET v = :v"), ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":v": &ddbtypes.AttributeValueMemberN{Value: "1"}}})
		require.NoError(t, err)
	}
	_, err := trace.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]ddbtypes.KeysAndAttributes{
		testenv.Table: {Keys: []map[string]ddbtypes.AttributeValue{item("RUN#r1"), item("CE#c1")}},
	}})
	require.NoError(t, err)

	got := findings(t, env)
	tableARN := "arn:aws:dynamodb:" + region + ":" + acct + ":table/" + testenv.Table
	for call, want := range map[string][]string{
		"DynamoDB.PutItem #1": nil,
		"DynamoDB.PutItem #2": {"function logs", "DENIED dynamodb:PutItem on " + tableARN, `"dynamodb:LeadingKeys":["RUN#r1"]`,
			`ForAllValues:StringLike dynamodb:LeadingKeys ["LEASE#*"] fails: the request's values ["RUN#r1"] match none of them`},
		"DynamoDB.UpdateItem #1":   nil,
		"DynamoDB.UpdateItem #2":   {"function trace", "DENIED dynamodb:UpdateItem on " + tableARN, `"dynamodb:LeadingKeys":["RUN#r1"]`},
		"DynamoDB.BatchGetItem #1": {"function trace", "DENIED dynamodb:BatchGetItem", `"dynamodb:LeadingKeys":["CE#c1","RUN#r1"]`, `the request's values ["CE#c1"] match none of them`},
	} {
		f, ok := got[call]
		require.True(t, ok, "%s was not recorded (recorded: %v)", call, got)
		if want == nil {
			require.Empty(t, f, call)
			continue
		}
		for _, w := range want {
			require.Contains(t, f, w, call)
		}
	}
}
