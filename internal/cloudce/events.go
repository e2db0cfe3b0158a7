package cloudce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ceforge/ceforge/internal/cloudce/userdata"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/tags"
)

// Event kinds the platform consumes.
var (
	KindStateChange = eventsrc.Kind{Source: "aws.ec2", DetailType: "EC2 Instance State-change Notification"}
	KindSpotWarning = eventsrc.Kind{Source: "aws.ec2", DetailType: "EC2 Spot Instance Interruption Warning"}
)

// Stable status reasons.
const (
	ReasonSpot            = "spot interruption"
	ReasonStopped         = "instance stopped outside ceforge"
	ReasonMissingExit     = "exit-status file missing: the instance ended before the run finished"
	ReasonLaunchNotRecord = "launch not recorded and no instance found"
)

// StateChange is the detail of an EC2 Instance State-change Notification.
type StateChange struct {
	InstanceID string `json:"instance-id"`
	State      string `json:"state"`
}

// SpotWarning is the detail of an EC2 Spot Instance Interruption Warning.
type SpotWarning struct {
	InstanceID string `json:"instance-id"`
	Action     string `json:"instance-action"`
}

var knownStates = map[string]bool{"pending": true, "running": true, "stopping": true, "stopped": true, "shutting-down": true, "terminated": true}

// Parsers returns the parser of each kind the sink applies.
func (p *Platform) Parsers() map[eventsrc.Kind]eventsrc.Parser {
	return map[eventsrc.Kind]eventsrc.Parser{
		KindStateChange: func(env eventsrc.Envelope) (any, error) {
			v, err := eventsrc.Decode[StateChange](env)
			if err != nil {
				return nil, err
			}
			// AWS's own documented sample pads the id with a space.
			v.InstanceID = strings.TrimSpace(v.InstanceID)
			if v.InstanceID == "" || !knownStates[v.State] {
				return nil, fmt.Errorf("state-change detail without instance id or with unknown state %q", v.State)
			}
			return v, nil
		},
		KindSpotWarning: func(env eventsrc.Envelope) (any, error) {
			v, err := eventsrc.Decode[SpotWarning](env)
			if err != nil {
				return nil, err
			}
			v.InstanceID = strings.TrimSpace(v.InstanceID)
			if v.InstanceID == "" {
				return nil, errors.New("spot interruption detail without instance id")
			}
			return v, nil
		},
	}
}

func instanceOf(ev eventsrc.Event) string {
	switch v := ev.Value.(type) {
	case StateChange:
		return v.InstanceID
	case SpotWarning:
		return v.InstanceID
	}
	return ""
}

// Apply implements eventsrc.Sink: events are applied in event-time order,
// one run lookup per instance per batch. An instance is ours when the
// reverse index written at launch (or adoption) names a run whose recorded
// head it still is; anything else costs that one read and is dropped.
func (p *Platform) Apply(ctx context.Context, events []eventsrc.Event) eventsrc.Result {
	sorted := append([]eventsrc.Event(nil), events...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Envelope.Time.Before(sorted[j].Envelope.Time) })
	runs := map[string]*run.Run{}
	notOurs := map[string]bool{}
	ces := map[string]*computeenv.ComputeEnv{}
	var res eventsrc.Result
	for _, ev := range sorted {
		id := instanceOf(ev)
		if notOurs[id] {
			res.NotOurs = append(res.NotOurs, ev.MessageID)
			continue
		}
		r, ok := runs[id]
		if !ok {
			got, err := p.Runs.ByBackend(ctx, store.KindInstance, id)
			if errors.Is(err, store.ErrNotFound) {
				notOurs[id] = true
				res.NotOurs = append(res.NotOurs, ev.MessageID)
				continue
			}
			if err != nil {
				res.Failed = append(res.Failed, ev.MessageID)
				continue
			}
			if got.Backend == nil || got.Backend.InstanceID != id {
				// A head the run no longer has (a duplicate the reconciler
				// replaced): only the recorded head moves a run.
				p.log().Info("event of an instance that is not its run's head", "run_id", got.ID, "instance_id", id)
				notOurs[id] = true
				res.NotOurs = append(res.NotOurs, ev.MessageID)
				continue
			}
			r, runs[id] = got, got
		}
		if !r.ObservedFrom(ev.Envelope.Account, ev.Envelope.Region, p.Account) {
			// Instance ids are the run's only in its own account and region.
			p.log().Warn("event from another account or region than its run's", "run_id", r.ID, "instance_id", id,
				"account", ev.Envelope.Account, "region", ev.Envelope.Region)
			res.NotOurs = append(res.NotOurs, ev.MessageID)
			continue
		}
		if err := p.applyEvent(ctx, ces, r, ev); err != nil {
			p.log().Warn("ec2 event failed", "run_id", r.ID, "instance_id", id, "error", err.Error())
			res.Failed = append(res.Failed, ev.MessageID)
		}
	}
	return res
}

