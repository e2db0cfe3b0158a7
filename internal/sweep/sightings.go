package sweep

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ceforge/ceforge/internal/store"
)

// A sighting is ceforge's own record of when the sweeper first saw an
// orphan volume (store kind SIGHTING): the grace period counts from it,
// never from a tag on the volume, which anyone allowed to tag could
// backdate. It is written with a conditional create (the first sweep to see
// the volume wins) before any deletion, so a sweep cut short by its deadline
// or breaker keeps it, and removed once the volume is gone or in use again.
type sighting struct {
	ID        string    `json:"id"` // <account>/<region>/<volume-id>
	VolumeID  string    `json:"volumeId"`
	Region    string    `json:"region"`
	Account   string    `json:"account"`
	CreatedAt time.Time `json:"createdAt"` // the first sighting
}

// sightingTTL bounds a forgotten record's life (a volume deleted by someone
// else while no sweep completed): expiry only restarts a grace period.
const sightingTTL = 30 * 24 * time.Hour

func sightingID(tg Target, volumeID string) string {
	return tg.Account() + "/" + tg.Region + "/" + volumeID
}

func loadSightings(ctx context.Context, st *store.Store) (map[string]time.Time, error) {
	all, err := store.All[sighting](ctx, st, store.Query{Kind: store.KindSighting})
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(all))
	for _, s := range all {
		out[s.ID] = s.CreatedAt
	}
	return out, nil
}

// RecordSighting writes the first sighting of a volume in a target at t,
// unless one exists (it never moves a sighting). Sweeps call it for new
// orphans; tests use it to age volumes.
func RecordSighting(ctx context.Context, st *store.Store, tg Target, volumeID string, t time.Time) error {
	s := sighting{ID: sightingID(tg, volumeID), VolumeID: volumeID, Region: tg.Region, Account: tg.Account(), CreatedAt: t.UTC()}
	err := st.Create(ctx, store.KindSighting, s.ID, s, store.WithExpiry(t.Add(sightingTTL)))
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	return err
}

func (tr *targetRun) sightingOf(volumeID string) (time.Time, bool) {
	tr.sightMu.Lock()
	defer tr.sightMu.Unlock()
	t, ok := tr.sightings[sightingID(tr.target, volumeID)]
	return t, ok
}

// sightWorkers write sightings concurrently (one conditional put each).
const sightWorkers = 8

// recordSightings records this sweep's time as the first sighting of each
// volume. A volume another sweep recorded meanwhile keeps that record.
func (tr *targetRun) recordSightings(ctx context.Context, volumeIDs []string) error {
	work := make(chan string)
	errs := make(chan error, len(volumeIDs))
	var wg sync.WaitGroup
	for w := 0; w < sightWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if err := RecordSighting(ctx, tr.s.Store, tr.target, id, tr.now); err != nil {
					errs <- fmt.Errorf("volume %s: %w", id, err)
				}
			}
		}()
	}
	for _, id := range volumeIDs {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // the first error, if any
}

// forgetSightings removes this target's sightings of volumes that are no
// longer orphans here (not in the available listing).
func (tr *targetRun) forgetSightings(ctx context.Context, available map[string]bool) error {
	prefix := sightingID(tr.target, "")
	tr.sightMu.Lock()
	var gone []string
	for id := range tr.sightings {
		if len(id) > len(prefix) && id[:len(prefix)] == prefix && !available[id[len(prefix):]] {
			gone = append(gone, id)
		}
	}
	tr.sightMu.Unlock()
	for _, id := range gone {
		if err := tr.s.Store.Delete(ctx, store.KindSighting, id); err != nil {
			return err
		}
	}
	return nil
}

// clearSightings removes the sightings of volumes this sweep deleted.
func (tr *targetRun) clearSightings(ctx context.Context, volumeIDs []string) {
	for _, id := range volumeIDs {
		if err := tr.s.Store.Delete(ctx, store.KindSighting, sightingID(tr.target, id)); err != nil {
			tr.s.log().Warn("clear the sighting of a deleted volume", "volume_id", id, "error", err.Error())
			return
		}
	}
}
