package sweep_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/sweep"
	"github.com/ceforge/ceforge/internal/tags"
)

// waitSweep polls GET /sweeps/{id} until the sweep has finished.
func waitSweep(t *testing.T, h *apptest.Harness, id string) sweep.Report {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := h.Do(t, "GET", "/sweeps/"+id, nil)
		require.Equal(t, http.StatusOK, res.Status, string(res.Body))
		var r sweep.Report
		res.JSON(t, &r)
		if r.Status != sweep.StatusQueued && r.Status != sweep.StatusRunning {
			return r
		}
		require.True(t, time.Now().Before(deadline), "sweep %s still %s", id, r.Status)
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSweepsAPI goes through the API: POST /sweeps queues a sweep and
// invokes the sweeper function, GET shows its report.
func TestSweepsAPI(t *testing.T) {
	h := apptest.New(t)
	seedComputeEnvs(t, h.Store)
	ec2c := ec2.NewFromConfig(h.AWS.Config(""))
	old := tags.Ownership(ceCloud, "")
	vols := seedVolumes(t, ec2c, []volSpec{{class: "owned", size: 200, tags: old}, {class: "untagged", size: 10}})
	seenLongAgo(t, h.Store, keys(vols)...)

	res := h.Do(t, "POST", "/sweeps", map[string]any{"dryRun": true})
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	var queued sweep.Report
	res.JSON(t, &queued)
	require.Equal(t, sweep.StatusQueued, queued.Status)
	require.Equal(t, "/sweeps/"+queued.ID, res.Header.Get("Location"))
	require.Equal(t, apptest.Caller, queued.RequestedBy)
	dry := waitSweep(t, h, queued.ID)
	require.Equal(t, sweep.StatusSucceeded, dry.Status, dry.Errors)
	require.True(t, dry.DryRun)
	require.Equal(t, 1, dry.Volumes.WouldDelete)
	require.Equal(t, 16.0, dry.DollarsPerMonthSaved, "200 GiB of gp3 at $0.08")
	require.Len(t, listVolumes(t, ec2c), 2)

	res = h.Do(t, "POST", "/sweeps", `{}`)
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	var real sweep.Report
	res.JSON(t, &real)
	done := waitSweep(t, h, real.ID)
	require.Equal(t, 1, done.Volumes.Deleted)
	require.Equal(t, int64(200), done.GiBFreed)
	left := listVolumes(t, ec2c)
	for id, s := range vols {
		_, ok := left[id]
		require.Equal(t, s.class != "owned", ok, s.class)
	}

	res = h.Do(t, "GET", "/sweeps?limit=1", nil)
	require.Equal(t, http.StatusOK, res.Status)
	var page struct {
		Items      []sweep.Report `json:"items"`
		NextCursor string         `json:"nextCursor"`
	}
	res.JSON(t, &page)
	require.Len(t, page.Items, 1)
	require.Equal(t, real.ID, page.Items[0].ID)
	require.NotEmpty(t, page.NextCursor)
	res = h.Do(t, "GET", "/sweeps?cursor="+page.NextCursor, nil)
	res.JSON(t, &page)
	require.Len(t, page.Items, 1)
	require.Equal(t, queued.ID, page.Items[0].ID)

	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
	}{
		{"unknown field", "POST", "/sweeps", `{"dryRun":true,"force":true}`, 400, "", ""},
		{"wrong type", "POST", "/sweeps", `{"dryRun":"yes"}`, 400, "", "dryRun"},
		{"no body", "POST", "/sweeps", nil, 400, "", ""},
		{"unknown query", "GET", "/sweeps?status=x", nil, 400, "unknown_parameter", "status"},
		{"bad limit", "GET", "/sweeps?limit=0", nil, 400, "invalid_parameter", "limit"},
		{"bad cursor", "GET", "/sweeps?cursor=zzz", nil, 400, "invalid_field", "cursor"},
		{"unknown id", "GET", "/sweeps/00000000000000", nil, 404, "not_found", ""},
		{"malformed id", "GET", "/sweeps/x", nil, 404, "not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.Do(t, tc.method, tc.path, tc.body)
			require.Equal(t, tc.status, res.Status, string(res.Body))
			code, field, _ := res.Error(t)
			if tc.code != "" {
				require.Equal(t, tc.code, code)
			}
			if tc.field != "" {
				require.Equal(t, tc.field, field)
			}
		})
	}
}

// TestHandleInvocation: the function's two payloads.
func TestHandleInvocation(t *testing.T) {
	h := apptest.New(t)
	sw := h.Sweeper.Sweeper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	sched := json.RawMessage(`{"version":"0","id":"53dc4d37","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-11-23T18:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/ceforge-sweeper"],"detail":{}}`)
	r, err := sw.HandleInvocation(ctx, sched, true)
	require.NoError(t, err)
	require.Equal(t, sweep.TriggerSchedule, r.Trigger)
	require.True(t, r.DryRun)
	require.Equal(t, sweep.StatusSucceeded, r.Status)

	q, err := sw.Queue(ctx, false, sweep.TriggerAPI, "someone")
	require.NoError(t, err)
	r, err = sw.HandleInvocation(ctx, json.RawMessage(`{"sweepId":"`+q.ID+`"}`), true)
	require.NoError(t, err)
	require.Equal(t, q.ID, r.ID)
	require.Equal(t, sweep.StatusSucceeded, r.Status)
	// At-least-once delivery: a second invocation with the same id is a no-op.
	again, err := sw.HandleInvocation(ctx, json.RawMessage(`{"sweepId":"`+q.ID+`"}`), true)
	require.NoError(t, err)
	require.Equal(t, r.FinishedAt, again.FinishedAt)

	_, err = sw.HandleInvocation(ctx, json.RawMessage(`{"hello":1}`), true)
	require.Error(t, err)

	// A sweep whose invocation died mid-way is marked FAILED by the retry.
	dead, err := sw.Queue(ctx, false, sweep.TriggerAPI, "someone")
	require.NoError(t, err)
	require.NoError(t, h.Store.Patch(ctx, store.KindSweep, dead.ID, map[string]any{
		"status": sweep.StatusRunning, "startedAt": time.Now().UTC().Add(-time.Hour)}, 0))
	r, err = sw.HandleInvocation(ctx, json.RawMessage(`{"sweepId":"`+dead.ID+`"}`), true)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusFailed, r.Status)
	require.Contains(t, r.StopReason, "abandoned")
}
