package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/eventsrc/sqspoll"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/testenv"
)

const prefix = "ceforge-"

// emfBuffer collects the EMF lines functions print (safe across goroutines).
type emfBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *emfBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// take returns the lines written since the last take.
func (b *emfBuffer) take() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(b.buf.String())
	b.buf.Reset()
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// pipeline is a deployment's event path in the emulator: EventBridge rules
// with the patterns of eventsrc.Rules on the default bus, the two queues
// with their dead-letter queues, and each consumer function wired as its
// main.go wires it, fed by the local poller (sqspoll) the way Lambda's SQS
// event source feeds it: receive, the function's SQS handler, delete what
// did not fail. The API and the reconciler are the harness's functions on
// the same table.
type pipeline struct {
	*apptest.Harness
	SQS       *sqs.Client
	EB        *eventbridge.Client
	EC2       *ec2.Client
	S3        *s3.Client
	Batch     *batch.Client
	urls      map[string]string // queue -> URL
	dlqs      map[string]string // queue -> its dead-letter queue's URL
	consumers map[string]*app.App
	emf       *emfBuffer
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	return newPipelineOn(t, apptest.New(t))
}

// newPipelineOn is newPipeline on a harness the test made.
func newPipelineOn(t *testing.T, h *apptest.Harness) *pipeline {
	t.Helper()
	ctx := context.Background()
	cfg := h.AWS.Config(testenv.Region)
	p := &pipeline{
		Harness: h, SQS: sqs.NewFromConfig(cfg), EB: eventbridge.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg),
		S3: s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }), Batch: batch.NewFromConfig(cfg),
		urls: map[string]string{}, dlqs: map[string]string{}, consumers: map[string]*app.App{}, emf: &emfBuffer{},
	}
	makeBucket(t, cfg)
	// Each consumer as functions/batchevents and functions/ec2events wire it,
	// its calls IAM-checked as that function's.
	functions := map[string]string{eventsrc.BatchQueue: app.FnBatchEvents, eventsrc.EC2Queue: app.FnEC2Events}
	for _, r := range eventsrc.Rules {
		url, err := sqspoll.EnsureQueue(ctx, p.SQS, prefix+r.Queue)
		require.NoError(t, err)
		// Failed messages come back at once here (in AWS: after the visibility timeout).
		_, err = p.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: map[string]string{"VisibilityTimeout": "0"}})
		require.NoError(t, err)
		dlq, err := p.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(prefix + r.Queue + "-dlq")})
		require.NoError(t, err)
		p.urls[r.Queue], p.dlqs[r.Queue] = url, aws.ToString(dlq.QueueUrl)
		attrs, err := p.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		require.NoError(t, err)
		pattern, err := json.Marshal(r.Pattern(nil))
		require.NoError(t, err)
		_, err = p.EB.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(prefix + r.Name), EventPattern: aws.String(string(pattern))})
		require.NoError(t, err)
		_, err = p.EB.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(prefix + r.Name),
			Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(attrs.Attributes["QueueArn"])}}})
		require.NoError(t, err)

		c, err := config.FromLookup(func(string) (string, bool) { return "", false })
		require.NoError(t, err)
		// The harness's endpoint: a proxy in front of the emulator when the
		// test put one there (apptest.NewThrough).
		c.Table, c.Region, c.Endpoint = testenv.Table, testenv.Region, h.Config.Endpoint
		features, err := app.FunctionFeatures(functions[r.Queue], app.Adapters{})
		require.NoError(t, err)
		fn, err := app.New(ctx, c, app.Options{AWS: h.FunctionAt(functions[r.Queue], h.Config.Endpoint), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(p.emf)}, features...)
		require.NoError(t, err)
		p.consumers[r.Queue] = fn
	}
	return p
}

// handler is the Lambda handler of the function consuming queue.
func (p *pipeline) handler(queue string) sqspoll.Handler {
	if queue == eventsrc.BatchQueue {
		return p.consumers[queue].BatchEvents.SQSHandler()
	}
	return p.consumers[queue].EC2Events.SQSHandler()
}

// send puts an event body on a queue exactly as EventBridge delivers it (the
// bare event, byte for byte).
func (p *pipeline) send(t *testing.T, queue, body string) {
	t.Helper()
	_, err := p.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(p.urls[queue]), MessageBody: aws.String(body)})
	require.NoError(t, err)
}

