package trace_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/progress"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const traceURL = "https://api.ceforge.test"

// fixture is the deployment on the emulator (apptest: the api issuing
// tokens, the trace function receiving the calls, the reconciler applying
// them), with one AWS Cloud compute environment.
type fixture struct {
	*apptest.Harness
	ce string
	sm *secretsmanager.Client
}

func newFixture(t testing.TB, mutate ...func(*config.Config)) *fixture {
	t.Helper()
	h := apptest.New(t, append([]func(*config.Config){func(c *config.Config) { c.TraceURL = traceURL }}, mutate...)...)
	cfg := h.AWS.Config(testenv.Region)
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	_, err := s3c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("ceforge-work")})
	require.NoError(t, err)
	f := &fixture{Harness: h, sm: secretsmanager.NewFromConfig(cfg)}
	res := f.Do(t, http.MethodPost, "/compute-envs", map[string]any{
		"name": "trace", "platform": "aws-cloud", "region": testenv.Region, "workDir": "s3://ceforge-work/work",
		"cloud": map[string]any{"instanceType": "m6i.2xlarge"},
	})
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	// The api handed it to the reconciler, which provisioned it.
	res = f.Do(t, http.MethodGet, "/compute-envs/"+ce.ID, nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	res.JSON(t, &ce)
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	f.ce = ce.ID
	return f
}

// launch starts a pipeline and returns it with its token, read from its
// secret as the head does.
func (f *fixture) launch(t testing.TB, extra map[string]any) (run.Run, string) {
	t.Helper()
	body := map[string]any{"kind": "pipeline", "computeEnvId": f.ce, "pipeline": "nf-core/rnaseq", "revision": "3.14.0"}
	for k, v := range extra {
		body[k] = v
	}
	res := f.Do(t, http.MethodPost, "/runs", body)
	require.Equal(t, http.StatusCreated, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	if r.Trace == nil || !r.Trace.Enabled {
		return r, ""
	}
	out, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.Trace.Secret)})
	require.NoError(t, err)
	return r, aws.ToString(out.SecretString)
}

// backdate makes r a run submitted d earlier than it was: the run's rules
// place every later time after its submission, so a test of a run that
// started or ended long ago starts by submitting it long ago.
func (f *fixture) backdate(t testing.TB, r *run.Run, d time.Duration) {
	t.Helper()
	at := r.Timeline.Submitted.Add(-d)
	require.NoError(t, f.Store.Patch(context.Background(), store.KindRun, r.ID, map[string]any{"timeline.submitted": at, "createdAt": at}, 0))
	r.Timeline.Submitted, r.CreatedAt = &at, at
	r.Version++
}

// call sends one trace call as Nextflow line v does.
func (f *fixture) call(t testing.TB, v nf, method, path, token string, body any) apptest.Response {
	t.Helper()
	headers := []string{"Content-Type", v.contentType, "User-Agent", "Nextflow/" + v.version}
	if token != "" {
		headers = append(headers, "Authorization", v.auth(token))
	}
	return f.Do(t, method, v.path(path), body, headers...)
}

func (f *fixture) ok(t testing.TB, v nf, method, path, token string, body any) map[string]any {
	t.Helper()
	res := f.call(t, v, method, path, token, body)
	require.Equal(t, http.StatusOK, res.Status, "%s %s: %s", method, path, res.Body)
	var out map[string]any
	res.JSON(t, &out)
	return out
}