func (p *Platform) applyEvent(ctx context.Context, ces map[string]*computeenv.ComputeEnv, r *run.Run, ev eventsrc.Event) error {
	if !r.Active() {
		// Late or duplicate: terminal is final. A late "running" still
		// completes the timeline, since EC2 events are the only record of
		// when the head ran (the terminated event carries no such time).
		if sc, ok := ev.Value.(StateChange); ok && sc.State == "running" && r.Timeline.Running == nil && !ev.Envelope.TimeReceived {
			return p.Runs.RecordRunning(ctx, r, ev.Envelope.Time)
		}
		return nil
	}
	switch v := ev.Value.(type) {
	case SpotWarning:
		if r.SpotInterrupted {
			return nil
		}
		if err := p.Runs.Store.Patch(ctx, store.KindRun, r.ID, map[string]any{"spotInterrupted": true}, 0); err != nil {
			return err
		}
		r.SpotInterrupted = true
		return nil
	case StateChange:
		return p.applyState(ctx, ces, r, v.State, ev.Envelope.Time)
	}
	return nil
}

// applyState moves a run after its instance's state (events and reconciler).
func (p *Platform) applyState(ctx context.Context, ces map[string]*computeenv.ComputeEnv, r *run.Run, state string, at time.Time) error {
	switch state {
	case "running":
		_, err := p.Runs.Transition(ctx, r, run.Update{Status: run.StatusRunning, At: at})
		return err
	case "stopped":
		_, err := p.Runs.Transition(ctx, r, run.Update{Status: run.StatusUnknown, At: at, Reason: ReasonStopped})
		return err
	case "terminated":
		u, err := p.outcome(ctx, ces, r)
		if err != nil {
			return err
		}
		u.At = at
		_, err = p.Runs.Transition(ctx, r, u)
		return err
	}
	// pending (SUBMITTED already), stopping, shutting-down: not final, nothing to record.
	return nil
}

