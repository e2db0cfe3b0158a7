package sweep_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/sweep"
	"github.com/ceforge/ceforge/internal/tags"
	"github.com/ceforge/ceforge/internal/testenv"
)

// Compute environments the tests know (ids have the ids package's shape).
const (
	ceCloud   = "cloudce0000001"
	ceBatch   = "batchce0000001"
	ceUnknown = "unknownce00001"
	ceGone    = "goneclouce0001" // a deleted cloud CE
	zone      = "us-east-1a"
)

// clock is an injectable clock the tests move forward.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// seedComputeEnvs writes the CE records the sweeper reads.
func seedComputeEnvs(t testing.TB, st *store.Store) {
	ctx := context.Background()
	for _, ce := range []computeenv.ComputeEnv{
		{ID: ceCloud, Name: "cloud", Platform: computeenv.PlatformCloud, Region: testenv.Region, Status: computeenv.StatusAvailable,
			Cloud: &computeenv.CloudOptions{MaxRunHours: 24}, CreatedAt: time.Now().UTC()},
		{ID: ceBatch, Name: "batch", Platform: computeenv.PlatformBatch, Region: testenv.Region, Status: computeenv.StatusDeleted,
			Batch: &computeenv.BatchOptions{}, CreatedAt: time.Now().UTC()},
	} {
		require.NoError(t, st.Create(ctx, store.KindCE, ce.ID, ce))
	}
}

// seedRun writes a run record of the cloud CE.
func seedRun(t testing.TB, st *store.Store, id, status string, completed *time.Time, instanceID string) {
	seedRunOf(t, st, ceCloud, id, status, completed, instanceID)
}

// seedRunOf writes a run record of a CE.
func seedRunOf(t testing.TB, st *store.Store, ceID, id, status string, completed *time.Time, instanceID string) {
	r := run.Run{ID: id, Kind: run.KindPipeline, ComputeEnvID: ceID, Platform: computeenv.PlatformCloud, Status: status,
		CreatedAt: time.Now().UTC().Add(-2 * time.Hour), Timeline: run.Timeline{Completed: completed}}
	if instanceID != "" {
		r.Backend = &run.Backend{Type: run.BackendEC2, InstanceID: instanceID}
	}
	require.NoError(t, st.Create(context.Background(), store.KindRun, id, r, store.WithStatusRank(run.Rank(status))))
}

// volSpec is one volume to seed.
type volSpec struct {
	class string // test category
	size  int32
	tags  map[string]string
	multi bool
}

func ec2Tags(m map[string]string) []ec2types.Tag {
	var out []ec2types.Tag
	for k, v := range m {
		out = append(out, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out
}

// seedVolumes creates the volumes with 10 concurrent callers and returns
// volume id -> spec.
func seedVolumes(t testing.TB, c *ec2.Client, specs []volSpec) map[string]volSpec {
	ctx := context.Background()
	out := make(map[string]volSpec, len(specs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan volSpec)
	errs := make(chan error, len(specs))
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				in := &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(s.size), VolumeType: ec2types.VolumeTypeGp3}
				if s.multi {
					in.VolumeType, in.Iops, in.MultiAttachEnabled = ec2types.VolumeTypeIo2, aws.Int32(1000), aws.Bool(true)
				}
				if len(s.tags) > 0 {
					in.TagSpecifications = []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: ec2Tags(s.tags)}}
				}
				res, err := c.CreateVolume(ctx, in)
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				out[aws.ToString(res.VolumeId)] = s
				mu.Unlock()
			}
		}()
	}
	for _, s := range specs {
		work <- s
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return out
}

