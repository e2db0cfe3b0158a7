package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/member"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/membertest"
	"github.com/ceforge/ceforge/internal/testing/trustproxy"
)

// memberBucket is the work bucket in the member account (bucket names are
// global).
const memberBucket = "ceforge-member-work"

// A compute environment in a member account, end to end: credentials
// registered and verified (AssumeRole decided by the member role's trust
// policy), the CE's resources and the run's head instance in the member
// account, and the head's EC2 events forwarded by the member account's
// rules (the member stack's) to the control plane's member bus, routed to
// the consumer queue and applied. Events from another account or region
// than the run's are not ours; the reconciler repairs the run in the
// member account.
func TestMemberAccountRunThroughForwardedEvents(t *testing.T) {
	ctx := context.Background()
	var proxy *trustproxy.Proxy
	h := apptest.NewThrough(t, func(endpoint string) string {
		proxy = trustproxy.Start(t, endpoint, membertest.ControlPlaneCaller(prefix))
		return proxy.URL
	})
	p := newPipelineOn(t, h)
	memberCfg := testenv.InAccount(h.Endpoint, membertest.Account)

	// The control plane's member bus and its rules to the consumer queues
	// (what infra/stack/events.go deploys).
	busName := member.EventBusName(prefix)
	bus, err := p.EB.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(busName)})
	require.NoError(t, err)
	for _, r := range eventsrc.Rules {
		pattern, err := json.Marshal(r.Pattern(nil))
		require.NoError(t, err)
		_, err = p.EB.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(prefix + "member-" + r.Name), EventBusName: aws.String(busName), EventPattern: aws.String(string(pattern))})
		require.NoError(t, err)
		attrs, err := p.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(p.urls[r.Queue]), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		require.NoError(t, err)
		_, err = p.EB.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(prefix + "member-" + r.Name), EventBusName: aws.String(busName),
			Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(attrs.Attributes["QueueArn"])}}})
		require.NoError(t, err)
	}

	// Credentials, then the member stack: its role with the External ID,
	// its forwarding rules to the control plane's bus.
	res := h.Do(t, "POST", "/credentials", map[string]any{"name": "member", "roleArn": "arn:aws:iam::" + membertest.Account + ":role/" + member.RoleName(prefix)})
	require.Equal(t, 201, res.Status, string(res.Body))
	var c credential.Credential
	res.JSON(t, &c)
	membertest.Seed(t, h.Endpoint, membertest.Account, prefix, c.ExternalID)
	mEB := eventbridge.NewFromConfig(memberCfg)
	for _, r := range eventsrc.Rules {
		pattern, err := json.Marshal(r.Pattern(nil))
		require.NoError(t, err)
		_, err = mEB.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(prefix + "forward-" + r.Name), EventPattern: aws.String(string(pattern))})
		require.NoError(t, err)
		_, err = mEB.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(prefix + "forward-" + r.Name),
			Targets: []ebtypes.Target{{Id: aws.String("control-plane"), Arn: bus.EventBusArn}}})
		require.NoError(t, err)
	}
	res = h.Do(t, "POST", "/credentials/"+c.ID+"/verify", nil)
	require.Equal(t, 200, res.Status, string(res.Body))
	res.JSON(t, &c)
	require.Equal(t, credential.StatusVerified, c.Status, c.StatusReason)
	mS3 := s3.NewFromConfig(memberCfg, func(o *s3.Options) { o.UsePathStyle = true })
	_, err = mS3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(memberBucket)})
	require.NoError(t, err)

	// The CE and a run, in the member account.
	res = h.Do(t, "POST", "/compute-envs", map[string]any{"name": "member-cloud", "platform": computeenv.PlatformCloud, "region": testenv.Region,
		"workDir": "s3://" + memberBucket + "/work", "credentialsId": c.ID})
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	ce = settle(t, h.Reconciler, ce.ID)
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	r := p.launch(t, ce.ID, run.KindPipeline)
	require.Equal(t, membertest.Account, r.AccountID)
	require.Equal(t, testenv.Region, r.Region)
	mEC2 := ec2.NewFromConfig(memberCfg)
	inst, err := mEC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{r.Backend.InstanceID}})
	require.NoError(t, err, "the head instance runs in the member account")
	require.Len(t, inst.Reservations, 1)
	_, err = p.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{r.Backend.InstanceID}})
	require.Error(t, err, "and not in the control plane's")

	// The head's "running" event happens in the member account: its rule
	// forwards it to the control plane's bus, whose rule queues it.
	detail := fmt.Sprintf(`{"instance-id":%q,"state":"running"}`, r.Backend.InstanceID)
	put, err := mEB.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		Source: aws.String("aws.ec2"), DetailType: aws.String("EC2 Instance State-change Notification"), Detail: aws.String(detail),
		Resources: []string{"arn:aws:ec2:" + testenv.Region + ":" + membertest.Account + ":instance/" + r.Backend.InstanceID},
	}}})
	require.NoError(t, err)
	require.Zero(t, put.FailedEntryCount)
	got, err := p.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(p.urls[eventsrc.EC2Queue]), MaxNumberOfMessages: 10, WaitTimeSeconds: 2})
	require.NoError(t, err)
	require.Len(t, got.Messages, 1, "the forwarded event reached the control plane's queue")
	var delivered map[string]any
	require.NoError(t, json.Unmarshal([]byte(aws.ToString(got.Messages[0].Body)), &delivered))
	require.Equal(t, "aws.ec2", delivered["source"])
	require.Equal(t, "EC2 Instance State-change Notification", delivered["detail-type"])
	require.Equal(t, map[string]any{"instance-id": r.Backend.InstanceID, "state": "running"}, delivered["detail"])
	_, err = p.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(p.urls[eventsrc.EC2Queue]), ReceiptHandle: got.Messages[0].ReceiptHandle})
	require.NoError(t, err)
	// moto re-stamps a forwarded event with the receiving account, its
	// region and time; EventBridge keeps the source account's ("account"
	// of an event delivered to another account's bus is the account it
	// happened in). The consumer gets the event as EventBridge delivers it.
	forwarded := func(account, region string) string {
		ev := map[string]any{}
		for k, v := range delivered {
			ev[k] = v
		}
		ev["account"], ev["region"], ev["time"] = account, region, time.Now().UTC().Format(time.RFC3339)
		b, err := json.Marshal(ev)
		require.NoError(t, err)
		return string(b)
	}

	// From another account, or another region: not the run's instance.
	p.outcomes(t)
	p.send(t, eventsrc.EC2Queue, forwarded("333344445555", testenv.Region))
	p.send(t, eventsrc.EC2Queue, forwarded(membertest.Account, "eu-west-1"))
	p.drain(t, eventsrc.EC2Queue, 5)
	require.Equal(t, map[string]int{"EC2 Instance State-change Notification/not_ours": 2}, p.outcomes(t))
	require.Equal(t, run.StatusSubmitted, p.run(t, r.ID).Status)

	// From the member account and the CE's region: applied.
	p.send(t, eventsrc.EC2Queue, forwarded(membertest.Account, testenv.Region))
	p.drain(t, eventsrc.EC2Queue, 5)
	require.Equal(t, map[string]int{"EC2 Instance State-change Notification/applied": 1}, p.outcomes(t))
	require.Equal(t, run.StatusRunning, p.run(t, r.ID).Status)

	// The reconciler repairs the run in the member account: the head ended
	// (exit status written there), no event came.
	_, err = mS3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(memberBucket), Key: aws.String("work/.ceforge/runs/" + r.ID + "/exit-status"), Body: strings.NewReader("0\n")})
	require.NoError(t, err)
	_, err = mEC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{r.Backend.InstanceID}})
	require.NoError(t, err)
	require.NoError(t, h.Reconciler.Reconcile(ctx, sample(t, "reconciler-schedule.json")))
	require.Equal(t, run.StatusSucceeded, p.run(t, r.ID).Status)
	require.Equal(t, c.ExternalID, proxy.Assumed()["arn:aws:iam::"+membertest.Account+":role/"+member.RoleName(prefix)])
}
