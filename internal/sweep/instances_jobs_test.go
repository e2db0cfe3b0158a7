package sweep_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	batchtypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/sweep"
	"github.com/ceforge/ceforge/internal/tags"
	"github.com/ceforge/ceforge/internal/testenv"
)

func launch(t *testing.T, c *ec2.Client, tg map[string]string, protect bool) string {
	out, err := c.RunInstances(context.Background(), &ec2.RunInstancesInput{
		ImageId: aws.String("ami-12c6146b"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: ec2types.InstanceTypeM6iLarge,
		DisableApiTermination: aws.Bool(protect),
		TagSpecifications:     []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: ec2Tags(tg)}},
	})
	require.NoError(t, err)
	id := aws.ToString(out.Instances[0].InstanceId)
	if protect {
		// moto ignores DisableApiTermination on RunInstances; it honours the attribute.
		_, err = c.ModifyInstanceAttribute(context.Background(), &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
			DisableApiTermination: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}})
		require.NoError(t, err)
	}
	return id
}

func instanceStates(t *testing.T, c *ec2.Client) map[string]string {
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	require.NoError(t, err)
	m := map[string]string{}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			m[aws.ToString(i.InstanceId)] = string(i.State.Name)
		}
	}
	return m
}

// TestInstanceSweep launches run instances in every situation and checks
// which ones the sweeper terminates, when.
func TestInstanceSweep(t *testing.T) {
	env := testenv.New(t)
	ec2c := ec2.NewFromConfig(env.AWS.Config(""))
	seedComputeEnvs(t, env.Store)
	t0 := time.Now().UTC()
	hourAgo := t0.Add(-time.Hour)
	soon := t0.Add(25 * time.Minute)

	own := func(runID string, extra ...string) map[string]string {
		m := tags.Ownership(ceCloud, runID)
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	type want struct {
		name       string
		id         string
		goneAt31m  bool // terminated by the sweep 31 minutes on
		goneAt25h  bool // terminated by the sweep 25 hours on (max lifetime 24 h)
		skipReason string
	}
	seedRun(t, env.Store, "runterminal001", run.StatusSucceeded, &hourAgo, "")
	seedRun(t, env.Store, "runactive00001", run.StatusRunning, nil, "") // backend set below
	seedRun(t, env.Store, "runduplicate01", run.StatusRunning, nil, "i-0123456789abcdef0")
	seedRun(t, env.Store, "runprotected01", run.StatusFailed, &hourAgo, "")
	seedRun(t, env.Store, "runforeign0001", run.StatusCancelled, &hourAgo, "")
	seedRun(t, env.Store, "runkeep0000001", run.StatusFailed, &hourAgo, "")
	seedRun(t, env.Store, "runrecent00001", run.StatusSucceeded, &soon, "")

	// A cloud CE deleted after its instances were launched.
	deletedAt := t0.Add(time.Minute)
	require.NoError(t, env.Store.Create(context.Background(), store.KindCE, ceGone, computeenv.ComputeEnv{ID: ceGone, Name: "gone",
		Platform: computeenv.PlatformCloud, Region: testenv.Region, Status: computeenv.StatusDeleted, DeletedAt: &deletedAt,
		Cloud: &computeenv.CloudOptions{MaxRunHours: 24}, CreatedAt: t0.Add(-time.Hour)}))

	cases := []*want{
		{name: "terminal run", goneAt31m: true},
		// No run record, CE live (a table restored to a point in time loses
		// every newer run's record): kept until it outlives maxRunHours.
		{name: "no run record", goneAt25h: true, skipReason: sweep.ReasonNoRunRecord},
		{name: "active run, its own instance", goneAt25h: true},
		{name: "active run, not its instance", goneAt31m: true},
		{name: "termination protection", skipReason: sweep.ReasonTermProtection},
		{name: "karpenter", skipReason: sweep.ReasonOtherController},
		{name: "eks", skipReason: sweep.ReasonOtherController},
		{name: "keep", skipReason: sweep.ReasonKeepTag},
		{name: "run-id without managed", skipReason: sweep.ReasonUnprovenOwnership},
		{name: "unknown CE", skipReason: sweep.ReasonUnknownCE},
		{name: "run ended recently", goneAt25h: true, skipReason: sweep.ReasonWithinGrace},
		{name: "no run record, its CE deleted since", goneAt31m: true},
	}
	cases[0].id = launch(t, ec2c, own("runterminal001"), false)
	cases[1].id = launch(t, ec2c, own("runnorecord001"), false)
	cases[2].id = launch(t, ec2c, own("runactive00001"), false)
	require.NoError(t, env.Store.Patch(context.Background(), "RUN", "runactive00001",
		map[string]any{"backend": run.Backend{Type: run.BackendEC2, InstanceID: cases[2].id}}, 0))
	cases[3].id = launch(t, ec2c, own("runduplicate01"), false)
	cases[4].id = launch(t, ec2c, own("runprotected01"), true)
	cases[5].id = launch(t, ec2c, own("runforeign0001", "karpenter.sh/nodepool", "default"), false)
	cases[6].id = launch(t, ec2c, own("runforeign0001", "eks:cluster-name", "prod"), false)
	cases[7].id = launch(t, ec2c, own("runkeep0000001", tags.Keep, "true"), false)
	cases[8].id = launch(t, ec2c, map[string]string{tags.RunID: "runterminal001", tags.CEID: ceCloud}, false)
	cases[9].id = launch(t, ec2c, tags.Ownership(ceUnknown, "runterminal001"), false)
	cases[10].id = launch(t, ec2c, own("runrecent00001"), false)
	cases[11].id = launch(t, ec2c, tags.Ownership(ceGone, "runnorecord002"), false)
	plain := launch(t, ec2c, map[string]string{"Name": "not ours"}, false)

	clk := &clock{t: t0.Add(31 * time.Minute)}
	sw := newSweeper(env, clk, "", sweep.Options{})
	ctx := context.Background()

	dry, err := sw.Sweep(ctx, true, sweep.TriggerAPI)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, dry.Status, dry.Errors)
	require.Equal(t, 4, dry.Instances.Eligible, "termination protection is checked at deletion")
	require.Equal(t, 3, dry.Instances.WouldDelete)
	require.Contains(t, skipSample(dry, sweep.KindInstance, sweep.ReasonNoRunRecord), cases[1].id, "a missing record alone terminates nothing")
	require.Zero(t, dry.Instances.Deleted)
	for id, st := range instanceStates(t, ec2c) {
		require.Equal(t, "running", st, "dry run terminated %s", id)
	}

	r, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, r.Status, r.Errors)
	require.Equal(t, 12, r.Instances.Examined)
	require.Equal(t, 3, r.Instances.Deleted)
	states := instanceStates(t, ec2c)
	for _, c := range cases {
		require.Equal(t, c.goneAt31m, states[c.id] == "terminated", c.name)
		if c.skipReason != "" {
			require.Contains(t, skipSample(r, sweep.KindInstance, c.skipReason), c.id, c.name)
		}
	}
	require.Equal(t, "running", states[plain])
	for _, it := range r.Deleted {
		if it.ID == cases[11].id {
			require.Equal(t, sweep.WhyCEDeleted, it.Reason)
		}
	}

	clk.Set(t0.Add(25 * time.Hour))
	r, err = sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, 3, r.Instances.Deleted)
	reasons := map[string]string{}
	for _, it := range r.Deleted {
		reasons[it.ID] = it.Reason
	}
	require.Equal(t, sweep.WhyMaxLifetime, reasons[cases[2].id])
	require.Equal(t, sweep.WhyMaxLifetime, reasons[cases[1].id], "past maxRunHours even without a record")
	require.Equal(t, sweep.WhyRunTerminal, reasons[cases[10].id])
	states = instanceStates(t, ec2c)
	for _, c := range cases {
		require.Equal(t, c.goneAt31m || c.goneAt25h, states[c.id] == "terminated", c.name)
	}
	require.Equal(t, "running", states[plain])
}

