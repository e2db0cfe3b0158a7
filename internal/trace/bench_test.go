package trace_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/progress"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/trace"
)

// writes counts the DynamoDB write calls made so far.
func (f *fixture) writes() int {
	n := 0
	for _, op := range []string{"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"} {
		n += f.Calls.Count("DynamoDB." + op)
	}
	return n
}

// ingest replays a run of n tasks in calls of at most 100 task records,
// each task going through the given statuses (one record per status, in
// separate calls as Nextflow sends them), and returns the task changes sent.
func (f *fixture) ingest(t testing.TB, runID, token string, n int, statuses ...string) int {
	v := lines[3]
	base := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	changes := 0
	for _, st := range statuses {
		for start := 1; start <= n; start += trace.MaxTasksPerCall {
			end := min(start+trace.MaxTasksPerCall-1, n)
			tasks := make([]map[string]any, 0, end-start+1)
			for id := start; id <= end; id++ {
				tasks = append(tasks, v.task(id, st, base.Add(time.Duration(id)*time.Millisecond)))
			}
			done := 0
			if st == "COMPLETED" {
				done = end
			}
			f.ok(t, v, http.MethodPut, "/trace/"+runID+"/progress", token, v.progressBody(tasks, progressCounts(n-end, 0, 0, done, 0), base.Add(time.Duration(changes)*time.Millisecond)))
			changes += len(tasks)
		}
	}
	return changes
}

// BenchmarkScenarioTraceWrites: DynamoDB writes per task change when a run's
// 2,000 tasks each go SUBMITTED, RUNNING, COMPLETED in Nextflow's batches
// of 100 (target <= 1.05: one write per task change, plus one counters
// write per call).
func BenchmarkScenarioTraceWrites(b *testing.B) {
	f := newFixture(b)
	r, token := f.launch(b, nil)
	before := f.writes()
	changes := f.ingest(b, r.ID, token, 2000, "SUBMITTED", "RUNNING", "COMPLETED")
	writes := f.writes() - before
	b.ReportMetric(float64(writes)/float64(changes), "writes_per_task_change")
	// A trickle (10 tasks a call) for comparison: the counters write weighs more.
	r2, token2 := f.launch(b, nil)
	before = f.writes()
	v := lines[3]
	at := time.Now().UTC().Add(-time.Hour)
	trickle := 0
	for start := 1; start <= 200; start += 10 {
		var tasks []map[string]any
		for id := start; id < start+10; id++ {
			tasks = append(tasks, v.task(id, "COMPLETED", at))
		}
		f.ok(b, v, http.MethodPut, "/trace/"+r2.ID+"/progress", token2, v.progressBody(tasks, progressCounts(0, 0, 0, start+9, 0), at.Add(time.Duration(start)*time.Second)))
		trickle += len(tasks)
	}
	b.ReportMetric(float64(f.writes()-before)/float64(trickle), "writes_per_change_10_a_call")
}

// BenchmarkScenarioTraceIngest100k: a 100,000-task run, every task sent
// once as it ends (Nextflow sends only a task's latest record in a batch),
// through the real handler, store and emulator; then checked.
func BenchmarkScenarioTraceIngest100k(b *testing.B) {
	f := newFixture(b)
	r, token := f.launch(b, nil)
	before := f.writes()
	start := time.Now()
	changes := f.ingest(b, r.ID, token, 100000, "COMPLETED")
	elapsed := time.Since(start)
	writes := f.writes() - before
	b.ReportMetric(elapsed.Seconds(), "s")
	b.ReportMetric(float64(changes)/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(float64(writes)/float64(changes), "writes_per_task_change")
	view := f.progressOf(b, r.ID)
	require.EqualValues(b, 100000, view.Counts.Succeeded)
	require.EqualValues(b, 100000, view.Cost.PricedTasks)
	queries := f.Calls.Count("DynamoDB.Query")
	page, next := f.tasks(b, r.ID, "?limit=100&sort=cost")
	require.Len(b, page, 100)
	require.NotEmpty(b, next)
	b.ReportMetric(float64(f.Calls.Count("DynamoDB.Query")-queries), "queries_per_page")
}

// BenchmarkScenarioTaskPageRead: one DynamoDB query per page of tasks, for
// every order and the indexed filters (target <= 1).
func BenchmarkScenarioTaskPageRead(b *testing.B) {
	f := newFixture(b)
	r, token := f.launch(b, nil)
	f.ingest(b, r.ID, token, 1000, "COMPLETED")
	worst, pages := 0.0, 0
	start := time.Now()
	for _, q := range []string{"", "?sort=duration", "?sort=cost", "?status=COMPLETED", "?process=ALIGN"} {
		cursor, got := "", 0
		for {
			before := f.Calls.Count("DynamoDB.Query")
			sep := "?"
			if q != "" {
				sep = "&"
			}
			items, next := f.tasks(b, r.ID, q+sep+"limit=100&cursor="+cursor)
			worst = max(worst, float64(f.Calls.Count("DynamoDB.Query")-before))
			got += len(items)
			pages++
			if next == "" {
				break
			}
			cursor = next
		}
		require.GreaterOrEqual(b, got, 500, q)
	}
	b.ReportMetric(worst, "queries_per_page")
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(pages), "ms_per_page")
}