func (f *fixture) progressOf(t testing.TB, runID string) progress.View {
	t.Helper()
	res := f.Do(t, http.MethodGet, "/runs/"+runID+"/progress", nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	var v progress.View
	res.JSON(t, &v)
	return v
}

func (f *fixture) runOf(t testing.TB, runID string) run.Run {
	t.Helper()
	res := f.Do(t, http.MethodGet, "/runs/"+runID, nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	return r
}

func (f *fixture) tasks(t testing.TB, runID, query string) ([]progress.Task, string) {
	t.Helper()
	res := f.Do(t, http.MethodGet, "/runs/"+runID+"/tasks"+query, nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	var page struct {
		Items      []progress.Task `json:"items"`
		NextCursor string          `json:"nextCursor"`
	}
	res.JSON(t, &page)
	return page.Items, page.NextCursor
}

// TestReplayEachNextflowLine drives a whole run through the receiver with
// the bodies each Nextflow line sends, and reads it back through the API.
func TestReplayEachNextflowLine(t *testing.T) {
	f := newFixture(t)
	for _, v := range lines {
		t.Run(v.version, func(t *testing.T) {
			r, token := f.launch(t, nil)
			require.NotEmpty(t, token)
			require.Equal(t, traceURL, r.Trace.Endpoint)
			require.Empty(t, r.Trace.TokenHash, "the API never shows the token hash")
			session := fmt.Sprintf("f56b8b10-b044-4d42-a7a3-%012d", time.Now().UnixNano()%1e12)
			start := time.Now().UTC().Truncate(time.Minute).Add(-47 * time.Minute) // zero seconds: Java drops them

			out := f.ok(t, v, http.MethodPost, "/trace/create", token, v.createBody(r.ID, session, start))
			require.Equal(t, r.ID, out["workflowId"])
			out = f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/begin", token, v.beginBody(r.ID, session, start))
			require.Equal(t, r.ID, out["workflowId"])
			require.Equal(t, run.StatusRunning, f.runOf(t, r.ID).Status, "begin moves the run to RUNNING")

			sub := start.Add(time.Minute)
			f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody(
				[]map[string]any{v.task(1, "SUBMITTED", sub), v.task(2, "SUBMITTED", sub), v.task(3, "SUBMITTED", sub)},
				progressCounts(0, 3, 0, 0, 0), sub))
			f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody(
				[]map[string]any{v.task(1, "RUNNING", sub), v.task(2, "RUNNING", sub), v.task(3, "RUNNING", sub)},
				progressCounts(0, 0, 3, 0, 0), sub.Add(time.Minute)))
			f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody(
				[]map[string]any{v.task(1, "COMPLETED", sub), v.task(2, "COMPLETED", sub), v.task(3, "COMPLETED", sub)},
				progressCounts(0, 0, 0, 3, 0), sub.Add(40*time.Minute)))
			f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/heartbeat", token, map[string]any{"progress": progressCounts(0, 0, 0, 3, 0), "instant": sub.Add(41 * time.Minute).UnixMilli()})

			view := f.progressOf(t, r.ID)
			require.Equal(t, progress.PhaseRunning, view.Phase)
			require.True(t, view.Reporting)
			require.EqualValues(t, 3, view.Counts.Succeeded)
			require.Len(t, view.Processes, 1)
			require.Equal(t, "FASTQC", view.Processes[0].Name)
			// 2 cpus and 4 GiB of an m6i.xlarge (4 cpus, 16 GiB) for 30 min;
			// task 3 on Spot.
			od := 0.192 * 0.5 * 0.5
			require.InDelta(t, 2*od+od*0.35, view.Cost.TasksUSD, 1e-9)
			require.EqualValues(t, 3, view.Cost.PricedTasks)
			require.Greater(t, view.Cost.HeadUSD, 0.0, "the m6i.2xlarge head costs while it runs")
			require.Equal(t, v.version, view.Workflow.NextflowVersion)
			require.Equal(t, session, view.Workflow.SessionID)
			require.Contains(t, view.Workflow.CommandLine, "-with-tower")
			require.JSONEq(t, `{"outdir":"s3://work/out","genome":"GRCh38","skip":[1,"x"]}`, string(view.Workflow.Params))
			require.Equal(t, start, view.Workflow.Start.UTC(), "a date without seconds parses")

			tasks, _ := f.tasks(t, r.ID, "")
			require.Len(t, tasks, 3)
			tk := tasks[0]
			require.Equal(t, progress.TaskCompleted, tk.Status)
			require.EqualValues(t, 0, *tk.Exit)
			require.EqualValues(t, 30*time.Minute/time.Millisecond, *tk.RealtimeMs)
			require.EqualValues(t, 1<<30+512, *tk.PeakRSS)
			require.Equal(t, "m6i.xlarge", tk.MachineType)
			if v.atLeast("24.10") {
				require.Equal(t, fmt.Sprintf("4f1a-%d", tk.TaskID), tk.NativeID)
			} else {
				require.Equal(t, fmt.Sprint(28000+tk.TaskID), tk.NativeID, "a numeric nativeId is kept as text")
			}
			if v.atLeast("26.04") {
				require.NotNil(t, tk.SpotInterruptions)
			}

			end := sub.Add(45 * time.Minute)
			f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/complete", token, v.completeBody(r.ID, session, start, end, true, progressCounts(0, 0, 0, 3, 0)))
			got := f.runOf(t, r.ID)
			require.Equal(t, run.StatusSucceeded, got.Status, "complete moves the run to SUCCEEDED")
			require.EqualValues(t, 0, *got.ExitCode)
			res := f.Do(t, http.MethodGet, "/runs/"+r.ID+"/metrics", nil)
			require.Equal(t, http.StatusOK, res.Status)
			var m struct {
				Metrics []progress.ProcessMetrics `json:"metrics"`
			}
			res.JSON(t, &m)
			require.Len(t, m.Metrics, 1)
			require.InDelta(t, 180.5, m.Metrics[0].CPU.Mean, 1e-9)
			require.Equal(t, "FASTQC (2)", m.Metrics[0].CPU.MaxLabel)
			require.Nil(t, m.Metrics[0].VMem)
			require.Equal(t, progress.PhaseCompleted, f.progressOf(t, r.ID).Phase)

			// Platform's scheduler call (26.04.5+) is accepted and ignored.
			f.ok(t, v, http.MethodPatch, "/workflow/"+r.ID, token, map[string]any{"schedRunId": "sr-1"})
		})
	}
}

// The live follow stream carries progress snapshots beside log lines.
func TestFollowStreamCarriesProgress(t *testing.T) {
	f := newFixture(t)
	v := lines[2]
	r, token := f.launch(t, nil)
	now := time.Now().UTC()
	f.ok(t, v, http.MethodPut, "/trace/"+r.ID+"/progress", token, v.progressBody(
		[]map[string]any{v.task(1, "RUNNING", now)}, progressCounts(2, 0, 1, 0, 0), now))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req := httptest.NewRequest(http.MethodGet, "/runs/"+r.ID+"/logs?follow=true", nil).WithContext(api.WithIdentity(ctx, apptest.Caller))
	rec := httptest.NewRecorder()
	f.Router.ServeHTTP(rec, req)
	body := rec.Body.String()
	i := strings.Index(body, "event: progress\ndata: ")
	require.GreaterOrEqual(t, i, 0, body)
	line := body[i+len("event: progress\ndata: "):]
	line = line[:strings.IndexByte(line, '\n')]
	var view progress.View
	require.NoError(t, json.Unmarshal([]byte(line), &view))
	require.Equal(t, r.ID, view.RunID)
	require.EqualValues(t, 1, view.Counts.Running)
	require.EqualValues(t, 2, view.Counts.Pending)
}
