package sweep_test

import (
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/sweep"
	"github.com/ceforge/ceforge/internal/tags"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// testVolumes is the number of seeded volumes (CEFORGE_SWEEP_TEST_VOLUMES,
// default 600: seeding 2,000 volumes in moto takes about 26 s, so the
// full 2,000 run in the benchmark and with CEFORGE_SWEEP_TEST_VOLUMES=2000).
func testVolumes() int {
	if n, err := strconv.Atoi(os.Getenv("CEFORGE_SWEEP_TEST_VOLUMES")); err == nil && n > 0 {
		return n
	}
	return 600
}

// digest is a compact fingerprint of volumes: ids, states and tags.
func digest(vols map[string]ec2types.Volume) string {
	lines := make([]string, 0, len(vols))
	for id, v := range vols {
		tg := tagsOf(v)
		keys := make([]string, 0, len(tg))
		for k, val := range tg {
			keys = append(keys, k+"="+val)
		}
		sort.Strings(keys)
		lines = append(lines, id+" "+string(v.State)+" "+strings.Join(keys, ","))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestVolumeSweepAcrossDeadlineAndResume seeds volumes of every class and
// checks that exactly the right ones go: first sweep records sightings,
// a dry run past the grace period changes nothing, a sweep cut short by
// its deadline deletes the largest first, and the next one finishes.
func TestVolumeSweepAcrossDeadlineAndResume(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(env.AWS.Config(""))
	seedComputeEnvs(t, env.Store)

	n := testVolumes()
	start := time.Now()
	seeded := seedVolumes(t, ec2c, volumeSpecs(n))
	t.Logf("seeded %d volumes in %s", n, time.Since(start))

	// Owned volumes in use (with an old sighting) are never touched, and
	// lose their first-seen tag so a later detachment starts a new grace.
	inst, err := ec2c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-12c6146b"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		Placement: &ec2types.Placement{AvailabilityZone: aws.String(zone)}})
	require.NoError(t, err)
	attached := seedVolumes(t, ec2c, []volSpec{{class: "attached", size: 999, tags: map[string]string{
		tags.Managed: "true", tags.CEID: ceCloud}}})
	seenLongAgo(t, env.Store, keys(attached)...) // an old sighting from before it was attached
	for id := range attached {
		_, err := ec2c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(id), InstanceId: inst.Instances[0].InstanceId, Device: aws.String("/dev/sdf")})
		require.NoError(t, err)
		seeded[id] = attached[id]
	}

	wantGone := map[string]bool{}
	eligibleSize := map[string]int32{}
	for id, s := range seeded {
		if classGoes(s.class) {
			wantGone[id] = true
			eligibleSize[id] = s.size
		}
	}

	t0 := time.Now().UTC().Truncate(time.Second)
	clk := &clock{t: t0}
	sw := newSweeper(env, clk, "", sweep.Options{Grace: 30 * time.Minute})

	// Sweep 1: first sightings only.
	r1, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, r1.Status, r1.Errors)
	require.Zero(t, r1.Volumes.Deleted)
	require.Equal(t, len(wantGone), skipCount(r1, sweep.KindVolume, sweep.ReasonFirstSeenNow), "first sightings of the eligible volumes")
	after1 := listVolumes(t, ec2c)
	for id := range seeded {
		_, ok := after1[id]
		require.True(t, ok, "volume %s deleted by the first sweep", id)
	}
	for id := range attached {
		var rec map[string]any
		_, err := env.Store.Get(ctx, store.KindSighting, "self/"+testenv.Region+"/"+id, &rec)
		require.ErrorIs(t, err, store.ErrNotFound, "an attached volume's sighting is forgotten")
	}
	for id := range wantGone {
		_, written := tagsOf(after1[id])["ceforge:first-seen"]
		require.False(t, written, "sightings live in the table, not on the volume")
	}

	// Young volumes appear after the first sweep.
	young := seedVolumes(t, ec2c, []volSpec{
		{class: "young", size: 5000, tags: tags.Ownership(ceCloud, "")},
		{class: "young", size: 5001, tags: tags.Ownership(ceBatch, "")},
	})
	for id, s := range young {
		seeded[id] = s
	}

	// Dry run past the grace period: reports what would go, changes nothing.
	clk.Set(t0.Add(31 * time.Minute))
	before := digest(listVolumes(t, ec2c))
	dryStart := time.Now()
	dry, err := sw.Sweep(ctx, true, sweep.TriggerAPI)
	listing := time.Since(dryStart) // a whole pass without deletions: the time sweep 2 needs before it deletes
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, dry.Status, dry.Errors)
	require.True(t, dry.DryRun)
	require.Equal(t, len(wantGone), dry.Volumes.Eligible)
	require.Zero(t, dry.Volumes.Deleted)
	require.Equal(t, len(wantGone), dry.Volumes.WouldDelete)
	require.Zero(t, dry.GiBFreed)
	var wantGiB int64
	for _, s := range eligibleSize {
		wantGiB += int64(s)
	}
	require.Equal(t, wantGiB, dry.GiBReclaimable)
	require.InDelta(t, float64(wantGiB)*sweep.DefaultGP3Price, dry.DollarsPerMonthSaved, 0.01)
	require.True(t, before == digest(listVolumes(t, ec2c)), "a dry run changes nothing, not even tags")

	// Sweep 2, cut short by its deadline: 3 s to delete after listing (twice
	// as long as the dry run took, so a loaded machine still gets there).
	dctx, cancel := context.WithTimeout(ctx, 2*listing+3*time.Second+sweep.DefaultMargin/15)
	defer cancel()
	sw.Options.DeadlineMargin = sweep.DefaultMargin / 15 // 2s
	slow := sweep.DefaultLimits().Scale(20)
	work := 2*listing + 5*time.Second // always more than the window leaves after listing
	slow.DeleteVolume = sweep.Limit{Rate: float64(len(wantGone)) / work.Seconds(), Burst: 1}
	sw.Options.Limits = &slow
	r2, err := sw.Sweep(dctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	t.Logf("deadline sweep: %+v", r2.Volumes)
	require.Equal(t, sweep.StatusIncomplete, r2.Status)
	require.Equal(t, "deadline", r2.StopReason)
	require.Positive(t, r2.Volumes.Deleted)
	require.Less(t, r2.Volumes.Deleted, len(wantGone))
	require.Zero(t, r2.Volumes.Failed, r2.Errors)
	require.Positive(t, skipCount(r2, sweep.KindVolume, sweep.ReasonNotAttempted), "%+v %+v %v", r2.Volumes, r2.Skipped, r2.Errors)
	after2 := listVolumes(t, ec2c)
	var minDeleted int32 = 1 << 30
	for id := range wantGone {
		if _, ok := after2[id]; !ok && eligibleSize[id] < minDeleted {
			minDeleted = eligibleSize[id]
		}
	}
	larger := 0
	for id := range wantGone {
		if _, ok := after2[id]; ok && eligibleSize[id] > minDeleted {
			larger++
		}
	}
	require.LessOrEqual(t, larger, 8, "largest first (a few in flight at the deadline may remain)")

	// Sweep 3 resumes by listing again and finishes.
	sw.Options.Limits = nil
	sw.Options.DeadlineMargin = 0
	clk.Set(t0.Add(32 * time.Minute))
	r3, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, r3.Status, r3.Errors)
	require.Equal(t, len(wantGone), r2.Volumes.Deleted+r3.Volumes.Deleted)
	require.Equal(t, len(young), skipCount(r3, sweep.KindVolume, sweep.ReasonWithinGrace), "young volumes wait for their grace period")
	require.Zero(t, r3.Throttles)

	final := listVolumes(t, ec2c)
	for id, s := range seeded {
		_, exists := final[id]
		require.True(t, exists != wantGone[id], "volume %s of class %s: exists=%v", id, s.class, exists)
	}

	// Reports are stored.
	got, err := sw.Get(ctx, r3.ID)
	require.NoError(t, err)
	require.Equal(t, r3.Volumes, got.Volumes)
	list, _, err := sw.List(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 4)
	require.Equal(t, r3.ID, list[0].ID, "newest first")
}

func tagsOf(v ec2types.Volume) map[string]string {
	m := map[string]string{}
	for _, t := range v.Tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}
