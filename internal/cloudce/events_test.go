package cloudce_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/cloudce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
)

func ended(state ec2types.InstanceStateName) bool {
	return state == ec2types.InstanceStateNameShuttingDown || state == ec2types.InstanceStateNameTerminated
}

// TestEventTimesKeepTimelineOrdered: an event dated before the run's
// submission, or far in the future, never yields a negative or zero
// duration, and the timeline stays ordered.
func TestEventTimesKeepTimelineOrdered(t *testing.T) {
	f := newFixture(t)
	ce := f.createCE(t, ceBody())

	early := f.launch(t, pipelineBody(ce.ID))
	sub := *early.Timeline.Submitted
	f.feed(t, event(t, "ec2-running.json", early.Backend.InstanceID, sub.Add(-time.Hour)))
	got := f.getRun(t, early.ID)
	require.Equal(t, run.StatusRunning, got.Status)
	require.True(t, got.Timeline.Running.After(sub), "running %s, submitted %s", got.Timeline.Running, sub)
	require.Positive(t, *got.TimeToRunningMs)

	// Ended "before" it ran: completed still after running.
	f.putExit(t, early.ID, "0")
	f.feed(t, event(t, "ec2-terminated.json", early.Backend.InstanceID, sub.Add(-30*time.Minute)))
	got = f.getRun(t, early.ID)
	require.Equal(t, run.StatusSucceeded, got.Status)
	require.True(t, got.Timeline.Completed.After(*got.Timeline.Running))

	// Far in the future: taken as now.
	late := f.launch(t, pipelineBody(ce.ID))
	before := time.Now().UTC()
	f.feed(t, event(t, "ec2-running.json", late.Backend.InstanceID, before.Add(48*time.Hour)))
	after := time.Now().UTC()
	got = f.getRun(t, late.ID)
	require.False(t, got.Timeline.Running.Before(before) || got.Timeline.Running.After(after), "running %s not within [%s, %s]", got.Timeline.Running, before, after)
	require.Positive(t, *got.TimeToRunningMs)
	require.Less(t, *got.TimeToRunningMs, int64(time.Hour/time.Millisecond))
}

// TestOnlyTheRecordedHeadMovesARun: an EC2 event moves a run only when its
// instance is the run's recorded head, even when a reverse index still
// names the run; the reconciler never replaces a recorded head.
func TestOnlyTheRecordedHeadMovesARun(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ce := f.createCE(t, ceBody())
	var stored computeenv.ComputeEnv
	_, err := f.Store.Get(ctx, store.KindCE, ce.ID, &stored)
	require.NoError(t, err)
	launcher := f.API.Runs.Launchers[computeenv.PlatformCloud] // the api launches heads

	r := f.launch(t, pipelineBody(ce.ID))
	time.Sleep(1100 * time.Millisecond) // launch times have second resolution
	dup, _, err := launcher.Launch(ctx, &stored, &r)
	require.NoError(t, err)
	require.NotEqual(t, r.Backend.InstanceID, dup.InstanceID)
	// An index entry for the other instance (a head the run had before).
	require.NoError(t, f.Store.PutRef(ctx, store.KindInstance, dup.InstanceID, r.ID))

	out := f.feed(t, event(t, "ec2-terminated.json", dup.InstanceID, time.Now()))
	require.Equal(t, eventsrc.Outcome{NotOurs: 1}, out)
	require.Equal(t, run.StatusSubmitted, f.getRun(t, r.ID).Status)
	f.feed(t, event(t, "ec2-running.json", r.Backend.InstanceID, time.Now()))
	require.Equal(t, run.StatusRunning, f.getRun(t, r.ID).Status)

	// The recorded head is gone from EC2's view; another instance carries
	// the run's tag: the recorded head stays, the other is terminated.
	gone := f.launch(t, pipelineBody(ce.ID))
	require.NoError(t, f.Store.Patch(ctx, store.KindRun, gone.ID, map[string]any{"backend.instanceId": "i-0dead00000000beef"}, 0))
	gone.Backend.InstanceID = "i-0dead00000000beef"
	other, _, err := launcher.Launch(ctx, &stored, &gone)
	require.NoError(t, err)
	require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
	got := f.getRun(t, gone.ID)
	require.Equal(t, "i-0dead00000000beef", got.Backend.InstanceID, "the recorded head is never replaced")
	require.True(t, ended(f.instance(t, other.InstanceID).State.Name), "the other instance is terminated")
	require.True(t, ended(f.instance(t, dup.InstanceID).State.Name), "so is the first run's duplicate")
	require.Equal(t, ec2types.InstanceStateNameRunning, f.instance(t, r.Backend.InstanceID).State.Name)
}

