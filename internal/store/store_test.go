package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

type rec struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Status       string    `json:"status"`
	ComputeEnvID string    `json:"computeEnvId,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	ExitCode     *int      `json:"exitCode,omitempty"`
}

func TestCreateRefusesOverwrite(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	require.NoError(t, s.Create(ctx, store.KindRun, "r1", rec{ID: "r1", Name: "first", Status: "SUBMITTED", CreatedAt: time.Now()}))

	err := s.Create(ctx, store.KindRun, "r1", rec{ID: "r1", Name: "second", Status: "SUBMITTED", CreatedAt: time.Now()})
	require.ErrorIs(t, err, store.ErrExists)

	var got rec
	v, err := s.Get(ctx, store.KindRun, "r1", &got)
	require.NoError(t, err)
	require.Equal(t, "first", got.Name)
	require.EqualValues(t, 1, v)
}

func TestCreateWithGuardIsAtomic(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	require.NoError(t, s.Create(ctx, store.KindCE, "ce1", rec{ID: "ce1", Name: "alpha", CreatedAt: time.Now()}, store.WithGuard(store.KindCEName, "alpha")))

	err := s.Create(ctx, store.KindCE, "ce2", rec{ID: "ce2", Name: "alpha", CreatedAt: time.Now()}, store.WithGuard(store.KindCEName, "alpha"))
	var exists *store.ExistsError
	require.ErrorAs(t, err, &exists)
	require.Equal(t, store.KindCEName, exists.Kind)
	require.Equal(t, "alpha", exists.ID)

	_, err = s.Get(ctx, store.KindCE, "ce2", &rec{})
	require.ErrorIs(t, err, store.ErrNotFound, "the record must not be written when its guard exists")

	target, err := s.GetRef(ctx, store.KindCEName, "alpha")
	require.NoError(t, err)
	require.Equal(t, "ce1", target)
}

func TestSaveRefusesStaleVersion(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	require.NoError(t, s.Create(ctx, store.KindCE, "ce1", rec{ID: "ce1", Name: "a", Status: "CREATING", CreatedAt: time.Now()}))

	var r rec
	v, err := s.Get(ctx, store.KindCE, "ce1", &r)
	require.NoError(t, err)
	r.Status = "AVAILABLE"
	v2, err := s.Save(ctx, store.KindCE, "ce1", r, v)
	require.NoError(t, err)
	require.Equal(t, v+1, v2)

	r.Status = "ERRORED"
	_, err = s.Save(ctx, store.KindCE, "ce1", r, v) // stale
	require.ErrorIs(t, err, store.ErrConflict)

	var got rec
	_, err = s.Get(ctx, store.KindCE, "ce1", &got)
	require.NoError(t, err)
	require.Equal(t, "AVAILABLE", got.Status)

	_, err = s.Save(ctx, store.KindCE, "missing", r, 1)
	require.ErrorIs(t, err, store.ErrConflict)
}

func TestTransitionIsMonotonic(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	require.NoError(t, s.Create(ctx, store.KindRun, "r1", rec{ID: "r1", Status: "SUBMITTED", CreatedAt: time.Now()}, store.WithStatusRank(10)))
	t0 := time.Now()

	steps := []struct {
		status  string
		rank    int
		applied bool
		want    string
	}{
		{"SUBMITTED", 10, false, "SUBMITTED"}, // duplicate
		{"RUNNING", 20, true, "RUNNING"},
		{"RUNNING", 20, false, "RUNNING"},    // duplicate
		{"SUBMITTED", 10, false, "RUNNING"},  // late, out of order
		{"SUCCEEDED", 30, true, "SUCCEEDED"}, // terminal
		{"FAILED", 30, false, "SUCCEEDED"},   // terminal is final
		{"RUNNING", 20, false, "SUCCEEDED"},  // late
	}
	for i, st := range steps {
		t.Run(fmt.Sprintf("%d-%s", i, st.status), func(t *testing.T) {
			code := i
			applied, err := s.Transition(ctx, store.KindRun, "r1", store.Move{Status: st.status, Rank: st.rank, At: t0.Add(time.Duration(i) * time.Second), Set: map[string]any{"exitCode": code}})
			require.NoError(t, err)
			require.Equal(t, st.applied, applied)
			var got rec
			_, err = s.Get(ctx, store.KindRun, "r1", &got)
			require.NoError(t, err)
			require.Equal(t, st.want, got.Status)
		})
	}
	var got rec
	_, err := s.Get(ctx, store.KindRun, "r1", &got)
	require.NoError(t, err)
	require.NotNil(t, got.ExitCode)
	require.Equal(t, 4, *got.ExitCode, "only applied transitions write their fields")

	_, err = s.Transition(ctx, store.KindRun, "nope", store.Move{Status: "RUNNING", Rank: 20, At: t0})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestTransitionUpdatesStatusIndex(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	require.NoError(t, s.Create(ctx, store.KindRun, "r1", rec{ID: "r1", Status: "SUBMITTED", CreatedAt: time.Now()}, store.WithStatusRank(10)))
	_, err := s.Transition(ctx, store.KindRun, "r1", store.Move{Status: "RUNNING", Rank: 20, At: time.Now()})
	require.NoError(t, err)

	page, err := s.List(ctx, store.Query{Kind: store.KindRun, Status: "RUNNING"})
	require.NoError(t, err)
	require.Len(t, page.Items, 1)
	page, err = s.List(ctx, store.Query{Kind: store.KindRun, Status: "SUBMITTED"})
	require.NoError(t, err)
	require.Empty(t, page.Items)
}

func TestListPaginatesByKindStatusAndParent(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 25; i++ {
		status := "RUNNING"
		if i%5 == 0 {
			status = "FAILED"
		}
		ce := "ceA"
		if i%2 == 1 {
			ce = "ceB"
		}
		id := fmt.Sprintf("r%02d", i)
		require.NoError(t, s.Create(ctx, store.KindRun, id, rec{ID: id, Status: status, ComputeEnvID: ce, CreatedAt: base.Add(time.Duration(i) * time.Minute)}))
	}
	require.NoError(t, s.Create(ctx, store.KindCE, "ceA", rec{ID: "ceA", CreatedAt: base}))

	collect := func(q store.Query) []string {
		var ids []string
		for {
			page, err := s.List(ctx, q)
			require.NoError(t, err)
			var recs []rec
			require.NoError(t, page.Decode(&recs))
			for _, r := range recs {
				ids = append(ids, r.ID)
			}
			if page.NextCursor == "" {
				return ids
			}
			q.Cursor = page.NextCursor
		}
	}

	all := collect(store.Query{Kind: store.KindRun, Limit: 7})
	require.Len(t, all, 25)
	require.Equal(t, "r24", all[0], "newest first")
	require.Equal(t, "r00", all[24])

	failed := collect(store.Query{Kind: store.KindRun, Status: "FAILED", Limit: 2})
	require.Equal(t, []string{"r20", "r15", "r10", "r05", "r00"}, failed)

	ceB := collect(store.Query{Kind: store.KindRun, ComputeEnvID: "ceB", Limit: 4})
	require.Len(t, ceB, 12)
	for _, id := range ceB {
		var n int
		fmt.Sscanf(id, "r%d", &n)
		require.Equal(t, 1, n%2)
	}
	ceAFailed := collect(store.Query{Kind: store.KindRun, ComputeEnvID: "ceA", Status: "FAILED", Limit: 2})
	require.Equal(t, []string{"r20", "r10", "r00"}, ceAFailed)

	ces := collect(store.Query{Kind: store.KindCE})
	require.Equal(t, []string{"ceA"}, ces)
}

func TestListRejectsBadCursor(t *testing.T) {
	env := testenv.New(t)
	for _, c := range []string{"!!", "e30", "eyJldmlsIjoieCJ9"} { // bad base64, {}, {"evil":"x"}
		_, err := env.Store.List(context.Background(), store.Query{Kind: store.KindRun, Cursor: c})
		require.True(t, errors.Is(err, store.ErrBadCursor), "cursor %q: %v", c, err)
	}
}

func TestPatchAndRefs(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	require.NoError(t, s.Create(ctx, store.KindRun, "r1", rec{ID: "r1", Status: "SUBMITTED", CreatedAt: time.Now()}))
	require.NoError(t, s.Patch(ctx, store.KindRun, "r1", map[string]any{"name": "patched"}, 0))
	var got rec
	v, err := s.Get(ctx, store.KindRun, "r1", &got)
	require.NoError(t, err)
	require.Equal(t, "patched", got.Name)
	require.EqualValues(t, 2, v)
	require.ErrorIs(t, s.Patch(ctx, store.KindRun, "r1", map[string]any{"name": "x"}, 1), store.ErrConflict)
	require.ErrorIs(t, s.Patch(ctx, store.KindRun, "missing", map[string]any{"name": "x"}, 0), store.ErrNotFound)

	require.NoError(t, s.PutRef(ctx, store.KindInstance, "i-123", "r1"))
	target, err := s.GetRef(ctx, store.KindInstance, "i-123")
	require.NoError(t, err)
	require.Equal(t, "r1", target)
	_, err = s.GetRef(ctx, store.KindInstance, "i-404")
	require.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, s.Delete(ctx, store.KindRun, "r1", store.WithGuard(store.KindInstance, "i-123")))
	_, err = s.GetRef(ctx, store.KindInstance, "i-123")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestPatchWithRefsAndNestedPaths(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	type timeline struct {
		Submitted string `json:"submitted,omitempty"`
		Running   string `json:"running,omitempty"`
	}
	type nested struct {
		ID        string    `json:"id"`
		Status    string    `json:"status"`
		Backend   string    `json:"backend,omitempty"`
		Timeline  timeline  `json:"timeline"`
		CreatedAt time.Time `json:"createdAt"`
	}
	require.NoError(t, s.Create(ctx, store.KindRun, "r1", nested{ID: "r1", Status: "SUBMITTED", Timeline: timeline{Submitted: "t0"}, CreatedAt: time.Now()}, store.WithStatusRank(10)))
	require.NoError(t, s.PatchWithRefs(ctx, store.KindRun, "r1", map[string]any{"backend": "i-1"}, 0, store.Ref{Kind: store.KindInstance, ID: "i-1"}))
	target, err := s.GetRef(ctx, store.KindInstance, "i-1")
	require.NoError(t, err)
	require.Equal(t, "r1", target)

	err = s.PatchWithRefs(ctx, store.KindRun, "missing", map[string]any{"backend": "i-2"}, 0, store.Ref{Kind: store.KindInstance, ID: "i-2"})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetRef(ctx, store.KindInstance, "i-2")
	require.ErrorIs(t, err, store.ErrNotFound, "a failed patch must not leave its reverse index behind")

	ok, err := s.Transition(ctx, store.KindRun, "r1", store.Move{Status: "RUNNING", Rank: 20, At: time.Now(), Set: map[string]any{"timeline.running": "t1"}})
	require.NoError(t, err)
	require.True(t, ok)
	var got nested
	_, err = s.Get(ctx, store.KindRun, "r1", &got)
	require.NoError(t, err)
	require.Equal(t, timeline{Submitted: "t0", Running: "t1"}, got.Timeline)
	require.Equal(t, "i-1", got.Backend)
}

func TestListRejectsCursorOfAnotherQuery(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("r%d", i)
		require.NoError(t, s.Create(ctx, store.KindRun, id, rec{ID: id, Status: "RUNNING", ComputeEnvID: "ceA", CreatedAt: time.Now()}))
	}
	page, err := s.List(ctx, store.Query{Kind: store.KindRun, Limit: 1})
	require.NoError(t, err)
	require.NotEmpty(t, page.NextCursor)
	_, err = s.List(ctx, store.Query{Kind: store.KindRun, Status: "RUNNING", Cursor: page.NextCursor})
	require.ErrorIs(t, err, store.ErrBadCursor, "a cursor of the kind listing is not one of the status listing")
	_, err = s.List(ctx, store.Query{Kind: store.KindCE, Cursor: page.NextCursor})
	require.ErrorIs(t, err, store.ErrBadCursor, "a run cursor is not a CE cursor")
	_, err = s.List(ctx, store.Query{Kind: store.KindRun, Cursor: page.NextCursor})
	require.NoError(t, err)
}

func TestDomainFieldsSurviveStoreAttributes(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	type withKind struct {
		ID        string    `json:"id"`
		Kind      string    `json:"kind"`
		Status    string    `json:"status"`
		CreatedAt time.Time `json:"createdAt"`
	}
	require.NoError(t, env.Store.Create(ctx, store.KindRun, "r1", withKind{ID: "r1", Kind: "pipeline", Status: "SUBMITTED", CreatedAt: time.Now()}))
	var got withKind
	_, err := env.Store.Get(ctx, store.KindRun, "r1", &got)
	require.NoError(t, err)
	require.Equal(t, "pipeline", got.Kind, "the store's own attributes must not overwrite domain fields")
	page, err := env.Store.List(ctx, store.Query{Kind: store.KindRun})
	require.NoError(t, err)
	require.Len(t, page.Items, 1)
}

func TestAllReadsEveryPage(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	for i := 0; i < 7; i++ {
		id := fmt.Sprintf("r%d", i)
		require.NoError(t, env.Store.Create(ctx, store.KindRun, id, rec{ID: id, Status: "RUNNING", CreatedAt: time.Now()}))
	}
	all, err := store.All[rec](ctx, env.Store, store.Query{Kind: store.KindRun, Status: "RUNNING", Limit: 3})
	require.NoError(t, err)
	require.Len(t, all, 7)
	none, err := store.All[rec](ctx, env.Store, store.Query{Kind: store.KindRun, Status: "FAILED"})
	require.NoError(t, err)
	require.Empty(t, none)
}

// TestTransitionEqualRankNeedsNewerEvidence: two statuses of one rank
// replace each other only with a later observation time; the same status
// is never rewritten, so its first time stays.
func TestTransitionEqualRankNeedsNewerEvidence(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	require.NoError(t, s.Create(ctx, store.KindRun, "r1", rec{ID: "r1", Status: "SUBMITTED", CreatedAt: time.Now()}, store.WithStatusRank(10)))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		status  string
		at      time.Duration
		applied bool
		want    string
	}{
		{"RUNNING", 10 * time.Second, true, "RUNNING"},
		{"UNKNOWN", 5 * time.Second, false, "RUNNING"},  // older than the running evidence
		{"UNKNOWN", 20 * time.Second, true, "UNKNOWN"},  // stopped later
		{"RUNNING", 15 * time.Second, false, "UNKNOWN"}, // the original running event, late
		{"UNKNOWN", 30 * time.Second, false, "UNKNOWN"}, // same status: no rewrite
		{"RUNNING", 40 * time.Second, true, "RUNNING"},  // restarted
		{"SUCCEEDED", time.Second, true, "SUCCEEDED"},   // a higher rank needs no newer time
		{"RUNNING", time.Hour, false, "SUCCEEDED"},      // terminal is final
	}
	for i, st := range steps {
		rank := map[string]int{"RUNNING": 20, "UNKNOWN": 20, "SUCCEEDED": 30}[st.status]
		applied, err := s.Transition(ctx, store.KindRun, "r1", store.Move{Status: st.status, Rank: rank, Revisable: rank == 20, At: t0.Add(st.at)})
		require.NoError(t, err)
		require.Equal(t, st.applied, applied, "step %d", i)
		var got rec
		_, err = s.Get(ctx, store.KindRun, "r1", &got)
		require.NoError(t, err)
		require.Equal(t, st.want, got.Status, "step %d", i)
	}
}

func TestNilRemovesAttributes(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	require.NoError(t, s.Create(ctx, store.KindRun, "r1", rec{ID: "r1", Name: "n", Status: "SUBMITTED", CreatedAt: time.Now()}, store.WithStatusRank(10)))
	ok, err := s.Transition(ctx, store.KindRun, "r1", store.Move{Status: "RUNNING", Rank: 20, At: time.Now(), Set: map[string]any{"name": nil, "exitCode": 3}})
	require.NoError(t, err)
	require.True(t, ok)
	var got rec
	_, err = s.Get(ctx, store.KindRun, "r1", &got)
	require.NoError(t, err)
	require.Empty(t, got.Name)
	require.Equal(t, 3, *got.ExitCode)
	require.NoError(t, s.Patch(ctx, store.KindRun, "r1", map[string]any{"exitCode": nil}, 0))
	got = rec{}
	_, err = s.Get(ctx, store.KindRun, "r1", &got)
	require.NoError(t, err)
	require.Nil(t, got.ExitCode)
}

// TestPatchWhenUnsetOneWriterWins: the first writer of an attribute wins;
// a second is refused with ErrConflict and leaves no reverse index.
func TestPatchWhenUnsetOneWriterWins(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	type owned struct {
		ID        string    `json:"id"`
		Owner     string    `json:"owner,omitempty"`
		CreatedAt time.Time `json:"createdAt"`
	}
	require.NoError(t, s.Create(ctx, store.KindRun, "r1", owned{ID: "r1", CreatedAt: time.Now()}))
	require.NoError(t, s.PatchWhen(ctx, store.KindRun, "r1", map[string]any{"owner": "i-1"}, store.Unset("owner"), store.Ref{Kind: store.KindInstance, ID: "i-1"}))
	err := s.PatchWhen(ctx, store.KindRun, "r1", map[string]any{"owner": "i-2"}, store.Unset("owner"), store.Ref{Kind: store.KindInstance, ID: "i-2"})
	require.ErrorIs(t, err, store.ErrConflict)
	err = s.PatchWhen(ctx, store.KindRun, "r1", map[string]any{"owner": "i-3"}, store.Unset("owner"))
	require.ErrorIs(t, err, store.ErrConflict)
	var got owned
	_, err = s.Get(ctx, store.KindRun, "r1", &got)
	require.NoError(t, err)
	require.Equal(t, "i-1", got.Owner)
	_, err = s.GetRef(ctx, store.KindInstance, "i-2")
	require.ErrorIs(t, err, store.ErrNotFound)
	err = s.PatchWhen(ctx, store.KindRun, "missing", map[string]any{"owner": "x"}, store.Unset("owner"))
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestPatchWhenEquals: a write conditioned on a nested attribute's value
// applies while it holds and is refused (ErrConflict) once it changed.
func TestPatchWhenEquals(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	type backend struct {
		Host string `json:"host,omitempty"`
		Seen string `json:"seen,omitempty"`
	}
	type rec struct {
		ID        string    `json:"id"`
		Backend   backend   `json:"backend"`
		CreatedAt time.Time `json:"createdAt"`
	}
	require.NoError(t, s.Create(ctx, store.KindRun, "r1", rec{ID: "r1", Backend: backend{Host: "ci-1"}, CreatedAt: time.Now()}))
	require.NoError(t, s.PatchWhen(ctx, store.KindRun, "r1", map[string]any{"backend.seen": "i-1"}, store.Equals("backend.host", "ci-1")))
	err := s.PatchWhen(ctx, store.KindRun, "r1", map[string]any{"backend.seen": "i-2"}, store.Equals("backend.host", "ci-2"))
	require.ErrorIs(t, err, store.ErrConflict)
	var got rec
	_, err = s.Get(ctx, store.KindRun, "r1", &got)
	require.NoError(t, err)
	require.Equal(t, backend{Host: "ci-1", Seen: "i-1"}, got.Backend)
}

// TestChecksAndCounts: a create conditioned on another record's status
// moves a counter with it, and a save conditioned on that counter sees it:
// the two writes exclude each other.
func TestChecksAndCounts(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	s := env.Store
	require.NoError(t, s.Create(ctx, store.KindCE, "ce1", rec{ID: "ce1", Status: "AVAILABLE", CreatedAt: time.Now()}))
	count := store.Count{Kind: store.KindCERuns, ID: "ce1", Delta: 1}
	available := store.WithCheck(store.StatusIs(store.KindCE, "ce1", "AVAILABLE"))
	require.NoError(t, s.Create(ctx, store.KindRun, "r1", rec{ID: "r1", Status: "SUBMITTED", CreatedAt: time.Now()}, available, store.WithCount(count)))
	n, err := s.GetCount(ctx, store.KindCERuns, "ce1")
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	// A save that needs no active run is refused while the count is 1.
	var ce rec
	v, err := s.Get(ctx, store.KindCE, "ce1", &ce)
	require.NoError(t, err)
	ce.Status = "DELETING"
	_, err = s.Save(ctx, store.KindCE, "ce1", ce, v, store.WithCheck(store.CountAtMost(store.KindCERuns, "ce1", 0)))
	var ce2 *store.CheckError
	require.ErrorAs(t, err, &ce2)
	require.Equal(t, store.KindCERuns, ce2.Kind)

	// The run ends: the count drops in the same write, and the save passes.
	ok, err := s.Transition(ctx, store.KindRun, "r1", store.Move{Status: "FAILED", Rank: 30, At: time.Now(), Count: &store.Count{Kind: store.KindCERuns, ID: "ce1", Delta: -1}})
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.Transition(ctx, store.KindRun, "r1", store.Move{Status: "CANCELLED", Rank: 30, At: time.Now(), Count: &store.Count{Kind: store.KindCERuns, ID: "ce1", Delta: -1}})
	require.NoError(t, err)
	require.False(t, ok, "a refused move must not move the counter")
	n, err = s.GetCount(ctx, store.KindCERuns, "ce1")
	require.NoError(t, err)
	require.EqualValues(t, 0, n)
	_, err = s.Save(ctx, store.KindCE, "ce1", ce, v, store.WithCheck(store.CountAtMost(store.KindCERuns, "ce1", 0)))
	require.NoError(t, err)

	// Now DELETING: a create that needs AVAILABLE is refused and counts nothing.
	err = s.Create(ctx, store.KindRun, "r2", rec{ID: "r2", Status: "SUBMITTED", CreatedAt: time.Now()}, available, store.WithCount(count))
	require.ErrorIs(t, err, store.ErrCheckFailed)
	_, err = s.Get(ctx, store.KindRun, "r2", &rec{})
	require.ErrorIs(t, err, store.ErrNotFound)
	n, err = s.GetCount(ctx, store.KindCERuns, "ce1")
	require.NoError(t, err)
	require.EqualValues(t, 0, n)
	// A check on a record that does not exist fails too.
	err = s.Create(ctx, store.KindRun, "r3", rec{ID: "r3", Status: "SUBMITTED", CreatedAt: time.Now()}, store.WithCheck(store.StatusIs(store.KindCE, "nope", "AVAILABLE")))
	require.ErrorIs(t, err, store.ErrCheckFailed)
}
