package iamcheck_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/cloudce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/iamcheck"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	bucket = "ceforge-work"
	acct   = iamcheck.Account
	region = testenv.Region
)

// expect is one request a forged role must allow (Nextflow heads, tasks
// and hosts need it) or deny (privilege escalation, other buckets).
type expect struct {
	roles  []string // role kinds it applies to
	allow  bool
	action string
	// resource and context keys; {base} is the CE's name base
	// (<prefix><ce-id>), {computeRole} the compute job role's name.
	resource string
	context  map[string]any
	// boundary: the request is held by the permissions boundary of forged
	// roles alone (the AWS managed policies they hold allow it).
	boundary bool
	why      string
}

// Role kinds.
const (
	headJob    = "headjob"    // Nextflow head (Batch job role)
	computeJob = "computejob" // Nextflow tasks (Batch job role)
	instance   = "instance"   // Batch hosts (ECS container instances)
	execution  = "execution"  // Fargate head's execution role
	cloudHead  = "cloud"      // AWS Cloud head instance
)

// The Batch service role is AWS's service-linked role (forgedrole), not
// forged.
var (
	allForged = []string{headJob, computeJob, instance, execution, cloudHead}
	workers   = []string{headJob, computeJob, instance, cloudHead}
)

func expectations() []expect {
	obj := "arn:aws:s3:::" + bucket + "/work/ab/0123456789abcdef/.command.log"
	return []expect{
		// What Nextflow heads and tasks do with the work directory.
		{roles: workers, allow: true, action: "s3:GetObject", resource: obj, why: "read task inputs and outputs in the work directory"},
		{roles: workers, allow: true, action: "s3:PutObject", resource: obj, why: "write task outputs in the work directory"},
		{roles: []string{headJob, computeJob, instance}, allow: true, action: "s3:DeleteObject", resource: obj, why: "clean the work directory"},
		{roles: workers, allow: true, action: "s3:ListBucket", resource: "arn:aws:s3:::" + bucket, context: map[string]any{"s3:prefix": "work/"}, why: "list the work directory"},
		{roles: []string{headJob, computeJob}, allow: false, action: "s3:GetObject", resource: "arn:aws:s3:::someone-elses-bucket/data.csv", why: "buckets other than the work and allowed ones"},
		{roles: []string{headJob, computeJob}, allow: false, action: "s3:PutObject", resource: "arn:aws:s3:::someone-elses-bucket/data.csv", why: "buckets other than the work and allowed ones"},
		{roles: []string{cloudHead, instance}, allow: false, action: "s3:PutObject", resource: "arn:aws:s3:::someone-elses-bucket/data.csv", why: "writing buckets other than the work and allowed ones"},
		// What the Nextflow head does with AWS Batch.
		{roles: []string{headJob}, allow: true, action: "batch:RegisterJobDefinition", resource: "arn:aws:batch:" + region + ":" + acct + ":job-definition/nf-quay-io-biocontainers-fastqc", why: "one job definition per task container"},
		{roles: []string{headJob}, allow: true, action: "batch:SubmitJob", resource: "arn:aws:batch:" + region + ":" + acct + ":job-queue/{base}-work", why: "submit tasks to the compute queue"},
		{roles: []string{headJob}, allow: true, action: "batch:SubmitJob", resource: "arn:aws:batch:" + region + ":" + acct + ":job-definition/nf-quay-io-biocontainers-fastqc:1", why: "submit tasks with their job definition"},
		{roles: []string{headJob}, allow: true, action: "batch:DescribeJobs", resource: "*", why: "poll task states"},
		{roles: []string{headJob}, allow: true, action: "batch:DescribeJobQueues", resource: "*", why: "check the compute queue"},
		{roles: []string{headJob}, allow: true, action: "batch:TerminateJob", resource: "arn:aws:batch:" + region + ":" + acct + ":job/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", why: "kill tasks on cancel"},
		{roles: []string{headJob}, allow: true, action: "iam:PassRole", resource: "arn:aws:iam::" + acct + ":role/{computeRole}", context: map[string]any{"iam:PassedToService": "batch.amazonaws.com"}, why: "tasks run with the compute job role"},
		{roles: []string{headJob}, allow: true, action: "logs:GetLogEvents", resource: "arn:aws:logs:" + region + ":" + acct + ":log-group:/aws/batch/job/{base}:log-stream:nf-task/default/0123", why: "show a failed task's log"},
		{roles: []string{computeJob}, allow: false, action: "batch:SubmitJob", resource: "arn:aws:batch:" + region + ":" + acct + ":job-queue/{base}-work", why: "tasks submit nothing"},
		// The head reads its run's progress token (internal/runtoken), of
		// its own compute environment only: with another CE's, a pipeline
		// could report progress, or a crossed cost limit that cancels, for
		// runs it does not own (the tier found AWS Cloud heads could).
		{roles: []string{headJob}, allow: true, action: "secretsmanager:GetSecretValue", resource: "arn:aws:secretsmanager:" + region + ":" + acct + ":secret:{prefix}trace/0123456789abcd-AbCdEf",
			context: map[string]any{"aws:ResourceTag/ceforge:ce-id": "{ce}", "aws:ResourceTag/ceforge:managed": "true"}, why: "the head reports its run's progress with the run's token"},
		{roles: []string{cloudHead}, allow: true, action: "secretsmanager:GetSecretValue", resource: "arn:aws:secretsmanager:" + region + ":" + acct + ":secret:{prefix}trace/0123456789abcd-AbCdEf",
			context: map[string]any{"aws:ResourceTag/ceforge:ce-id": "{cloud}", "aws:ResourceTag/ceforge:managed": "true"}, why: "the AWS Cloud head reports its run's progress"},
		{roles: []string{headJob, cloudHead}, allow: false, action: "secretsmanager:GetSecretValue", resource: "arn:aws:secretsmanager:" + region + ":" + acct + ":secret:{prefix}trace/0123456789abcd-AbCdEf",
			context: map[string]any{"aws:ResourceTag/ceforge:ce-id": "otherce0000001", "aws:ResourceTag/ceforge:managed": "true"}, why: "another compute environment's run token"},
		// What Batch hosts and Fargate heads do.
		{roles: []string{instance, execution}, allow: true, action: "ecr:GetAuthorizationToken", resource: "*", why: "pull task images"},
		{roles: []string{instance, execution, cloudHead}, allow: true, action: "ecr:BatchGetImage", resource: "arn:aws:ecr:" + region + ":" + acct + ":repository/nextflow", why: "pull images from ECR"},
		{roles: []string{instance, execution, cloudHead}, allow: true, action: "ecr:GetDownloadUrlForLayer", resource: "arn:aws:ecr:" + region + ":" + acct + ":repository/nextflow", why: "pull image layers from ECR"},
		{roles: []string{instance, execution}, allow: true, action: "logs:PutLogEvents", resource: "arn:aws:logs:" + region + ":" + acct + ":log-group:/aws/batch/job/{base}:log-stream:head/default/0123", why: "container logs"},
		{roles: []string{instance, execution}, allow: true, action: "logs:CreateLogStream", resource: "arn:aws:logs:" + region + ":" + acct + ":log-group:/aws/batch/job/{base}:log-stream:head/default/0123", why: "container logs"},
		{roles: []string{instance}, allow: true, action: "ecs:RegisterContainerInstance", resource: "arn:aws:ecs:" + region + ":" + acct + ":cluster/AWSBatch-{base}-work", why: "hosts join the Batch cluster"},
		{roles: []string{instance, cloudHead}, allow: true, action: "ssm:UpdateInstanceInformation", resource: "arn:aws:ec2:" + region + ":" + acct + ":instance/i-0123456789abcdef0", why: "SSM core (studio port forwarding, debugging)"},
		{roles: []string{cloudHead}, allow: true, action: "logs:PutLogEvents", resource: "arn:aws:logs:" + region + ":" + acct + ":log-group:/ceforge/runs:log-stream:0123456789abcd", why: "the head's console log"},

		// Privilege escalation: never, from any forged role.
		{roles: allForged, action: "iam:AttachRolePolicy", resource: "arn:aws:iam::" + acct + ":role/{base}-headjob", context: map[string]any{"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}, why: "attach AdministratorAccess to a forged role"},
		{roles: allForged, action: "iam:CreateRole", resource: "arn:aws:iam::" + acct + ":role/ceforge-escalated", why: "create a role"},
		{roles: allForged, action: "iam:PutRolePolicy", resource: "arn:aws:iam::" + acct + ":role/{base}-headjob", why: "widen a forged role"},
		{roles: allForged, action: "iam:PutRolePermissionsBoundary", resource: "arn:aws:iam::" + acct + ":role/{base}-headjob", context: map[string]any{"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}, why: "swap a boundary"},
		{roles: allForged, action: "iam:DeleteRolePermissionsBoundary", resource: "arn:aws:iam::" + acct + ":role/{base}-headjob", why: "drop a boundary"},
		{roles: allForged, action: "sts:AssumeRole", resource: "arn:aws:iam::" + acct + ":role/OrganizationAccountAccessRole", why: "assume another role"},
		{roles: []string{headJob, computeJob, instance, execution, cloudHead}, action: "iam:PassRole", resource: "arn:aws:iam::" + acct + ":role/admin", context: map[string]any{"iam:PassedToService": "ec2.amazonaws.com"}, why: "pass a role that is not ceforge's"},
		{roles: []string{headJob, computeJob, execution, cloudHead}, action: "ec2:RunInstances", resource: "arn:aws:ec2:" + region + ":" + acct + ":instance/*", why: "start instances"},
		// Held by the boundary only: the AWS managed policies allow them.
		{roles: []string{instance, cloudHead}, boundary: true, action: "ssm:GetParameter", resource: "arn:aws:ssm:" + region + ":" + acct + ":parameter/prod/db-password", why: "AmazonSSMManagedInstanceCore reads every parameter"},
		{roles: []string{cloudHead}, boundary: true, action: "s3:GetObject", resource: "arn:aws:s3:::someone-elses-bucket/data.csv", why: "AmazonS3ReadOnlyAccess reads every bucket"},
	}
}

// TestForgedRolesAllowNextflowAndDenyEscalation forges two Batch CEs (EC2
// hosts with EBS auto-scale; a Fargate head: every role the forge makes)
// and an AWS Cloud CE through the deployed functions, reads each role the reconciler
// created as the account holds it (inline and AWS managed policies, the
// permissions boundary) and evaluates what Nextflow heads, tasks and hosts
// do, and privilege escalation, with the tier's evaluator.
func TestForgedRolesAllowNextflowAndDenyEscalation(t *testing.T) {
	h := apptest.New(t)
	ctx := context.Background()
	cfg := h.AWS.Config(region)
	_, err := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)

	create := func(req computeenv.CreateRequest) string {
		req.Region, req.WorkDir = region, "s3://"+bucket+"/work"
		res := h.Do(t, "POST", "/compute-envs", req)
		require.Equal(t, 201, res.Status, string(res.Body))
		var ce computeenv.ComputeEnv
		res.JSON(t, &ce)
		return ce.ID
	}
	// EC2 hosts with EBS auto-scale, and a Fargate head (execution role).
	ebs := create(computeenv.CreateRequest{Name: "ebs", Platform: computeenv.PlatformBatch,
		Batch: &computeenv.BatchOptions{Forge: &computeenv.ForgeOptions{Type: "SPOT", MaxCpus: 64, EbsAutoScale: true}}})
	fargate := create(computeenv.CreateRequest{Name: "fargate", Platform: computeenv.PlatformBatch, Batch: &computeenv.BatchOptions{
		WaveEnabled: true, Fusion2Enabled: true, Forge: &computeenv.ForgeOptions{Type: "SPOT", MaxCpus: 64, FargateHeadEnabled: true}}})
	cloud := create(computeenv.CreateRequest{Name: "cloud", Platform: computeenv.PlatformCloud})
	for i := 0; i < 10; i++ {
		require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	}
	for _, id := range []string{ebs, fargate, cloud} {
		ce, err := h.Reconciler.ComputeEnvs.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	}

	names := forge.NamesFor(h.Config.Prefix, ebs)
	roleNames := map[string]string{
		headJob: names.HeadJobRole, computeJob: names.ComputeJobRole, instance: names.InstanceRole,
		execution: forge.NamesFor(h.Config.Prefix, fargate).ExecutionRole,
		cloudHead: (&cloudce.Platform{Prefix: h.Config.Prefix}).RoleName(cloud),
	}
	d := iamcheck.Deployment{Prefix: h.Config.Prefix, Region: region, Table: testenv.Table}
	boundary, ok := iamcheck.ManagedPolicy(h.Config.Prefix+"boundary", d)
	require.True(t, ok, "the stack deploys the permissions boundary %sboundary", h.Config.Prefix)
	boundaryARN := "arn:aws:iam::" + acct + ":policy/" + boundary.Name
	require.Len(t, roleNames, len(allForged))
	api := iam.NewFromConfig(cfg)
	roles := map[string]iamcheck.Role{}
	for kind, name := range roleNames {
		// The boundary is the stack's policy, which the emulator's account
		// does not hold: the rendered one stands for it.
		r, err := iamcheck.RoleFromAccount(ctx, api, name, map[string]iamcheck.Policy{boundaryARN: boundary})
		require.NoError(t, err, kind)
		require.Len(t, r.Boundaries, 1, "every forged role carries %s (%s does not)", boundary.Name, name)
		require.Equal(t, boundary, r.Boundaries[0], name)
		roles[kind] = r
	}

	fill := strings.NewReplacer("{base}", names.Base, "{computeRole}", names.ComputeJobRole, "{prefix}", h.Config.Prefix, "{ce}", ebs, "{cloud}", cloud)
	checked := 0
	for _, e := range expectations() {
		for _, kind := range e.roles {
			role := roles[kind]
			ctx := map[string]any{}
			for k, v := range e.context {
				if s, ok := v.(string); ok {
					v = fill.Replace(s)
				}
				ctx[k] = v
			}
			req := iamcheck.Request{Action: e.action, Resource: fill.Replace(e.resource), Context: ctx}
			v, err := iamcheck.Evaluate(role, []iamcheck.Request{req})
			require.NoError(t, err)
			require.Empty(t, v[0].Mapping, "%s on %s", req.Action, req.Resource)
			checked++
			if v[0].Allowed() != e.allow {
				verb := map[bool]string{true: "deny", false: "allow"}[e.allow]
				t.Errorf("forged %s role %s would %s %s on %s (%s)%s", kind, roleName(role.ARN), verb, req.Action, req.Resource, e.why, why(v[0]))
			}
			if e.boundary {
				// Held by the boundary alone: without it the role allows it.
				unbounded := role
				unbounded.Boundaries = nil
				v, err := iamcheck.Evaluate(unbounded, []iamcheck.Request{req})
				require.NoError(t, err)
				require.True(t, v[0].Allowed(), "%s on %s: the %s role allows it without the boundary, so the boundary is what holds it%s", req.Action, req.Resource, kind, why(v[0]))
			}
		}
	}
	t.Logf("%d forged-role requests checked", checked)
}

func roleName(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

func why(v iamcheck.Verdict) string {
	if len(v.Why) == 0 {
		return ""
	}
	return ": " + strings.Join(v.Why, "; ")
}
