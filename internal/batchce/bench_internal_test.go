package batchce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
)

// nopStore answers every read with a running run and accepts every write:
// the benchmark measures decoding and aggregation, not the database.
type nopStore struct{ writes atomic.Int64 }

func (s *nopStore) Get(_ context.Context, _ store.Kind, id string, out any) (int64, error) {
	rec := out.(*runRecord)
	rec.ID, rec.Status = id, run.StatusRunning
	return 1, nil
}

func (s *nopStore) GetRefs(context.Context, store.Kind, []string) (map[string]string, error) {
	return map[string]string{}, nil
}

func (s *nopStore) Patch(context.Context, store.Kind, string, map[string]any, int64) error {
	s.writes.Add(1)
	return nil
}

func (s *nopStore) Transition(context.Context, *run.Run, run.Update) (bool, error) {
	s.writes.Add(1)
	return true, nil
}

// eventBodies renders n compute-job events (real samples) spread over runs
// runs, plus a share of foreign jobs.
func eventBodies(tb testing.TB, n, runs int) []eventsrc.Message {
	tb.Helper()
	states := []string{"submitted", "pending", "runnable", "starting", "running", "succeeded"}
	tmpl := map[string]map[string]any{}
	for _, st := range append(states, "failed") {
		raw, err := os.ReadFile(filepath.Join("..", "..", "events", "batch-compute-"+st+".json"))
		if err != nil {
			tb.Fatal(err)
		}
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			tb.Fatal(err)
		}
		tmpl[st] = ev
	}
	msgs := make([]eventsrc.Message, n)
	for i := range msgs {
		ev := tmpl[states[i%len(states)]]
		d := ev["detail"].(map[string]any)
		d["jobId"] = fmt.Sprintf("job-%06d", i/len(states))
		d["tags"].(map[string]any)["ceforge:run-id"] = fmt.Sprintf("run%011d", i%runs)
		if i%10 == 9 {
			d["tags"] = map[string]any{} // not ours
		}
		b, err := json.Marshal(ev)
		if err != nil {
			tb.Fatal(err)
		}
		d["tags"] = map[string]any{"ceforge:managed": "true", "ceforge:run-id": ""}
		msgs[i] = eventsrc.Message{ID: fmt.Sprint(i), Body: string(b)}
	}
	return msgs
}

// BenchmarkBatchEventProcessorPath is the whole consumer path on one core:
// eventsrc.Processor's envelope decode and metrics, then this package's
// parse and aggregation, with a no-op store (10% of the jobs not ours).
func BenchmarkBatchEventProcessorPath(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const batch, runs = 100, 10
	msgs := eventBodies(b, 10*batch, runs)
	st := &nopStore{}
	sink := &Sink{Store: st, Runs: st, Workers: 1}
	p := eventsrc.NewProcessor(discardLog(), metrics.Discard)
	p.Handle(sink, map[eventsrc.Kind]eventsrc.Parser{JobStateChange: Parser("ceforge-")})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for i := 0; i < b.N; i++ {
		start := (i % 10) * batch
		if failed, _ := p.Process(ctx, msgs[start:start+batch]); len(failed) > 0 {
			b.Fatal("failed", failed)
		}
		events += batch
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(st.writes.Load())/float64(b.N), "store_writes/batch")
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// BenchmarkBatchEventThroughput is the parse + aggregate step on one core
// with a no-op store: decode each real-shaped Batch Job State Change detail
// (10% not ours), group per run, merge task states and plan one write per
// run. Envelopes are decoded beforehand, as eventsrc.Processor does once per
// message before calling the parser (see BenchmarkBatchEventProcessorPath
// for the whole path).
func BenchmarkBatchEventThroughput(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const batch, runs = 100, 10
	msgs := eventBodies(b, 10*batch, runs)
	envs := make([]eventsrc.Envelope, len(msgs))
	for i, m := range msgs {
		env, err := eventsrc.DecodeEnvelope(m.Body, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		envs[i] = env
	}
	st := &nopStore{}
	sink := &Sink{Store: st, Runs: st, Workers: 1}
	parse := Parser("ceforge-")
	ctx := context.Background()
	evs := make([]eventsrc.Event, 0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for i := 0; i < b.N; i++ {
		start := (i % 10) * batch
		evs = evs[:0]
		for j := start; j < start+batch; j++ {
			v, err := parse(envs[j])
			if errors.Is(err, eventsrc.ErrNotOurs) {
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			evs = append(evs, eventsrc.Event{MessageID: msgs[j].ID, Kind: JobStateChange, Envelope: envs[j], Value: v})
		}
		if res := sink.Apply(ctx, evs); len(res.Failed) > 0 {
			b.Fatal("failed", res.Failed)
		}
		events += batch
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(st.writes.Load())/float64(b.N), "store_writes/batch")
}