func skipSample(r *sweep.Report, kind, reason string) []string {
	for _, s := range r.Skipped {
		if s.Kind == kind && s.Reason == reason {
			return s.Sample
		}
	}
	return nil
}

// fakeBatch is a small Batch: moto ends every job at once (SUCCEEDED
// without Docker), so jobs in the active states exist only here.
type fakeBatch struct {
	mu         sync.Mutex
	queues     []batchtypes.JobQueueDetail
	jobs       []batchtypes.JobDetail
	terminated []string
}

func (f *fakeBatch) DescribeJobQueues(context.Context, *batch.DescribeJobQueuesInput, ...func(*batch.Options)) (*batch.DescribeJobQueuesOutput, error) {
	return &batch.DescribeJobQueuesOutput{JobQueues: f.queues}, nil
}

func (f *fakeBatch) ListJobs(_ context.Context, in *batch.ListJobsInput, _ ...func(*batch.Options)) (*batch.ListJobsOutput, error) {
	known := false
	for _, q := range f.queues {
		known = known || aws.ToString(q.JobQueueName) == aws.ToString(in.JobQueue) || aws.ToString(q.JobQueueArn) == aws.ToString(in.JobQueue)
	}
	if !known { // as AWS Batch answers
		return nil, &batchtypes.ClientException{Message: aws.String("JobQueue " + aws.ToString(in.JobQueue) + " not found")}
	}
	out := &batch.ListJobsOutput{}
	for _, j := range f.jobs {
		if aws.ToString(j.JobQueue) == aws.ToString(in.JobQueue) && j.Status == in.JobStatus {
			out.JobSummaryList = append(out.JobSummaryList, batchtypes.JobSummary{JobId: j.JobId, JobName: j.JobName, Status: j.Status})
		}
	}
	return out, nil
}

