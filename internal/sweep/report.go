package sweep

import (
	"sort"
	"sync"
	"time"
)

// Status of a sweep.
const (
	StatusQueued     = "QUEUED"     // requested through the API, not started yet
	StatusRunning    = "RUNNING"    // in progress
	StatusSucceeded  = "SUCCEEDED"  // everything eligible was handled
	StatusIncomplete = "INCOMPLETE" // stopped early (deadline, circuit breaker); the next sweep resumes
	StatusFailed     = "FAILED"     // could not run (listing failed, no store...)
)

// Triggers of a sweep.
const (
	TriggerSchedule = "schedule"
	TriggerAPI      = "api"
)

// Resource kinds in a report.
const (
	KindVolume   = "volume"
	KindInstance = "instance"
	KindJob      = "job"
	// KindAccount is an account and region (sampled as account/region)
	// the sweep did not list.
	KindAccount = "account"
)

// Skip reasons (stable strings a user can search for).
const (
	ReasonNotOwned          = "not_owned"          // no ceforge tags at all: not ours, not listed by id
	ReasonUnprovenOwnership = "unproven_ownership" // some ceforge tags, but not the proof: report only
	ReasonUnknownCE         = "unknown_compute_env"
	ReasonElsewhere         = "compute_env_elsewhere" // the CE's record names another account or region
	ReasonRunOfOtherCE      = "run_of_other_compute_env"
	ReasonQueueOfOtherCE    = "queue_not_of_compute_env"
	ReasonKeepTag           = "keep_tag"
	ReasonMultiAttach       = "multi_attach"
	ReasonFirstSeenNow      = "first_seen_now" // first sighting recorded; deleted after the grace period
	ReasonWithinGrace       = "within_grace"   // seen before, grace period not over
	ReasonNoLongerAvailable = "no_longer_available"
	ReasonAlreadyGone       = "already_gone"
	ReasonInUse             = "in_use"
	ReasonOtherController   = "managed_by_other_controller"
	ReasonTermProtection    = "termination_protection"
	ReasonNoRunTag          = "no_run_tag"
	ReasonNoRunRecord       = "no_run_record"
	ReasonQueueGone         = "queue_gone"    // a manual compute environment's job queue no longer exists
	ReasonNotAttempted      = "not_attempted" // eligible, but the sweep stopped first (deadline, breaker)
	// ReasonCredentialsDeleted: the account's credentials were deleted
	// (after its compute environments), so ceforge may not assume its role.
	ReasonCredentialsDeleted = "credentials_deleted"
)

// Why a resource goes (Candidate reasons).
const (
	WhyOrphanVolume  = "orphaned_volume"
	WhyRunTerminal   = "run_terminal"
	WhyCEDeleted     = "compute_env_deleted"
	WhyDuplicate     = "not_the_runs_instance"
	WhyMaxLifetime   = "max_lifetime_exceeded"
	WhyJobRunEnded   = "run_terminal"
	DefaultGP3Price  = 0.08
	DefaultMaxHours  = 168
	DefaultGrace     = 30 * time.Minute
	DefaultMargin    = 30 * time.Second
	DefaultMaxDelete = 4000
)

