package trace_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/progress"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/trace"
)

func TestRunLifecycle(t *testing.T) {
	f := newFixture(t)
	v := lines[3]
	ctx := context.Background()

	t.Run("maxCostUsd cancels the run with that reason", func(t *testing.T) {
		r, token := f.launch(t, map[string]any{"maxCostUsd": 0.5})
		require.InDelta(t, 0.5, *r.MaxCostUSD, 1e-9)
		at := time.Now().UTC().Add(-2 * time.Hour)
		// 20 tasks of 0.048 USD each (2 cpus of an m6i.xlarge for 30 min).
		var tasks []map[string]any
		for id := 1; id <= 20; id++ {
			tk := v.task(id, "COMPLETED", at)
			tk["priceModel"] = "standard"
			tasks = append(tasks, tk)
		}
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody(tasks[:5], progressCounts(0, 0, 0, 5, 0), at))
		require.Equal(t, run.StatusSubmitted, f.runOf(t, r.ID).Status, "under the limit")
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody(tasks[5:], progressCounts(0, 0, 0, 20, 0), at.Add(time.Minute)))
		// Cancelled as a user's cancel is: the request is recorded with its
		// reason and the head stopped; the head's end makes the run CANCELLED.
		got := f.runOf(t, r.ID)
		require.True(t, got.CancelRequested)
		require.Contains(t, got.CancelReason, "cost limit reached")
		require.Equal(t, run.StatusSubmitted, got.Status, "the head has not been seen ending yet")
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
		got = f.runOf(t, r.ID)
		require.Equal(t, run.StatusCancelled, got.Status)
		require.Contains(t, got.StatusReason, "cost limit reached")
		require.Contains(t, got.StatusReason, "maxCostUsd is $0.50")
		// A bad limit is refused and writes nothing.
		res := f.Do(t, http.MethodPost, "/runs", map[string]any{"kind": "pipeline", "computeEnvId": f.ce, "pipeline": "nf-core/rnaseq", "maxCostUsd": -1})
		require.Equal(t, http.StatusBadRequest, res.Status)
		_, field, _ := res.Error(t)
		require.Equal(t, "maxCostUsd", field)
	})

	t.Run("a running run whose trace went silent is stale, its status kept", func(t *testing.T) {
		r, token := f.launch(t, nil)
		f.backdate(t, &r, 30*time.Minute)
		started := time.Now().Add(-20 * time.Minute)
		_, err := f.Reconciler.Runs.Transition(ctx, &r, run.Update{Status: run.StatusRunning, At: started})
		require.NoError(t, err)
		view := f.progressOf(t, r.ID)
		require.True(t, view.Stale, "running 20 minutes and never reported")
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/heartbeat", token, map[string]any{"progress": progressCounts(1, 0, 0, 0, 0)})
		require.False(t, f.progressOf(t, r.ID).Stale)
		clock := func() time.Time { return time.Now().Add(6 * time.Minute) }
		got, err := f.Reconciler.Runs.Get(ctx, r.ID)
		require.NoError(t, err)
		snap, ok, err := f.API.Progress.Snapshot(ctx, r.ID)
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, progress.Stale(got, &snap, progress.DefaultStaleAfter, clock()))
		require.Equal(t, run.StatusRunning, f.runOf(t, r.ID).Status)
	})

	t.Run("the token's secret goes after the run ends", func(t *testing.T) {
		r, token := f.launch(t, nil)
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
		_, err := f.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.Trace.Secret)})
		require.NoError(t, err, "kept while the run is active")
		f.backdate(t, &r, trace.DefaultGrace+time.Hour)
		_, err = f.Reconciler.Runs.Transition(ctx, &r, run.Update{Status: run.StatusSucceeded, At: time.Now().Add(-trace.DefaultGrace - time.Minute)})
		require.NoError(t, err)
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
		_, err = f.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.Trace.Secret)})
		var nf *smtypes.ResourceNotFoundException
		require.True(t, errors.As(err, &nf), "deleted: %v", err)
		guards, err := f.Store.Guards(ctx, store.KindTraceSecret, 100)
		require.NoError(t, err)
		for _, g := range guards {
			require.NotEqual(t, r.ID, g.ID)
		}
		res := f.call(t, v, http.MethodPut, "/trace/"+r.ID+"/heartbeat", token, map[string]any{})
		require.Equal(t, http.StatusUnauthorized, res.Status)
	})

	t.Run("relaunch, with and without resume", func(t *testing.T) {
		old, token := f.launch(t, map[string]any{"maxCostUsd": 20, "configProfiles": []string{"test"}})
		// Nothing reported yet: nothing to resume.
		res := f.Do(t, http.MethodPost, "/runs/"+old.ID+"/relaunch", map[string]any{"resume": true})
		require.Equal(t, http.StatusConflict, res.Status, string(res.Body))
		start := time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)
		f.ok(t, v, http.MethodPost, "/trace/create", token, v.createBody(old.ID, "5b6f0c1e-aaaa-bbbb-cccc-000000000001", start))
		f.ok(t, v, http.MethodPut, "/trace/"+old.ID+"/begin", token, v.beginBody(old.ID, "5b6f0c1e-aaaa-bbbb-cccc-000000000001", start))

		res = f.Do(t, http.MethodPost, "/runs/"+old.ID+"/relaunch", map[string]any{"resume": true, "revision": "3.15.0"}, "Idempotency-Key", "relaunch-1")
		require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
		var nr run.Run
		res.JSON(t, &nr)
		require.NotEqual(t, old.ID, nr.ID)
		require.Equal(t, old.ID, nr.RelaunchOf)
		require.Equal(t, "5b6f0c1e-aaaa-bbbb-cccc-000000000001", nr.ResumeSessionID)
		require.Equal(t, old.WorkDir, nr.WorkDir)
		require.Equal(t, "3.15.0", nr.Revision)
		require.Equal(t, []string{"test"}, nr.ConfigProfiles)
		require.InDelta(t, 20, *nr.MaxCostUSD, 1e-9)
		require.True(t, nr.Trace.Enabled)
		again := f.Do(t, http.MethodPost, "/runs/"+old.ID+"/relaunch", map[string]any{"resume": true, "revision": "3.15.0"}, "Idempotency-Key", "relaunch-1")
		require.Equal(t, http.StatusOK, again.Status)

		// Resume keeps the work directory; a fresh relaunch may move it.
		res = f.Do(t, http.MethodPost, "/runs/"+old.ID+"/relaunch", map[string]any{"resume": true, "workDir": "s3://ceforge-work/other"})
		require.Equal(t, http.StatusBadRequest, res.Status)
		res = f.Do(t, http.MethodPost, "/runs/"+old.ID+"/relaunch", map[string]any{"workDir": "s3://ceforge-work/other"})
		require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
		var fresh run.Run
		res.JSON(t, &fresh)
		require.Empty(t, fresh.ResumeSessionID)
		require.Equal(t, "s3://ceforge-work/other", fresh.WorkDir)
		// Strict body rules: unknown fields are refused.
		res = f.Do(t, http.MethodPost, "/runs/"+old.ID+"/relaunch", map[string]any{"resume": true, "kind": "studio"})
		require.Equal(t, http.StatusBadRequest, res.Status)
		require.Equal(t, http.StatusNotFound, f.Do(t, http.MethodPost, "/runs/zzzzzzzzzzzzzz/relaunch", map[string]any{}).Status)
	})
}