// publish puts an event on the default bus: the rules route it.
func (p *pipeline) publish(t *testing.T, source, detailType, resource string, detail any) {
	t.Helper()
	d, err := json.Marshal(detail)
	require.NoError(t, err)
	out, err := p.EB.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		Source: aws.String(source), DetailType: aws.String(detailType), Detail: aws.String(string(d)), Resources: []string{resource},
	}}})
	require.NoError(t, err)
	require.Zero(t, out.FailedEntryCount)
}

// drain polls queue until a receive comes back empty (at most rounds times).
func (p *pipeline) drain(t *testing.T, queue string, rounds int) {
	t.Helper()
	poller := &sqspoll.Poller{Queue: p.SQS, QueueURL: p.urls[queue], Handler: p.handler(queue), BatchSize: 10}
	for i := 0; i < rounds; i++ {
		n, err := poller.PollOnce(context.Background())
		require.NoError(t, err)
		if n == 0 {
			return
		}
	}
}

// bodies returns the bodies waiting in a queue (received, then left to reappear).
func (p *pipeline) bodies(t *testing.T, url string) []string {
	t.Helper()
	out, err := p.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 0})
	require.NoError(t, err)
	var b []string
	for _, m := range out.Messages {
		b = append(b, aws.ToString(m.Body))
	}
	sort.Strings(b)
	return b
}

// outcomes sums the EventsProcessed EMF lines printed since the last call,
// by "<Kind>/<Outcome>".
func (p *pipeline) outcomes(t *testing.T) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, line := range p.emf.take() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		if v, ok := rec[metrics.EventsProcessed].(float64); ok {
			got[fmt.Sprint(rec["Kind"], "/", rec["Outcome"])] += int(v)
		}
	}
	return got
}

func (p *pipeline) run(t *testing.T, id string) run.Run {
	t.Helper()
	r, err := p.API.Runs.Get(context.Background(), id)
	require.NoError(t, err)
	return *r
}

func (p *pipeline) launch(t *testing.T, ceID string, kind string) run.Run {
	t.Helper()
	body := map[string]any{"kind": kind, "computeEnvId": ceID}
	if kind == run.KindPipeline {
		body["pipeline"], body["revision"] = "https://github.com/nf-core/rnaseq", "3.14.0"
	} else {
		body["studio"] = map[string]any{"image": "jupyter/base-notebook:latest", "port": 8888}
	}
	res := p.Do(t, "POST", "/runs", body)
	require.Equal(t, 201, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	require.NotNil(t, r.Backend)
	return r
}

func (p *pipeline) cloudCE(t *testing.T) computeenv.ComputeEnv {
	t.Helper()
	res := p.Do(t, "POST", "/compute-envs", map[string]any{"name": "cloud", "platform": computeenv.PlatformCloud, "region": testenv.Region,
		"workDir": "s3://" + bucket + "/work", "cloud": map[string]any{}})
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	return settle(t, p.Reconciler, ce.ID)
}

func (p *pipeline) putExit(t *testing.T, runID, code string) {
	t.Helper()
	_, err := p.S3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket),
		Key: aws.String("work/.ceforge/runs/" + runID + "/exit-status"), Body: strings.NewReader(code)})
	require.NoError(t, err)
}

// inRunRegion points a sample's region at the runs' (an event about a run
// counts only from the run's region): some of AWS's samples are dated in
// other regions.
func inRunRegion(body string) string {
	return regexp.MustCompile(`"region": *"[a-z0-9-]+"`).ReplaceAllString(body, `"region": "`+testenv.Region+`"`)
}

// docSample reads a sample of events/aws-docs as it is, byte for byte.
func docSample(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "aws-docs", name))
	require.NoError(t, err)
	return string(raw)
}

// Identifiers in AWS's samples, replaced by ceforge's own to point a sample
// at a run (everything else, oddities included, stays).
const (
	docJobID       = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"
	docJobName     = `"event-test"`
	docInstanceID  = "i-1234567890abcdef0"
	docPendingID   = "i-abcd1111"
	docBatchStatus = `"RUNNABLE"`
)