// outcome decides how a run whose instance terminated ended: cancel and
// Spot interruption first, else the exit-status file the instance uploaded.
func (p *Platform) outcome(ctx context.Context, ces map[string]*computeenv.ComputeEnv, r *run.Run) (run.Update, error) {
	if r.CancelRequested {
		return run.Update{Status: run.StatusCancelled, Reason: r.CancelledReason()}, nil
	}
	if r.SpotInterrupted {
		return run.Update{Status: run.StatusFailed, Reason: ReasonSpot}, nil
	}
	ce, err := p.ce(ctx, ces, r.ComputeEnvID)
	if err != nil {
		return run.Update{}, err
	}
	bucket, prefix, err := computeenv.ParseS3URI("workDir", r.WorkDir)
	if err != nil {
		return run.Update{}, err
	}
	key := userdata.ExitStatusKey(prefix, r.ID)
	obj, err := p.ClientsFor(ce).S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if code := errorCode(err); code == "NoSuchKey" || code == "NotFound" {
		return run.Update{Status: run.StatusFailed, Reason: fmt.Sprintf("%s (s3://%s/%s)", ReasonMissingExit, bucket, key)}, nil
	}
	if err != nil {
		return run.Update{}, fmt.Errorf("read exit status of run %s: %w", r.ID, err)
	}
	defer obj.Body.Close()
	body, err := io.ReadAll(io.LimitReader(obj.Body, 64))
	if err != nil {
		return run.Update{}, fmt.Errorf("read exit status of run %s: %w", r.ID, err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(body)))
	if err != nil {
		return run.Update{Status: run.StatusFailed, Reason: fmt.Sprintf("exit-status file unreadable: %q", strings.TrimSpace(string(body)))}, nil
	}
	if code == 0 {
		return run.Update{Status: run.StatusSucceeded, ExitCode: &code}, nil
	}
	what := "nextflow"
	if r.Kind == run.KindStudio {
		what = "studio container"
	}
	return run.Update{Status: run.StatusFailed, ExitCode: &code, Reason: fmt.Sprintf("%s exited with code %d", what, code)}, nil
}

func (p *Platform) ce(ctx context.Context, cache map[string]*computeenv.ComputeEnv, id string) (*computeenv.ComputeEnv, error) {
	if ce, ok := cache[id]; ok {
		return ce, nil
	}
	var ce computeenv.ComputeEnv
	if _, err := p.Runs.Store.Get(ctx, store.KindCE, id, &ce); err != nil {
		return nil, fmt.Errorf("read compute environment %s: %w", id, err)
	}
	if cache != nil {
		cache[id] = &ce
	}
	return &ce, nil
}

// maxFilterValues bounds the run ids of one DescribeInstances filter.
const maxFilterValues = 200

