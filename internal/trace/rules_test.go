package trace_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/progress"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/trace"
)

// items counts what the table holds for a run's progress and tasks.
func (f *fixture) items(t testing.TB, runID string) int {
	t.Helper()
	n := 0
	for _, key := range []string{"PROGRESS#" + runID, "PROGRESS#" + runID + "#workflow", "PROGRESS#" + runID + "#metrics"} {
		out, err := f.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(testenv.Table),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: key}}})
		require.NoError(t, err)
		if out.Item != nil {
			n++
		}
	}
	tasks, _ := f.tasks(t, runID, "")
	return n + len(tasks)
}

func TestReceiverRules(t *testing.T) {
	f := newFixture(t)
	v := lines[3]
	basic := lines[0]
	now := time.Now().UTC()

	t.Run("auth refusals write nothing", func(t *testing.T) {
		r, token := f.launch(t, nil)
		other, otherToken := f.launch(t, nil)
		prog := v.progressBody([]map[string]any{v.task(1, "SUBMITTED", now)}, progressCounts(0, 1, 0, 0, 0), now)
		cases := []struct {
			name   string
			header string
		}{
			{"missing", ""},
			{"wrong token", "Bearer " + trace.NewToken()},
			{"another run's token", "Bearer " + otherToken},
			{"basic with another user", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+token))},
			{"basic not base64", "Basic %%%"},
			{"unknown scheme", "Token " + token},
		}
		for _, c := range cases {
			headers := []string{}
			if c.header != "" {
				headers = []string{"Authorization", c.header}
			}
			res := f.Do(t, http.MethodPut, "/trace/"+r.ID+"/progress", prog, headers...)
			require.Equal(t, http.StatusUnauthorized, res.Status, c.name)
			require.Contains(t, string(res.Body), `"message"`, c.name)
		}
		// An unknown run, and a workflow id longer than Nextflow's 16.
		require.Equal(t, http.StatusUnauthorized, f.call(t, v, http.MethodPut, "/trace/zzzzzzzzzzzzzz/progress", token, prog).Status)
		require.Equal(t, http.StatusUnauthorized, f.call(t, v, http.MethodPut, "/trace/"+r.ID+"xxxxxxxx/progress", token, prog).Status)
		// create names its run in the body: another run's token fails there too.
		res := f.call(t, v, http.MethodPost, "/trace/create", otherToken, v.createBody(r.ID, "s", now))
		require.Equal(t, http.StatusUnauthorized, res.Status)
		require.Zero(t, f.items(t, r.ID))
		require.Zero(t, f.items(t, other.ID))
		// Both forms of the right token work.
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/heartbeat", token, map[string]any{"progress": progressCounts(1, 0, 0, 0, 0)})
		f.ok(t, basic, http.MethodPut, "/trace/"+r.ID+"/heartbeat", token, map[string]any{"progress": progressCounts(1, 0, 0, 0, 0)})
	})

	t.Run("token expires after the run ends", func(t *testing.T) {
		r, token := f.launch(t, nil)
		ended := time.Now().Add(-trace.DefaultGrace - time.Minute)
		f.backdate(t, &r, trace.DefaultGrace+time.Hour)
		ok, err := f.Reconciler.Runs.Transition(context.Background(), &r, run.Update{Status: run.StatusFailed, At: ended, Reason: "test"})
		require.NoError(t, err)
		require.True(t, ok)
		res := f.call(t, v, http.MethodPut, "/trace/"+r.ID+"/heartbeat", token, map[string]any{"progress": progressCounts(0, 0, 0, 0, 0)})
		require.Equal(t, http.StatusUnauthorized, res.Status)
		require.Contains(t, string(res.Body), "expired")
		require.Zero(t, f.items(t, r.ID))
		// Within the grace a late call is still taken.
		r2, token2 := f.launch(t, nil)
		f.backdate(t, &r2, time.Hour)
		end := time.Now().UTC().Add(-time.Minute)
		_, err = f.Reconciler.Runs.Transition(context.Background(), &r2, run.Update{Status: run.StatusSucceeded, At: end})
		require.NoError(t, err)
		f.ok(t, v, http.MethodPut, "/trace/"+r2.ID+"/heartbeat", token2, map[string]any{"progress": progressCounts(0, 0, 0, 1, 0), "instant": end.Add(-time.Second).UnixMilli()})
		require.EqualValues(t, 1, f.progressOf(t, r2.ID).Counts.Succeeded, "dated before the end: it counts")
	})

	t.Run("calls dated after the run's end change nothing", func(t *testing.T) {
		// As with events, a run's progress stops at its end: a head still
		// reporting after it was seen ended (tasks aborted by the cancel,
		// say) changes neither counters nor tasks.
		r, token := f.launch(t, nil)
		f.backdate(t, &r, time.Hour)
		end := time.Now().UTC().Add(-2 * time.Minute).Truncate(time.Millisecond)
		before := end.Add(-time.Minute)
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody([]map[string]any{v.task(1, "RUNNING", before)}, progressCounts(0, 0, 1, 0, 0), before))
		_, err := f.Reconciler.Runs.Transition(context.Background(), &r, run.Update{Status: run.StatusCancelled, At: end, Reason: "cancelled by user"})
		require.NoError(t, err)
		after := end.Add(time.Minute)
		res := f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody([]map[string]any{v.task(1, "ABORTED", after), v.task(2, "SUBMITTED", after)}, progressCounts(0, 1, 0, 0, 1), after))
		require.Equal(t, "OK", res["status"], "answered, so that Nextflow goes on")
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/complete", token, v.completeBody(r.ID, "s", before, after, false, progressCounts(0, 0, 0, 0, 1)))
		tasks, _ := f.tasks(t, r.ID, "")
		require.Len(t, tasks, 1)
		require.Equal(t, progress.TaskRunning, tasks[0].Status)
		view := f.progressOf(t, r.ID)
		require.EqualValues(t, 1, view.Counts.Running)
		require.EqualValues(t, 0, view.Counts.Submitted)
		require.EqualValues(t, 0, view.Counts.Failed)
		require.NotEqual(t, progress.PhaseCompleted, view.Phase)
		got := f.runOf(t, r.ID)
		require.Equal(t, run.StatusCancelled, got.Status, "an ended run never moves")
		require.Equal(t, "cancelled by user", got.StatusReason)
	})

	t.Run("duplicate, reordered and late progress never go back", func(t *testing.T) {
		r, token := f.launch(t, nil)
		sub := now.Add(-time.Hour).Truncate(time.Second)
		path := "/trace/" + r.ID + "/progress"
		done := v.progressBody([]map[string]any{v.task(7, "COMPLETED", sub)}, progressCounts(0, 0, 0, 1, 0), sub.Add(40*time.Minute))
		f.ok(t, v, http.MethodPut, path, token, done)
		f.ok(t, v, http.MethodPut, path, token, done) // duplicate (a retried call)
		// Late: older statuses of the same task, with an older instant.
		f.ok(t, v, http.MethodPut, path, token, v.progressBody([]map[string]any{v.task(7, "RUNNING", sub)}, progressCounts(0, 0, 1, 0, 0), sub.Add(time.Minute)))
		f.ok(t, v, http.MethodPut, path, token, v.progressBody([]map[string]any{v.task(7, "SUBMITTED", sub)}, progressCounts(0, 1, 0, 0, 0), sub))
		tasks, _ := f.tasks(t, r.ID, "")
		require.Len(t, tasks, 1)
		require.Equal(t, progress.TaskCompleted, tasks[0].Status)
		require.NotNil(t, tasks[0].Complete)
		view := f.progressOf(t, r.ID)
		require.EqualValues(t, 1, view.Counts.Succeeded, "counts of older bodies do not replace newer ones")
		require.EqualValues(t, 0, view.Counts.Running)
		require.InDelta(t, 0.192*0.25, view.Cost.TasksUSD, 1e-9, "a duplicate is not charged twice")
		require.EqualValues(t, 1, view.Cost.PricedTasks)
		// Reordered within one call: the latest status of a task wins.
		f.ok(t, v, http.MethodPut, path, token, v.progressBody([]map[string]any{v.task(8, "COMPLETED", sub), v.task(8, "RUNNING", sub)}, nil, sub.Add(41*time.Minute)))
		tk := f.task(t, r.ID, 8)
		require.Equal(t, progress.TaskCompleted, tk.Status)
	})

	t.Run("complete without begin ends the run", func(t *testing.T) {
		r, token := f.launch(t, nil)
		start := now.Add(-10 * time.Minute)
		f.ok(t, v, http.MethodPost, "/trace/create", token, v.createBody(r.ID, "sess-1", start))
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/complete", token, v.completeBody(r.ID, "sess-1", start, now.Add(-time.Minute), false, progressCounts(0, 0, 0, 1, 1)))
		got := f.runOf(t, r.ID)
		require.Equal(t, run.StatusFailed, got.Status)
		require.Contains(t, got.StatusReason, "terminated with an error exit status (1)")
		require.EqualValues(t, 1, *got.ExitCode)
		view := f.progressOf(t, r.ID)
		require.Equal(t, progress.PhaseCompleted, view.Phase)
		require.Contains(t, view.Workflow.ErrorReport, "Caused by")
		// A late begin neither reopens the phase nor replaces the workflow.
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/begin", token, v.beginBody(r.ID, "sess-1", start))
		view = f.progressOf(t, r.ID)
		require.Equal(t, progress.PhaseCompleted, view.Phase)
		require.Contains(t, view.Workflow.ErrorReport, "Caused by")
		require.Equal(t, run.StatusFailed, f.runOf(t, r.ID).Status)
	})

	t.Run("the trace moves runs only as the run rules allow", func(t *testing.T) {
		ctx := context.Background()
		start := now.Add(-10 * time.Minute)
		// A head the events say is UNKNOWN (its instance stopped, say) is
		// not made RUNNING by a begin: the head is the events' to judge.
		r, token := f.launch(t, nil)
		f.backdate(t, &r, time.Hour)
		_, err := f.Reconciler.Runs.Transition(ctx, &r, run.Update{Status: run.StatusUnknown, At: start.Add(-time.Minute), Reason: "head instance stopped"})
		require.NoError(t, err)
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/begin", token, v.beginBody(r.ID, "sess-u", start))
		require.NoError(t, f.Reconciler.Applier.Apply(ctx, r.ID)) // as the reconciler's pass does
		got := f.runOf(t, r.ID)
		require.Equal(t, run.StatusUnknown, got.Status)
		require.Equal(t, progress.PhaseRunning, f.progressOf(t, r.ID).Phase)

		// A cancelled run that Nextflow reports successful ends CANCELLED,
		// with the cancel's reason.
		r, token = f.launch(t, nil)
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/begin", token, v.beginBody(r.ID, "sess-c", start))
		require.Equal(t, http.StatusAccepted, f.Do(t, http.MethodPost, "/runs/"+r.ID+"/cancel", nil).Status)
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/complete", token, v.completeBody(r.ID, "sess-c", start, now.Add(-time.Minute), true, progressCounts(0, 0, 0, 1, 0)))
		got = f.runOf(t, r.ID)
		require.Equal(t, run.StatusCancelled, got.Status)
		require.Equal(t, run.ReasonCancelledByUser, got.StatusReason)

		// An ended run keeps its end: a complete dated before it (late)
		// is recorded as progress but changes neither status nor reason.
		r, token = f.launch(t, nil)
		f.backdate(t, &r, time.Hour)
		_, err = f.Reconciler.Runs.Transition(ctx, &r, run.Update{Status: run.StatusFailed, At: now.Add(-time.Minute), Reason: "head job failed"})
		require.NoError(t, err)
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/complete", token, v.completeBody(r.ID, "sess-f", start, now.Add(-2*time.Minute), true, progressCounts(0, 0, 0, 1, 0)))
		require.NoError(t, f.Reconciler.Reconciler.Once(ctx))
		got = f.runOf(t, r.ID)
		require.Equal(t, run.StatusFailed, got.Status)
		require.Equal(t, "head job failed", got.StatusReason)
		require.Equal(t, progress.PhaseCompleted, f.progressOf(t, r.ID).Phase)
	})

	t.Run("100 tasks a call, 101 refused", func(t *testing.T) {
		r, token := f.launch(t, nil)
		sub := now.Add(-time.Hour)
		var tasks []map[string]any
		for i := 1; i <= 101; i++ {
			tasks = append(tasks, v.task(i, "COMPLETED", sub))
		}
		res := f.call(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody(tasks, nil, sub))
		require.Equal(t, http.StatusBadRequest, res.Status)
		require.Contains(t, string(res.Body), `"message":"at most 100 tasks`)
		require.Zero(t, f.items(t, r.ID))
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody(tasks[:100], progressCounts(0, 0, 0, 100, 0), sub))
		var all []progress.Task
		cursor := ""
		pages := 0
		for {
			page, next := f.tasks(t, r.ID, "?limit=30&cursor="+cursor)
			all = append(all, page...)
			pages++
			if next == "" {
				break
			}
			cursor = next
		}
		require.Len(t, all, 100)
		require.LessOrEqual(t, pages, 5)
	})

	t.Run("malformed and odd bodies", func(t *testing.T) {
		r, token := f.launch(t, nil)
		res := f.call(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, `{"tasks": [`)
		require.Equal(t, http.StatusBadRequest, res.Status)
		require.Contains(t, string(res.Body), `"message"`)
		// Unknown fields, nulls, numbers as strings, a task without id, an
		// unknown status: accepted, the odd parts ignored.
		odd := `{"tasks":[{"taskId":"5","status":"submitted","submit":"2026-01-02T03:04Z","cpus":"2","memory":null,"future":{"x":1}},
			{"status":"RUNNING"},{"taskId":6,"status":"PAUSED"}],"progress":{"pending":"2","running":null,"processes":null,"newField":true},"instant":null,"containers":[]}`
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, odd)
		tk := f.task(t, r.ID, 5)
		require.Equal(t, progress.TaskSubmitted, tk.Status)
		require.Equal(t, time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), tk.Submit.UTC())
		require.EqualValues(t, 2, *tk.Cpus)
		res = f.Do(t, http.MethodGet, "/runs/"+r.ID+"/tasks/6", nil)
		require.Equal(t, http.StatusNotFound, res.Status)
		require.EqualValues(t, 2, f.progressOf(t, r.ID).Counts.Pending)
	})

	t.Run("task listing filters and orders", func(t *testing.T) {
		r, token := f.launch(t, nil)
		base := now.Add(-2 * time.Hour).Truncate(time.Second)
		var tasks []map[string]any
		for i := 1; i <= 12; i++ {
			status := "COMPLETED"
			if i == 4 {
				status = "FAILED"
			}
			if i > 10 {
				status = "RUNNING"
			}
			tk := v.task(i, status, base.Add(time.Duration(i)*time.Minute))
			if status != "RUNNING" {
				tk["realtime"] = int64(i) * 60000
				tk["duration"] = int64(13-i) * 60000
			}
			tasks = append(tasks, tk)
		}
		f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody(tasks, nil, base))
		byStart, _ := f.tasks(t, r.ID, "?sort=start")
		require.Len(t, byStart, 12)
		require.EqualValues(t, 1, byStart[0].TaskID)
		require.EqualValues(t, 12, byStart[11].TaskID)
		failed, _ := f.tasks(t, r.ID, "?status=FAILED")
		require.Len(t, failed, 1)
		require.EqualValues(t, 4, failed[0].TaskID)
		align, _ := f.tasks(t, r.ID, "?process=ALIGN")
		require.Len(t, align, 6)
		alignFailed, _ := f.tasks(t, r.ID, "?process=ALIGN&status=FAILED")
		require.Len(t, alignFailed, 1)
		byDuration, _ := f.tasks(t, r.ID, "?sort=duration")
		require.EqualValues(t, 1, byDuration[0].TaskID, "longest first")
		byCost, _ := f.tasks(t, r.ID, "?sort=cost&limit=3")
		require.Len(t, byCost, 3)
		require.EqualValues(t, 10, byCost[0].TaskID, "most expensive first (longest realtime)")
		require.GreaterOrEqual(t, *byCost[0].CostUSD, *byCost[1].CostUSD)
		for _, q := range []string{"?status=DONE", "?sort=name", "?limit=0", "?cursor=abc", "?colour=red"} {
			res := f.Do(t, http.MethodGet, "/runs/"+r.ID+"/tasks"+q, nil)
			require.Equal(t, http.StatusBadRequest, res.Status, q)
		}
		// A cursor of one listing is refused by another.
		_, next := f.tasks(t, r.ID, "?limit=2")
		res := f.Do(t, http.MethodGet, "/runs/"+r.ID+"/tasks?status=FAILED&cursor="+next, nil)
		require.Equal(t, http.StatusBadRequest, res.Status)
	})

	t.Run("reporting off per run and per compute environment", func(t *testing.T) {
		r, token := f.launch(t, map[string]any{"traceEnabled": false})
		require.Empty(t, token)
		require.False(t, r.Trace.Enabled)
		require.Equal(t, run.TraceOffByRequest, r.Trace.Reason)
		view := f.progressOf(t, r.ID)
		require.False(t, view.Reporting)
		require.Equal(t, progress.PhaseWaiting, view.Phase)
	})

	t.Run("the table keeps only the token's hash", func(t *testing.T) {
		r, token := f.launch(t, nil)
		var rec run.Run
		_, err := f.Store.Get(context.Background(), store.KindRun, r.ID, &rec)
		require.NoError(t, err)
		require.Equal(t, trace.HashToken(token), rec.Trace.TokenHash)
		out, err := f.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(testenv.Table),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "RUN#" + r.ID}}})
		require.NoError(t, err)
		require.NotContains(t, strings.Join(flatten(out.Item), "\n"), token)
		res := f.Do(t, http.MethodGet, "/runs?limit=100", nil)
		require.NotContains(t, string(res.Body), rec.Trace.TokenHash)
		require.NotContains(t, string(res.Body), token)
	})
}

func (f *fixture) task(t testing.TB, runID string, id int) progress.Task {
	t.Helper()
	res := f.Do(t, http.MethodGet, "/runs/"+runID+"/tasks/"+strconv.Itoa(id), nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	var tk progress.Task
	res.JSON(t, &tk)
	return tk
}

// flatten lists every string value of an item.
func flatten(item map[string]types.AttributeValue) []string {
	var out []string
	var walk func(types.AttributeValue)
	walk = func(v types.AttributeValue) {
		switch x := v.(type) {
		case *types.AttributeValueMemberS:
			out = append(out, x.Value)
		case *types.AttributeValueMemberM:
			for _, e := range x.Value {
				walk(e)
			}
		case *types.AttributeValueMemberL:
			for _, e := range x.Value {
				walk(e)
			}
		}
	}
	for _, v := range item {
		walk(v)
	}
	return out
}
