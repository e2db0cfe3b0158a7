package sweep_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/sweep"
	"github.com/ceforge/ceforge/internal/tags"
	"github.com/ceforge/ceforge/internal/testenv"
)

const (
	ceWest    = "westce00000001" // a CE in us-west-2
	ceAccount = "acctce00000001" // a CE in account 111111111111 (through its role)
	west      = "us-west-2"
	roleOther = "arn:aws:iam::111111111111:role/ceforge-member"
)

// seedOtherTargets records the two CEs, the one in another account through
// registered credentials (the client factory assumes no other role), and
// returns those credentials.
func seedOtherTargets(t *testing.T, env *testenv.Env) awsclient.Credentials {
	st := env.Store
	creds := &credential.Service{Store: st, Prefix: "ceforge-"}
	env.AWS.UseRegistry(creds.Registered)
	c, err := creds.Create(context.Background(), credential.CreateRequest{Name: "other", RoleARN: roleOther}, "test")
	require.NoError(t, err)
	for _, ce := range []computeenv.ComputeEnv{
		{ID: ceWest, Name: "west", Platform: computeenv.PlatformCloud, Region: west, Status: computeenv.StatusAvailable, CreatedAt: time.Now().UTC()},
		{ID: ceAccount, Name: "acct", Platform: computeenv.PlatformCloud, Region: testenv.Region, Status: computeenv.StatusAvailable,
			CredentialsID: c.ID, Credentials: &computeenv.Credentials{RoleARN: roleOther, ExternalID: c.ExternalID}, CreatedAt: time.Now().UTC()},
	} {
		require.NoError(t, st.Create(context.Background(), store.KindCE, ce.ID, ce))
	}
	return awsclient.Credentials{RoleARN: roleOther, ExternalID: c.ExternalID}
}

// TestVolumeProofIsPerAccountAndRegion: a CE id proves ownership only in the
// account and region of that CE's record. A us-west-2 volume tagged with a
// us-east-1 CE's id, or a volume in another account tagged with a CE of the
// control plane's account, is reported and kept; each CE's own volumes go.
func TestVolumeProofIsPerAccountAndRegion(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	seedComputeEnvs(t, env.Store)
	otherCreds := seedOtherTargets(t, env)

	westEC2 := ec2.NewFromConfig(env.AWS.Config(west))
	misplaced := seedVolumes(t, westEC2, []volSpec{{class: "east-ce-in-west", size: 11, tags: tags.Ownership(ceCloud, "")}})
	westOwn := seedVolumes(t, westEC2, []volSpec{{class: "west", size: 12, tags: tags.Ownership(ceWest, "")}})
	otherTarget := sweep.Target{Region: testenv.Region, Credentials: otherCreds}
	otherEC2 := ec2.NewFromConfig(env.AWS.ForRole(testenv.Region, otherTarget.Credentials))
	foreignAccount := seedVolumes(t, otherEC2, []volSpec{{class: "self-ce-in-other-account", size: 13, tags: tags.Ownership(ceCloud, "")}})
	otherOwn := seedVolumes(t, otherEC2, []volSpec{{class: "other-account", size: 14, tags: tags.Ownership(ceAccount, "")}})
	long := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for id := range misplaced {
		require.NoError(t, sweep.RecordSighting(ctx, env.Store, sweep.Target{Region: west}, id, long))
	}
	for id := range westOwn {
		require.NoError(t, sweep.RecordSighting(ctx, env.Store, sweep.Target{Region: west}, id, long))
	}
	for id := range foreignAccount {
		require.NoError(t, sweep.RecordSighting(ctx, env.Store, otherTarget, id, long))
	}
	for id := range otherOwn {
		require.NoError(t, sweep.RecordSighting(ctx, env.Store, otherTarget, id, long))
	}

	sw := newSweeper(env, &clock{t: time.Now().UTC()}, "", sweep.Options{})
	r, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, r.Status, r.Errors)
	require.Equal(t, 3, r.Targets)

	westVols := listVolumes(t, westEC2)
	otherVols := listVolumes(t, otherEC2)
	for id := range misplaced {
		require.Contains(t, westVols, id, "a us-east-1 CE's id does not prove a us-west-2 volume ours")
		require.Contains(t, skipSample(r, sweep.KindVolume, sweep.ReasonElsewhere), id)
	}
	for id := range foreignAccount {
		require.Contains(t, otherVols, id, "a CE of one account does not prove a volume of another ours")
		require.Contains(t, skipSample(r, sweep.KindVolume, sweep.ReasonElsewhere), id)
	}
	for id := range westOwn {
		require.NotContains(t, westVols, id, "the us-west-2 CE's own volume goes")
	}
	for id := range otherOwn {
		require.NotContains(t, otherVols, id, "the other account's CE's own volume goes")
	}
}

