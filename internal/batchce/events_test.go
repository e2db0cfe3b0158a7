package batchce_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/run"
)

// jobAt sets a job event's own times: the envelope's, startedAt and, for
// an ended job, stoppedAt.
func jobAt(ev map[string]any, started, when time.Time) map[string]any {
	d := ev["detail"].(map[string]any)
	d["startedAt"] = started.UnixMilli()
	if st := d["status"]; st == "SUCCEEDED" || st == "FAILED" {
		d["stoppedAt"] = when.UnixMilli()
	} else {
		delete(d, "stoppedAt")
	}
	return at(ev, when)
}

// TestOnlyTheRecordedHeadJobMovesARun: a job named and tagged like the
// run's head but with another job id (a superseded submit) changes nothing;
// the recorded head does.
func TestOnlyTheRecordedHeadJobMovesARun(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("heads"))
	r := launch(t, h, ce.ID)
	ctx := context.Background()
	now := time.Now().UTC()
	stray := jobAt(sample(t, "batch-head-failed", r.ID, "5d0c3a1e-0000-4000-8000-000000000001", true, prefix), now, now.Add(time.Second))
	failed, out := h.BatchEvents.BatchEvents.Process(ctx, messages(t, stray))
	require.Empty(t, failed)
	require.Equal(t, 1, out.Applied)
	require.Equal(t, run.StatusSubmitted, getRun(t, h, r.ID).Status, "another job than the recorded head")

	running := jobAt(sample(t, "batch-head-running", r.ID, r.Backend.JobID, true, prefix), now, now)
	failed, _ = h.BatchEvents.BatchEvents.Process(ctx, messages(t, running))
	require.Empty(t, failed)
	require.Equal(t, run.StatusRunning, getRun(t, h, r.ID).Status)
}

// TestEndedRunsKeepTheirCounters: once a run's end is recorded, task
// events dated after it change no counter; a task event dated before the
// end still counts however late it is delivered.
func TestEndedRunsKeepTheirCounters(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("ended"))
	r := launch(t, h, ce.ID)
	ctx := context.Background()
	process := func(evs ...map[string]any) {
		t.Helper()
		failed, _ := h.BatchEvents.BatchEvents.Process(ctx, messages(t, evs...))
		require.Empty(t, failed)
	}
	// Times after the submission and within the clock skew a run accepts.
	t0 := r.Timeline.Submitted.Add(time.Second)
	end := t0.Add(time.Minute)
	task := func(name, job string, at time.Time) map[string]any {
		return jobAt(sample(t, name, r.ID, job, false, prefix), t0.Add(10*time.Second), at)
	}
	process(
		jobAt(sample(t, "batch-head-running", r.ID, r.Backend.JobID, true, prefix), t0, t0),
		task("batch-compute-running", "t1", t0.Add(10*time.Second)),
		task("batch-compute-running", "t2", t0.Add(10*time.Second)),
	)
	require.Equal(t, run.Progress{Running: 2}, *getRun(t, h, r.ID).Progress)

	// The head ends; in the same batch a task event dated after the end.
	process(
		jobAt(sample(t, "batch-head-succeeded", r.ID, r.Backend.JobID, true, prefix), t0, end),
		task("batch-compute-failed", "t1", end.Add(30*time.Second)),
	)
	got := getRun(t, h, r.ID)
	require.Equal(t, run.StatusSucceeded, got.Status)
	require.Equal(t, run.Progress{Running: 2}, *got.Progress, "a task event after the end changes nothing")

	// After the end: later tasks and replays are ignored, an earlier end still counts.
	process(
		task("batch-compute-submitted", "t3", end.Add(time.Minute)),
		task("batch-compute-succeeded", "t2", end.Add(-time.Second)),
		task("batch-compute-failed", "t1", end.Add(90*time.Second)),
	)
	require.Equal(t, run.Progress{Running: 1, Succeeded: 1}, *getRun(t, h, r.ID).Progress)
}

// TestTaglessHeadEventsAreOursByTheReverseIndex: Batch events without tags
// (older event shapes) are recognised by the JOB# reverse index written at
// launch, with one batched read; a tagless job named like a head that the
// index does not know is not ours; other tagless jobs cost no read.
func TestTaglessHeadEventsAreOursByTheReverseIndex(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("tagless"))
	r := launch(t, h, ce.ID)
	ctx := context.Background()
	now := time.Now().UTC()
	untag := func(ev map[string]any) map[string]any {
		d := ev["detail"].(map[string]any)
		delete(d, "tags")
		delete(d, "jobArn")
		return ev
	}
	ours := untag(jobAt(sample(t, "batch-head-running", r.ID, r.Backend.JobID, true, prefix), now, now))
	unknownHead := untag(jobAt(sample(t, "batch-head-running", "zzzzzzzzzzzzzz", "9a9a9a9a-0000-4000-8000-000000000009", true, prefix), now, now))
	h.Calls.Reset()
	failed, out := h.BatchEvents.BatchEvents.Process(ctx, messages(t, ours, unknownHead, untag(foreign(t))))
	require.Empty(t, failed)
	require.Equal(t, eventsrc.Outcome{Applied: 1, NotOurs: 2}, out)
	require.Equal(t, 1, h.Calls.Count("DynamoDB.BatchGetItem"), "one lookup for the whole batch")
	require.Equal(t, run.StatusRunning, getRun(t, h, r.ID).Status)
}

// TestEventsOnlyFromTheRunsAccountAndRegion: a job id is the run's only in
// the run's account and region. A head event from another region, or from
// another account than the control plane's (when it knows its own), is
// not ours and changes nothing; from the run's own, it applies.
func TestEventsOnlyFromTheRunsAccountAndRegion(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("located"))
	r := launch(t, h, ce.ID)
	require.Equal(t, ce.Region, r.Region)
	require.Empty(t, r.AccountID, "a CE of the control plane's own account")
	h.BatchEvents.BatchEvents.Handle(&batchce.Sink{Store: h.BatchEvents.Store, Runs: h.BatchEvents.Runs, Account: "123456789012"},
		map[eventsrc.Kind]eventsrc.Parser{batchce.JobStateChange: batchce.Parser(prefix)})
	ctx := context.Background()
	now := time.Now().UTC()
	from := func(account, region string) map[string]any {
		ev := jobAt(sample(t, "batch-head-running", r.ID, r.Backend.JobID, true, prefix), now, now)
		ev["account"], ev["region"] = account, region
		return ev
	}
	failed, out := h.BatchEvents.BatchEvents.Process(ctx, messages(t, from("123456789012", "eu-central-1"), from("999988887777", ce.Region)))
	require.Empty(t, failed)
	require.Equal(t, eventsrc.Outcome{NotOurs: 2}, out)
	require.Equal(t, run.StatusSubmitted, getRun(t, h, r.ID).Status)

	failed, out = h.BatchEvents.BatchEvents.Process(ctx, messages(t, from("123456789012", ce.Region)))
	require.Empty(t, failed)
	require.Equal(t, eventsrc.Outcome{Applied: 1}, out)
	require.Equal(t, run.StatusRunning, getRun(t, h, r.ID).Status)
}