// Volume classes and whether they must be deleted once past the grace period.
var volumeClasses = []struct {
	class string
	goes  bool
	tags  func(i int) map[string]string
	multi bool
}{
	{"owned", true, func(int) map[string]string { return tags.Ownership(ceCloud, "") }, false},
	{"owned-batch", true, func(int) map[string]string { return tags.Ownership(ceBatch, "run00000000001") }, false},
	// amazon-ebs-autoscale copies the instance's tags onto its volumes, so
	// they carry the same proof as ours (what IAM's DeleteVolume condition checks).
	{"autoscale", true, func(i int) map[string]string {
		return tags.Merge(map[string]string{"source-instance": "i-0123456789abcdef0", "amazon-ebs-autoscale-creation-time": fmt.Sprint(1700000000 + i)},
			tags.Ownership(ceBatch, ""))
	}, false},
	// Helper tags and a CE id without ceforge:managed: IAM would refuse the
	// DeleteVolume, so the sweeper does not count it as proof.
	{"helper-unmanaged", false, func(i int) map[string]string {
		return map[string]string{tags.CEID: ceBatch, "amazon-ebs-autoscale-creation-time": fmt.Sprint(1700000000 + i)}
	}, false},
	{"keep-false", true, func(int) map[string]string {
		return tags.Merge(nil, tags.Tags{tags.Managed: "true", tags.CEID: ceCloud, tags.Keep: "false"})
	}, false},
	{"untagged", false, func(int) map[string]string { return nil }, false},
	{"foreign", false, func(int) map[string]string { return map[string]string{"team": "genomics", "Name": "scratch"} }, false},
	{"managed-no-ce", false, func(int) map[string]string { return map[string]string{tags.Managed: "true"} }, false},
	{"ce-only", false, func(int) map[string]string { return map[string]string{tags.CEID: ceCloud} }, false},
	{"helper-no-ce", false, func(int) map[string]string {
		return map[string]string{"amazon-ebs-autoscale-creation-time": "1700000000"}
	}, false},
	{"unknown-ce", false, func(int) map[string]string { return tags.Ownership(ceUnknown, "") }, false},
	{"keep", false, func(int) map[string]string {
		return tags.Merge(nil, tags.Tags{tags.Managed: "true", tags.CEID: ceCloud, tags.Keep: "true"})
	}, false},
	{"donotdelete", false, func(int) map[string]string {
		return map[string]string{tags.Managed: "true", tags.CEID: ceCloud, "DoNotDelete": ""}
	}, false},
	{"multi-attach", false, func(int) map[string]string { return tags.Ownership(ceCloud, "") }, true},
}

// volumeSpecs returns n specs cycling through the classes, with distinct-ish sizes.
func volumeSpecs(n int) []volSpec {
	specs := make([]volSpec, 0, n)
	for i := 0; i < n; i++ {
		c := volumeClasses[i%len(volumeClasses)]
		specs = append(specs, volSpec{class: c.class, size: int32(4 + i%997), tags: c.tags(i), multi: c.multi})
	}
	return specs
}

func classGoes(class string) bool {
	for _, c := range volumeClasses {
		if c.class == class {
			return c.goes
		}
	}
	return false
}

// listVolumes returns every volume id -> volume.
func listVolumes(t testing.TB, c *ec2.Client) map[string]ec2types.Volume {
	out, err := c.DescribeVolumes(context.Background(), &ec2.DescribeVolumesInput{})
	require.NoError(t, err)
	m := map[string]ec2types.Volume{}
	for _, v := range out.Volumes {
		m[aws.ToString(v.VolumeId)] = v
	}
	return m
}

// seenLongAgo records 2020 as the sweeper's first sighting of volumes in
// the test region (the grace period is long over).
func seenLongAgo(t testing.TB, st *store.Store, volumeIDs ...string) {
	t.Helper()
	for _, id := range volumeIDs {
		require.NoError(t, sweep.RecordSighting(context.Background(), st, sweep.Target{Region: testenv.Region}, id, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)))
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newSweeper returns a sweeper on env with fast limits and the clock, its
// calls made (and IAM-checked) as the sweeper function's.
func newSweeper(env *testenv.Env, clk *clock, endpoint string, opts sweep.Options) *sweep.Sweeper {
	if opts.Limits == nil {
		l := sweep.DefaultLimits().Scale(20)
		opts.Limits = &l
	}
	// As app.New wires a deployed function: roles are assumed only for
	// registered credentials.
	f := env.Function(app.FnSweeper)
	creds := &credential.Service{Store: env.Store, Prefix: "ceforge-"}
	f.UseRegistry(creds.Registered)
	return &sweep.Sweeper{Store: env.Store, Clients: sweep.FactoryClients(f, endpoint), Options: opts, Registered: creds.Registered,
		Log: quietLog(), Metrics: metrics.Discard, Now: clk.Now}
}

func skipCount(r *sweep.Report, kind, reason string) int {
	for _, s := range r.Skipped {
		if s.Kind == kind && s.Reason == reason {
			return s.Count
		}
	}
	return 0
}
