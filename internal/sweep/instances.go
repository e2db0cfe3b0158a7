package sweep

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/tags"
)

// Tags of other controllers. An instance carrying one belongs to an Auto
// Scaling group, a fleet, Batch, EKS/Kubernetes, Karpenter, EMR or a
// CloudFormation stack, which would replace or fight over it: never ours
// to terminate, whatever else it is tagged with.
var (
	foreignTagKeys     = []string{"aws:autoscaling:groupName", "aws:ec2spot:fleet-request-id", "aws:ec2:fleet-id", "AWSBatchServiceTag", "eks:cluster-name", "eks:nodegroup-name", "aws:cloudformation:stack-id"}
	foreignTagPrefixes = []string{"aws:batch:", "karpenter.sh/", "karpenter.k8s.aws/", "kubernetes.io/cluster/", "aws:elasticmapreduce:"}
)

func foreignController(m map[string]string) string {
	for k := range m {
		for _, f := range foreignTagKeys {
			if k == f {
				return k
			}
		}
		for _, p := range foreignTagPrefixes {
			if strings.HasPrefix(k, p) {
				return k
			}
		}
	}
	return ""
}

// runState reads a run record (nil when there is none).
func (ru *sweepRun) runState(ctx context.Context, runID string) (*run.Run, error) {
	var r run.Run
	_, err := ru.s.Store.Get(ctx, store.KindRun, runID, &r)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// endedAt is when a terminal run ended (its record's completion time,
// else its creation: the oldest time we can vouch for).
func endedAt(r *run.Run) time.Time {
	if r.Timeline.Completed != nil {
		return *r.Timeline.Completed
	}
	return r.CreatedAt
}

// instanceCandidate holds an instance that may go and why.
type instanceCandidate struct {
	id, why string
}

// instanceVerdict decides for one instance: the reason it goes, or the
// skip reason ("" for both when it is simply alive and well).
//
// A missing run record alone is never a reason: after a point-in-time
// restore of the table every run newer than the restore point has none,
// and its instance is live work. An instance goes only on positive
// evidence:
//   - its run's record says the run ended (terminal) at least the grace
//     period ago;
//   - its run's record is active but names another instance (a retried
//     launch), launched at least the grace period ago;
//   - it has run longer than its CE's maxRunHours (the limit its own
//     watchdog enforces; no run legitimately lasts longer), record or not;
//   - it has no run record, its CE's record says DELETED, and it was
//     launched before that deletion and at least the grace period ago
//     (deleting a CE ends its runs).
func (tr *targetRun) instanceVerdict(ctx context.Context, inst ec2types.Instance) (why, skip string, err error) {
	m := tagMap(inst.Tags)
	runID := m[tags.RunID]
	if runID == "" || m[tags.Managed] != "true" || m[tags.CEID] == "" {
		return "", ReasonUnprovenOwnership, nil
	}
	if k := foreignController(m); k != "" {
		return "", ReasonOtherController, nil
	}
	if hasKeep(m) {
		return "", ReasonKeepTag, nil
	}
	ceID := m[tags.CEID]
	if r := tr.ownedHere(ceID); r != "" {
		return "", r, nil
	}
	ce := tr.ces[ceID]
	launched := aws.ToTime(inst.LaunchTime)
	r, err := tr.runState(ctx, runID)
	if err != nil {
		return "", "", err
	}
	if r != nil && r.ComputeEnvID != ceID {
		return "", ReasonRunOfOtherCE, nil
	}
	hours := tr.o.MaxRunHours
	if ce.Cloud != nil && ce.Cloud.MaxRunHours > 0 {
		hours = ce.Cloud.MaxRunHours
	}
	outlived := tr.now.Sub(launched) > time.Duration(hours)*time.Hour
	switch {
	case r == nil && outlived:
		return WhyMaxLifetime, "", nil
	case r == nil && ce.Status == computeenv.StatusDeleted && ce.DeletedAt != nil && launched.Before(*ce.DeletedAt):
		if tr.now.Sub(launched) >= tr.o.Grace {
			return WhyCEDeleted, "", nil
		}
		return "", ReasonWithinGrace, nil
	case r == nil:
		return "", ReasonNoRunRecord, nil
	case run.Terminal(r.Status):
		if tr.now.Sub(endedAt(r)) >= tr.o.Grace && tr.now.Sub(launched) >= tr.o.Grace {
			return WhyRunTerminal, "", nil
		}
		return "", ReasonWithinGrace, nil
	}
	// The run is active. A second instance for it (a retried launch) is
	// not the run's; the run's own one goes only past the maximum lifetime.
	if r.Backend != nil && r.Backend.InstanceID != "" && r.Backend.InstanceID != aws.ToString(inst.InstanceId) {
		if tr.now.Sub(launched) >= tr.o.Grace {
			return WhyDuplicate, "", nil
		}
		return "", ReasonWithinGrace, nil
	}
	if outlived {
		return WhyMaxLifetime, "", nil
	}
	return "", "", nil
}

// instances terminates run instances that outlived their run.
func (tr *targetRun) instances(ctx context.Context) error {
	var insts []ec2types.Instance
	in := &ec2.DescribeInstancesInput{MaxResults: aws.Int32(500), Filters: []ec2types.Filter{
		{Name: aws.String("tag-key"), Values: []string{tags.RunID}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}},
	}}
	for {
		var page *ec2.DescribeInstancesOutput
		err := call(ctx, tr.lim.describe, func(ctx context.Context) (err error) {
			page, err = tr.ec2.DescribeInstances(ctx, in)
			return err
		})
		if err != nil {
			return fmt.Errorf("list run instances: %w", err)
		}
		for _, res := range page.Reservations {
			insts = append(insts, res.Instances...)
		}
		if aws.ToString(page.NextToken) == "" {
			break
		}
		in.NextToken = page.NextToken
	}
	tr.t.examined(KindInstance, len(insts))
	var cands []instanceCandidate
	for _, inst := range insts {
		id := aws.ToString(inst.InstanceId)
		why, skip, err := tr.instanceVerdict(ctx, inst)
		switch {
		case err != nil:
			tr.t.failed(KindInstance, id, fmt.Errorf("read run: %w", err))
		case skip != "":
			tr.t.skip(KindInstance, skip, id)
		case why != "":
			cands = append(cands, instanceCandidate{id, why})
			tr.t.eligible(KindInstance, 0)
		}
	}
	tr.parallel(ctx, KindInstance, len(cands), func(i int) string { return cands[i].id },
		func(ctx context.Context, i int) { tr.terminateInstance(ctx, cands[i]) })
	return nil
}