// TestGraceCountsFromCeforgesOwnSighting: a backdated ceforge:first-seen tag
// (anyone allowed to tag can write one) does not shorten the grace period:
// the first sweep records its own sighting in the table and deletes nothing.
// Sightings written by a sweep the breaker stopped survive it.
func TestGraceCountsFromCeforgesOwnSighting(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	seedComputeEnvs(t, env.Store)
	ec2c := ec2.NewFromConfig(env.AWS.Config(""))
	backdated := tags.Ownership(ceCloud, "")
	backdated["ceforge:first-seen"] = "2020-01-01T00:00:00Z"
	first := seedVolumes(t, ec2c, []volSpec{{class: "backdated", size: 30, tags: backdated}, {class: "b", size: 31, tags: backdated}, {class: "c", size: 32, tags: backdated}})

	t0 := time.Now().UTC()
	clk := &clock{t: t0}
	sw := newSweeper(env, clk, "", sweep.Options{Grace: 30 * time.Minute})
	r1, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Zero(t, r1.Volumes.Deleted, "a tag is no sighting of ours")
	require.Equal(t, len(first), skipCount(r1, sweep.KindVolume, sweep.ReasonFirstSeenNow))
	require.Len(t, listVolumes(t, ec2c), len(first))

	// Past the grace period, new orphans appear, and the breaker stops the
	// sweep after one deletion: the new orphans' sightings are kept anyway.
	later := seedVolumes(t, ec2c, []volSpec{{class: "new", size: 5, tags: tags.Ownership(ceCloud, "")}, {class: "new", size: 6, tags: tags.Ownership(ceCloud, "")}})
	clk.Set(t0.Add(31 * time.Minute))
	sw.Options.MaxDeletions = 1
	r2, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusIncomplete, r2.Status)
	require.Contains(t, r2.StopReason, "circuit_breaker")
	require.Equal(t, 1, r2.Volumes.Deleted)
	require.Equal(t, len(later), skipCount(r2, sweep.KindVolume, sweep.ReasonFirstSeenNow))
	for id := range later {
		var rec map[string]any
		_, err := env.Store.Get(ctx, store.KindSighting, "self/"+testenv.Region+"/"+id, &rec)
		require.NoError(t, err, "the sighting survives the breaker")
	}

	// A sweep within the new orphans' grace deletes the old ones only; the
	// next one past it, all.
	sw.Options.MaxDeletions = 0
	clk.Set(t0.Add(40 * time.Minute))
	r3, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, len(first)-1, r3.Volumes.Deleted)
	require.Equal(t, len(later), skipCount(r3, sweep.KindVolume, sweep.ReasonWithinGrace))
	clk.Set(t0.Add(62 * time.Minute))
	r4, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, len(later), r4.Volumes.Deleted)
	require.Empty(t, listVolumes(t, ec2c))
	left, err := store.All[map[string]any](ctx, env.Store, store.Query{Kind: store.KindSighting})
	require.NoError(t, err)
	require.Empty(t, left, "sightings of deleted volumes are cleared")
}

// TestAccountsWhoseCredentialsWereDeletedAreNotSwept: once a member
// account's compute environments are deleted and then its credentials,
// ceforge may no longer assume its role (the registry refuses it), so
// that account is no target any more: the sweep reports it skipped and
// succeeds, instead of failing on it every time for ever.
func TestAccountsWhoseCredentialsWereDeletedAreNotSwept(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	seedComputeEnvs(t, env.Store)
	creds := &credential.Service{Store: env.Store, Prefix: "ceforge-"}
	c, err := creds.Create(ctx, credential.CreateRequest{Name: "gone", RoleARN: roleOther}, "test")
	require.NoError(t, err)
	require.NoError(t, env.Store.Create(ctx, store.KindCE, ceAccount, computeenv.ComputeEnv{ID: ceAccount, Name: "acct",
		Platform: computeenv.PlatformCloud, Region: testenv.Region, Status: computeenv.StatusDeleted,
		CredentialsID: c.ID, Credentials: &computeenv.Credentials{RoleARN: roleOther, ExternalID: c.ExternalID}, CreatedAt: time.Now().UTC()}))
	require.NoError(t, creds.Delete(ctx, c.ID))

	sw := newSweeper(env, &clock{t: time.Now().UTC()}, "", sweep.Options{})
	r, err := sw.Sweep(ctx, false, sweep.TriggerSchedule)
	require.NoError(t, err)
	require.Equal(t, sweep.StatusSucceeded, r.Status, r.Errors)
	require.Empty(t, r.Errors)
	require.Equal(t, 1, r.Targets, "the control plane's own account only")
	require.Equal(t, 1, skipCount(r, sweep.KindAccount, sweep.ReasonCredentialsDeleted))
	require.Equal(t, []string{"111111111111/" + testenv.Region}, skipSample(r, sweep.KindAccount, sweep.ReasonCredentialsDeleted))
}
