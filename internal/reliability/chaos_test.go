package reliability_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/run"
)

// What the chaos can drop, and why (the reconciler's view of the truth):
//
//   - EC2: any event. The reconciler reads the instance's state (the test
//     terminates finished runs' instances and writes their exit-status
//     file, so EC2 and S3 hold the truth). EC2 keeps no time of past state
//     changes, so a state whose event was lost is recorded at the
//     reconcile pass's time, and a lost "running" followed by a delivered
//     "terminated" leaves timeline.running empty: the test expects exactly
//     that (times exact when their event arrived, else inside the
//     reconcile pass, else absent).
//   - Batch head: any event except a FAILED end. The emulator ends every
//     job SUCCEEDED at submit, so DescribeJobs can only confirm a
//     SUCCEEDED truth; SUCCEEDED runs take their startedAt/stoppedAt from
//     the emulator's job, so even a repaired run has the exact times.
//   - Batch compute jobs: intermediate states only. A task's end is
//     repaired by the reconciler only while the run is active; after the
//     head's end is recorded nothing looks at the run's tasks again
//     (reported; in AWS the head ends after its tasks, so a reconcile pass
//     usually falls in between, but nothing guarantees it). Task events are
//     dated before their head's end, as in AWS: a run's counters stop at
//     its end.
//
// The events also carry AWS's documented oddities: a tenth of the Batch
// runs' head events come without tags or jobArn (older event shapes: the
// reverse index finds the run), half the Batch runs are on a manual-mode CE
// (the user's own queues), some EC2 instance ids are padded with spaces,
// and some events that carry no time the truth depends on come with
// AWS's placeholder time or without a version.
//
// Everything is checked exactly: status, exit code, both timeline times
// (as placed: running after the submission, completed after running, by
// at least a millisecond), task counters, and that every launched run is
// listed once.

// chaosEvent is one event of the truth.
type chaosEvent struct {
	run       int
	body      string
	droppable bool
	carries   string // "running" or "completed": the time this event brings
}

// truth is what really happened to one run.
type truth struct {
	r         run.Run
	cloud     bool
	status    string
	exitCode  *int
	reason    string
	running   *time.Time
	completed *time.Time
	progress  run.Progress
	delivered map[string]bool // carries -> delivered at least once
}

type chaosResult struct {
	runs, events, messages, dropped, batches, retried int
	manual, tagless                                   int // Batch runs on the manual CE; with tagless head events
	wrong, lost                                       []string
	launch, deliver, reconcile                        time.Duration
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func tp(t time.Time) *time.Time { t = t.UTC(); return &t }

func ip(i int) *int { return &i }

func envelope(source, detailType string, at time.Time, resource string, detail map[string]any) string {
	b, _ := json.Marshal(map[string]any{
		"version": "0", "id": fmt.Sprintf("%016x", rand.Uint64()), "detail-type": detailType, "source": source,
		"account": "123456789012", "time": at.UTC().Format(time.RFC3339), "region": region,
		"resources": []string{resource}, "detail": detail,
	})
	return string(b)
}

// oddly gives an event that carries no time the truth depends on the shape
// of AWS's documented samples: the placeholder time, or no version.
func oddly(rng *rand.Rand, body string) string {
	var ev map[string]any
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		panic(err)
	}
	switch rng.IntN(10) {
	case 0:
		ev["time"] = "yyyy-mm-ddThh:mm:ssZ"
	case 1:
		delete(ev, "version")
	default:
		return body
	}
	b, _ := json.Marshal(ev)
	return string(b)
}

// placed is where a run's timeline puts a time observed at at, given the
// previous phase's time: at least a millisecond after it.
func placed(prev *time.Time, at time.Time) *time.Time {
	if prev != nil && !at.After(*prev) {
		return tp(prev.Add(time.Millisecond))
	}
	return tp(at)
}

