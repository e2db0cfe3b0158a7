package batchce

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/secret"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/tags"
)

// JobsAPI is the part of AWS Batch runs call.
type JobsAPI interface {
	SubmitJob(context.Context, *batch.SubmitJobInput, ...func(*batch.Options)) (*batch.SubmitJobOutput, error)
	TerminateJob(context.Context, *batch.TerminateJobInput, ...func(*batch.Options)) (*batch.TerminateJobOutput, error)
	DescribeJobs(context.Context, *batch.DescribeJobsInput, ...func(*batch.Options)) (*batch.DescribeJobsOutput, error)
	ListJobs(context.Context, *batch.ListJobsInput, ...func(*batch.Options)) (*batch.ListJobsOutput, error)
}

// Launcher is the aws-batch run.Launcher and run.Reconciler.
type Launcher struct {
	AWS    *awsclient.Factory
	Prefix string
	Store  *store.Store
	Sink   *Sink // applies reconciled states exactly like events
	Log    *slog.Logger
	// Jobs, when set, replaces the per-CE Batch client (tests).
	Jobs func(ce *computeenv.ComputeEnv) JobsAPI
	// JobDefs and Hosts, when set, replace the per-CE clients that find or
	// register studio job definitions and studio hosts (tests).
	JobDefs func(ce *computeenv.ComputeEnv) forge.JobDefinitionAPI
	Hosts   func(ce *computeenv.ComputeEnv) HostFinder
	Now     func() time.Time
}

var (
	_ run.Launcher    = (*Launcher)(nil)
	_ run.Reconciler  = (*Launcher)(nil)
	_ run.HostLocator = (*Launcher)(nil)
)

func (l *Launcher) jobs(ce *computeenv.ComputeEnv) JobsAPI {
	if l.Jobs != nil {
		return l.Jobs(ce)
	}
	return batch.NewFromConfig(configFor(l.AWS, ce))
}

func (l *Launcher) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// HeadJobName is the Batch job name of a run's head: the run id in it lets
// events and operators find the run without a lookup.
func HeadJobName(prefix, runID string) string { return prefix + "head-" + runID }

// Check validates Batch-specific run options.
func (l *Launcher) Check(ce *computeenv.ComputeEnv, r *run.Run) error {
	if r.Kind == run.KindStudio {
		if err := checkStudio(ce, r); err != nil {
			return err
		}
	}
	if ce.Batch != nil && ce.Batch.Forge != nil && ce.Batch.Forge.FargateHeadEnabled && (r.HeadJobCpus != 0 || r.HeadJobMemoryMb != 0) {
		cpus, mem := r.HeadJobCpus, r.HeadJobMemoryMb
		if cpus == 0 {
			cpus = ce.Batch.HeadJobCpus
		}
		if mem == 0 {
			mem = ce.Batch.HeadJobMemoryMb
		}
		if err := checkFargateSize(cpus, mem); err != nil {
			e, _ := apierr.As(err)
			return apierr.Invalid(strings.TrimPrefix(e.Field, "batch."), "%s", e.Message)
		}
	}
	return nil
}