// BenchmarkProgressDecode: handling one 100-task progress body (tolerant
// decode and conversion to task records) beside a plain encoding/json
// decode of the same body into generic values; the ratio is reported.
func BenchmarkProgressDecode(b *testing.B) {
	body := hundredTaskProgress(b)
	ours := func() {
		if _, err := trace.DecodeProgress(body); err != nil {
			b.Fatal(err)
		}
	}
	againstPlainDecode(b, body, ours, "handle_us")
	b.ReportMetric(float64(len(body))/1024, "body_KiB")
}

// hundredTaskProgress is a progress body of 100 ended tasks as the newest
// Nextflow sends it.
func hundredTaskProgress(b *testing.B) []byte {
	v := lines[3]
	at := time.Now().UTC()
	var tasks []map[string]any
	for id := 1; id <= 100; id++ {
		tasks = append(tasks, v.task(id, "COMPLETED", at))
	}
	body, err := json.Marshal(v.progressBody(tasks, progressCounts(0, 0, 0, 100, 0), at))
	require.NoError(b, err)
	return body
}

// againstPlainDecode times fn beside a plain encoding/json decode of body
// into generic values, in turns (so load on the machine hits both alike),
// and reports fn's time as unit, the plain decode's and their ratio.
func againstPlainDecode(b *testing.B, body []byte, fn func(), unit string) {
	plain := func() {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
	}
	timeIt := func(fn func()) time.Duration {
		const n = 20
		start := time.Now()
		for range n {
			fn()
		}
		return time.Since(start) / n
	}
	var o, p time.Duration
	for b.Loop() {
		o += timeIt(fn)
		p += timeIt(plain)
	}
	b.ReportMetric(float64(o.Microseconds())/float64(b.N), unit)
	b.ReportMetric(float64(p.Microseconds())/float64(b.N), "plain_json_us")
	b.ReportMetric(float64(o)/float64(p), "ratio")
}

// instantTable answers the receiver's table calls at once (the run's
// record, success for every write), so that a benchmark times ceforge's own
// handling of a call and not the table's latency.
type instantTable struct {
	table string
	items []map[string]types.AttributeValue
}

func (d *instantTable) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{}, nil
}

func (d *instantTable) BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return &dynamodb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{d.table: d.items}}, nil
}

func (d *instantTable) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return &dynamodb.PutItemOutput{}, nil
}

func (d *instantTable) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return &dynamodb.UpdateItemOutput{}, nil
}

func (d *instantTable) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return &dynamodb.QueryOutput{}, nil
}

// BenchmarkProgressCall: the whole handling of one progress call of 100
// tasks (body read, token check, tolerant decode, pricing, building the 100
// conditional task writes and the counters write, the answer) with the
// table answering at once, beside a plain encoding/json decode of the same
// body into generic values; the ratio is reported.
func BenchmarkProgressCall(b *testing.B) {
	body := hundredTaskProgress(b)
	token := trace.NewToken()
	const runID = "bench000000001"
	rec, err := store.Marshal(map[string]any{"id": runID, "status": "RUNNING", "platform": "aws-batch",
		"trace": map[string]any{"enabled": true, "tokenHash": trace.HashToken(token)}, "backend": map[string]any{"region": "us-east-1"}})
	require.NoError(b, err)
	rec["pk"] = &types.AttributeValueMemberS{Value: store.Key(store.KindRun, runID)}
	db := &instantTable{table: "t", items: []map[string]types.AttributeValue{rec}}
	rc := &trace.Receiver{Progress: &progress.Store{DB: db, Table: "t"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	rt := api.NewRouter(rc.Log)
	rt.RequireIdentity = false
	rc.Register(rt)
	call := func() {
		req := httptest.NewRequest(http.MethodPut, "/trace/"+runID+"/progress", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("progress call: %d %s", w.Code, w.Body)
		}
	}
	againstPlainDecode(b, body, call, "call_us")
}
