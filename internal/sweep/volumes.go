package sweep

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ceforge/ceforge/internal/tags"
)

// Keep tags: a volume or instance with one of these is never touched.
// DoNotDelete is a common convention outside ceforge; any value counts.
var keepTags = []string{tags.Keep, "DoNotDelete"}

func tagMap(ts []ec2types.Tag) map[string]string {
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// hasKeep reports a keep tag (keys compared case-insensitively; a
// ceforge:keep of "false" does not protect).
func hasKeep(m map[string]string) bool {
	for k, v := range m {
		for _, keep := range keepTags {
			if strings.EqualFold(k, keep) && !strings.EqualFold(v, "false") {
				return true
			}
		}
	}
	return false
}

// looksOurs reports whether any ceforge tag is present (for the
// difference between "not ours" and "ours, but unproven").
func looksOurs(m map[string]string) bool {
	for k := range m {
		if strings.HasPrefix(strings.ToLower(k), "ceforge:") {
			return true
		}
	}
	return false
}

// volumeOwnership returns "" when the tags prove the volume is ours in
// this account and region, else the skip reason. Proof: ceforge:managed=true
// and ceforge:ce-id naming a CE of this account and region. That is what
// the sweeper's IAM policy checks too (DeleteVolume only with
// aws:ResourceTag/ceforge:managed=true). EBS auto-scale volumes carry both:
// amazon-ebs-autoscale copies the instance's tags (set by the launch
// template) onto every volume it creates.
func (tr *targetRun) volumeOwnership(m map[string]string) string {
	if !looksOurs(m) {
		return ReasonNotOwned
	}
	ceID := m[tags.CEID]
	if ceID == "" || m[tags.Managed] != "true" {
		return ReasonUnprovenOwnership
	}
	return tr.ownedHere(ceID)
}

// volumeCheck classifies a volume for deletion: "" if it may go now.
// firstSeen is the sighting ceforge recorded of it (zero if none).
func (tr *targetRun) volumeCheck(v ec2types.Volume) (reason string, firstSeen time.Time) {
	if v.State != ec2types.VolumeStateAvailable {
		return ReasonNoLongerAvailable, time.Time{}
	}
	m := tagMap(v.Tags)
	if r := tr.volumeOwnership(m); r != "" {
		return r, time.Time{}
	}
	if hasKeep(m) {
		return ReasonKeepTag, time.Time{}
	}
	// A Multi-Attach volume may be attached elsewhere through another
	// attachment soon; it is never ours to judge.
	if aws.ToBool(v.MultiAttachEnabled) {
		return ReasonMultiAttach, time.Time{}
	}
	fs, ok := tr.sightingOf(aws.ToString(v.VolumeId))
	if !ok || fs.After(tr.now) {
		// No sighting (a future one cannot be ours): this sweep is the first.
		return ReasonFirstSeenNow, time.Time{}
	}
	if tr.now.Sub(fs) < tr.o.Grace {
		return ReasonWithinGrace, fs
	}
	return "", fs
}

// volumes sweeps unattached volumes.
func (tr *targetRun) volumes(ctx context.Context) error {
	vols, err := tr.describeVolumes(ctx, []ec2types.Filter{{Name: aws.String("status"), Values: []string{"available"}}})
	if err != nil {
		return fmt.Errorf("list available volumes: %w", err)
	}
	tr.t.examined(KindVolume, len(vols))
	var eligible []ec2types.Volume
	var firstSight []string
	for _, v := range vols {
		id := aws.ToString(v.VolumeId)
		reason, _ := tr.volumeCheck(v)
		switch reason {
		case "":
			eligible = append(eligible, v)
			tr.t.eligible(KindVolume, aws.ToInt32(v.Size))
		case ReasonNotOwned:
			tr.t.skip(KindVolume, reason, "") // not ours: counted, not named
		case ReasonFirstSeenNow:
			firstSight = append(firstSight, id)
			tr.t.skip(KindVolume, reason, id)
		default:
			tr.t.skip(KindVolume, reason, id)
		}
	}
	// First sightings are recorded before the deletions so the grace period
	// of new orphans starts even when a backlog or the breaker stops every
	// sweep early.
	if !tr.r.DryRun {
		if err := tr.recordSightings(ctx, firstSight); err != nil && !isContextErr(err) {
			tr.t.listErr(fmt.Errorf("record first sightings: %w", err))
		}
	}
	// Largest first: the most money per DeleteVolume token.
	sort.SliceStable(eligible, func(i, j int) bool {
		a, b := aws.ToInt32(eligible[i].Size), aws.ToInt32(eligible[j].Size)
		if a != b {
			return a > b
		}
		return aws.ToString(eligible[i].VolumeId) < aws.ToString(eligible[j].VolumeId)
	})
	tr.parallel(ctx, KindVolume, len(eligible), func(i int) string { return aws.ToString(eligible[i].VolumeId) },
		func(ctx context.Context, i int) { tr.deleteVolume(ctx, eligible[i]) })
	// Deleted volumes' sightings are done with, even when the sweep stopped
	// early (the next complete sweep would clear them too).
	tr.clearSightings(context.WithoutCancel(ctx), tr.deletedVols)
	// Housekeeping last: sightings of volumes no longer orphaned here (in
	// use again, or deleted) go, so a later detachment starts a new grace.
	if !tr.r.DryRun && tr.stopped() == nil && ctx.Err() == nil {
		orphans := make(map[string]bool, len(vols))
		for _, v := range vols {
			orphans[aws.ToString(v.VolumeId)] = true
		}
		if err := tr.forgetSightings(ctx, orphans); err != nil && !isContextErr(err) {
			tr.t.listErr(fmt.Errorf("clear first sightings: %w", err))
		}
	}
	return nil
}

// describeVolumes lists volumes (every page) under the Describe bucket.
func (tr *targetRun) describeVolumes(ctx context.Context, filters []ec2types.Filter) ([]ec2types.Volume, error) {
	var out []ec2types.Volume
	in := &ec2.DescribeVolumesInput{Filters: filters, MaxResults: aws.Int32(500)}
	for {
		var page *ec2.DescribeVolumesOutput
		err := call(ctx, tr.lim.describe, func(ctx context.Context) (err error) {
			page, err = tr.ec2.DescribeVolumes(ctx, in)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, page.Volumes...)
		if aws.ToString(page.NextToken) == "" {
			return out, nil
		}
		in.NextToken = page.NextToken
	}
}

// deleteVolume re-checks one volume by id and deletes it.
func (tr *targetRun) deleteVolume(ctx context.Context, v ec2types.Volume) {
	id := aws.ToString(v.VolumeId)
	size := aws.ToInt32(v.Size)
	// Re-check just before deleting: it may have been attached, tagged
	// keep, or deleted since the listing.
	var cur *ec2.DescribeVolumesOutput
	err := call(ctx, tr.lim.describe, func(ctx context.Context) (err error) {
		cur, err = tr.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		return err
	})
	if tr.itemErr(ctx, KindVolume, id, err) {
		return
	}
	if len(cur.Volumes) == 0 {
		tr.t.skip(KindVolume, ReasonAlreadyGone, id)
		return
	}
	if reason, _ := tr.volumeCheck(cur.Volumes[0]); reason != "" {
		tr.t.skip(KindVolume, reason, id)
		return
	}
	if tr.r.DryRun {
		tr.t.done(KindVolume, id, WhyOrphanVolume, size, true)
		return
	}
	err = call(ctx, tr.lim.deleteVolume, func(ctx context.Context) error {
		_, err := tr.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)})
		return err
	})
	if tr.itemErr(ctx, KindVolume, id, err) {
		return
	}
	tr.t.done(KindVolume, id, WhyOrphanVolume, size, false)
	tr.sightMu.Lock()
	tr.deletedVols = append(tr.deletedVols, id)
	tr.sightMu.Unlock()
}

// itemErr classifies an item's error; it returns true when the item is
// finished (skipped or failed). Expected races are skips, not failures.
func (tr *targetRun) itemErr(ctx context.Context, kind, id string, err error) bool {
	if err == nil {
		return false
	}
	switch code := ErrorCode(err); {
	case code == "InvalidVolume.NotFound", code == "InvalidInstanceID.NotFound":
		tr.t.skip(kind, ReasonAlreadyGone, id)
	case code == "VolumeInUse", code == "IncorrectState":
		tr.t.skip(kind, ReasonInUse, id)
	case ctx.Err() != nil || isContextErr(err):
		tr.t.skip(kind, ReasonNotAttempted, id)
	default:
		tr.t.failed(kind, id, err)
	}
	return true
}
