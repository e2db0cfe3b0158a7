package trace

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Throttle limits trace calls per token with a token bucket each. It lives
// in one function instance: Nextflow sends a run's calls one at a time from
// one thread, so a run's calls meet the same few instances; the stage
// throttle and the function's reserved concurrency bound the total.
type Throttle struct {
	// Rate (calls per second) and Burst per token. Nextflow sends about one
	// call a second, bursts at start and end, and retries.
	Rate  float64
	Burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// DefaultThrottle allows 20 calls a second per token, 60 at once.
func DefaultThrottle() *Throttle { return &Throttle{Rate: 20, Burst: 60} }

// maxBuckets bounds the memory of one instance; past it the map starts over
// (a fresh full bucket per token is the worst that happens).
const maxBuckets = 10000

// Allow reports whether a call for key may proceed now.
func (t *Throttle) Allow(key string, now time.Time) bool {
	if t == nil || t.Rate <= 0 {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buckets == nil || len(t.buckets) >= maxBuckets {
		t.buckets = map[string]*rate.Limiter{}
	}
	b, ok := t.buckets[key]
	if !ok {
		b = rate.NewLimiter(rate.Limit(t.Rate), t.Burst)
		t.buckets[key] = b
	}
	return b.AllowN(now, 1)
}