// terminateInstance checks termination protection and terminates one
// instance. One call per instance: a protected instance in a batch would
// fail the whole call, and orphan instances are few.
func (tr *targetRun) terminateInstance(ctx context.Context, c instanceCandidate) {
	var attr *ec2.DescribeInstanceAttributeOutput
	err := call(ctx, tr.lim.describe, func(ctx context.Context) (err error) {
		attr, err = tr.ec2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
			InstanceId: aws.String(c.id), Attribute: ec2types.InstanceAttributeNameDisableApiTermination})
		return err
	})
	if tr.itemErr(ctx, KindInstance, c.id, err) {
		return
	}
	if attr.DisableApiTermination != nil && aws.ToBool(attr.DisableApiTermination.Value) {
		tr.t.skip(KindInstance, ReasonTermProtection, c.id)
		return
	}
	if tr.r.DryRun {
		tr.t.done(KindInstance, c.id, c.why, 0, true)
		return
	}
	err = call(ctx, tr.lim.terminate, func(ctx context.Context) error {
		_, err := tr.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{c.id}})
		return err
	})
	if ErrorCode(err) == "OperationNotPermitted" {
		// Protection switched on since the check.
		tr.t.skip(KindInstance, ReasonTermProtection, c.id)
		return
	}
	if tr.itemErr(ctx, KindInstance, c.id, err) {
		return
	}
	tr.t.done(KindInstance, c.id, c.why, 0, false)
}