// TestAWSDocumentedEvents sends every sample of events/aws-docs (AWS's own
// sample events, oddities included) through the real path: SQS message,
// the consumer function's Lambda handler, the store. As published they
// name no resource of ceforge's and must be consumed without a failure or
// a dead letter (not ours, or a kind no rule asks for). Pointed at a run of
// ours (ids replaced, nothing else), each moves that run as its state says.
func TestAWSDocumentedEvents(t *testing.T) {
	p := newPipeline(t)
	cloud := p.cloudCE(t)
	res := p.Do(t, "POST", "/compute-envs", forgeRequest("forged"))
	require.Equal(t, 201, res.Status, string(res.Body))
	var forged computeenv.ComputeEnv
	res.JSON(t, &forged)
	forged = settle(t, p.Reconciler, forged.ID)
	require.Equal(t, computeenv.StatusAvailable, forged.Status, forged.StatusReason)

	type docCase struct {
		file, queue string
		verbatim    map[string]int // outcomes of the sample as published
		// ours points the sample at a new run and checks what it did (nil:
		// the sample's kind is not consumed at all).
		ours func(t *testing.T, body string)
	}
	batchHead := func(t *testing.T, body string) {
		r := p.launch(t, forged.ID, run.KindPipeline)
		body = strings.ReplaceAll(body, docJobID, r.Backend.JobID)
		body = strings.Replace(body, docJobName, `"`+batchce.HeadJobName(prefix, r.ID)+`"`, 1)
		body = strings.Replace(body, docBatchStatus, `"RUNNING"`, 1)
		p.send(t, eventsrc.BatchQueue, body)
		p.drain(t, eventsrc.BatchQueue, 5)
		require.Equal(t, map[string]int{"Batch Job State Change/applied": 1}, p.outcomes(t), "a tagless head job is ours by the reverse index")
		got := p.run(t, r.ID)
		require.Equal(t, run.StatusRunning, got.Status)
		// The sample is dated years before the launch: the timeline stays ordered.
		require.True(t, got.Timeline.Running.After(*got.Timeline.Submitted))
		require.Positive(t, *got.TimeToRunningMs)
	}
	ec2Run := func(t *testing.T, body, sampleID string) run.Run {
		body = inRunRegion(body)
		r := p.launch(t, cloud.ID, run.KindPipeline)
		p.send(t, eventsrc.EC2Queue, strings.ReplaceAll(body, sampleID, r.Backend.InstanceID))
		p.drain(t, eventsrc.EC2Queue, 5)
		require.Equal(t, map[string]int{kindOfBody(t, body) + "/applied": 1}, p.outcomes(t))
		return p.run(t, r.ID)
	}
	cases := []docCase{
		{"batch-job-state-change-2022.json", eventsrc.BatchQueue, map[string]int{"Batch Job State Change/not_ours": 1}, batchHead},
		{"batch-job-state-change-2021.json", eventsrc.BatchQueue, map[string]int{"Batch Job State Change/not_ours": 1}, batchHead},
		{"batch-job-state-change-2017.json", eventsrc.BatchQueue, map[string]int{"Batch Job State Change/not_ours": 1}, batchHead},
		{"ec2-instance-state-change-pending.json", eventsrc.EC2Queue, map[string]int{"EC2 Instance State-change Notification/not_ours": 1},
			func(t *testing.T, body string) {
				// No "version"; pending changes nothing, running (same shape) moves the run.
				got := ec2Run(t, body, docPendingID)
				require.Equal(t, run.StatusSubmitted, got.Status)
				got = ec2Run(t, strings.Replace(body, `"pending"`, `"running"`, 1), docPendingID)
				require.Equal(t, run.StatusRunning, got.Status)
				require.True(t, got.Timeline.Running.After(*got.Timeline.Submitted), "dated 2021: placed after the submission")
				require.Positive(t, *got.TimeToRunningMs)
			}},
		{"ec2-spot-interruption-warning.json", eventsrc.EC2Queue, map[string]int{"EC2 Spot Instance Interruption Warning/not_ours": 1},
			func(t *testing.T, body string) {
				// Its time is the placeholder "yyyy-mm-ddThh:mm:ssZ": the receive time stands in.
				got := ec2Run(t, body, docInstanceID)
				require.True(t, got.SpotInterrupted)
			}},
		{"ec2-rebalance-recommendation.json", eventsrc.EC2Queue, map[string]int{eventsrc.KindOther + "/unknown": 1}, nil},
		{"eventbridge-instance-state-change-terminated.json", eventsrc.EC2Queue, map[string]int{"EC2 Instance State-change Notification/not_ours": 1},
			func(t *testing.T, body string) {
				// The instance id keeps AWS's leading space.
				require.Contains(t, body, `" `+docInstanceID+`"`)
				body = inRunRegion(body)
				r := p.launch(t, cloud.ID, run.KindPipeline)
				p.putExit(t, r.ID, "0\n")
				p.send(t, eventsrc.EC2Queue, strings.ReplaceAll(body, docInstanceID, r.Backend.InstanceID))
				p.drain(t, eventsrc.EC2Queue, 5)
				require.Equal(t, map[string]int{"EC2 Instance State-change Notification/applied": 1}, p.outcomes(t))
				got := p.run(t, r.ID)
				require.Equal(t, run.StatusSucceeded, got.Status)
				require.True(t, got.Timeline.Completed.After(*got.Timeline.Submitted))
			}},
		{"eventbridge-patterns-instance-state-change-terminated.json", eventsrc.EC2Queue, map[string]int{"EC2 Instance State-change Notification/not_ours": 1},
			func(t *testing.T, body string) {
				body = inRunRegion(body)
				r := p.launch(t, cloud.ID, run.KindPipeline)
				p.putExit(t, r.ID, "2\n")
				p.send(t, eventsrc.EC2Queue, strings.ReplaceAll(body, docInstanceID, r.Backend.InstanceID))
				p.drain(t, eventsrc.EC2Queue, 5)
				got := p.run(t, r.ID)
				require.Equal(t, run.StatusFailed, got.Status)
				require.Equal(t, "nextflow exited with code 2", got.StatusReason)
			}},
	}

	// Every sample is covered here and named in the directory's README.
	entries, err := os.ReadDir(filepath.Join("..", "..", "events", "aws-docs"))
	require.NoError(t, err)
	readme := docSample(t, "README.md")
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			files = append(files, e.Name())
			require.Contains(t, readme, "`"+e.Name()+"`", "events/aws-docs/README.md must name the source of %s", e.Name())
		}
	}
	var covered []string
	for _, c := range cases {
		covered = append(covered, c.file)
	}
	require.ElementsMatch(t, files, covered, "every sample of events/aws-docs has a case")

	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			body := docSample(t, c.file)
			p.send(t, c.queue, body)
			p.drain(t, c.queue, 5)
			require.Equal(t, c.verbatim, p.outcomes(t))
			require.Empty(t, p.bodies(t, p.urls[c.queue]), "consumed")
			require.Empty(t, p.bodies(t, p.dlqs[c.queue]), "never dead-lettered")
			if c.ours != nil {
				c.ours(t, body)
				require.Empty(t, p.bodies(t, p.dlqs[c.queue]))
			}
		})
	}
}

