package sweep

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"golang.org/x/time/rate"
)

// Limit is a client-side token bucket: Burst tokens, refilled at Rate per second.
type Limit struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

// Limits are the sweeper's client-side buckets, per API family. The
// defaults sit just under EC2's documented account buckets, so a sweep
// alone never meets a throttle; AIMD handles the buckets it shares with
// other clients (the EBS auto-scale helper, Batch).
type Limits struct {
	DeleteVolume       Limit
	TerminateInstances Limit
	Describe           Limit // Describe* and other reads
	Batch              Limit // AWS Batch calls (about 50 TPS per account)
}

// DefaultLimits returns limits at 95% of EC2's refill rates.
func DefaultLimits() Limits {
	return Limits{
		DeleteVolume:       Limit{Rate: 4.75, Burst: 100},
		TerminateInstances: Limit{Rate: 4.75, Burst: 100},
		Describe:           Limit{Rate: 19, Burst: 100},
		Batch:              Limit{Rate: 20, Burst: 20},
	}
}

// Scale returns the limits with every rate multiplied by f (tests run AWS
// time faster through the fault proxy).
func (l Limits) Scale(f float64) Limits {
	s := func(x Limit) Limit { return Limit{Rate: x.Rate * f, Burst: x.Burst} }
	return Limits{s(l.DeleteVolume), s(l.TerminateInstances), s(l.Describe), s(l.Batch)}
}

// aimd is a token bucket whose rate halves on every throttle (at most once
// per cool-down, so a burst of throttles from requests already in flight
// counts once) and grows back additively with successes: TCP's congestion
// rule, applied to an AWS account's shared bucket.
type aimd struct {
	mu        sync.Mutex
	lim       *rate.Limiter
	max, min  rate.Limit
	step      rate.Limit
	burst     int
	cooldown  time.Duration
	lastCut   time.Time
	throttles int
}

func newAIMD(l Limit) *aimd {
	if l.Rate <= 0 {
		l.Rate = 1
	}
	if l.Burst <= 0 {
		l.Burst = 1
	}
	max := rate.Limit(l.Rate)
	return &aimd{
		lim: rate.NewLimiter(max, l.Burst), max: max, min: max / 64, burst: l.Burst,
		// Regain the full rate after about 50 successes at half rate.
		step:     max / 100,
		cooldown: time.Duration(float64(time.Second) / l.Rate * 2),
	}
}

// Wait blocks until a token is available or ctx ends.
func (a *aimd) Wait(ctx context.Context) error { return a.lim.Wait(ctx) }

// Throttled halves the rate and empties the local bucket: the server's
// bucket is empty, so bursting again would only collect more throttles.
func (a *aimd) Throttled() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.throttles++
	now := time.Now()
	if now.Sub(a.lastCut) < a.cooldown {
		return
	}
	a.lastCut = now
	r := a.lim.Limit() / 2
	if r < a.min {
		r = a.min
	}
	a.lim.SetLimitAt(now, r)
	a.lim.SetBurstAt(now, 1)
	a.cooldown = time.Duration(float64(time.Second) / float64(r) * 2)
}

// Succeeded grows the rate back by one step, and the burst with it once
// the full rate is restored.
func (a *aimd) Succeeded() {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.lim.Limit()
	if r >= a.max {
		if a.lim.Burst() < a.burst {
			a.lim.SetBurst(a.burst)
		}
		return
	}
	r += a.step
	if r > a.max {
		r = a.max
	}
	a.lim.SetLimit(r)
}

// Rate returns the current rate.
func (a *aimd) Rate() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return float64(a.lim.Limit())
}

// Throttles returns how many throttles were observed.
func (a *aimd) Throttles() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.throttles
}

// IsThrottle reports whether err is an AWS throttling error.
func IsThrottle(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	_, ok := retry.DefaultThrottleErrorCodes[ae.ErrorCode()]
	return ok
}

// ErrorCode returns the AWS error code of err ("" if none).
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// NewRetryer returns the retryer of the sweeper's clients: the standard
// retryer for transient faults (5xx, dropped connections) but never for
// throttles, which come straight back to the sweeper so its AIMD limiter
// sees every one of them (an SDK that silently retried a throttle would
// hide the signal that the account's bucket is empty). No retry quota:
// bulk work must not fail with "retry quota exceeded".
func NewRetryer(maxAttempts int) func() aws.Retryer {
	if maxAttempts <= 0 {
		maxAttempts = 4
	}
	return func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = maxAttempts
			o.RateLimiter = ratelimit.None
			o.MaxBackoff = 5 * time.Second
			o.Retryables = append([]retry.IsErrorRetryable{
				retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
					if IsThrottle(err) {
						return aws.FalseTernary
					}
					return aws.UnknownTernary
				}),
			}, o.Retryables...)
		})
	}
}
