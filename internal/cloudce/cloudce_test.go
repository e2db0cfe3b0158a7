package cloudce_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/shellstub"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) {
	// The user-data tests run this binary as their `aws` command.
	if ok, code := shellstub.FakeAWSCLI(); ok {
		os.Exit(code)
	}
	os.Exit(testenv.Main(m))
}

const (
	workBucket  = "ceforge-work"
	otherBucket = "ceforge-other"
	sampleID    = "i-0abcd1234ef567890" // instance id in events/ec2-*.json
)

// fixture is a harness with the AWS clients the assertions use.
type fixture struct {
	*apptest.Harness
	EC2 *ec2.Client
	IAM *iam.Client
	S3  *s3.Client
	SSM *ssm.Client
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	h := apptest.New(t)
	cfg := h.AWS.Config(testenv.Region)
	f := &fixture{
		Harness: h, EC2: ec2.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg),
		S3: s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
	}
	ctx := context.Background()
	for _, b := range []string{workBucket, otherBucket} {
		_, err := f.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)})
		require.NoError(t, err)
	}
	return f
}

func ceBody(mutate ...func(map[string]any, map[string]any)) map[string]any {
	cloud := map[string]any{}
	body := map[string]any{
		"name": "cloud-" + fmt.Sprint(time.Now().UnixNano()), "platform": "aws-cloud", "region": testenv.Region,
		"workDir": "s3://" + workBucket + "/work", "cloud": cloud,
		"labels": map[string]string{"team": "genomics"}, "nextflowConfig": "process.executor = 'local'",
		"environment": []map[string]any{{"name": "FOO", "value": "bar baz", "head": true, "compute": false}},
	}
	for _, m := range mutate {
		m(body, cloud)
	}
	return body
}

func (f *fixture) createCE(t testing.TB, body map[string]any) computeenv.ComputeEnv {
	t.Helper()
	res := f.Do(t, http.MethodPost, "/compute-envs", body)
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	// The api validated and recorded it; the reconciler it handed the CE
	// to created the role and instance profile.
	res = f.Do(t, http.MethodGet, "/compute-envs/"+ce.ID, nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	res.JSON(t, &ce)
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	return ce
}

func (f *fixture) launch(t testing.TB, body map[string]any, headers ...string) run.Run {
	t.Helper()
	res := f.Do(t, http.MethodPost, "/runs", body, headers...)
	require.Contains(t, []int{http.StatusCreated, http.StatusOK}, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	return r
}

func (f *fixture) getRun(t testing.TB, id string) run.Run {
	t.Helper()
	res := f.Do(t, http.MethodGet, "/runs/"+id, nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	return r
}

// event loads a sample from events/ for an instance, at time at.
func event(t testing.TB, name, instanceID string, at time.Time) eventsrc.Message {
	t.Helper()
	raw, err := os.ReadFile("../../events/" + name)
	require.NoError(t, err)
	var env map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.ReplaceAll(string(raw), sampleID, instanceID)), &env))
	env["time"] = at.UTC().Format(time.RFC3339Nano)
	body, err := json.Marshal(env)
	require.NoError(t, err)
	return eventsrc.Message{ID: name + "-" + instanceID + "-" + at.Format(time.RFC3339Nano), Body: string(body)}
}

func (f *fixture) feed(t testing.TB, msgs ...eventsrc.Message) eventsrc.Outcome {
	t.Helper()
	failed, out := f.EC2Events.EC2Events.Process(context.Background(), msgs)
	require.Empty(t, failed)
	return out
}

func (f *fixture) putExit(t testing.TB, runID, body string) {
	t.Helper()
	_, err := f.S3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(workBucket), Key: aws.String("work/.ceforge/runs/" + runID + "/exit-status"), Body: strings.NewReader(body),
	})
	require.NoError(t, err)
}

func (f *fixture) instance(t testing.TB, id string) ec2types.Instance {
	t.Helper()
	out, err := f.EC2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err)
	require.Len(t, out.Reservations, 1)
	return out.Reservations[0].Instances[0]
}

func tagMap(ts []ec2types.Tag) map[string]string {
	out := map[string]string{}
	for _, t := range ts {
		out[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return out
}

func policyText(t testing.TB, doc *string) string {
	t.Helper()
	s, err := url.QueryUnescape(aws.ToString(doc))
	require.NoError(t, err)
	return s
}

func pipelineBody(ceID string) map[string]any {
	return map[string]any{
		"kind": "pipeline", "computeEnvId": ceID, "pipeline": "https://github.com/nf-core/rnaseq", "revision": "3.14.0",
		"configProfiles": []string{"test", "docker"}, "paramsText": `{"outdir": "s3://ceforge-work/out"}`,
		"configText": "process.cpus = 2", "preRunScript": "echo 'pre $(id)'", "labels": map[string]string{"project": "p1"},
	}
}

func TestCloudEndToEnd(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ce := f.createCE(t, ceBody(func(_ map[string]any, c map[string]any) {
		c["spotStudios"] = true
		c["allowBuckets"] = []string{"s3://" + otherBucket}
	}))

	// Defaults resolved at creation: a launch needs nothing else.
	require.Equal(t, "m6i.xlarge", ce.Cloud.InstanceType)
	require.Equal(t, 50, ce.Cloud.EbsBootSize)
	require.Equal(t, 168, ce.Cloud.MaxRunHours)
	require.NotEmpty(t, ce.Cloud.VpcID)
	require.NotEmpty(t, ce.Cloud.SubnetIDs)
	ami, err := f.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id")})
	require.NoError(t, err)
	require.Equal(t, aws.ToString(ami.Parameter.Value), ce.Cloud.ImageID)

	// IAM: role (trust ec2, tagged), 3 managed + 3 inline policies, profile with the role.
	roleName := "ceforge-" + ce.ID + "-instance"
	role, err := f.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(roleName)})
	require.NoError(t, err)
	require.Contains(t, aws.ToString(role.Role.AssumeRolePolicyDocument), "ec2.amazonaws.com")
	roleTags := map[string]string{}
	for _, tg := range role.Role.Tags {
		roleTags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	require.Equal(t, map[string]string{"ceforge:managed": "true", "ceforge:ce-id": ce.ID, "team": "genomics"}, roleTags)
	attached, err := f.IAM.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(roleName)})
	require.NoError(t, err)
	var arns []string
	for _, p := range attached.AttachedPolicies {
		arns = append(arns, aws.ToString(p.PolicyArn))
	}
	require.ElementsMatch(t, []string{
		"arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
		"arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly", "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
	}, arns)
	inline, err := f.IAM.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(roleName)})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"ceforge-" + ce.ID + "-s3", "ceforge-" + ce.ID + "-secrets", "ceforge-" + ce.ID + "-kms-s3"}, inline.PolicyNames)
	s3pol, err := f.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(roleName), PolicyName: aws.String("ceforge-" + ce.ID + "-s3")})
	require.NoError(t, err)
	doc := policyText(t, s3pol.PolicyDocument) // IAM returns documents URL-encoded
	require.Contains(t, doc, `"Resource":"arn:aws:s3:::`+workBucket+`/*"`)
	require.Contains(t, doc, `"Resource":"arn:aws:s3:::`+otherBucket+`"`)
	kms, err := f.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(roleName), PolicyName: aws.String("ceforge-" + ce.ID + "-kms-s3")})
	require.NoError(t, err)
	require.Contains(t, policyText(t, kms.PolicyDocument), `"kms:ViaService":"s3.*.amazonaws.com"`)
	prof, err := f.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(roleName)})
	require.NoError(t, err)
	require.Len(t, prof.InstanceProfile.Roles, 1)
	require.Equal(t, roleName, aws.ToString(prof.InstanceProfile.Roles[0].RoleName))
	profTags := map[string]string{} // moto lacks ListInstanceProfileTags; GetInstanceProfile carries them
	for _, tg := range prof.InstanceProfile.Tags {
		profTags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	require.Equal(t, roleTags, profTags)

	// A pipeline: the instance with tags, IMDSv2, encrypted gp3 boot volume, user-data.
	pipe := f.launch(t, pipelineBody(ce.ID))
	require.Equal(t, run.StatusSubmitted, pipe.Status)
	require.NotNil(t, pipe.Backend)
	require.Equal(t, run.BackendEC2, pipe.Backend.Type)
	require.Equal(t, &run.LogRef{Group: "/ceforge/runs", Stream: pipe.ID}, pipe.Logs)
	inst := f.instance(t, pipe.Backend.InstanceID)
	require.Equal(t, ec2types.InstanceType("m6i.xlarge"), inst.InstanceType)
	require.Equal(t, ce.Cloud.ImageID, aws.ToString(inst.ImageId))
	require.Contains(t, ce.Cloud.SubnetIDs, aws.ToString(inst.SubnetId))
	require.Equal(t, ec2types.HttpTokensStateRequired, inst.MetadataOptions.HttpTokens)
	require.Equal(t, aws.ToString(prof.InstanceProfile.Arn), aws.ToString(inst.IamInstanceProfile.Arn))
	require.Empty(t, inst.InstanceLifecycle, "a pipeline runs on demand")
	wantTags := map[string]string{
		"ceforge:managed": "true", "ceforge:ce-id": ce.ID, "ceforge:run-id": pipe.ID,
		"Name": "ceforge-" + pipe.RunName, "team": "genomics", "project": "p1",
	}
	require.Equal(t, wantTags, tagMap(inst.Tags))
	vols, err := f.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{pipe.Backend.InstanceID}}}})
	require.NoError(t, err)
	require.Len(t, vols.Volumes, 1)
	v := vols.Volumes[0]
	require.Equal(t, ec2types.VolumeTypeGp3, v.VolumeType)
	require.Equal(t, int32(50), aws.ToInt32(v.Size))
	require.True(t, aws.ToBool(v.Encrypted))
	require.Equal(t, wantTags, tagMap(v.Tags))
	ud, err := f.EC2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: inst.InstanceId, Attribute: ec2types.InstanceAttributeNameUserData})
	require.NoError(t, err)
	script, err := base64.StdEncoding.DecodeString(aws.ToString(ud.UserData.Value))
	require.NoError(t, err)
	for _, want := range []string{
		"CEFORGE_RUN_ID='" + pipe.ID + "'", "CEFORGE_WORK_DIR='s3://ceforge-work/work'", "CEFORGE_PIPELINE='https://github.com/nf-core/rnaseq'",
		"CEFORGE_PRE_RUN='echo '\"'\"'pre $(id)'\"'\"''", "export FOO='bar baz'", "process.executor = '\"'\"'local'\"'\"'",
		"CEFORGE_MAX_RUN_MINUTES='10080'", "NXF_CLOUDCACHE_PATH",
	} {
		require.Contains(t, string(script), want)
	}
	sd, err := f.EC2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: inst.InstanceId, Attribute: ec2types.InstanceAttributeNameInstanceInitiatedShutdownBehavior})
	require.NoError(t, err)
	require.Equal(t, "terminate", aws.ToString(sd.InstanceInitiatedShutdownBehavior.Value))

	// Events: pending (no-op), running, shutting-down (not final), terminated + exit 0.
	t0 := time.Now()
	f.feed(t, event(t, "ec2-pending.json", pipe.Backend.InstanceID, t0), event(t, "ec2-running.json", pipe.Backend.InstanceID, t0.Add(time.Second)))
	got := f.getRun(t, pipe.ID)
	require.Equal(t, run.StatusRunning, got.Status)
	require.NotNil(t, got.TimeToRunningMs)
	require.NotNil(t, got.Timeline.Running)
	f.feed(t, event(t, "ec2-shutting-down.json", pipe.Backend.InstanceID, t0.Add(2*time.Second)))
	require.Equal(t, run.StatusRunning, f.getRun(t, pipe.ID).Status)
	f.putExit(t, pipe.ID, "0\n")
	f.feed(t, event(t, "ec2-terminated.json", pipe.Backend.InstanceID, t0.Add(3*time.Second)))
	got = f.getRun(t, pipe.ID)
	require.Equal(t, run.StatusSucceeded, got.Status)
	require.Equal(t, 0, *got.ExitCode)
	require.NotNil(t, got.Timeline.Completed)
	// Duplicates and late events are no-ops.
	f.feed(t, event(t, "ec2-running.json", pipe.Backend.InstanceID, t0.Add(4*time.Second)), event(t, "ec2-terminated.json", pipe.Backend.InstanceID, t0.Add(5*time.Second)))
	require.Equal(t, run.StatusSucceeded, f.getRun(t, pipe.ID).Status)

	// A Spot studio, interrupted.
	studio := f.launch(t, map[string]any{"kind": "studio", "computeEnvId": ce.ID, "studio": map[string]any{"image": "jupyter/base-notebook:latest", "spot": true}})
	sinst := f.instance(t, studio.Backend.InstanceID)
	require.Equal(t, ec2types.InstanceLifecycleTypeSpot, sinst.InstanceLifecycle)
	require.Equal(t, ec2types.HttpTokensStateRequired, sinst.MetadataOptions.HttpTokens)
	require.Equal(t, studio.ID, tagMap(sinst.Tags)["ceforge:run-id"])
	require.Equal(t, 8888, studio.Studio.Port)
	// Through the Lambda's SQS entry point, as deployed.
	msg := event(t, "ec2-running.json", studio.Backend.InstanceID, t0)
	sqsRes, err := f.EC2Events.EC2Events.SQSHandler()(ctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: msg.ID, Body: msg.Body}}})
	require.NoError(t, err)
	require.Empty(t, sqsRes.BatchItemFailures)
	require.Equal(t, run.StatusRunning, f.getRun(t, studio.ID).Status)
	f.feed(t, event(t, "ec2-spot-interruption-warning.json", studio.Backend.InstanceID, t0.Add(time.Second)))
	got = f.getRun(t, studio.ID)
	require.Equal(t, run.StatusRunning, got.Status)
	require.True(t, got.SpotInterrupted)
	f.feed(t, event(t, "ec2-terminated.json", studio.Backend.InstanceID, t0.Add(2*time.Minute)))
	got = f.getRun(t, studio.ID)
	require.Equal(t, run.StatusFailed, got.Status)
	require.Equal(t, "spot interruption", got.StatusReason)

	// Exit code 3 and a missing exit-status file: FAILED with a reason.
	failing := f.launch(t, pipelineBody(ce.ID))
	f.putExit(t, failing.ID, "3")
	missing := f.launch(t, pipelineBody(ce.ID))
	f.feed(t, event(t, "ec2-terminated.json", failing.Backend.InstanceID, t0), event(t, "ec2-terminated.json", missing.Backend.InstanceID, t0))
	got = f.getRun(t, failing.ID)
	require.Equal(t, run.StatusFailed, got.Status)
	require.Equal(t, 3, *got.ExitCode)
	require.Equal(t, "nextflow exited with code 3", got.StatusReason)
	got = f.getRun(t, missing.ID)
	require.Equal(t, run.StatusFailed, got.Status)
	require.Contains(t, got.StatusReason, "exit-status file missing")

	// Stopped outside ceforge: UNKNOWN until it terminates.
	stopped := f.launch(t, pipelineBody(ce.ID))
	f.feed(t, event(t, "ec2-stopped.json", stopped.Backend.InstanceID, t0))
	require.Equal(t, run.StatusUnknown, f.getRun(t, stopped.ID).Status)

	// Cancel: the instance is terminated; the terminated event makes it CANCELLED.
	cancelled := f.launch(t, pipelineBody(ce.ID))
	f.feed(t, event(t, "ec2-running.json", cancelled.Backend.InstanceID, t0))
	res := f.Do(t, http.MethodPost, "/runs/"+cancelled.ID+"/cancel", nil)
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	require.True(t, f.getRun(t, cancelled.ID).CancelRequested)
	state := f.instance(t, cancelled.Backend.InstanceID).State.Name
	require.Contains(t, []ec2types.InstanceStateName{ec2types.InstanceStateNameShuttingDown, ec2types.InstanceStateNameTerminated}, state)
	f.putExit(t, cancelled.ID, "143")
	f.feed(t, event(t, "ec2-terminated.json", cancelled.Backend.InstanceID, t0.Add(time.Minute)))
	got = f.getRun(t, cancelled.ID)
	require.Equal(t, run.StatusCancelled, got.Status)

	// An instance that is not ours costs one read and is dropped.
	f.Calls.Reset()
	out := f.feed(t, event(t, "ec2-running.json", "i-0fffffffffffffff0", t0))
	require.Equal(t, eventsrc.Outcome{NotOurs: 1}, out)
	require.Equal(t, 1, f.Calls.Total("DynamoDB"), f.Calls.Snapshot())
	require.Zero(t, f.Calls.Total("EC2")+f.Calls.Total("S3"))

	// Delete: refused while runs are active, then forced; IAM is gone.
	res = f.Do(t, http.MethodDelete, "/compute-envs/"+ce.ID, nil)
	require.Equal(t, http.StatusConflict, res.Status, string(res.Body))
	_, err = f.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(roleName)})
	require.NoError(t, err, "a refused delete leaves everything")
	res = f.Do(t, http.MethodDelete, "/compute-envs/"+ce.ID+"?force=true", nil)
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	var deleted computeenv.ComputeEnv
	res.JSON(t, &deleted)
	require.Equal(t, computeenv.StatusDeleting, deleted.Status, "the api hands the teardown to the reconciler")
	res = f.Do(t, http.MethodGet, "/compute-envs/"+ce.ID, nil)
	res.JSON(t, &deleted)
	require.Equal(t, computeenv.StatusDeleted, deleted.Status, deleted.StatusReason)
	require.Equal(t, ec2types.InstanceStateNameTerminated, f.instance(t, stopped.Backend.InstanceID).State.Name, "force cancels active runs")
	_, err = f.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(roleName)})
	require.ErrorContains(t, err, "NoSuchEntity")
	_, err = f.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(roleName)})
	require.ErrorContains(t, err, "NoSuchEntity")
}

func TestIdempotentLaunch(t *testing.T) {
	f := newFixture(t)
	ce := f.createCE(t, ceBody())
	f.Calls.Reset()
	a := f.launch(t, pipelineBody(ce.ID), "Idempotency-Key", "launch-1")
	require.Equal(t, 1, f.Calls.Count("EC2.RunInstances"), f.Calls.Snapshot())
	require.Equal(t, 1, f.Calls.Total("EC2"), "the launch path makes one EC2 call")
	require.LessOrEqual(t, f.Calls.Total("DynamoDB"), 3, f.Calls.Snapshot())
	b := f.launch(t, pipelineBody(ce.ID), "Idempotency-Key", "launch-1")
	require.Equal(t, a.ID, b.ID)
	out, err := f.EC2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:ceforge:ce-id"), Values: []string{ce.ID}}}})
	require.NoError(t, err)
	require.Len(t, out.Reservations, 1, "a retried launch never starts a second instance")
}

// TestIdempotencyKeyReusedForAnotherRequest: the key stands for one request.
// The same request again (any member order or spacing) replays the first
// run; a different request under the same key is a 422 and launches nothing,
// where it used to return the first run as if it were this one.
func TestIdempotencyKeyReusedForAnotherRequest(t *testing.T) {
	f := newFixture(t)
	ce := f.createCE(t, ceBody())
	first := f.launch(t, pipelineBody(ce.ID), "Idempotency-Key", "launch-2")

	// The same request, members in reverse order and spaced out.
	body := pipelineBody(ce.ID)
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	var members []string
	for _, k := range keys {
		v, err := json.Marshal(body[k])
		require.NoError(t, err)
		members = append(members, fmt.Sprintf("%q :  %s", k, v))
	}
	reordered := "{ " + strings.Join(members, " ,\n ") + " }"
	res := f.Do(t, http.MethodPost, "/runs", reordered, "Idempotency-Key", "launch-2")
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	var again run.Run
	res.JSON(t, &again)
	require.Equal(t, first.ID, again.ID)

	other := pipelineBody(ce.ID)
	other["revision"] = "3.15.0"
	res = f.Do(t, http.MethodPost, "/runs", other, "Idempotency-Key", "launch-2")
	require.Equal(t, http.StatusUnprocessableEntity, res.Status, string(res.Body))
	code, field, msg := res.Error(t)
	require.Equal(t, "idempotency_key_reused", code)
	require.Equal(t, "Idempotency-Key", field)
	require.Contains(t, msg, first.ID)
	out, err := f.EC2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:ceforge:ce-id"), Values: []string{ce.ID}}}})
	require.NoError(t, err)
	require.Len(t, out.Reservations, 1, "nothing launched for the reused key")
}

func TestDryRunCreatesNothing(t *testing.T) {
	f := newFixture(t)
	res := f.Do(t, http.MethodPost, "/compute-envs?dryRun=true", ceBody())
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	var out struct {
		Plan computeenv.Plan `json:"plan"`
	}
	res.JSON(t, &out)
	var creates []string
	for _, r := range out.Plan.Resources {
		if r.Action == "create" {
			creates = append(creates, r.Type)
		}
	}
	require.Equal(t, []string{"iam-role", "iam-instance-profile"}, creates)
	roles, err := f.IAM.ListRoles(context.Background(), &iam.ListRolesInput{})
	require.NoError(t, err)
	for _, r := range roles.Roles {
		require.False(t, strings.HasPrefix(aws.ToString(r.RoleName), "ceforge-"))
	}
}

// customProfile creates an instance profile with a role of the same name.
func (f *fixture) customProfile(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	_, err := f.IAM.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
	require.NoError(t, err)
	p, err := f.IAM.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String(name)})
	require.NoError(t, err)
	_, err = f.IAM.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String(name), RoleName: aws.String(name)})
	require.NoError(t, err)
	return aws.ToString(p.InstanceProfile.Arn)
}

func TestCustomInstanceProfileIsUsedNotManaged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	arn := f.customProfile(t, "ceforge-mine")
	ce := f.createCE(t, ceBody(func(_ map[string]any, c map[string]any) { c["instanceProfileArn"] = arn }))
	r := f.launch(t, pipelineBody(ce.ID))
	require.Equal(t, arn, aws.ToString(f.instance(t, r.Backend.InstanceID).IamInstanceProfile.Arn))
	f.putExit(t, r.ID, "0")
	f.feed(t, event(t, "ec2-terminated.json", r.Backend.InstanceID, time.Now()))
	res := f.Do(t, http.MethodDelete, "/compute-envs/"+ce.ID, nil)
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	_, err := f.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String("ceforge-mine")})
	require.NoError(t, err, "a given instance profile is never deleted")
	roles, err := f.IAM.ListRoles(ctx, &iam.ListRolesInput{PathPrefix: aws.String("/")})
	require.NoError(t, err)
	var own []string
	for _, r := range roles.Roles {
		if !strings.HasPrefix(aws.ToString(r.Path), "/aws-service-role/") { // the account's, not the test's
			own = append(own, aws.ToString(r.RoleName))
		}
	}
	require.Equal(t, []string{"ceforge-mine"}, own, "no role forged for the CE")
}