// cloudTruth decides a cloud run's end and its EC2 events.
func cloudTruth(rng *rand.Rand, i int, r run.Run, base time.Time) (truth, []chaosEvent) {
	tr := truth{r: r, cloud: true}
	id := r.Backend.InstanceID
	ev := func(state string, at time.Time, carries string) chaosEvent {
		iid := id
		if rng.IntN(8) == 0 {
			iid = " " + id // as in EventBridge's documented sample
		}
		body := envelope("aws.ec2", "EC2 Instance State-change Notification", at,
			"arn:aws:ec2:"+region+":123456789012:instance/"+id, map[string]any{"instance-id": iid, "state": state})
		if carries == "" {
			body = oddly(rng, body)
		}
		return chaosEvent{run: i, droppable: true, carries: carries, body: body}
	}
	// After every launch, and within the clock skew a run accepts (whole
	// seconds: event times have no fraction).
	t0 := base.Add(time.Duration(i/4) * time.Second)
	evs := []chaosEvent{ev("pending", t0.Add(time.Second), ""), ev("running", t0.Add(2*time.Second), "running")}
	tr.running = placed(r.Timeline.Submitted, t0.Add(2*time.Second))
	switch p := rng.IntN(10); {
	case p < 3: // still running
		tr.status = run.StatusRunning
	default:
		code := 0
		if p >= 7 {
			code = 1 + rng.IntN(3)
		}
		tr.exitCode = &code
		tr.status = run.StatusSucceeded
		if code != 0 {
			tr.status = run.StatusFailed
		}
		tr.completed = placed(tr.running, t0.Add(4*time.Second))
		evs = append(evs, ev("shutting-down", t0.Add(3*time.Second), ""), ev("terminated", t0.Add(4*time.Second), "completed"))
	}
	return tr, evs
}

// batchTruth decides a Batch run's end, its tasks and their events. job is
// the emulator's view of the head (SUCCEEDED, with its times); headQ and
// workQ are the run's queues (forged, or the user's own on a manual CE);
// tagless runs' head events come without tags and jobArn.
func batchTruth(rng *rand.Rand, i int, r run.Run, ceID, headQ, workQ string, tagless bool, started, stopped time.Time) (truth, []chaosEvent) {
	tr := truth{r: r}
	head := r.Backend.JobID
	tags := map[string]string{"ceforge:managed": "true", "ceforge:ce-id": ceID, "ceforge:run-id": r.ID}
	ev := func(job, name, queue, status string, extra map[string]any) map[string]any {
		d := map[string]any{
			"jobArn": "arn:aws:batch:" + region + ":123456789012:job/" + job, "jobId": job, "jobName": name,
			"jobQueue": "arn:aws:batch:" + region + ":123456789012:job-queue/" + queue, "status": status, "tags": tags,
		}
		if tagless && job == head {
			delete(d, "tags")
			delete(d, "jobArn")
		}
		for k, v := range extra {
			d[k] = v
		}
		return d
	}
	var evs []chaosEvent
	add := func(d map[string]any, at time.Time, droppable bool, carries string) {
		body := envelope("aws.batch", "Batch Job State Change", at, "arn:aws:batch:"+region+":123456789012:job/"+d["jobId"].(string), d)
		if carries == "" {
			body = oddly(rng, body)
		}
		evs = append(evs, chaosEvent{run: i, droppable: droppable, carries: carries, body: body})
	}
	failed := rng.IntN(10) < 3
	code, reason := 0, "Essential container in task exited"
	if failed {
		// A failure the emulator cannot show: synthetic times, and its end is never dropped.
		started = r.CreatedAt.Add(2 * time.Second).Truncate(time.Millisecond)
		stopped = started.Add(40 * time.Second)
		code = 1 + rng.IntN(3)
		tr.status, tr.reason = run.StatusFailed, reason
	} else {
		tr.status = run.StatusSucceeded
	}
	tr.exitCode = &code
	tr.running = placed(r.Timeline.Submitted, started)
	tr.completed = placed(tr.running, stopped)
	name := batchce.HeadJobName(prefix, r.ID)
	sub := r.CreatedAt
	for k, st := range []string{"SUBMITTED", "PENDING", "RUNNABLE", "STARTING"} {
		add(ev(head, name, headQ, st, nil), sub.Add(time.Duration(k)*100*time.Millisecond), true, "")
	}
	add(ev(head, name, headQ, "RUNNING", map[string]any{"startedAt": ms(started), "container": map[string]any{"logStreamName": "head/default/" + head}}), started, true, "running")
	final := "SUCCEEDED"
	if failed {
		final = "FAILED"
	}
	add(ev(head, name, headQ, final, map[string]any{"startedAt": ms(started), "stoppedAt": ms(stopped), "statusReason": reason,
		"container": map[string]any{"exitCode": code, "logStreamName": "head/default/" + head}}), stopped, !failed, "completed")

	// Tasks, all dated before the head's end (the emulator's heads end at
	// once, so some tasks "ran" before the head: only their counters matter).
	for k := 0; k < 3; k++ {
		job := fmt.Sprintf("%s-task-%d", r.ID, k)
		tname := fmt.Sprintf("nf-PROCESS_%d", k)
		end := "SUCCEEDED"
		if rng.IntN(4) == 0 {
			end = "FAILED"
			tr.progress.Failed++
		} else {
			tr.progress.Succeeded++
		}
		t0 := stopped.Add(-time.Duration(10-k) * time.Second)
		for s, st := range []string{"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", end} {
			at := t0.Add(time.Duration(s) * time.Second)
			extra := map[string]any{}
			if s >= 4 {
				extra["startedAt"] = ms(t0.Add(4 * time.Second))
			}
			if s == 5 {
				extra["stoppedAt"] = ms(at)
			}
			add(ev(job, tname, workQ, st, extra), at, s < 5, "")
		}
	}
	return tr, evs
}

