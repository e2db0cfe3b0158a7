package batchce

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
)

// memStore keeps one run record in memory and applies writes the way the
// store does (dotted paths, version guard, monotonic status).
type memStore struct {
	mu      sync.Mutex
	rec     runRecord
	version int64
	writes  int
}

func (m *memStore) Get(_ context.Context, _ store.Kind, _ string, out any) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := out.(*runRecord)
	*r = m.rec
	r.TaskStates = make(map[string]int, len(m.rec.TaskStates))
	for k, v := range m.rec.TaskStates {
		r.TaskStates[k] = v
	}
	if m.rec.TaskStates == nil {
		r.TaskStates = nil
	}
	return m.version, nil
}

func (m *memStore) apply(set map[string]any) {
	for k, v := range set {
		switch {
		case k == "taskStates":
			m.rec.TaskStates = v.(map[string]int)
		case strings.HasPrefix(k, "taskStates."):
			m.rec.TaskStates[strings.TrimPrefix(k, "taskStates.")] = v.(int)
		case k == "progress":
			p := v.(run.Progress)
			m.rec.Progress = &p
		}
	}
	m.version++
	m.writes++
}

func (m *memStore) GetRefs(context.Context, store.Kind, []string) (map[string]string, error) {
	return map[string]string{}, nil
}

func (m *memStore) Patch(_ context.Context, _ store.Kind, _ string, set map[string]any, ifVersion int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ifVersion != m.version {
		return store.ErrConflict
	}
	m.apply(set)
	return nil
}

func (m *memStore) Transition(_ context.Context, _ *run.Run, u run.Update) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if run.Rank(u.Status) <= run.Rank(m.rec.Status) {
		return false, nil
	}
	m.rec.Status = u.Status
	m.apply(u.Fields)
	return true, nil
}

// TestCountersSurviveChaos: every task's events, duplicated, shuffled,
// with intermediate states dropped, in random batches, give the same
// counters as the truth (each task's final state).
func TestCountersSurviveChaos(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		t.Run(map[bool]string{false: "sequential", true: "concurrent"}[concurrent], func(t *testing.T) { chaos(t, concurrent) })
	}
}

func chaos(t *testing.T, concurrent bool) {
	lifecycle := []string{"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"}
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed*7))
		var obs []Observation
		var truth run.Progress
		for i := 0; i < 300; i++ {
			id := fmt.Sprintf("job-%d", i)
			final := []string{"SUCCEEDED", "FAILED", "RUNNING", "RUNNABLE"}[rng.IntN(4)]
			switch final {
			case "SUCCEEDED":
				truth.Succeeded++
			case "FAILED":
				truth.Failed++
			case "RUNNING":
				truth.Running++
			default:
				truth.Submitted++
			}
			for _, st := range append(lifecycle, final) {
				if st != final && rng.IntN(3) == 0 {
					continue // dropped
				}
				if final == "RUNNABLE" && (st == "STARTING" || st == "RUNNING") {
					break
				}
				for d := 0; d <= rng.IntN(3); d++ { // duplicated
					obs = append(obs, Observation{RunID: "r", JobID: id, Status: st})
				}
				if st == final {
					break
				}
			}
		}
		rng.Shuffle(len(obs), func(i, j int) { obs[i], obs[j] = obs[j], obs[i] })
		m := &memStore{rec: runRecord{Run: run.Run{ID: "r", Status: run.StatusRunning}}, version: 1}
		sink := &Sink{Store: m, Runs: m}
		batches := 0
		var wg sync.WaitGroup
		for len(obs) > 0 {
			n := min(len(obs), 1+rng.IntN(200))
			batch := obs[:n]
			if concurrent {
				// Lambdas consuming one queue in parallel: same run, interleaved writes.
				wg.Add(1)
				// A batch that loses every optimistic retry fails and SQS
				// redelivers it: do the same here, a bounded number of times.
				go func() {
					defer wg.Done()
					var err error
					for attempt := 0; attempt < 20; attempt++ {
						if err = sink.ApplyObservations(context.Background(), batch); err == nil {
							return
						}
					}
					t.Errorf("batch still failing after 20 deliveries: %v", err)
				}()
			} else {
				require.NoError(t, sink.ApplyObservations(context.Background(), batch))
			}
			obs = obs[n:]
			batches++
		}
		wg.Wait()
		require.Equal(t, truth, *m.rec.Progress, "seed %d", seed)
		if !concurrent {
			require.LessOrEqual(t, m.writes, batches, "at most one write per run per batch")
		}
	}
}