// Launch submits the head job: one SubmitJob to the head queue. The run's
// ownership tags are propagated to the ECS task, and the generated Nextflow
// config gives every compute job the same tags as resource labels, so
// their events name the run.
func (l *Launcher) Launch(ctx context.Context, ce *computeenv.ComputeEnv, r *run.Run) (run.Backend, *run.LogRef, error) {
	if r.Kind == run.KindStudio {
		return l.launchStudio(ctx, ce, r)
	}
	head, compute := Queues(l.Prefix, ce)
	jd := forge.FindType(ce, forge.TypeJobDefinition)
	if jd == nil || jd.ARN == "" {
		return run.Backend{}, nil, errors.New("the compute environment has no head job definition")
	}
	t := runTags(ce, r)
	env, err := l.headEnv(ce, r, compute, t)
	if err != nil {
		return run.Backend{}, nil, err
	}
	ov := &btypes.ContainerOverrides{Command: []string{"bash", "-c", HeadScript}, Environment: env}
	fargate := ce.Batch.Forge != nil && ce.Batch.Forge.FargateHeadEnabled
	if r.HeadJobCpus != 0 || r.HeadJobMemoryMb != 0 {
		if fargate {
			if r.HeadJobCpus != 0 {
				ov.ResourceRequirements = append(ov.ResourceRequirements, btypes.ResourceRequirement{Type: btypes.ResourceTypeVcpu, Value: aws.String(fmt.Sprint(r.HeadJobCpus))})
			}
			if r.HeadJobMemoryMb != 0 {
				ov.ResourceRequirements = append(ov.ResourceRequirements, btypes.ResourceRequirement{Type: btypes.ResourceTypeMemory, Value: aws.String(fmt.Sprint(r.HeadJobMemoryMb))})
			}
		} else {
			if r.HeadJobCpus != 0 {
				ov.Vcpus = aws.Int32(int32(r.HeadJobCpus))
			}
			if r.HeadJobMemoryMb != 0 {
				ov.Memory = aws.Int32(int32(r.HeadJobMemoryMb))
			}
		}
	}
	jobID, err := l.submitOnce(ctx, l.jobs(ce), head, &batch.SubmitJobInput{
		JobName: aws.String(HeadJobName(l.Prefix, r.ID)), JobQueue: aws.String(head), JobDefinition: aws.String(jd.ARN),
		ContainerOverrides: ov, Tags: t, PropagateTags: aws.Bool(true),
	})
	if err != nil {
		if !forge.Transient(err) {
			return run.Backend{}, nil, apierr.Unprocessable("submit_refused", "computeEnvId", "AWS Batch refused the head job: %s", forge.Reason(err))
		}
		return run.Backend{}, nil, fmt.Errorf("submit head job: %w", err)
	}
	cpus, mem := headSize(ce, r)
	return run.Backend{Type: run.BackendBatch, JobID: jobID, JobQueue: head, Region: ce.Region, HeadCpus: cpus, HeadMemoryMb: mem, Fargate: fargate},
		&run.LogRef{Group: LogGroup(l.Prefix, ce)}, nil
}

// headSize is the run's head job size: the launch's, else the CE's.
func headSize(ce *computeenv.ComputeEnv, r *run.Run) (cpus, memoryMb int) {
	cpus, memoryMb = r.HeadJobCpus, r.HeadJobMemoryMb
	if cpus == 0 {
		cpus = ce.Batch.HeadJobCpus
	}
	if memoryMb == 0 {
		memoryMb = ce.Batch.HeadJobMemoryMb
	}
	return cpus, memoryMb
}

// submitAttempts bounds SubmitJob tries after answers that leave it unknown
// whether the job was created.
const submitAttempts = 3

