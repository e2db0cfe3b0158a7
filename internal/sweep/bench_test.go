package sweep_test

import (
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ceforge/ceforge/internal/faultproxy"
	"github.com/ceforge/ceforge/internal/sweep"
	"github.com/ceforge/ceforge/internal/tags"
	"github.com/ceforge/ceforge/internal/testenv"
)

// EC2's documented DeleteVolume bucket, and the time scale of the scenario
// (one real second is five AWS seconds: refill 25 deletions per second,
// about what the emulator sustains beside the re-check of each volume).
const (
	bucketBurst  = 100
	bucketRefill = 5.0
	timeScale    = 5.0
)

// deleteLog records when DeleteVolume calls succeeded, in segments (one
// per sweep invocation).
type deleteLog struct {
	mu       sync.Mutex
	segments [][]time.Time
}

func (l *deleteLog) add() {
	l.mu.Lock()
	if len(l.segments) == 0 {
		l.segments = append(l.segments, nil)
	}
	last := len(l.segments) - 1
	l.segments[last] = append(l.segments[last], time.Now())
	l.mu.Unlock()
}

// next starts a new segment (the next invocation).
func (l *deleteLog) next() {
	l.mu.Lock()
	l.segments = append(l.segments, nil)
	l.mu.Unlock()
}

func (l *deleteLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.segments {
		n += len(s)
	}
	return n
}

// ratio is the achieved deletion rate over the bucket's refill rate, with
// the bucket's initial tokens taken out: per segment, (deletions - burst)
// / (last - first deletion) / refill. The server cannot give any client
// more than burst + refill x time, so 1.0 is the ceiling: every refilled
// token became a deletion. Gaps between invocations are not counted.
func (l *deleteLog) ratio(refillPerSec float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int
	var span float64
	for _, seg := range l.segments {
		if len(seg) <= bucketBurst+10 {
			continue
		}
		ts := append([]time.Time(nil), seg...)
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		n += len(ts) - bucketBurst
		span += ts[len(ts)-1].Sub(ts[0]).Seconds()
	}
	if span == 0 {
		return 0
	}
	return float64(n) / span / refillPerSec
}

// timedEC2 wraps the sweeper's EC2 client to time its deletions.
type timedEC2 struct {
	sweep.EC2API
	log *deleteLog
}

func (t timedEC2) DeleteVolume(ctx context.Context, in *ec2.DeleteVolumeInput, opts ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error) {
	out, err := t.EC2API.DeleteVolume(ctx, in, opts...)
	if err == nil {
		t.log.add()
	}
	return out, err
}

func ec2Rules() []faultproxy.Rule {
	return []faultproxy.Rule{
		{Operation: "DeleteVolume", Burst: bucketBurst, RefillPerSec: bucketRefill},
		{Operation: "DescribeVolumes", Burst: 100, RefillPerSec: 20},
		{Operation: "DescribeInstances", Burst: 100, RefillPerSec: 20},
		{Operation: "CreateTags", Burst: 100, RefillPerSec: 10},
		{Operation: "TerminateInstances", Burst: 100, RefillPerSec: 5},
	}
}

// BenchmarkScenarioSweepThrottled: 2,000 seeded volumes of every class
// behind a proxy enforcing EC2's buckets (time-scaled). Ours sweeps in two
// invocations, the first cut short by its deadline; a naive loop deletes
// its own set of volumes through the same buckets with the SDK's standard
// retryer. Run with -benchtime=1x.
func BenchmarkScenarioSweepThrottled(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchSweepThrottled(b)
	}
}