func (f *fakeBatch) DescribeJobs(_ context.Context, in *batch.DescribeJobsInput, _ ...func(*batch.Options)) (*batch.DescribeJobsOutput, error) {
	if len(in.Jobs) > 100 {
		return nil, &batchtypes.ClientException{Message: aws.String("at most 100 jobs")}
	}
	out := &batch.DescribeJobsOutput{}
	for _, id := range in.Jobs {
		for _, j := range f.jobs {
			if aws.ToString(j.JobId) == id {
				out.Jobs = append(out.Jobs, j)
			}
		}
	}
	return out, nil
}

func (f *fakeBatch) TerminateJob(_ context.Context, in *batch.TerminateJobInput, _ ...func(*batch.Options)) (*batch.TerminateJobOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terminated = append(f.terminated, aws.ToString(in.JobId))
	return &batch.TerminateJobOutput{}, nil
}

// TestJobSweep: jobs in every state, in our queues and others.
func TestJobSweep(t *testing.T) {
	env := testenv.New(t)
	seedComputeEnvs(t, env.Store)
	ctx := context.Background()
	// The Batch CE names a manual-mode queue of the user's.
	ourQueue := "arn:aws:batch:us-east-1:123456789012:job-queue/ceforge-compute"
	otherCEQueue := "arn:aws:batch:us-east-1:123456789012:job-queue/ceforge-othercompute"
	require.NoError(t, env.Store.Patch(ctx, "CE", ceBatch, map[string]any{
		"batch":           map[string]any{"computeQueue": "users-queue"},
		"forgedResources": []computeenv.Resource{{Type: forge.TypeJobQueue, Name: "ceforge-compute", ARN: ourQueue}},
	}, 0))
	t0 := time.Now().UTC()
	hourAgo := t0.Add(-time.Hour)
	seedRunOf(t, env.Store, ceBatch, "runended000001", run.StatusFailed, &hourAgo, "")
	seedRunOf(t, env.Store, ceBatch, "runalive000001", run.StatusRunning, nil, "")
	recent := t0.Add(-time.Minute)
	seedRunOf(t, env.Store, ceBatch, "runrecent00001", run.StatusCancelled, &recent, "")
	seedRun(t, env.Store, "runcloudended1", run.StatusFailed, &hourAgo, "") // a run of the cloud CE

	fb := &fakeBatch{queues: []batchtypes.JobQueueDetail{
		{JobQueueName: aws.String("ceforge-compute"), JobQueueArn: aws.String(ourQueue)},
		{JobQueueName: aws.String("ceforge-othercompute"), JobQueueArn: aws.String(otherCEQueue)},
		{JobQueueName: aws.String("someone-else"), JobQueueArn: aws.String("arn:aws:batch:us-east-1:123456789012:job-queue/someone-else")},
		{JobQueueName: aws.String("users-queue"), JobQueueArn: aws.String("arn:aws:batch:us-east-1:123456789012:job-queue/users-queue")},
	}}
	job := func(id, queue string, st batchtypes.JobStatus, tg map[string]string) {
		fb.jobs = append(fb.jobs, batchtypes.JobDetail{JobId: aws.String(id), JobName: aws.String(id), JobQueue: aws.String(queue), Status: st, Tags: tg})
	}
	proof := func(runID string, extra ...string) map[string]string {
		m := tags.Ownership(ceBatch, runID)
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	ended := proof("runended000001")
	var wantTerminated []string
	for _, st := range []batchtypes.JobStatus{"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"} {
		id := "ended-" + string(st)
		job(id, ourQueue, st, ended)
		wantTerminated = append(wantTerminated, id)
	}
	job("ended-manual-queue", "users-queue", "RUNNING", ended)
	wantTerminated = append(wantTerminated, "ended-manual-queue")
	job("ended-SUCCEEDED", ourQueue, "SUCCEEDED", ended)
	job("ended-FAILED", ourQueue, "FAILED", ended)
	job("ended-other-queue", "arn:aws:batch:us-east-1:123456789012:job-queue/someone-else", "RUNNING", ended)
	job("alive", ourQueue, "RUNNING", proof("runalive000001"))
	job("no-tag", ourQueue, "RUNNING", nil)
	job("no-record", ourQueue, "RUNNABLE", proof("runmissing0001"))
	job("recent", ourQueue, "RUNNING", proof("runrecent00001"))
	job("keep", ourQueue, "RUNNING", proof("runended000001", "DoNotDelete", "yes"))
	// Each proof missing in turn: the job stays.
	job("run-tag-only", ourQueue, "RUNNING", map[string]string{tags.RunID: "runended000001"})
	job("not-managed", ourQueue, "RUNNING", map[string]string{tags.RunID: "runended000001", tags.CEID: ceBatch})
	job("queue-of-no-ce", otherCEQueue, "RUNNING", ended)
	job("run-of-other-ce", ourQueue, "RUNNING", proof("runcloudended1"))
	job("unknown-ce", ourQueue, "RUNNING", tags.Ownership(ceUnknown, "runended000001"))

	clk := &clock{t: t0}
	sw := newSweeper(env, clk, "", sweep.Options{})
	base := sweep.FactoryClients(env.Function(app.FnSweeper), "")
	sw.Clients = func(ctx context.Context, tg sweep.Target) (sweep.EC2API, sweep.BatchAPI, error) {
		e, _, err := base(ctx, tg)
		return e, fb, err
	}

	dry, err := sw.Sweep(ctx, true, sweep.TriggerAPI)
	require.NoError(t, err)
	require.Equal(t, len(wantTerminated), dry.Jobs.Eligible)
	require.Equal(t, len(wantTerminated), dry.Jobs.WouldDelete)
	require.Empty(t, fb.terminated)

	r, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, r.Status, r.Errors)
	sort.Strings(fb.terminated)
	sort.Strings(wantTerminated)
	require.Equal(t, wantTerminated, fb.terminated)
	require.Equal(t, len(wantTerminated), r.Jobs.Deleted)
	require.Equal(t, []string{"no-tag"}, skipSample(r, sweep.KindJob, sweep.ReasonNoRunTag))
	require.Equal(t, []string{"no-record"}, skipSample(r, sweep.KindJob, sweep.ReasonNoRunRecord))
	require.Equal(t, []string{"recent"}, skipSample(r, sweep.KindJob, sweep.ReasonWithinGrace))
	require.Equal(t, []string{"keep"}, skipSample(r, sweep.KindJob, sweep.ReasonKeepTag))
	require.ElementsMatch(t, []string{"run-tag-only", "not-managed"}, skipSample(r, sweep.KindJob, sweep.ReasonUnprovenOwnership))
	require.Equal(t, []string{"queue-of-no-ce"}, skipSample(r, sweep.KindJob, sweep.ReasonQueueOfOtherCE))
	require.Equal(t, []string{"run-of-other-ce"}, skipSample(r, sweep.KindJob, sweep.ReasonRunOfOtherCE))
	require.Equal(t, []string{"unknown-ce"}, skipSample(r, sweep.KindJob, sweep.ReasonUnknownCE))
}