type chaosOpts struct {
	cloudRuns, batchRuns int
	dropRate             float64
	seed                 uint64
	workers              int // concurrent event consumers
}

// runEventChaos launches the runs, plays their events with chaos, runs the
// reconciler and compares every run with its truth.
func runEventChaos(tb testing.TB, f *fixture, o chaosOpts) chaosResult {
	tb.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))
	var res chaosResult

	// Setup: an AWS Cloud CE, a forged Batch CE and a manual-mode Batch CE
	// on the user's own queues, then the runs through the API.
	cloudCE := f.createCE(tb, cloudCEBody("chaos-cloud"))
	batchCE := f.createCE(tb, batchCEBody("chaos-batch"))
	userHead, userWork := f.userQueues(tb, "genomics")
	manualCE := f.createCE(tb, computeenv.CreateRequest{Name: "chaos-manual", Platform: computeenv.PlatformBatch, Region: region,
		WorkDir: "s3://" + bucket + "/work", Batch: &computeenv.BatchOptions{HeadQueue: userHead, ComputeQueue: userWork}})
	start := time.Now()
	cloudRuns, err := launchMany(f.Router, []string{cloudCE.ID}, o.cloudRuns, 6)
	require.NoError(tb, err)
	batchRuns, err := launchMany(f.Router, []string{batchCE.ID, manualCE.ID}, o.batchRuns, 6)
	require.NoError(tb, err)
	res.launch = time.Since(start)
	forged := forge.NamesFor(prefix, batchCE.ID)

	// The emulator's view of the heads (it ends every job at submit).
	jobTimes := map[string][2]time.Time{}
	for s := 0; s < len(batchRuns); s += batchce.DescribeJobsMax {
		var ids []string
		for _, r := range batchRuns[s:min(s+batchce.DescribeJobsMax, len(batchRuns))] {
			ids = append(ids, r.Backend.JobID)
		}
		out, err := f.Batch.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: ids})
		require.NoError(tb, err)
		for _, j := range out.Jobs {
			require.NotNil(tb, j.StartedAt, "emulator job without startedAt")
			require.NotNil(tb, j.StoppedAt, "emulator job without stoppedAt")
			jobTimes[aws.ToString(j.JobId)] = [2]time.Time{time.UnixMilli(*j.StartedAt).UTC(), time.UnixMilli(*j.StoppedAt).UTC()}
		}
	}

	// The truth and its events; the emulator is made to match it.
	base := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	var truths []truth
	var events []chaosEvent
	var toTerminate []string
	for _, r := range cloudRuns {
		tr, evs := cloudTruth(rng, len(truths), r, base)
		if tr.completed != nil {
			_, err := f.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("work/.ceforge/runs/" + r.ID + "/exit-status"),
				Body: strings.NewReader(fmt.Sprintf("%d\n", *tr.exitCode))})
			require.NoError(tb, err)
			toTerminate = append(toTerminate, r.Backend.InstanceID)
		}
		truths = append(truths, tr)
		events = append(events, evs...)
	}
	for s := 0; s < len(toTerminate); s += 500 {
		_, err := f.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: toTerminate[s:min(s+500, len(toTerminate))]})
		require.NoError(tb, err)
	}
	for _, r := range batchRuns {
		jt, ok := jobTimes[r.Backend.JobID]
		require.True(tb, ok, "head job %s not in the emulator", r.Backend.JobID)
		headQ, workQ := forged.HeadQueue, forged.WorkQueue
		if r.ComputeEnvID == manualCE.ID {
			headQ, workQ = userHead, userWork
			res.manual++
		}
		tagless := rng.IntN(10) == 0
		if tagless {
			res.tagless++
		}
		tr, evs := batchTruth(rng, len(truths), r, r.ComputeEnvID, headQ, workQ, tagless, jt[0], jt[1])
		truths = append(truths, tr)
		events = append(events, evs...)
	}
	res.runs, res.events = len(truths), len(events)

	// Chaos: drop dropRate of all events (among those the reconciler can
	// repair), duplicate a fifth, shuffle, hold a tenth back as late arrivals.
	for i := range truths {
		truths[i].delivered = map[string]bool{}
	}
	perm := rng.Perm(len(events))
	dropped := map[int]bool{}
	want := int(float64(len(events)) * o.dropRate)
	for _, i := range perm {
		if len(dropped) == want {
			break
		}
		if events[i].droppable {
			dropped[i] = true
		}
	}
	res.dropped = len(dropped)
	type msg struct {
		eventsrc.Message
		ev int
	}
	var msgs, late []msg
	for i, e := range events {
		if dropped[i] {
			continue
		}
		truths[e.run].delivered[e.carries] = true
		copies := 1
		if rng.IntN(5) == 0 {
			copies += 1 + rng.IntN(2)
		}
		for c := 0; c < copies; c++ {
			m := msg{Message: eventsrc.Message{ID: fmt.Sprintf("m-%d-%d", i, c), Body: e.body}, ev: i}
			if rng.IntN(10) == 0 {
				late = append(late, m)
			} else {
				msgs = append(msgs, m)
			}
		}
	}
	rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	rng.Shuffle(len(late), func(i, j int) { late[i], late[j] = late[j], late[i] })
	res.messages = len(msgs) + len(late)

	// Delivery: SQS-sized batches (1-10) to concurrent consumers; a failed
	// message goes back to the queue, as SQS redelivers it.
	deliver := func(queue []msg) {
		for round := 0; len(queue) > 0; round++ {
			require.Less(tb, round, 20, "messages still failing after 20 redeliveries")
			var batches [][]msg
			for len(queue) > 0 {
				n := min(len(queue), 1+rng.IntN(10))
				batches = append(batches, queue[:n])
				queue = queue[n:]
			}
			res.batches += len(batches)
			var mu sync.Mutex
			var again []msg
			var wg sync.WaitGroup
			work := make(chan []msg)
			for w := 0; w < o.workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for b := range work {
						isBatch := strings.Contains(b[0].Body, `"aws.batch"`)
						byID := map[string]msg{}
						var ec2Msgs, batchMsgs []eventsrc.Message
						for _, m := range b {
							byID[m.ID] = m
							if strings.Contains(m.Body, `"aws.batch"`) {
								batchMsgs = append(batchMsgs, m.Message)
							} else {
								ec2Msgs = append(ec2Msgs, m.Message)
							}
						}
						_ = isBatch
						// One SQS queue per consumer: split a mixed draw in two.
						var failed []string
						if len(ec2Msgs) > 0 {
							fl, _ := f.EC2Events.EC2Events.Process(ctx, ec2Msgs)
							failed = append(failed, fl...)
						}
						if len(batchMsgs) > 0 {
							fl, _ := f.BatchEvents.BatchEvents.Process(ctx, batchMsgs)
							failed = append(failed, fl...)
						}
						mu.Lock()
						for _, id := range failed {
							again = append(again, byID[id])
						}
						mu.Unlock()
					}
				}()
			}
			for _, b := range batches {
				work <- b
			}
			close(work)
			wg.Wait()
			res.retried += len(again)
			queue = again
		}
	}
	start = time.Now()
	deliver(msgs)
	deliver(late)
	res.deliver = time.Since(start)

	// The reconciler repairs what was dropped.
	recStart := time.Now().UTC()
	require.NoError(tb, f.Reconciler.Reconciler.Once(ctx))
	recEnd := time.Now().UTC()
	res.reconcile = recEnd.Sub(recStart)

	// Compare with the truth.
	inWindow := func(t *time.Time) bool { return t != nil && !t.Before(recStart) && !t.After(recEnd) }
	listed := map[string]int{}
	for _, ce := range []string{cloudCE.ID, batchCE.ID, manualCE.ID} {
		for _, r := range f.allRuns(tb, ce) {
			listed[r.ID]++
		}
	}
	for _, tr := range truths {
		if listed[tr.r.ID] != 1 {
			res.lost = append(res.lost, fmt.Sprintf("run %s listed %d times", tr.r.ID, listed[tr.r.ID]))
			continue
		}
		got := f.getRun(tb, tr.r.ID)
		var bad []string
		if got.Status != tr.status {
			bad = append(bad, fmt.Sprintf("status %s, want %s (%s)", got.Status, tr.status, got.StatusReason))
		}
		if (got.ExitCode == nil) != (tr.exitCode == nil) || (got.ExitCode != nil && *got.ExitCode != *tr.exitCode) {
			bad = append(bad, fmt.Sprintf("exit code %v, want %v", deref(got.ExitCode), deref(tr.exitCode)))
		}
		if tr.reason != "" && got.StatusReason != tr.reason {
			bad = append(bad, fmt.Sprintf("reason %q, want %q", got.StatusReason, tr.reason))
		}
		okRunning, okCompleted := timeEq(got.Timeline.Running, tr.running), timeEq(got.Timeline.Completed, tr.completed)
		if tr.cloud {
			if !tr.delivered["running"] {
				// EC2 keeps no time of past states: seen by the reconciler
				// (still running) or unknown (ended before the reconcile).
				okRunning = (tr.completed == nil && inWindow(got.Timeline.Running)) || (tr.completed != nil && got.Timeline.Running == nil)
			}
			if tr.completed != nil && !tr.delivered["completed"] {
				okCompleted = inWindow(got.Timeline.Completed)
			}
		}
		if !okRunning {
			bad = append(bad, fmt.Sprintf("running %s, want %s (event delivered: %v)", fmtTime(got.Timeline.Running), fmtTime(tr.running), tr.delivered["running"]))
		}
		if !okCompleted {
			bad = append(bad, fmt.Sprintf("completed %s, want %s (event delivered: %v)", fmtTime(got.Timeline.Completed), fmtTime(tr.completed), tr.delivered["completed"]))
		}
		if !tr.cloud {
			p := run.Progress{}
			if got.Progress != nil {
				p = *got.Progress
			}
			if p != tr.progress {
				bad = append(bad, fmt.Sprintf("progress %+v, want %+v", p, tr.progress))
			}
		}
		if len(bad) > 0 {
			kind := "batch"
			if tr.cloud {
				kind = "cloud"
			}
			res.wrong = append(res.wrong, fmt.Sprintf("%s run %s: %s", kind, tr.r.ID, strings.Join(bad, "; ")))
		}
	}
	for id, n := range listed {
		if n != 1 {
			res.lost = append(res.lost, fmt.Sprintf("run %s listed %d times", id, n))
		}
	}
	sort.Strings(res.wrong)
	return res
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestEventChaos: 100 runs across both platforms, every event shuffled,
// a fifth duplicated, a tenth late, 5% dropped, in SQS-sized batches to
// four concurrent consumers; then one reconcile pass. Every run ends
// exactly as it really did.
func TestEventChaos(t *testing.T) {
	f, _ := proxied(t, 3)
	res := runEventChaos(t, f, chaosOpts{cloudRuns: 50, batchRuns: 50, dropRate: 0.05, seed: 8, workers: 4})
	t.Logf("runs %d (batch: %d manual-mode, %d with tagless head events), events %d, messages %d, dropped %d, batches %d, redelivered %d; launch %s, delivery %s, reconcile %s",
		res.runs, res.manual, res.tagless, res.events, res.messages, res.dropped, res.batches, res.retried, res.launch, res.deliver, res.reconcile)
	require.Empty(t, res.lost, "runs lost or duplicated")
	require.Empty(t, res.wrong, "runs that differ from the truth")
	require.Positive(t, res.dropped)
	require.Positive(t, res.manual)
	require.Positive(t, res.tagless)
}

