package sweep_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/faultproxy"
	"github.com/ceforge/ceforge/internal/sweep"
	"github.com/ceforge/ceforge/internal/tags"
	"github.com/ceforge/ceforge/internal/testenv"
)

// fakeEC2 is a small EC2 for error paths the emulator cannot produce on
// demand (a volume attached between listing and deletion, throttles, 5xx).
type fakeEC2 struct {
	sweep.EC2API // unused methods panic
	mu           sync.Mutex
	volumes      []ec2types.Volume
	recheck      map[string]*ec2types.Volume // id -> what the re-check sees (nil: gone)
	deleteErrs   map[string][]error          // id -> errors returned before success
	alwaysFail   error
	deleted      []string
}

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

func (f *fakeEC2) DescribeVolumes(_ context.Context, in *ec2.DescribeVolumesInput, _ ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.VolumeIds) == 1 {
		id := in.VolumeIds[0]
		if v, ok := f.recheck[id]; ok {
			if v == nil {
				return nil, apiErr("InvalidVolume.NotFound")
			}
			return &ec2.DescribeVolumesOutput{Volumes: []ec2types.Volume{*v}}, nil
		}
		for _, v := range f.volumes {
			if aws.ToString(v.VolumeId) == id {
				return &ec2.DescribeVolumesOutput{Volumes: []ec2types.Volume{v}}, nil
			}
		}
		return &ec2.DescribeVolumesOutput{}, nil
	}
	for _, fl := range in.Filters {
		if aws.ToString(fl.Name) == "tag-key" {
			return &ec2.DescribeVolumesOutput{}, nil // no in-use volumes here
		}
	}
	return &ec2.DescribeVolumesOutput{Volumes: append([]ec2types.Volume(nil), f.volumes...)}, nil
}

func (f *fakeEC2) DeleteVolume(_ context.Context, in *ec2.DeleteVolumeInput, _ ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := aws.ToString(in.VolumeId)
	if f.alwaysFail != nil {
		return nil, f.alwaysFail
	}
	if errs := f.deleteErrs[id]; len(errs) > 0 {
		f.deleteErrs[id] = errs[1:]
		return nil, errs[0]
	}
	f.deleted = append(f.deleted, id)
	return &ec2.DeleteVolumeOutput{}, nil
}

func (f *fakeEC2) DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return &ec2.DescribeInstancesOutput{}, nil
}

func orphan(id string, size int32) ec2types.Volume {
	tg := tags.Ownership(ceCloud, "")
	return ec2types.Volume{VolumeId: aws.String(id), Size: aws.Int32(size), State: ec2types.VolumeStateAvailable, Tags: ec2Tags(tg)}
}

// TestVolumeErrorPaths: races and faults are skips or retries, not failures,
// and the circuit breaker stops a sweep that goes wrong.
func TestVolumeErrorPaths(t *testing.T) {
	env := testenv.New(t)
	seedComputeEnvs(t, env.Store)
	attached := orphan("vol-attached", 30)
	attached.State = ec2types.VolumeStateInUse
	kept := orphan("vol-kept", 20)
	kept.Tags = append(kept.Tags, ec2types.Tag{Key: aws.String("DoNotDelete"), Value: aws.String("x")})

	tests := []struct {
		name         string
		fake         *fakeEC2
		opts         sweep.Options
		status       string
		stop         string
		deleted      []string
		skips        map[string]int
		failed       int
		throttles    int
		throttleFail int
		slack        int // extra failures tolerated (items dispatched while the last failure was under way)
	}{
		{
			name: "re-check and races",
			fake: &fakeEC2{
				volumes: []ec2types.Volume{orphan("vol-ok", 100), orphan("vol-attached", 30), orphan("vol-kept", 20),
					orphan("vol-gone-before", 10), orphan("vol-gone-during", 9), orphan("vol-inuse-during", 8)},
				recheck: map[string]*ec2types.Volume{"vol-attached": &attached, "vol-kept": &kept, "vol-gone-before": nil},
				deleteErrs: map[string][]error{
					"vol-gone-during":  {apiErr("InvalidVolume.NotFound")},
					"vol-inuse-during": {apiErr("VolumeInUse")},
				},
			},
			status:  sweep.StatusSucceeded,
			deleted: []string{"vol-ok"},
			skips: map[string]int{sweep.ReasonNoLongerAvailable: 1, sweep.ReasonKeepTag: 1,
				sweep.ReasonAlreadyGone: 2, sweep.ReasonInUse: 1},
		},
		{
			name: "throttles are retried, not failures",
			fake: &fakeEC2{volumes: []ec2types.Volume{orphan("vol-a", 5)},
				deleteErrs: map[string][]error{"vol-a": {apiErr("RequestLimitExceeded"), apiErr("RequestLimitExceeded")}}},
			status: sweep.StatusSucceeded, deleted: []string{"vol-a"}, throttles: 2,
		},
		{
			name: "max deletions",
			fake: &fakeEC2{volumes: []ec2types.Volume{orphan("vol-1", 5), orphan("vol-2", 4), orphan("vol-3", 3), orphan("vol-4", 2)}},
			opts: sweep.Options{MaxDeletions: 2, Workers: 1}, status: sweep.StatusIncomplete, stop: "circuit_breaker: max 2 deletions per sweep",
			deleted: []string{"vol-1", "vol-2"}, skips: map[string]int{sweep.ReasonNotAttempted: 2},
		},
		{
			name: "error spike",
			fake: func() *fakeEC2 {
				f := &fakeEC2{alwaysFail: apiErr("UnauthorizedOperation")}
				for i := 0; i < 30; i++ {
					f.volumes = append(f.volumes, orphan(fmt.Sprintf("vol-%02d", i), int32(100-i)))
				}
				return f
			}(),
			opts: sweep.Options{Workers: 1}, status: sweep.StatusIncomplete, stop: "circuit_breaker: error spike",
			// Ten failures in a row trip it; one more may already be on its way.
			failed: 10, slack: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Now().UTC()}
			sw := newSweeper(env, clk, "", tc.opts)
			sw.Clients = func(context.Context, sweep.Target) (sweep.EC2API, sweep.BatchAPI, error) { return tc.fake, nil, nil }
			var ids []string
			for _, v := range tc.fake.volumes {
				ids = append(ids, aws.ToString(v.VolumeId))
			}
			seenLongAgo(t, env.Store, ids...)
			r, err := sw.Sweep(context.Background(), false, sweep.TriggerSchedule)
			require.NoError(t, err)
			require.Equal(t, tc.status, r.Status, r.Errors)
			require.Equal(t, tc.stop, r.StopReason)
			require.ElementsMatch(t, tc.deleted, tc.fake.deleted)
			for reason, n := range tc.skips {
				require.Equal(t, n, skipCount(r, sweep.KindVolume, reason), reason)
			}
			require.InDelta(t, tc.failed, r.Volumes.Failed, float64(tc.slack))
			require.Equal(t, len(tc.fake.volumes), len(tc.fake.deleted)+r.Volumes.Skipped+r.Volumes.Failed, "every volume accounted for")
			require.Equal(t, tc.throttles, r.Throttles)
			require.Equal(t, tc.throttleFail, r.ThrottleFailures)
		})
	}
}