// Reconcile repairs the CE's active runs from EC2's view: it finds their
// instances by run tag, adopts an instance that was launched but not
// recorded, and applies the instance state an event may have carried.
func (p *Platform) Reconcile(ctx context.Context, ce *computeenv.ComputeEnv, active []run.Run) error {
	api := p.ClientsFor(ce).EC2
	found := map[string][]ec2types.Instance{}
	for start := 0; start < len(active); start += maxFilterValues {
		end := min(start+maxFilterValues, len(active))
		ids := make([]string, 0, end-start)
		for _, r := range active[start:end] {
			ids = append(ids, r.ID)
		}
		in := &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
			{Name: aws.String("tag:" + tags.CEID), Values: []string{ce.ID}},
			{Name: aws.String("tag:" + tags.RunID), Values: ids},
		}}
		pages := ec2.NewDescribeInstancesPaginator(api, in)
		for pages.HasMorePages() {
			out, err := pages.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("describe instances of compute environment %s: %w", ce.ID, err)
			}
			for _, res := range out.Reservations {
				for _, inst := range res.Instances {
					runID := tagValue(inst.Tags, tags.RunID)
					found[runID] = append(found[runID], inst)
				}
			}
		}
	}
	ces := map[string]*computeenv.ComputeEnv{ce.ID: ce}
	var errs []error
	now := p.now()
	for i := range active {
		r := &active[i]
		inst, extra, ok := pick(r, found[r.ID])
		if len(extra) > 0 {
			// A second head of one run (a launch retried where the client
			// token was not honoured): keep one, terminate the others.
			p.log().Warn("terminating duplicate head instances", "run_id", r.ID, "instance_ids", extra)
			if _, err := api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: extra}); err != nil && errorCode(err) != "InvalidInstanceID.NotFound" {
				errs = append(errs, fmt.Errorf("terminate duplicate heads of run %s: %w", r.ID, err))
			}
		}
		switch {
		case ok:
			id := aws.ToString(inst.InstanceId)
			if r.Backend == nil {
				if err := p.adopt(ctx, ce, r, id); err != nil {
					errs = append(errs, err)
					continue
				}
				if r.Backend == nil || r.Backend.InstanceID != id {
					continue // another head was recorded meanwhile: the next pass looks at it
				}
			}
			state := ""
			if inst.State != nil {
				state = string(inst.State.Name)
			}
			if err := p.applyState(ctx, ces, r, state, now); err != nil {
				errs = append(errs, err)
			}
		case now.Sub(r.CreatedAt) <= adoptGrace:
			// DescribeInstances is eventually consistent: a fresh launch may not show yet.
		case r.Backend != nil && r.Backend.InstanceID != "":
			// EC2 forgets terminated instances after about an hour.
			if err := p.applyState(ctx, ces, r, "terminated", now); err != nil {
				errs = append(errs, err)
			}
		default:
			if _, err := p.Runs.Transition(ctx, r, run.Update{Status: run.StatusFailed, At: now, Reason: ReasonLaunchNotRecord}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// pick chooses a run's head among the instances tagged with it: the
// recorded one (never another: the recorded head stays the head), else, for
// a run with none recorded, the best by preferInstance. extra lists the
// other live ones.
func pick(r *run.Run, insts []ec2types.Instance) (ec2types.Instance, []string, bool) {
	if len(insts) == 0 {
		return ec2types.Instance{}, nil, false
	}
	best := -1
	for i, inst := range insts {
		if r.Backend != nil && aws.ToString(inst.InstanceId) == r.Backend.InstanceID {
			best = i
			break
		}
	}
	if best < 0 && r.Backend != nil && r.Backend.InstanceID != "" {
		var extra []string
		for _, inst := range insts {
			if inst.State == nil || inst.State.Name != ec2types.InstanceStateNameTerminated {
				extra = append(extra, aws.ToString(inst.InstanceId))
			}
		}
		return ec2types.Instance{}, extra, false
	}
	if best < 0 {
		best = 0
		for i := range insts {
			if preferInstance(insts[i], insts[best]) {
				best = i
			}
		}
	}
	var extra []string
	for i, inst := range insts {
		if i != best && (inst.State == nil || inst.State.Name != ec2types.InstanceStateNameTerminated) {
			extra = append(extra, aws.ToString(inst.InstanceId))
		}
	}
	return insts[best], extra, true
}

// preferInstance picks, among instances tagged with one run (a launch retried
// after a crash), a live one over a terminated one, else the earliest.
func preferInstance(a, b ec2types.Instance) bool {
	term := func(i ec2types.Instance) bool {
		return i.State != nil && i.State.Name == ec2types.InstanceStateNameTerminated
	}
	if term(a) != term(b) {
		return !term(a)
	}
	return aws.ToTime(a.LaunchTime).Before(aws.ToTime(b.LaunchTime))
}

func tagValue(ts []ec2types.Tag, key string) string {
	for _, t := range ts {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// adopt records an instance found by its run tag as the head of a run that
// has none recorded; if the launch records one first, that one stays.
func (p *Platform) adopt(ctx context.Context, ce *computeenv.ComputeEnv, r *run.Run, instanceID string) error {
	b := run.Backend{Type: run.BackendEC2, InstanceID: instanceID, Region: ce.Region}
	logs := run.LogRef{Group: p.logGroup(), Stream: r.ID}
	err := p.Runs.Store.PatchWhen(ctx, store.KindRun, r.ID, map[string]any{"backend": b, "logs": logs}, store.Unset("backend"),
		store.Ref{Kind: store.KindInstance, ID: instanceID})
	if errors.Is(err, store.ErrConflict) {
		got, gerr := p.Runs.Get(ctx, r.ID)
		if gerr != nil {
			return gerr
		}
		*r = *got
		return nil
	}
	if err != nil {
		return fmt.Errorf("adopt instance %s for run %s: %w", instanceID, r.ID, err)
	}
	p.log().Info("adopted head instance", "run_id", r.ID, "instance_id", instanceID)
	r.Backend, r.Logs = &b, &logs
	return nil
}