// TestLateRunningEventCompletesTimeline: an EC2 "running" event that
// arrives after "terminated" does not move the run (terminal is final) but
// still records when it ran; replays change nothing.
func TestLateRunningEventCompletesTimeline(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ce := f.createCE(t, cloudCEBody("late"))
	res := f.Do(t, "POST", "/runs", pipelineReq(ce.ID))
	require.Equal(t, 201, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	_, err := f.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("work/.ceforge/runs/" + r.ID + "/exit-status"), Body: strings.NewReader("0")})
	require.NoError(t, err)
	id := r.Backend.InstanceID
	at := time.Now().UTC().Truncate(time.Second).Add(time.Minute)
	msg := func(state string, when time.Time) []eventsrc.Message {
		return []eventsrc.Message{{ID: state, Body: envelope("aws.ec2", "EC2 Instance State-change Notification", when, "arn:aws:ec2:"+region+":123456789012:instance/"+id,
			map[string]any{"instance-id": id, "state": state})}}
	}
	for _, m := range [][]eventsrc.Message{msg("terminated", at.Add(time.Minute)), msg("running", at), msg("running", at.Add(time.Hour))} {
		failed, _ := f.EC2Events.EC2Events.Process(ctx, m)
		require.Empty(t, failed)
	}
	got := f.getRun(t, r.ID)
	require.Equal(t, run.StatusSucceeded, got.Status)
	require.True(t, timeEq(got.Timeline.Running, &at), fmtTime(got.Timeline.Running))
	require.True(t, timeEq(got.Timeline.Completed, tp(at.Add(time.Minute))), fmtTime(got.Timeline.Completed))
	require.NotNil(t, got.TimeToRunningMs)
	require.Equal(t, at.Sub(*got.Timeline.Submitted).Milliseconds(), *got.TimeToRunningMs)
}