// TestRetryerLeavesThrottlesToTheLimiter: the sweeper's SDK retryer retries
// server faults but hands throttles back at once.
func TestRetryerLeavesThrottlesToTheLimiter(t *testing.T) {
	r := sweep.NewRetryer(4)()
	require.Equal(t, 4, r.MaxAttempts())
	require.False(t, r.IsErrorRetryable(apiErr("RequestLimitExceeded")))
	require.False(t, r.IsErrorRetryable(apiErr("ThrottlingException")))
	require.True(t, r.IsErrorRetryable(apiErr("RequestTimeout")), "transient faults stay with the SDK")
	require.True(t, sweep.IsThrottle(fmt.Errorf("wrapped: %w", apiErr("RequestLimitExceeded"))))
	require.False(t, sweep.IsThrottle(apiErr("VolumeInUse")))
}

// TestSharedBucketThrottlesAreAbsorbed: the account's bucket is smaller
// than the sweeper believes (another client shares it); the proxy throttles,
// the limiter halves its rate and retries, and no throttle reaches the report.
func TestSharedBucketThrottlesAreAbsorbed(t *testing.T) {
	env := testenv.New(t)
	seedComputeEnvs(t, env.Store)
	direct := ec2.NewFromConfig(env.AWS.Config(""))
	old := tags.Ownership(ceCloud, "")
	specs := make([]volSpec, 60)
	for i := range specs {
		specs[i] = volSpec{class: "owned", size: int32(10 + i), tags: old}
	}
	seeded := seedVolumes(t, direct, specs)
	seenLongAgo(t, env.Store, keys(seeded)...)

	p, err := faultproxy.New(env.Endpoint, faultproxy.Rule{Operation: "DeleteVolume", Burst: 5, RefillPerSec: 5})
	require.NoError(t, err)
	require.NoError(t, p.Start())
	defer p.Close()
	// 10 deletions per second: slow enough that the sweeper's calls (each
	// with the IAM-checked tier's tag lookup before it) outpace the refill
	// even on a loaded machine.
	p.SetTimeScale(2)

	// The sweeper believes in EC2's full bucket, at 4x the real refill.
	limits := sweep.DefaultLimits().Scale(8)
	sw := newSweeper(env, &clock{t: time.Now().UTC()}, p.URL(), sweep.Options{Limits: &limits})
	r, err := sw.Sweep(context.Background(), false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, r.Status, r.Errors)
	require.Equal(t, len(seeded), r.Volumes.Deleted)
	require.Positive(t, r.Throttles)
	require.Equal(t, p.Stats()["DeleteVolume"].Throttled, r.Throttles, "every throttle was seen by the limiter")
	require.Zero(t, r.ThrottleFailures)
	require.Zero(t, r.Volumes.Failed)
}