// Report is the record every sweep writes (store kind SWEEP); the same
// shape is the API response.
type Report struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Trigger     string     `json:"trigger"`
	DryRun      bool       `json:"dryRun"`
	RequestedBy string     `json:"requestedBy,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	StartedAt   *time.Time `json:"startedAt,omitempty"`
	FinishedAt  *time.Time `json:"finishedAt,omitempty"`
	// StopReason says why an INCOMPLETE or FAILED sweep stopped.
	StopReason string `json:"stopReason,omitempty"`
	// Targets is the number of account/region pairs swept.
	Targets int `json:"targets"`

	Volumes   Counts `json:"volumes"`
	Instances Counts `json:"instances"`
	Jobs      Counts `json:"jobs"`

	GiBFreed int64 `json:"gibFreed"`
	// GiBReclaimable is what would be freed (dry run) or was eligible.
	GiBReclaimable int64 `json:"gibReclaimable"`
	// DollarsPerMonthSaved estimates the storage cost removed (GiBFreed at
	// PricePerGiBMonth; in a dry run, what would be saved).
	DollarsPerMonthSaved float64 `json:"dollarsPerMonthSaved"`
	PricePerGiBMonth     float64 `json:"pricePerGibMonth"`

	Skipped []Skip `json:"skipped"`
	// Deleted lists what was deleted or terminated (or would be, in a dry
	// run), up to a sample size per kind and reason.
	Deleted []Item `json:"deleted"`
	// Errors are failures (not throttles, which the limiter absorbs), sampled.
	Errors []string `json:"errors"`
	// Throttles counts throttling answers observed and absorbed.
	Throttles int `json:"throttles"`
	// ThrottleFailures counts items that failed because throttling outlasted
	// every retry (should be 0: the limiter's job is to keep it so).
	ThrottleFailures int   `json:"throttleFailures"`
	Version          int64 `json:"version"`
}

// Counts are the numbers of one resource kind.
type Counts struct {
	Examined int `json:"examined"` // listed and classified
	Eligible int `json:"eligible"` // passed the listing's checks
	Deleted  int `json:"deleted"`  // deleted or terminated
	// WouldDelete counts, in a dry run, what passed every check up to the
	// deletion itself (re-check, termination protection).
	WouldDelete int `json:"wouldDelete"`
	Skipped     int `json:"skipped"` // not deleted, with a reason in Skipped
	Failed      int `json:"failed"`
}

// Skip is one kind and reason with its count and a sample of ids.
type Skip struct {
	Kind   string   `json:"kind"`
	Reason string   `json:"reason"`
	Count  int      `json:"count"`
	Sample []string `json:"sample,omitempty"`
}

// Item is a sampled id with the reason it went.
type Item struct {
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Reason  string `json:"reason"`
	SizeGiB int32  `json:"sizeGib,omitempty"`
}

// sampleSize bounds the ids kept per reason, so a sweep of thousands of
// volumes stays a small record.
const sampleSize = 20

// tally accumulates a report concurrently.
type tally struct {
	mu       sync.Mutex
	r        *Report
	skips    map[[2]string]*Skip
	deleted  map[[2]string]int
	attempts int
	failures int
	consec   int
}

func newTally(r *Report) *tally {
	return &tally{r: r, skips: map[[2]string]*Skip{}, deleted: map[[2]string]int{}}
}

func (t *tally) counts(kind string) *Counts {
	switch kind {
	case KindVolume:
		return &t.r.Volumes
	case KindInstance:
		return &t.r.Instances
	default:
		return &t.r.Jobs
	}
}

func (t *tally) examined(kind string, n int) {
	t.mu.Lock()
	t.counts(kind).Examined += n
	t.mu.Unlock()
}

func (t *tally) eligible(kind string, size int32) {
	t.mu.Lock()
	t.counts(kind).Eligible++
	t.r.GiBReclaimable += int64(size)
	t.mu.Unlock()
}

func (t *tally) skip(kind, reason, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if kind != KindAccount {
		t.counts(kind).Skipped++
	}
	k := [2]string{kind, reason}
	s := t.skips[k]
	if s == nil {
		s = &Skip{Kind: kind, Reason: reason}
		t.skips[k] = s
	}
	s.Count++
	if id != "" && len(s.Sample) < sampleSize {
		s.Sample = append(s.Sample, id)
	}
}

// done records a deletion (or, in a dry run, a would-be deletion).
func (t *tally) done(kind, id, reason string, size int32, dryRun bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attempts++
	t.consec = 0
	if dryRun {
		t.counts(kind).WouldDelete++
	} else {
		t.counts(kind).Deleted++
		t.r.GiBFreed += int64(size)
	}
	k := [2]string{kind, reason}
	if t.deleted[k] < sampleSize {
		t.r.Deleted = append(t.r.Deleted, Item{Kind: kind, ID: id, Reason: reason, SizeGiB: size})
	}
	t.deleted[k]++
}

func (t *tally) failed(kind, id string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attempts++
	t.failures++
	t.consec++
	t.counts(kind).Failed++
	if IsThrottle(err) {
		t.r.ThrottleFailures++
	}
	if len(t.r.Errors) < sampleSize {
		t.r.Errors = append(t.r.Errors, kind+" "+id+": "+err.Error())
	}
}

// listErr records an error that is not about one item (a listing failed).
func (t *tally) listErr(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures++
	if IsThrottle(err) {
		t.r.ThrottleFailures++
	}
	if len(t.r.Errors) < sampleSize {
		t.r.Errors = append(t.r.Errors, err.Error())
	}
}

// deletions returns the number of successful (or would-be) deletions.
func (t *tally) deletions() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.attempts - t.failures
}

// spike reports whether failures look like a systemic problem: ten in a
// row, or more than a quarter of at least twenty attempts.
func (t *tally) spike() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.consec >= 10 || t.attempts >= 20 && t.failures*4 > t.attempts
}

// finish sorts the skips into the report.
func (t *tally) finish(price float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.r.Skipped = t.r.Skipped[:0]
	for _, s := range t.skips {
		t.r.Skipped = append(t.r.Skipped, *s)
	}
	sort.Slice(t.r.Skipped, func(i, j int) bool {
		a, b := t.r.Skipped[i], t.r.Skipped[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Reason < b.Reason
	})
	t.r.PricePerGiBMonth = price
	gib := t.r.GiBFreed
	if t.r.DryRun {
		gib = t.r.GiBReclaimable
	}
	t.r.DollarsPerMonthSaved = float64(int64(float64(gib)*price*100+0.5)) / 100
}
