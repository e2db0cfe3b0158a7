package sweep

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	batchtypes "github.com/aws/aws-sdk-go-v2/service/batch/types"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/tags"
)

// activeJobStatuses are the Batch states of a job that has not ended.
var activeJobStatuses = []batchtypes.JobStatus{
	batchtypes.JobStatusSubmitted, batchtypes.JobStatusPending, batchtypes.JobStatusRunnable,
	batchtypes.JobStatusStarting, batchtypes.JobStatusRunning,
}

// describeJobsMax is DescribeJobs' limit of ids per call.
const describeJobsMax = 100

// jobQueues returns the queues to look at in this target: ceforge's own
// (named with the prefix) and those the target's compute environments
// name (manual mode uses the user's queues).
func (tr *targetRun) jobQueues(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	for _, ce := range tr.ces {
		if ce.Region != tr.target.Region || ce.Batch == nil {
			continue
		}
		if tr.target.Credentials.RoleARN != "" && (ce.Credentials == nil || ce.Credentials.RoleARN != tr.target.Credentials.RoleARN) {
			continue
		}
		for _, q := range []string{ce.Batch.HeadQueue, ce.Batch.ComputeQueue} {
			if q != "" {
				set[q] = true
			}
		}
	}
	exists := map[string]bool{}
	in := &batch.DescribeJobQueuesInput{MaxResults: aws.Int32(100)}
	for {
		var page *batch.DescribeJobQueuesOutput
		err := call(ctx, tr.lim.batch, func(ctx context.Context) (err error) {
			page, err = tr.batch.DescribeJobQueues(ctx, in)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list job queues: %w", err)
		}
		for _, q := range page.JobQueues {
			exists[aws.ToString(q.JobQueueName)], exists[aws.ToString(q.JobQueueArn)] = true, true
			if name := aws.ToString(q.JobQueueName); strings.HasPrefix(name, tr.o.Prefix) {
				set[aws.ToString(q.JobQueueArn)] = true
				delete(set, name) // the same queue by name and ARN: keep one
			}
		}
		if aws.ToString(page.NextToken) == "" {
			break
		}
		in.NextToken = page.NextToken
	}
	out := make([]string, 0, len(set))
	for q := range set {
		if !exists[q] {
			// A manual CE's queue deleted by its owner: nothing to list
			// there (the reconciler marks the CE INVALID).
			tr.t.skip(KindJob, ReasonQueueGone, q)
			continue
		}
		out = append(out, q)
	}
	sort.Strings(out)
	return out, nil
}

// queueOfCE reports whether queue (a name or ARN) is one of ce's: a queue
// ceforge forged for it, or one its manual configuration names.
func (tr *targetRun) queueOfCE(queue string, ce *computeenv.ComputeEnv) bool {
	name := queue
	if i := strings.LastIndex(queue, "/"); i >= 0 {
		name = queue[i+1:]
	}
	match := func(q string) bool { return q != "" && (q == queue || q == name) }
	for _, r := range ce.ForgedResources {
		if r.Type == forge.TypeJobQueue && (match(r.Name) || match(r.ARN)) {
			return true
		}
	}
	if ce.ConfigMode == computeenv.ModeForge || ce.Batch != nil && ce.Batch.Forge != nil {
		n := forge.NamesFor(tr.o.Prefix, ce.ID)
		if name == n.HeadQueue || name == n.WorkQueue {
			return true
		}
	}
	if ce.Batch != nil {
		for _, q := range []string{ce.Batch.HeadQueue, ce.Batch.ComputeQueue} {
			if match(q) {
				return true
			}
		}
	}
	return false
}

type jobCandidate struct {
	id, runID, runStatus string
}

// jobs terminates Batch jobs still queued or running whose run has ended.
func (tr *targetRun) jobs(ctx context.Context) error {
	if tr.batch == nil {
		return nil
	}
	queues, err := tr.jobQueues(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var jobIDs []string
	for _, q := range queues {
		for _, st := range activeJobStatuses {
			in := &batch.ListJobsInput{JobQueue: aws.String(q), JobStatus: st, MaxResults: aws.Int32(1000)}
			for {
				var page *batch.ListJobsOutput
				err := call(ctx, tr.lim.batch, func(ctx context.Context) (err error) {
					page, err = tr.batch.ListJobs(ctx, in)
					return err
				})
				if err != nil {
					return fmt.Errorf("list %s jobs of %s: %w", st, q, err)
				}
				for _, j := range page.JobSummaryList {
					if id := aws.ToString(j.JobId); !seen[id] {
						seen[id] = true
						jobIDs = append(jobIDs, id)
					}
				}
				if aws.ToString(page.NextToken) == "" {
					break
				}
				in.NextToken = page.NextToken
			}
		}
	}
	tr.t.examined(KindJob, len(jobIDs))
	var cands []jobCandidate
	runs := map[string]*run.Run{}
	for start := 0; start < len(jobIDs); start += describeJobsMax {
		chunk := jobIDs[start:min(start+describeJobsMax, len(jobIDs))]
		var out *batch.DescribeJobsOutput
		err := call(ctx, tr.lim.batch, func(ctx context.Context) (err error) {
			out, err = tr.batch.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: chunk})
			return err
		})
		if err != nil {
			return fmt.Errorf("describe jobs: %w", err)
		}
		for _, j := range out.Jobs {
			id := aws.ToString(j.JobId)
			runID, ceID := j.Tags[tags.RunID], j.Tags[tags.CEID]
			if runID == "" {
				tr.t.skip(KindJob, ReasonNoRunTag, id)
				continue
			}
			if j.Tags[tags.Managed] != "true" || ceID == "" {
				tr.t.skip(KindJob, ReasonUnprovenOwnership, id)
				continue
			}
			if hasKeep(j.Tags) {
				tr.t.skip(KindJob, ReasonKeepTag, id)
				continue
			}
			if r := tr.ownedHere(ceID); r != "" {
				tr.t.skip(KindJob, r, id)
				continue
			}
			if !tr.queueOfCE(aws.ToString(j.JobQueue), tr.ces[ceID]) {
				tr.t.skip(KindJob, ReasonQueueOfOtherCE, id)
				continue
			}
			r, ok := runs[runID]
			if !ok {
				if r, err = tr.runState(ctx, runID); err != nil {
					tr.t.failed(KindJob, id, fmt.Errorf("read run: %w", err))
					continue
				}
				runs[runID] = r
			}
			switch {
			case r == nil:
				// A job names a run we have no record of: report only.
				tr.t.skip(KindJob, ReasonNoRunRecord, id)
			case r.ComputeEnvID != ceID:
				tr.t.skip(KindJob, ReasonRunOfOtherCE, id)
			case !run.Terminal(r.Status):
				// Alive and well.
			case tr.now.Sub(endedAt(r)) < tr.o.Grace:
				tr.t.skip(KindJob, ReasonWithinGrace, id)
			default:
				cands = append(cands, jobCandidate{id: id, runID: runID, runStatus: r.Status})
				tr.t.eligible(KindJob, 0)
			}
		}
	}
	tr.parallel(ctx, KindJob, len(cands), func(i int) string { return cands[i].id },
		func(ctx context.Context, i int) { tr.terminateJob(ctx, cands[i]) })
	return nil
}

func (tr *targetRun) terminateJob(ctx context.Context, c jobCandidate) {
	if tr.r.DryRun {
		tr.t.done(KindJob, c.id, WhyJobRunEnded, 0, true)
		return
	}
	err := call(ctx, tr.lim.batch, func(ctx context.Context) error {
		_, err := tr.batch.TerminateJob(ctx, &batch.TerminateJobInput{JobId: aws.String(c.id),
			Reason: aws.String(fmt.Sprintf("ceforge sweeper: run %s is %s", c.runID, c.runStatus))})
		return err
	})
	if tr.itemErr(ctx, KindJob, c.id, err) {
		return
	}
	tr.t.done(KindJob, c.id, WhyJobRunEnded, 0, false)
}