// TestUnknownIsNotFinal: a stopped head makes the run UNKNOWN; evidence that
// it runs again (a later running event, or the reconciler seeing it
// running) brings it back to RUNNING, keeping its first running time; a
// late copy of the old "stopped" event changes nothing.
func TestUnknownIsNotFinal(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ce := f.createCE(t, ceBody())
	r := f.launch(t, pipelineBody(ce.ID))
	id := r.Backend.InstanceID
	// Event times after the submission and before the reconciler's passes.
	t0 := r.Timeline.Submitted.Add(10 * time.Millisecond)
	step := 10 * time.Millisecond

	f.feed(t, event(t, "ec2-running.json", id, t0))
	f.feed(t, event(t, "ec2-stopped.json", id, t0.Add(step)))
	got := f.getRun(t, r.ID)
	require.Equal(t, run.StatusUnknown, got.Status)
	require.Equal(t, cloudce.ReasonStopped, got.StatusReason)

	f.feed(t, event(t, "ec2-running.json", id, t0.Add(2*step)))
	got = f.getRun(t, r.ID)
	require.Equal(t, run.StatusRunning, got.Status)
	require.Empty(t, got.StatusReason)
	require.True(t, got.Timeline.Running.Equal(t0), "the first running time stays: %s", got.Timeline.Running)

	f.feed(t, event(t, "ec2-stopped.json", id, t0.Add(step))) // late copy
	f.feed(t, event(t, "ec2-running.json", id, t0))           // and an older one
	require.Equal(t, run.StatusRunning, f.getRun(t, r.ID).Status)

	// The reconciler's evidence, both ways.
	_, err := f.EC2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err)
	require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
	require.Equal(t, run.StatusUnknown, f.getRun(t, r.ID).Status)
	_, err = f.EC2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return f.instance(t, id).State.Name == ec2types.InstanceStateNameRunning
	}, 10*time.Second, 100*time.Millisecond)
	time.Sleep(5 * time.Millisecond) // the pass's evidence must be later than the last
	require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
	require.Equal(t, run.StatusRunning, f.getRun(t, r.ID).Status)
}

// TestForceDeletedCERunsEnd: the runs of a force-deleted CE end CANCELLED
// with the reason "compute environment deleted" even when no event comes;
// a run the delete's listing missed is cancelled by the reconciler.
func TestForceDeletedCERunsEnd(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ce := f.createCE(t, ceBody())
	r := f.launch(t, pipelineBody(ce.ID))
	f.feed(t, event(t, "ec2-running.json", r.Backend.InstanceID, time.Now()))

	res := f.Do(t, http.MethodDelete, "/compute-envs/"+ce.ID+"?force=true", nil)
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	got := f.getRun(t, r.ID)
	require.True(t, got.CancelRequested)
	require.Equal(t, computeenv.ReasonDeleted, got.CancelReason)
	for i := 0; i < 3 && !run.Terminal(f.getRun(t, r.ID).Status); i++ {
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
	}
	got = f.getRun(t, r.ID)
	require.Equal(t, run.StatusCancelled, got.Status)
	require.Equal(t, computeenv.ReasonDeleted, got.StatusReason)

	// A run the listing missed (its CE went DELETING around it).
	ce2 := f.createCE(t, ceBody())
	missed := f.launch(t, pipelineBody(ce2.ID))
	var stored computeenv.ComputeEnv
	v, err := f.Store.Get(ctx, store.KindCE, ce2.ID, &stored)
	require.NoError(t, err)
	stored.Status = computeenv.StatusDeleting
	_, err = f.Store.Save(ctx, store.KindCE, ce2.ID, &stored, v)
	require.NoError(t, err)
	for i := 0; i < 3 && !run.Terminal(f.getRun(t, missed.ID).Status); i++ {
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
	}
	got = f.getRun(t, missed.ID)
	require.Equal(t, run.StatusCancelled, got.Status)
	require.Equal(t, computeenv.ReasonDeleted, got.StatusReason)
	require.True(t, ended(f.instance(t, missed.Backend.InstanceID).State.Name))
}