func benchSweepThrottled(b *testing.B) {
	b.StopTimer()
	env := testenv.New(b)
	ctx := context.Background()
	direct := ec2.NewFromConfig(env.AWS.Config(""))
	seedComputeEnvs(b, env.Store)

	n := 2000
	if v, err := strconv.Atoi(os.Getenv("CEFORGE_SWEEP_BENCH_VOLUMES")); err == nil && v > 0 {
		n = v // quicker runs while working on the sweeper
	}
	specs := volumeSpecs(n)
	// The naive loop's volumes belong to a CE this deployment does not
	// know, so our sweep leaves them alone.
	naive := make([]volSpec, 400)
	for i := range naive {
		naive[i] = volSpec{class: "naive", size: 10, tags: tags.Ownership(ceUnknown, "")}
	}
	start := time.Now()
	ours := seedVolumes(b, direct, specs)
	naiveVols := seedVolumes(b, direct, naive)
	var sighted []string
	for id, s := range ours {
		if classGoes(s.class) {
			sighted = append(sighted, id)
		}
	}
	seenLongAgo(b, env.Store, sighted...)
	b.Logf("seeded %d volumes in %s", len(ours)+len(naiveVols), time.Since(start).Round(time.Millisecond))
	eligible := 0
	for _, s := range ours {
		if classGoes(s.class) {
			eligible++
		}
	}

	proxy, err := faultproxy.New(env.Endpoint, ec2Rules()...)
	if err != nil {
		b.Fatal(err)
	}
	if err := proxy.Start(); err != nil {
		b.Fatal(err)
	}
	defer proxy.Close()
	proxy.SetTimeScale(timeScale)
	refill := bucketRefill * timeScale

	// Ours: two invocations, the first with a deadline that falls mid-sweep.
	clk := &clock{t: time.Now().UTC()}
	limits := sweep.DefaultLimits().Scale(timeScale)
	sw := newSweeper(env, clk, proxy.URL(), sweep.Options{Limits: &limits, DeadlineMargin: time.Second, MaxDeletions: 10000})
	oursLog := &deleteLog{}
	base := sw.Clients
	sw.Clients = func(ctx context.Context, t sweep.Target) (sweep.EC2API, sweep.BatchAPI, error) {
		e, bc, err := base(ctx, t)
		return timedEC2{e, oursLog}, bc, err
	}
	expected := (float64(eligible-bucketBurst)/(limits.DeleteVolume.Rate) + 1)
	b.StartTimer()
	// The first invocation's deadline leaves room for the listings (timed
	// here: the emulator is slow with thousands of tagged volumes) and
	// about half the deletions.
	lt := time.Now()
	if _, err := direct.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: aws.String("status"), Values: []string{"available"}}}}); err != nil {
		b.Fatal(err)
	}
	listing := time.Since(lt).Seconds()
	dctx, cancel := context.WithTimeout(ctx, time.Duration((1.5*listing+expected/3+1)*float64(time.Second)))
	r1, err := sw.Sweep(dctx, false, sweep.TriggerSchedule)
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	oursLog.next()
	r2, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.Logf("listing %.1fs; first sweep: %s (%s) targets=%d %+v throttles=%d errors=%v; second: %s %+v throttles=%d errors=%v",
		listing, r1.Status, r1.StopReason, r1.Targets, r1.Volumes, r1.Throttles, r1.Errors, r2.Status, r2.Volumes, r2.Throttles, r2.Errors)

	left := listVolumes(b, direct)
	wrong, missed := 0, 0
	for id, s := range ours {
		_, exists := left[id]
		switch {
		case classGoes(s.class) && exists:
			missed++
		case !classGoes(s.class) && !exists:
			wrong++
		}
	}

	oursThrottled := proxy.Stats()["DeleteVolume"].Throttled // both invocations
	// Naive: delete every id as fast as 16 goroutines can, trusting the
	// SDK's standard retryer (3 attempts, client-side retry quota).
	proxy.SetRules(ec2Rules()...) // a fresh, full bucket: the same start as ours
	naiveCfg := env.AWS.Config("")
	naiveCfg.Retryer = func() aws.Retryer { return retry.NewStandard() }
	naiveClient := ec2.NewFromConfig(naiveCfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(proxy.URL()) })
	naiveLog := &deleteLog{}
	var naiveThrottled, naiveOther int
	var mu sync.Mutex
	ids := make(chan string)
	var wg sync.WaitGroup
	proxy.ResetStats()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				_, err := naiveClient.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)})
				mu.Lock()
				switch {
				case err == nil:
					naiveLog.add()
				case sweep.IsThrottle(err) || isQuota(err):
					naiveThrottled++
				default:
					naiveOther++
				}
				mu.Unlock()
			}
		}()
	}
	for id := range naiveVols {
		ids <- id
	}
	close(ids)
	wg.Wait()

	b.ReportMetric(oursLog.ratio(refill), "deletions_per_s_ratio")
	b.ReportMetric(float64(r1.ThrottleFailures+r2.ThrottleFailures), "throttle_errors_in_report")
	b.ReportMetric(float64(r1.Throttles+r2.Throttles), "throttles_absorbed")
	b.ReportMetric(float64(wrong), "wrongly_deleted")
	b.ReportMetric(float64(missed), "missed_after_resume")
	b.ReportMetric(float64(r1.Volumes.Deleted), "deleted_before_deadline")
	b.ReportMetric(naiveLog.ratio(refill), "naive_deletions_per_s_ratio")
	b.ReportMetric(float64(naiveThrottled), "naive_throttle_errors")
	b.ReportMetric(float64(naiveLog.count())/float64(len(naiveVols)), "naive_deleted_fraction")
	b.ReportMetric(float64(oursThrottled), "throttled_requests")
	b.ReportMetric(float64(proxy.Stats()["DeleteVolume"].Throttled), "naive_throttled_requests")
	if naiveOther > 0 {
		b.Logf("naive loop: %d non-throttle errors", naiveOther)
	}
}

// isQuota reports the standard retryer's client-side quota running dry
// ("retry quota exceeded"), which only throttles drain here.
func isQuota(err error) bool {
	return err != nil && strings.Contains(err.Error(), "retry quota exceeded")
}