func kindOfBody(t *testing.T, body string) string {
	t.Helper()
	var env struct {
		DetailType string `json:"detail-type"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &env))
	return env.DetailType
}

// TestUndecodableEventsAreDeadLettered: an event that cannot be decoded is
// reported as a batch item failure on every receive, so after the queue's
// maxReceiveCount it lands in the dead-letter queue (and its alarm), never
// silently dropped; the good events of the same batches are applied once.
func TestUndecodableEventsAreDeadLettered(t *testing.T) {
	p := newPipeline(t)
	cloud := p.cloudCE(t)
	r := p.launch(t, cloud.ID, run.KindPipeline)
	bad := []string{
		`not an event`,
		`{"version":"0","id":"x","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","time":"2026-01-01T00:00:00Z","detail":{"state":"running"}}`,
		`{"version":"0","id":"y","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{"instance-id":"i-0abc","state":"exploded"}}`,
	}
	for _, b := range bad {
		p.send(t, eventsrc.EC2Queue, b)
	}
	good := strings.ReplaceAll(inRunRegion(docSample(t, "eventbridge-patterns-instance-state-change-terminated.json")), docInstanceID, r.Backend.InstanceID)
	p.send(t, eventsrc.EC2Queue, strings.Replace(good, `"terminated"`, `"running"`, 1))
	p.drain(t, eventsrc.EC2Queue, 4*eventsrc.MaxReceiveCount)

	sort.Strings(bad)
	require.Equal(t, bad, p.bodies(t, p.dlqs[eventsrc.EC2Queue]))
	require.Empty(t, p.bodies(t, p.urls[eventsrc.EC2Queue]))
	out := p.outcomes(t)
	require.Equal(t, 1, out["EC2 Instance State-change Notification/applied"])
	require.Equal(t, eventsrc.MaxReceiveCount, out[eventsrc.KindUndecodable+"/unparsable"], "tried maxReceiveCount times")
	require.Equal(t, 2*eventsrc.MaxReceiveCount, out["EC2 Instance State-change Notification/unparsable"])
	require.Equal(t, run.StatusRunning, p.run(t, r.ID).Status)
}

// manualQueues creates a user's own Batch queues (names without ceforge's
// prefix) on an unmanaged compute environment.
func manualQueues(t *testing.T, p *pipeline) (head, work string) {
	t.Helper()
	ctx := context.Background()
	role, err := iam.NewFromConfig(p.AWS.Config(testenv.Region)).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("genomics-batch"),
		AssumeRolePolicyDocument: aws.String(forge.TrustPolicy("batch.amazonaws.com"))})
	require.NoError(t, err)
	c, err := p.Batch.CreateComputeEnvironment(ctx, &batch.CreateComputeEnvironmentInput{
		ComputeEnvironmentName: aws.String("genomics"), Type: btypes.CETypeUnmanaged, ServiceRole: role.Role.Arn,
	})
	require.NoError(t, err)
	for _, q := range []string{"genomics-head", "genomics-work"} {
		_, err := p.Batch.CreateJobQueue(ctx, &batch.CreateJobQueueInput{JobQueueName: aws.String(q), Priority: aws.Int32(1), State: btypes.JQStateEnabled,
			ComputeEnvironmentOrder: []btypes.ComputeEnvironmentOrder{{Order: aws.Int32(1), ComputeEnvironment: c.ComputeEnvironmentArn}}})
		require.NoError(t, err)
	}
	return "genomics-head", "genomics-work"
}