// submitOnce submits the head job without the SDK's blind retries: SubmitJob
// has no client token, so retrying a call whose answer was lost would start
// a second Nextflow head on the same work dir. After such a failure it looks
// the job up by its name (unique per run) before trying again.
func (l *Launcher) submitOnce(ctx context.Context, client JobsAPI, queue string, in *batch.SubmitJobInput) (string, error) {
	noRetry := func(o *batch.Options) { o.RetryMaxAttempts = 1 }
	var err error
	for attempt := 1; attempt <= submitAttempts; attempt++ {
		var out *batch.SubmitJobOutput
		if out, err = client.SubmitJob(ctx, in, noRetry); err == nil {
			return aws.ToString(out.JobId), nil
		}
		if !forge.Transient(err) {
			return "", err
		}
		found, lerr := client.ListJobs(ctx, &batch.ListJobsInput{JobQueue: aws.String(queue),
			Filters: []btypes.KeyValuesPair{{Name: aws.String("JOB_NAME"), Values: []string{aws.ToString(in.JobName)}}}})
		if lerr == nil && len(found.JobSummaryList) > 0 {
			return aws.ToString(found.JobSummaryList[0].JobId), nil
		}
		select {
		case <-ctx.Done():
			return "", errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	return "", err
}

func runTags(ce *computeenv.ComputeEnv, r *run.Run) tags.Tags {
	labels := map[string]string{}
	for k, v := range ce.Labels {
		labels[k] = v
	}
	for k, v := range r.Labels {
		labels[k] = v
	}
	return tags.Merge(labels, tags.Ownership(ce.ID, r.ID))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func joinScripts(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n" + b
}

// headEnv is the head job's environment for one run.
func (l *Launcher) headEnv(ce *computeenv.ComputeEnv, r *run.Run, computeQueue string, t tags.Tags) ([]btypes.KeyValuePair, error) {
	cfg, err := l.nextflowConfig(ce, r, computeQueue, t)
	if err != nil {
		return nil, err
	}
	env := map[string]string{
		"CEFORGE_RUN_ID":    r.ID,
		"CEFORGE_REGION":    ce.Region,
		"CEFORGE_RUN_NAME":  nfRunName(r),
		"CEFORGE_PIPELINE":  r.Pipeline,
		"CEFORGE_WORK_DIR":  r.WorkDir,
		"CEFORGE_NF_CONFIG": b64(cfg),
		"NXF_ANSI_LOG":      "false",
	}
	if strings.HasPrefix(r.WorkDir, "s3://") {
		// Nextflow's cache lives next to the work: a resumed run finds it
		// whatever instance its head lands on.
		env["NXF_CLOUDCACHE_PATH"] = strings.TrimSuffix(r.WorkDir, "/") + "/cloudcache/.cache"
	}
	if r.Revision != "" {
		env["CEFORGE_REVISION"] = r.Revision
	}
	if r.ResumeSessionID != "" {
		env["CEFORGE_RESUME"] = r.ResumeSessionID
	}
	if t := r.Trace; t != nil && t.Enabled {
		// Where to report and which secret holds the token: never the token.
		env["CEFORGE_TRACE_URL"] = t.Endpoint
		env["CEFORGE_TRACE_SECRET"] = t.Secret
		env["CEFORGE_REGION"] = ce.Region
	}
	if len(r.ConfigProfiles) > 0 {
		env["CEFORGE_PROFILES"] = strings.Join(r.ConfigProfiles, ",")
	}
	if strings.TrimSpace(r.ParamsText) != "" {
		env["CEFORGE_PARAMS"] = b64(r.ParamsText)
	}
	if s := joinScripts(ce.PreRunScript, r.PreRunScript); s != "" {
		env["CEFORGE_PRE_RUN"] = b64(s)
	}
	if s := joinScripts(ce.PostRunScript, r.PostRunScript); s != "" {
		env["CEFORGE_POST_RUN"] = b64(s)
	}
	// Secrets by name: the head reads the values with its own role.
	if len(r.Secrets) > 0 || ce.SeqeraTokenSecret != "" {
		env["CEFORGE_SECRET_PREFIX"] = secret.SecretName(l.Prefix, "")
	}
	if len(r.Secrets) > 0 {
		env["CEFORGE_SECRETS"] = strings.Join(r.Secrets, " ")
	}
	if ce.SeqeraTokenSecret != "" {
		env["CEFORGE_SEQERA_TOKEN_SECRET"] = ce.SeqeraTokenSecret
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]btypes.KeyValuePair, 0, len(keys))
	for _, k := range keys {
		out = append(out, btypes.KeyValuePair{Name: aws.String(k), Value: aws.String(env[k])})
	}
	return out, nil
}

// TaskVolumes are the host paths Nextflow binds into every task container
// (aws.batch.volumes), as "host[:container]": the shared file systems the
// hosts mount (forge: the EFS and FSx mount paths; manual: the user's
// batch.workDirMount) at the same path as in the head, and with fast
// storage the NVMe scratch as the tasks' /tmp.
func TaskVolumes(ce *computeenv.ComputeEnv) []string {
	b := ce.Batch
	if b == nil {
		return nil
	}
	var out []string
	if f := b.Forge; f != nil {
		if f.EfsMount != "" {
			out = append(out, f.EfsMount)
		}
		if f.FsxMount != "" {
			out = append(out, f.FsxMount)
		}
		if f.FastStorage {
			out = append(out, forge.TaskScratchDir+":"+forge.TaskScratchContainerPath)
		}
		return out
	}
	if b.WorkDirMount != "" {
		out = append(out, b.WorkDirMount)
	}
	return out
}

// nfRunName is a Nextflow-acceptable run name (unique per run).
func nfRunName(r *run.Run) string {
	if r.RunName != "" {
		return r.RunName
	}
	return "run-" + r.ID
}

// groovy quotes s as a single-quoted Groovy string.
func groovy(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`, "$", `\$`).Replace(s) + "'"
}

// nextflowConfig renders the config ceforge gives Nextflow: the Batch
// executor on the compute queue, the work dir, resource labels (so compute
// jobs carry the run's tags), Wave/Fusion, compute env vars and mounts; the
// CE's and the run's own config follow and win.
func (l *Launcher) nextflowConfig(ce *computeenv.ComputeEnv, r *run.Run, computeQueue string, t tags.Tags) (string, error) {
	b := ce.Batch
	var c strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&c, format+"\n", args...) }
	w("// generated by ceforge for run %s", r.ID)
	w("workDir = %s", groovy(r.WorkDir))
	w("process.executor = 'awsbatch'")
	w("process.queue = %s", groovy(computeQueue))
	w("aws.region = %s", groovy(ce.Region))
	labels := make([]string, 0, len(t))
	for _, k := range t.Keys() {
		labels = append(labels, groovy(k)+": "+groovy(t[k]))
	}
	w("process.resourceLabels = [%s]", strings.Join(labels, ", "))
	if b.CliPath != "" {
		w("aws.batch.cliPath = %s", groovy(b.CliPath))
	}
	jobRole := b.ComputeJobRole
	if jobRole == "" && b.Forge != nil {
		if rr := forge.Find(ce, forge.TypeRole, forge.NamesFor(l.Prefix, ce.ID).ComputeJobRole); rr != nil {
			jobRole = rr.ARN
		}
	}
	if jobRole != "" {
		w("aws.batch.jobRole = %s", groovy(jobRole))
	}
	if b.ExecutionRole != "" {
		w("aws.batch.executionRole = %s", groovy(b.ExecutionRole))
	}
	if b.WaveEnabled {
		w("wave.enabled = true")
		if t := r.Trace; t != nil && t.Enabled {
			// Nextflow gives Wave its tower token, here ceforge's: Wave
			// requests go through ceforge's relay, which keeps it from Wave.
			w("wave.endpoint = %s", groovy(t.Endpoint+"/wave"))
		}
	}
	if b.Fusion2Enabled {
		w("fusion.enabled = true")
		if b.Forge != nil && b.Forge.FastStorage {
			w("process.scratch = false")
		}
	}
	if b.FusionSnapshots {
		w("fusion.snapshots = true")
	}
	if vols := TaskVolumes(ce); len(vols) > 0 {
		quoted := make([]string, len(vols))
		for i, v := range vols {
			quoted[i] = groovy(v)
		}
		w("aws.batch.volumes = [%s]", strings.Join(quoted, ", "))
	}
	if g := LogGroup(l.Prefix, ce); g != forge.DefaultBatchLogGroup {
		// Tasks log where the head does, not to Batch's default group.
		w("aws.batch.logsGroup = %s", groovy(g))
	}
	var compute []computeenv.EnvVar
	for _, v := range ce.Environment {
		if v.Compute {
			compute = append(compute, v)
		}
	}
	if len(compute) > 0 {
		w("env {")
		for _, v := range compute {
			w("  %s = %s", v.Name, groovy(v.Value))
		}
		w("}")
	}
	if len(r.Secrets) > 0 {
		// The secret directive on AWS Batch: each task that declares
		// secrets reads them with the compute job role before its script
		// (a default: a process's own beforeScript wins).
		w("process.beforeScript = { task.secret ? %s + task.secret.collect { 'ceforge_secret_env ' + it.toString().replaceAll('[^A-Za-z0-9_]', '') + ' || exit 1' }.join('; ') : '' }",
			groovy(TaskSecretsScript(ce.Region, l.Prefix, b.CliPath, r.Secrets)+"; "))
	}
	if ce.NextflowConfig != "" {
		w("// compute environment config\n%s", ce.NextflowConfig)
	}
	if r.ConfigText != "" {
		w("// run config\n%s", r.ConfigText)
	}
	return c.String(), nil
}

// Cancel terminates the head job and the run's compute jobs still active.
// The head's FAILED event then ends the run as CANCELLED (cancelRequested).
func (l *Launcher) Cancel(ctx context.Context, ce *computeenv.ComputeEnv, r *run.Run) error {
	if r.Backend == nil || r.Backend.JobID == "" {
		return nil
	}
	client := l.jobs(ce)
	reason := aws.String("cancelled through ceforge (run " + r.ID + ")")
	var errs []error
	if _, err := client.TerminateJob(ctx, &batch.TerminateJobInput{JobId: aws.String(r.Backend.JobID), Reason: reason}); err != nil {
		errs = append(errs, fmt.Errorf("terminate head job %s: %w", r.Backend.JobID, err))
	}
	active, err := l.activeTasks(ctx, r.ID)
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range active {
		if _, err := client.TerminateJob(ctx, &batch.TerminateJobInput{JobId: aws.String(id), Reason: reason}); err != nil {
			errs = append(errs, fmt.Errorf("terminate compute job %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// activeTasks returns the run's compute jobs not yet ended, by their last known state.
func (l *Launcher) activeTasks(ctx context.Context, runID string) ([]string, error) {
	var rec runRecord
	if _, err := l.Store.Get(ctx, store.KindRun, runID, &rec); err != nil {
		return nil, fmt.Errorf("read tasks of run %s: %w", runID, err)
	}
	var out []string
	for id, st := range rec.TaskStates {
		if !taskTerminal(st) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out, nil
}

// DescribeJobsMax is how many job ids DescribeJobs takes per call.
const DescribeJobsMax = 100

// Reconcile repairs runs whose events were missed: DescribeJobs (100 ids a
// call) on the heads and on the compute jobs not known to have ended,
// applied through the same sink as events (so the same monotonic rules
// hold); runs that never recorded a head (crash after SubmitJob) adopt it
// by job name.
func (l *Launcher) Reconcile(ctx context.Context, ce *computeenv.ComputeEnv, active []run.Run) error {
	client := l.jobs(ce)
	byJob := map[string]string{}
	var ids []string
	var errs []error
	for i := range active {
		r := &active[i]
		if r.Backend == nil || r.Backend.JobID == "" {
			if err := l.adopt(ctx, client, ce, r); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		byJob[r.Backend.JobID] = r.ID
		ids = append(ids, r.Backend.JobID)
	}
	// Compute jobs whose last known state is not final: their end may
	// have been missed too (one read per active run).
	tasks := map[string]bool{}
	for i := range active {
		r := &active[i]
		if r.Progress == nil || r.Progress.Submitted+r.Progress.Running == 0 {
			continue
		}
		ids0, err := l.activeTasks(ctx, r.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range ids0 {
			byJob[id], tasks[id] = r.ID, true
			ids = append(ids, id)
		}
	}
	var evs []Observation
	seen := map[string]bool{}
	described := true
	for start := 0; start < len(ids); start += DescribeJobsMax {
		chunk := ids[start:min(start+DescribeJobsMax, len(ids))]
		out, err := client.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: chunk})
		if err != nil {
			errs = append(errs, fmt.Errorf("describe jobs: %w", err))
			described = false
			continue
		}
		for _, j := range out.Jobs {
			id := aws.ToString(j.JobId)
			seen[id] = true
			runID := byJob[id]
			if runID == "" {
				continue
			}
			o := observationOf(runID, j, l.now())
			o.Head = !tasks[id]
			evs = append(evs, o)
		}
	}
	if len(evs) > 0 && l.Sink != nil {
		errs = append(errs, l.Sink.ApplyObservations(ctx, evs))
	}
	if described && l.Sink != nil && l.Sink.Runs != nil {
		// A head AWS no longer knows (jobs expire after days) cannot be
		// observed again: say so instead of showing a stale status.
		for i := range active {
			r := &active[i]
			if r.Backend == nil || r.Backend.JobID == "" || seen[r.Backend.JobID] || (r.Status == run.StatusUnknown && !r.CancelRequested) || l.now().Sub(r.CreatedAt) < LostHeadGrace {
				continue
			}
			u := run.Update{Status: run.StatusUnknown, At: l.now(), Reason: "head job " + r.Backend.JobID + " is no longer known to AWS Batch"}
			if r.CancelRequested {
				// Cancelled and gone: it ended, and how is known.
				u = run.Update{Status: run.StatusCancelled, At: l.now(), Reason: r.CancelledReason()}
			}
			if _, err := l.Sink.Runs.Transition(ctx, r, u); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// LostHeadGrace is how long after launch a head job missing from
// DescribeJobs is taken as lost rather than not yet visible.
const LostHeadGrace = 10 * time.Minute

// adopt finds the head job of a run whose launch crashed before recording it.
func (l *Launcher) adopt(ctx context.Context, client JobsAPI, ce *computeenv.ComputeEnv, r *run.Run) error {
	if l.now().Sub(r.CreatedAt) < time.Minute {
		return nil // the launch may still be in flight
	}
	head, _ := Queues(l.Prefix, ce)
	out, err := client.ListJobs(ctx, &batch.ListJobsInput{JobQueue: aws.String(head), Filters: []btypes.KeyValuesPair{{Name: aws.String("JOB_NAME"), Values: []string{HeadJobName(l.Prefix, r.ID)}}}})
	if err != nil {
		return fmt.Errorf("find head job of run %s: %w", r.ID, err)
	}
	if len(out.JobSummaryList) == 0 {
		return nil
	}
	j := out.JobSummaryList[0]
	b := run.Backend{Type: run.BackendBatch, JobID: aws.ToString(j.JobId), JobQueue: head, Region: ce.Region}
	err = l.Store.PatchWhen(ctx, store.KindRun, r.ID, map[string]any{"backend": b, "logs": run.LogRef{Group: LogGroup(l.Prefix, ce)}},
		store.Unset("backend"), store.Ref{Kind: store.KindJob, ID: b.JobID})
	if errors.Is(err, store.ErrConflict) {
		return nil // the launch recorded its head meanwhile: that one stays
	}
	return err
}

// observationOf turns a DescribeJobs entry into the same observation an event gives.
func observationOf(runID string, j btypes.JobDetail, now time.Time) Observation {
	o := Observation{RunID: runID, Head: true, JobID: aws.ToString(j.JobId), Status: string(j.Status), Reason: aws.ToString(j.StatusReason), At: now}
	if j.StartedAt != nil {
		// Kept for ended jobs too: when both the RUNNING and the end events
		// were lost, this is the only record of when the head started.
		o.StartedAt = time.UnixMilli(*j.StartedAt).UTC()
		if j.Status == btypes.JobStatusRunning {
			o.At = o.StartedAt
		}
	}
	if j.StoppedAt != nil {
		o.At = time.UnixMilli(*j.StoppedAt)
	}
	if c := j.Container; c != nil {
		o.ExitCode = int32p(c.ExitCode)
		o.LogStream = aws.ToString(c.LogStreamName)
		o.ContainerInstance = aws.ToString(c.ContainerInstanceArn)
		if o.Reason == "" {
			o.Reason = aws.ToString(c.Reason)
		}
	}
	return o
}

func int32p(v *int32) *int {
	if v == nil {
		return nil
	}
	i := int(*v)
	return &i
}

// TaskSecretsScript is the shell function a Batch task's beforeScript
// defines to read a secret the task declares (secret directive) into its
// environment: with the compute job role, through the AWS CLI Nextflow
// stages files with (cliPath, else aws on the image's PATH), and only the
// run's secrets. The task's .command.run holds names, never values.
func TaskSecretsScript(region, prefix, cliPath string, names []string) string {
	cli := "aws"
	if cliPath != "" {
		cli = userdataQuote(cliPath)
	}
	return `ceforge_secret_env() { case ' ` + strings.Join(names, " ") + ` ' in *" $1 "*) ;; *) echo "ceforge: secret $1 is not one of the run's" >&2; return 1 ;; esac; ` +
		`local v; v=$(set -o pipefail; ` + cli + ` secretsmanager get-secret-value --region ` + userdataQuote(region) + ` --secret-id ` +
		userdataQuote(secret.SecretName(prefix, "")) + `"$1" --query SecretBinary --output text | base64 -d && printf x) || { echo "ceforge: could not read secret $1" >&2; return 1; }; ` +
		`export "$1=${v%x}"; }`
}

// userdataQuote is one shell word (single quotes).
func userdataQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }
