package app_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/member"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/runtoken"
	"github.com/ceforge/ceforge/internal/sweep"
	"github.com/ceforge/ceforge/internal/tags"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/membertest"
	"github.com/ceforge/ceforge/internal/testing/trustproxy"
)

// memberBucket is the work bucket in the member account (bucket names are
// global).
const memberBucket = "ceforge-member-work"

// memberAccount is a deployment with one member account set up as its
// member stack sets it up, seen through the trust proxy (AssumeRole
// decided by the member role's trust policy). Every function's calls
// through the member role are IAM-checked against that role as the member
// stack synthesizes it.
type memberAccount struct {
	*pipeline
	proxy *trustproxy.Proxy
	creds credential.Credential
	// cfg is the test's own view of the member account.
	cfg aws.Config
	eb  *eventbridge.Client
}

// newMemberAccount deploys the control plane's member bus (with its rules
// to the consumer queues, as infra/stack/events.go does), registers
// credentials, deploys the member stack's role and forwarding rules with
// the generated External ID, and verifies the credentials.
func newMemberAccount(t *testing.T) *memberAccount {
	t.Helper()
	ctx := context.Background()
	m := &memberAccount{}
	h := apptest.NewThrough(t, func(endpoint string) string {
		m.proxy = trustproxy.Start(t, endpoint, membertest.ControlPlaneCaller(prefix))
		return m.proxy.URL
	}, func(c *config.Config) { c.TraceURL = "https://trace.example.com" }) // runs report progress (their tokens live in the member account)
	m.pipeline = newPipelineOn(t, h)
	m.cfg = testenv.InAccount(h.Endpoint, membertest.Account)

	busName := member.EventBusName(prefix)
	bus, err := m.EB.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(busName)})
	require.NoError(t, err)
	for _, r := range eventsrc.Rules {
		pattern, err := json.Marshal(r.Pattern(nil))
		require.NoError(t, err)
		_, err = m.EB.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(prefix + "member-" + r.Name), EventBusName: aws.String(busName), EventPattern: aws.String(string(pattern))})
		require.NoError(t, err)
		attrs, err := m.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(m.urls[r.Queue]), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		require.NoError(t, err)
		_, err = m.EB.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(prefix + "member-" + r.Name), EventBusName: aws.String(busName),
			Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(attrs.Attributes["QueueArn"])}}})
		require.NoError(t, err)
	}

	res := m.Do(t, "POST", "/credentials", map[string]any{"name": "member", "roleArn": "arn:aws:iam::" + membertest.Account + ":role/" + member.RoleName(prefix)})
	require.Equal(t, 201, res.Status, string(res.Body))
	res.JSON(t, &m.creds)
	membertest.Seed(t, h.Endpoint, membertest.Account, prefix, m.creds.ExternalID)
	m.eb = eventbridge.NewFromConfig(m.cfg)
	for _, r := range eventsrc.Rules {
		pattern, err := json.Marshal(r.Pattern(nil))
		require.NoError(t, err)
		_, err = m.eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(prefix + "forward-" + r.Name), EventPattern: aws.String(string(pattern))})
		require.NoError(t, err)
		_, err = m.eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(prefix + "forward-" + r.Name),
			Targets: []ebtypes.Target{{Id: aws.String("control-plane"), Arn: bus.EventBusArn}}})
		require.NoError(t, err)
	}
	res = m.Do(t, "POST", "/credentials/"+m.creds.ID+"/verify", nil)
	require.Equal(t, 200, res.Status, string(res.Body))
	res.JSON(t, &m.creds)
	require.Equal(t, credential.StatusVerified, m.creds.Status, m.creds.StatusReason)
	_, err = s3.NewFromConfig(m.cfg, func(o *s3.Options) { o.UsePathStyle = true }).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(memberBucket)})
	require.NoError(t, err)
	return m
}

// createCE creates a compute environment on the member account's
// credentials and lets the reconciler settle it.
func (m *memberAccount) createCE(t *testing.T, body map[string]any) computeenv.ComputeEnv {
	t.Helper()
	body["region"], body["workDir"], body["credentialsId"] = testenv.Region, "s3://"+memberBucket+"/work", m.creds.ID
	res := m.Do(t, "POST", "/compute-envs", body)
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	ce = settle(t, m.Reconciler, ce.ID)
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	return ce
}

// forward puts an event on the member account's default bus, as the AWS
// service would there: the member stack's rule forwards it to the control
// plane's member bus, whose rule queues it. It returns the event as the
// control plane's queue received it (and takes it off the queue).
func (m *memberAccount) forward(t *testing.T, queue, source, detailType, resource string, detail any) map[string]any {
	t.Helper()
	ctx := context.Background()
	d, err := json.Marshal(detail)
	require.NoError(t, err)
	put, err := m.eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		Source: aws.String(source), DetailType: aws.String(detailType), Detail: aws.String(string(d)), Resources: []string{resource},
	}}})
	require.NoError(t, err)
	require.Zero(t, put.FailedEntryCount)
	got, err := m.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(m.urls[queue]), MaxNumberOfMessages: 10, WaitTimeSeconds: 2})
	require.NoError(t, err)
	require.Len(t, got.Messages, 1, "the forwarded event reached the control plane's queue")
	var delivered map[string]any
	require.NoError(t, json.Unmarshal([]byte(aws.ToString(got.Messages[0].Body)), &delivered))
	require.Equal(t, source, delivered["source"])
	require.Equal(t, detailType, delivered["detail-type"])
	var want any
	require.NoError(t, json.Unmarshal(d, &want))
	require.Equal(t, want, delivered["detail"])
	_, err = m.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(m.urls[queue]), ReceiptHandle: got.Messages[0].ReceiptHandle})
	require.NoError(t, err)
	return delivered
}

// from is a forwarded event as EventBridge delivers it from account and
// region. moto re-stamps a forwarded event with the receiving account, its
// region and time; EventBridge keeps the source account's ("account" of an
// event delivered to another account's bus is the account it happened in).
func from(t *testing.T, delivered map[string]any, account, region string) string {
	t.Helper()
	ev := map[string]any{}
	for k, v := range delivered {
		ev[k] = v
	}
	ev["account"], ev["region"], ev["time"] = account, region, time.Now().UTC().Format(time.RFC3339)
	b, err := json.Marshal(ev)
	require.NoError(t, err)
	return string(b)
}

// memberRoleAssumed checks that the functions acted through the member
// role with the generated External ID.
func (m *memberAccount) memberRoleAssumed(t *testing.T) {
	t.Helper()
	require.Equal(t, m.creds.ExternalID, m.proxy.Assumed()["arn:aws:iam::"+membertest.Account+":role/"+member.RoleName(prefix)])
}

// A compute environment in a member account, end to end: credentials
// registered and verified, the CE's resources and the run's head instance
// in the member account, and the head's EC2 events forwarded by the member
// account's rules (the member stack's) to the control plane's member bus,
// routed to the consumer queue and applied. Events from another account or
// region than the run's are not ours; the reconciler repairs the run in
// the member account.
func TestMemberAccountRunThroughForwardedEvents(t *testing.T) {
	ctx := context.Background()
	m := newMemberAccount(t)
	ce := m.createCE(t, map[string]any{"name": "member-cloud", "platform": computeenv.PlatformCloud})
	r := m.launch(t, ce.ID, run.KindPipeline)
	require.Equal(t, membertest.Account, r.AccountID)
	require.Equal(t, testenv.Region, r.Region)
	mEC2 := ec2.NewFromConfig(m.cfg)
	inst, err := mEC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{r.Backend.InstanceID}})
	require.NoError(t, err, "the head instance runs in the member account")
	require.Len(t, inst.Reservations, 1)
	_, err = m.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{r.Backend.InstanceID}})
	require.Error(t, err, "and not in the control plane's")

	// The head's "running" event happens in the member account: its rule
	// forwards it to the control plane's bus, whose rule queues it.
	delivered := m.forward(t, eventsrc.EC2Queue, "aws.ec2", "EC2 Instance State-change Notification",
		"arn:aws:ec2:"+testenv.Region+":"+membertest.Account+":instance/"+r.Backend.InstanceID,
		map[string]any{"instance-id": r.Backend.InstanceID, "state": "running"})

	// From another account, or another region: not the run's instance.
	m.outcomes(t)
	m.send(t, eventsrc.EC2Queue, from(t, delivered, "333344445555", testenv.Region))
	m.send(t, eventsrc.EC2Queue, from(t, delivered, membertest.Account, "eu-west-1"))
	m.drain(t, eventsrc.EC2Queue, 5)
	require.Equal(t, map[string]int{"EC2 Instance State-change Notification/not_ours": 2}, m.outcomes(t))
	require.Equal(t, run.StatusSubmitted, m.run(t, r.ID).Status)

	// From the member account and the CE's region: applied.
	m.send(t, eventsrc.EC2Queue, from(t, delivered, membertest.Account, testenv.Region))
	m.drain(t, eventsrc.EC2Queue, 5)
	require.Equal(t, map[string]int{"EC2 Instance State-change Notification/applied": 1}, m.outcomes(t))
	require.Equal(t, run.StatusRunning, m.run(t, r.ID).Status)

	// The reconciler repairs the run in the member account: the head ended
	// (exit status written there), no event came.
	_, err = s3.NewFromConfig(m.cfg, func(o *s3.Options) { o.UsePathStyle = true }).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(memberBucket),
		Key: aws.String("work/.ceforge/runs/" + r.ID + "/exit-status"), Body: strings.NewReader("0\n")})
	require.NoError(t, err)
	_, err = mEC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{r.Backend.InstanceID}})
	require.NoError(t, err)
	require.NoError(t, m.Reconciler.Reconcile(ctx, sample(t, "reconciler-schedule.json")))
	require.Equal(t, run.StatusSucceeded, m.run(t, r.ID).Status)

	// The run's progress token was kept in the member account (its head
	// reads it there); once the run has ended past the token's validity,
	// the reconciler deletes it there, through the member role.
	mSM := secretsmanager.NewFromConfig(m.cfg)
	_, err = mSM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(runtoken.SecretName(prefix, r.ID))})
	require.NoError(t, err, "the run's token is in the member account")
	cleaner, ok := m.Reconciler.Reconciler.Tokens.(*runtoken.Cleaner)
	require.True(t, ok)
	cleaner.Now = func() time.Time { return time.Now().Add(time.Hour) }
	require.NoError(t, m.Reconciler.Reconcile(ctx, sample(t, "reconciler-schedule.json")))
	_, err = mSM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(runtoken.SecretName(prefix, r.ID))})
	require.Error(t, err, "the ended run's token was deleted")
	m.memberRoleAssumed(t)
}

// batchHeadEvent is a Batch Job State Change detail about a run's head job
// in the member account (events/batch-head-<status>.json).
func batchHeadEvent(t *testing.T, status string, r run.Run) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "batch-head-"+strings.ToLower(status)+".json"))
	require.NoError(t, err)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(raw, &ev))
	d := ev["detail"].(map[string]any)
	d["jobId"] = r.Backend.JobID
	d["jobArn"] = "arn:aws:batch:" + testenv.Region + ":" + membertest.Account + ":job/" + r.Backend.JobID
	d["jobName"] = prefix + "head-" + r.ID
	d["tags"].(map[string]any)["ceforge:run-id"] = r.ID
	d["tags"].(map[string]any)["ceforge:ce-id"] = r.ComputeEnvID
	return d
}

// A forged AWS Batch compute environment in a member account: the
// reconciler forges it there through the member role, the run's head job
// is submitted there, its Batch Job State Change events come through the
// forwarded bus (RUNNING, then SUCCEEDED), the same events from another
// account or region are not ours, and the sweeper deletes the member
// account's orphaned volume through the member role while a volume there
// naming a control-plane compute environment is kept. Every call through
// the member role is IAM-checked against the member stack's role.
func TestMemberAccountBatchRunEventsAndSweep(t *testing.T) {
	ctx := context.Background()
	m := newMemberAccount(t)
	ce := m.createCE(t, map[string]any{"name": "member-batch", "platform": computeenv.PlatformBatch,
		"batch": map[string]any{"forge": map[string]any{"type": "EC2", "maxCpus": 16}}})
	mBatch := batch.NewFromConfig(m.cfg)
	envs, err := mBatch.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{})
	require.NoError(t, err)
	require.NotEmpty(t, envs.ComputeEnvironments, "forged in the member account")
	for _, e := range envs.ComputeEnvironments {
		require.Contains(t, aws.ToString(e.ComputeEnvironmentArn), ":"+membertest.Account+":")
	}
	own, err := m.Batch.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{})
	require.NoError(t, err)
	require.Empty(t, own.ComputeEnvironments, "nothing forged in the control plane's account")

	r := m.launch(t, ce.ID, run.KindPipeline)
	require.Equal(t, membertest.Account, r.AccountID)
	require.NotEmpty(t, r.Backend.JobID)
	jobs, err := mBatch.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{r.Backend.JobID}})
	require.NoError(t, err)
	require.Len(t, jobs.Jobs, 1, "the head job runs in the member account")

	jobARN := "arn:aws:batch:" + testenv.Region + ":" + membertest.Account + ":job/" + r.Backend.JobID
	running := m.forward(t, eventsrc.BatchQueue, "aws.batch", "Batch Job State Change", jobARN, batchHeadEvent(t, "RUNNING", r))
	m.outcomes(t)
	m.send(t, eventsrc.BatchQueue, from(t, running, "333344445555", testenv.Region))
	m.send(t, eventsrc.BatchQueue, from(t, running, membertest.Account, "eu-west-1"))
	m.drain(t, eventsrc.BatchQueue, 5)
	require.Equal(t, map[string]int{"Batch Job State Change/not_ours": 2}, m.outcomes(t))
	require.Equal(t, run.StatusSubmitted, m.run(t, r.ID).Status)
	m.send(t, eventsrc.BatchQueue, from(t, running, membertest.Account, testenv.Region))
	m.drain(t, eventsrc.BatchQueue, 5)
	require.Equal(t, map[string]int{"Batch Job State Change/applied": 1}, m.outcomes(t))
	require.Equal(t, run.StatusRunning, m.run(t, r.ID).Status)

	succeeded := m.forward(t, eventsrc.BatchQueue, "aws.batch", "Batch Job State Change", jobARN, batchHeadEvent(t, "SUCCEEDED", r))
	m.send(t, eventsrc.BatchQueue, from(t, succeeded, membertest.Account, testenv.Region))
	m.drain(t, eventsrc.BatchQueue, 5)
	require.Equal(t, map[string]int{"Batch Job State Change/applied": 1}, m.outcomes(t))
	require.Equal(t, run.StatusSucceeded, m.run(t, r.ID).Status)

	// The sweeper, through the member role: an orphaned volume of the
	// member CE goes once its grace has passed since ceforge saw it; one
	// naming a compute environment of the control plane's own account
	// proves nothing there.
	mEC2 := ec2.NewFromConfig(m.cfg)
	volume := func(ceID string) string {
		out, err := mEC2.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(testenv.Region + "a"), Size: aws.Int32(20),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: ec2Tags(tags.Ownership(ceID, ""))}}})
		require.NoError(t, err)
		return aws.ToString(out.VolumeId)
	}
	orphan := volume(ce.ID)
	home := m.cloudCE(t) // a CE of the control plane's own account
	misplaced := volume(home.ID)
	sw := m.Sweeper.Sweeper()
	now := time.Now().UTC()
	sw.Now = func() time.Time { return now }
	first, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, first.Status, first.Errors)
	require.Equal(t, 2, first.Targets, "the control plane's account and the member account")
	now = now.Add(m.Config.SweepGrace + time.Minute)
	second, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, second.Status, second.Errors)
	vols, err := mEC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
	require.NoError(t, err)
	var left []string
	for _, v := range vols.Volumes {
		left = append(left, aws.ToString(v.VolumeId))
	}
	require.NotContains(t, left, orphan, "the member CE's orphan went")
	require.Contains(t, left, misplaced, "a control-plane CE's id proves nothing in the member account")
	m.memberRoleAssumed(t)

	// The CE is torn down in the member account (through the member role),
	// then the credentials go: the sweeper no longer assumes the role, and
	// says so instead of failing on that account.
	res := m.Do(t, "DELETE", "/compute-envs/"+ce.ID, nil)
	require.Equal(t, 202, res.Status, string(res.Body))
	gone := settle(t, m.Reconciler, ce.ID)
	require.Equal(t, computeenv.StatusDeleted, gone.Status, gone.StatusReason)
	envs, err = mBatch.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{})
	require.NoError(t, err)
	require.Empty(t, envs.ComputeEnvironments, "deleted in the member account")
	res = m.Do(t, "DELETE", "/credentials/"+m.creds.ID, nil)
	require.Equal(t, 204, res.Status, string(res.Body))
	third, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, third.Status, third.Errors)
	require.Equal(t, 1, third.Targets, "the control plane's own account")
	var skipped []string
	for _, s := range third.Skipped {
		if s.Kind == sweep.KindAccount && s.Reason == sweep.ReasonCredentialsDeleted {
			skipped = s.Sample
		}
	}
	require.Equal(t, []string{membertest.Account + "/" + testenv.Region}, skipped)
}

func ec2Tags(m map[string]string) []ec2types.Tag {
	var out []ec2types.Tag
	for k, v := range m {
		out = append(out, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out
}
