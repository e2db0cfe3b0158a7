package batchce

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	etypes "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge/hostinit"
	"github.com/ceforge/ceforge/internal/tags"
)

var _ computeenv.Checker = (*Provisioner)(nil)

// hostWarningPrefix starts the warning Check keeps about hosts whose setup
// failed (replaced on every pass, dropped once no such host runs).
const hostWarningPrefix = "compute hosts: "

// Check is the drift check of a Batch CE in service: its head and compute
// queues (the user's in manual mode, forged ones in forge mode) must still
// exist, ENABLED and VALID; else the CE is INVALID with the reason, until
// they are back. In forge mode, hosts that tagged themselves with a failed
// setup (hostinit) become a warning naming them.
func (p *Provisioner) Check(ctx context.Context, ce *computeenv.ComputeEnv) (bool, error) {
	if ce.Batch == nil {
		return false, nil
	}
	cfg := configFor(p.AWS, ce)
	reason, err := queueDrift(ctx, batch.NewFromConfig(cfg), p.Prefix, ce)
	if err != nil {
		return false, err
	}
	changed := false
	switch {
	case reason != "" && (ce.Status != computeenv.StatusInvalid || ce.StatusReason != reason):
		ce.Status, ce.StatusReason, changed = computeenv.StatusInvalid, reason, true
	case reason == "" && ce.Status == computeenv.StatusInvalid:
		ce.Status, ce.StatusReason, changed = computeenv.StatusAvailable, "", true
	}
	if ce.ConfigMode == computeenv.ModeForge && hostSteps(ce.Batch.Forge) {
		w, err := failedHosts(ctx, ec2.NewFromConfig(cfg), ce.ID)
		if err != nil {
			return changed, err
		}
		changed = setHostWarning(ce, w) || changed
	}
	return changed, nil
}

// queueDrift says what is wrong with the CE's queues ("" when nothing).
func queueDrift(ctx context.Context, client *batch.Client, prefix string, ce *computeenv.ComputeEnv) (string, error) {
	head, compute := Queues(prefix, ce)
	out, err := client.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: []string{head, compute}})
	if err != nil {
		return "", fmt.Errorf("describe job queues: %w", err)
	}
	for _, want := range []struct{ role, q string }{{"head", head}, {"compute", compute}} {
		var found *btypes.JobQueueDetail
		for i, q := range out.JobQueues {
			if aws.ToString(q.JobQueueName) == want.q || aws.ToString(q.JobQueueArn) == want.q {
				found = &out.JobQueues[i]
			}
		}
		switch {
		case found == nil:
			return fmt.Sprintf("%s job queue %q no longer exists", want.role, want.q), nil
		case found.State != btypes.JQStateEnabled:
			return fmt.Sprintf("%s job queue %q is %s", want.role, want.q, found.State), nil
		case found.Status == btypes.JQStatusInvalid:
			return fmt.Sprintf("%s job queue %q is INVALID: %s", want.role, want.q, aws.ToString(found.StatusReason)), nil
		}
	}
	return "", nil
}

// hostSteps reports whether the CE's hosts run setup steps that can fail.
func hostSteps(f *computeenv.ForgeOptions) bool {
	return f != nil && (f.FastStorage || f.EbsAutoScale || f.EfsCreate || f.EfsID != "" || f.FsxName != "" || f.FsxSize > 0)
}

// failedHosts describes the CE's live instances tagged with a failed setup.
func failedHosts(ctx context.Context, client *ec2.Client, ceID string) (string, error) {
	in := &ec2.DescribeInstancesInput{Filters: []etypes.Filter{
		{Name: aws.String("tag:" + tags.CEID), Values: []string{ceID}},
		{Name: aws.String("tag-key"), Values: []string{hostinit.SetupTag}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
	}}
	var hosts []string
	for {
		out, err := client.DescribeInstances(ctx, in)
		if err != nil {
			return "", fmt.Errorf("describe instances with a failed setup: %w", err)
		}
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				for _, t := range i.Tags {
					if aws.ToString(t.Key) == hostinit.SetupTag {
						hosts = append(hosts, aws.ToString(i.InstanceId)+" ("+aws.ToString(t.Value)+")")
					}
				}
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	if len(hosts) == 0 {
		return "", nil
	}
	sort.Strings(hosts)
	n := len(hosts)
	if n > 5 {
		hosts = append(hosts[:5], fmt.Sprintf("and %d more", n-5))
	}
	return fmt.Sprintf("%s%d running instance(s) failed their setup: %s; see %s on the instance", hostWarningPrefix, n, strings.Join(hosts, ", "), hostinit.Log), nil
}

// setHostWarning replaces the CE's host warning with w ("" drops it).
func setHostWarning(ce *computeenv.ComputeEnv, w string) bool {
	idx := slices.IndexFunc(ce.Warnings, func(s string) bool { return strings.HasPrefix(s, hostWarningPrefix) })
	switch {
	case idx < 0 && w == "":
		return false
	case idx < 0:
		ce.Warnings = append(ce.Warnings, w)
	case w == "":
		ce.Warnings = slices.Delete(ce.Warnings, idx, idx+1)
	case ce.Warnings[idx] == w:
		return false
	default:
		ce.Warnings[idx] = w
	}
	return true
}