// Launching passes the profile's role to EC2, which the api's role allows
// for roles named with the prefix only (the IAM-checked tier denied
// iam:PassRole of "mine" at launch): such a profile is refused when the
// CE is created, naming the field, and nothing is recorded.
func TestCustomInstanceProfileRoleMustBePassable(t *testing.T) {
	f := newFixture(t)
	arn := f.customProfile(t, "mine")
	res := f.Do(t, http.MethodPost, "/compute-envs", ceBody(func(_ map[string]any, c map[string]any) { c["instanceProfileArn"] = arn }))
	require.Equal(t, http.StatusUnprocessableEntity, res.Status, string(res.Body))
	code, field, msg := res.Error(t)
	require.Equal(t, "role_not_passable", code)
	require.Equal(t, "cloud.instanceProfileArn", field)
	require.Contains(t, msg, `"mine"`)
	require.Contains(t, msg, "ceforge-*")
	res = f.Do(t, http.MethodGet, "/compute-envs", nil)
	require.JSONEq(t, `{"items":[]}`, string(res.Body))
}

func TestReconcilerAdoptsAndRepairs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ce := f.createCE(t, ceBody())
	var stored computeenv.ComputeEnv
	_, err := f.Store.Get(ctx, store.KindCE, ce.ID, &stored)
	require.NoError(t, err)
	launcher := f.API.Runs.Launchers[computeenv.PlatformCloud]

	// A crash between RunInstances and recording the instance: the run has
	// no backend, the instance carries its run tag.
	now := time.Now().UTC()
	orphan := &run.Run{ID: "orphanrun00001", Kind: run.KindPipeline, ComputeEnvID: ce.ID, Platform: computeenv.PlatformCloud,
		RunName: "orphan", Pipeline: "nf-core/demo", WorkDir: ce.WorkDir, Status: run.StatusSubmitted,
		Timeline: run.Timeline{Submitted: &now}, CreatedAt: now}
	require.NoError(t, f.Store.Create(ctx, store.KindRun, orphan.ID, orphan, store.WithStatusRank(run.Rank(run.StatusSubmitted))))
	b, _, err := launcher.Launch(ctx, &stored, orphan)
	require.NoError(t, err)
	// The emulator does not honour the client token: a retried launch makes a
	// second head, which the reconciler must terminate.
	time.Sleep(1100 * time.Millisecond) // launch times have second resolution
	dup, _, err := launcher.Launch(ctx, &stored, orphan)
	require.NoError(t, err)
	require.NotEqual(t, b.InstanceID, dup.InstanceID)

	// A run whose launch was never recorded and has no instance, long ago.
	old := now.Add(-time.Hour)
	lost := &run.Run{ID: "lostrun0000001", Kind: run.KindPipeline, ComputeEnvID: ce.ID, Platform: computeenv.PlatformCloud,
		RunName: "lost", Pipeline: "nf-core/demo", WorkDir: ce.WorkDir, Status: run.StatusSubmitted,
		Timeline: run.Timeline{Submitted: &old}, CreatedAt: old}
	require.NoError(t, f.Store.Create(ctx, store.KindRun, lost.ID, lost, store.WithStatusRank(run.Rank(run.StatusSubmitted))))

	// A recorded run whose running and terminated events were missed.
	missed := f.launch(t, pipelineBody(ce.ID))
	f.putExit(t, missed.ID, "0")
	_, err = f.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{missed.Backend.InstanceID}})
	require.NoError(t, err)

	require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
	got := f.getRun(t, orphan.ID)
	require.Equal(t, run.StatusRunning, got.Status)
	require.Equal(t, b.InstanceID, got.Backend.InstanceID)
	require.Contains(t, []ec2types.InstanceStateName{ec2types.InstanceStateNameShuttingDown, ec2types.InstanceStateNameTerminated},
		f.instance(t, dup.InstanceID).State.Name, "the duplicate head is terminated")
	require.Equal(t, ec2types.InstanceStateNameRunning, f.instance(t, b.InstanceID).State.Name)
	byInst, err := f.Reconciler.Runs.ByBackend(ctx, store.KindInstance, b.InstanceID)
	require.NoError(t, err)
	require.Equal(t, orphan.ID, byInst.ID)
	got = f.getRun(t, lost.ID)
	require.Equal(t, run.StatusFailed, got.Status)
	require.Equal(t, "launch not recorded and no instance found", got.StatusReason)
	// Cancel without a recorded instance finds it by its run tag.
	unrecorded := &run.Run{ID: "unrecorded0001", Kind: run.KindPipeline, ComputeEnvID: ce.ID, RunName: "u", Pipeline: "nf-core/demo", WorkDir: ce.WorkDir}
	ub, _, err := launcher.Launch(ctx, &stored, unrecorded)
	require.NoError(t, err)
	require.NoError(t, launcher.Cancel(ctx, &stored, unrecorded))
	require.Contains(t, []ec2types.InstanceStateName{ec2types.InstanceStateNameShuttingDown, ec2types.InstanceStateNameTerminated},
		f.instance(t, ub.InstanceID).State.Name)

	// shutting-down is not final; the next pass sees terminated.
	require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
	require.Equal(t, run.StatusSucceeded, f.getRun(t, missed.ID).Status)
}