// A manual compute environment whose queue its owner deleted: the sweep
// skips that queue and completes, instead of failing on it every time.
func TestJobSweepSkipsDeletedManualQueue(t *testing.T) {
	env := testenv.New(t)
	seedComputeEnvs(t, env.Store)
	ctx := context.Background()
	require.NoError(t, env.Store.Patch(ctx, "CE", ceBatch, map[string]any{"batch": map[string]any{"headQueue": "users-head", "computeQueue": "deleted-queue"}}, 0))
	fb := &fakeBatch{queues: []batchtypes.JobQueueDetail{
		{JobQueueName: aws.String("users-head"), JobQueueArn: aws.String("arn:aws:batch:us-east-1:123456789012:job-queue/users-head")},
	}}
	sw := newSweeper(env, &clock{t: time.Now().UTC()}, "", sweep.Options{})
	base := sweep.FactoryClients(env.AWS, "")
	sw.Clients = func(ctx context.Context, tg sweep.Target) (sweep.EC2API, sweep.BatchAPI, error) {
		e, _, err := base(ctx, tg)
		return e, fb, err
	}
	r, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, r.Status, r.Errors)
	require.Equal(t, []string{"deleted-queue"}, skipSample(r, sweep.KindJob, sweep.ReasonQueueGone))
}