// TestManualModeRunsGetEvents: a run on a manual-mode CE runs on the user's
// own queues, whatever their names. Its head's and tasks' events, put on
// the default bus as AWS Batch puts them, pass the Batch rule (every queue),
// reach the batchevents function through its queue and move the run with
// task counters; a job of someone else's on the same queues is dropped
// from the event alone, without a store read.
func TestManualModeRunsGetEvents(t *testing.T) {
	p := newPipeline(t)
	headQ, workQ := manualQueues(t, p)
	res := p.Do(t, "POST", "/compute-envs", computeenv.CreateRequest{Name: "manual", Platform: computeenv.PlatformBatch, Region: testenv.Region,
		WorkDir: "s3://" + bucket + "/work", Batch: &computeenv.BatchOptions{HeadQueue: headQ, ComputeQueue: workQ}})
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	ce = settle(t, p.Reconciler, ce.ID)
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	r := p.launch(t, ce.ID, run.KindPipeline)
	require.Equal(t, headQ, r.Backend.JobQueue)

	arn := func(kind, name string) string {
		return "arn:aws:batch:" + testenv.Region + ":123456789012:" + kind + "/" + name
	}
	tags := map[string]string{"ceforge:managed": "true", "ceforge:ce-id": ce.ID, "ceforge:run-id": r.ID}
	started := time.Now().UTC().Add(-time.Minute).UnixMilli()
	job := func(id, name, queue, status string, tags map[string]string) map[string]any {
		d := map[string]any{"jobArn": arn("job", id), "jobName": name, "jobId": id, "jobQueue": arn("job-queue", queue), "status": status,
			"startedAt": started, "container": map[string]any{"logStreamName": "nextflow/default/" + id}}
		if tags != nil {
			d["tags"] = tags
		}
		return d
	}
	const kind = "Batch Job State Change"
	p.publish(t, "aws.batch", kind, arn("job", r.Backend.JobID), job(r.Backend.JobID, batchce.HeadJobName(prefix, r.ID), headQ, "RUNNING", tags))
	for i, st := range []string{"RUNNING", "SUCCEEDED"} {
		id := fmt.Sprintf("task-%d", i)
		p.publish(t, "aws.batch", kind, arn("job", id), job(id, "nf-FASTQC", workQ, st, tags))
	}
	p.publish(t, "aws.batch", kind, arn("job", "theirs"), job("theirs", "nightly-etl", workQ, "RUNNING", nil))
	p.Calls.Reset()
	p.drain(t, eventsrc.BatchQueue, 5)

	got := p.run(t, r.ID)
	require.Equal(t, run.StatusRunning, got.Status)
	require.Equal(t, run.Progress{Running: 1, Succeeded: 1}, *got.Progress)
	require.Equal(t, map[string]int{kind + "/applied": 3, kind + "/not_ours": 1}, p.outcomes(t))
	require.Zero(t, p.Calls.Count("DynamoDB.BatchGetItem"), "the foreign job needed no lookup")
	require.Empty(t, p.bodies(t, p.dlqs[eventsrc.BatchQueue]))
}
