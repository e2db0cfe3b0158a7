package headsim

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"

	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/tags"
)

const batchSource, batchStateChange = "aws.batch", "Batch Job State Change"

// batchJob is the simulated state of one Batch job (a head or a task).
type batchJob struct {
	mu        sync.Mutex
	id, name  string
	queueARN  string
	jobDef    string
	tags      map[string]string
	status    string
	reason    string
	created   time.Time
	started   time.Time
	stopped   time.Time
	exitCode  *int32
	logStream string
	instance  string // container instance ARN
	task      string // ECS task ARN
}

func (j *batchJob) set(status string, f func(*batchJob)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.status = status
	if f != nil {
		f(j)
	}
}

func (j *batchJob) terminal() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status == "SUCCEEDED" || j.status == "FAILED"
}

// detail is the job as a Batch Job State Change event carries it.
func (j *batchJob) detail() map[string]any {
	j.mu.Lock()
	defer j.mu.Unlock()
	d := map[string]any{
		"jobArn": j.arn(), "jobName": j.name, "jobId": j.id, "jobQueue": j.queueARN, "status": j.status,
		"attempts": []any{}, "createdAt": j.created.UnixMilli(), "retryStrategy": map[string]any{"attempts": 1, "evaluateOnExit": []any{}},
		"dependsOn": []any{}, "jobDefinition": j.jobDef, "parameters": map[string]any{}, "tags": j.tags, "propagateTags": true,
		"platformCapabilities": []any{}, "eksAttempts": []any{},
	}
	c := map[string]any{"image": "public.ecr.aws/seqera-labs/nextflow:24.10.5", "volumes": []any{}, "environment": []any{}, "mountPoints": []any{}}
	if j.reason != "" {
		d["statusReason"] = j.reason
	}
	if !j.started.IsZero() {
		d["startedAt"] = j.started.UnixMilli()
		c["logStreamName"], c["containerInstanceArn"], c["taskArn"] = j.logStream, j.instance, j.task
	}
	if !j.stopped.IsZero() {
		d["stoppedAt"] = j.stopped.UnixMilli()
		if j.exitCode != nil {
			c["exitCode"] = *j.exitCode
		}
	}
	d["container"] = c
	return d
}

func (j *batchJob) arn() string {
	region, account := "us-east-1", "123456789012"
	if parts := strings.Split(j.queueARN, ":"); len(parts) > 4 {
		region, account = parts[3], parts[4]
	}
	return fmt.Sprintf("arn:aws:batch:%s:%s:job/%s", region, account, j.id)
}

// jobDetail is the job as DescribeJobs returns it.
func (j *batchJob) jobDetail() btypes.JobDetail {
	j.mu.Lock()
	defer j.mu.Unlock()
	d := btypes.JobDetail{
		JobId: aws.String(j.id), JobName: aws.String(j.name), JobQueue: aws.String(j.queueARN), JobArn: aws.String(j.arn()),
		JobDefinition: aws.String(j.jobDef), Status: btypes.JobStatus(j.status), CreatedAt: aws.Int64(j.created.UnixMilli()), Tags: j.tags,
		Container: &btypes.ContainerDetail{},
	}
	if j.reason != "" {
		d.StatusReason = aws.String(j.reason)
	}
	if !j.started.IsZero() {
		d.StartedAt = aws.Int64(j.started.UnixMilli())
		d.Container.LogStreamName, d.Container.ContainerInstanceArn, d.Container.TaskArn = aws.String(j.logStream), aws.String(j.instance), aws.String(j.task)
	}
	if !j.stopped.IsZero() {
		d.StoppedAt = aws.Int64(j.stopped.UnixMilli())
		d.Container.ExitCode = j.exitCode
	}
	return d
}

// Jobs returns the Batch client the local stack gives the Batch launcher:
// inner (the emulator) with this simulator playing every head job
// submitted through it. See the package comment.
func (s *Simulator) Jobs(inner batchce.JobsAPI) batchce.JobsAPI { return &jobs{inner: inner, s: s} }

type jobs struct {
	inner batchce.JobsAPI
	s     *Simulator
}

func (j *jobs) SubmitJob(ctx context.Context, in *batch.SubmitJobInput, opts ...func(*batch.Options)) (*batch.SubmitJobOutput, error) {
	out, err := j.inner.SubmitJob(ctx, in, opts...)
	if err == nil && strings.HasPrefix(aws.ToString(in.JobName), batchce.HeadJobName(j.s.opts.Prefix, "")) {
		j.s.startBatchHead(in, aws.ToString(out.JobId))
	}
	return out, err
}

func (j *jobs) TerminateJob(ctx context.Context, in *batch.TerminateJobInput, opts ...func(*batch.Options)) (*batch.TerminateJobOutput, error) {
	id := aws.ToString(in.JobId)
	if job, h := j.s.batchJob(id); job != nil {
		j.s.terminateJob(job, h, aws.ToString(in.Reason))
		return &batch.TerminateJobOutput{}, nil
	}
	return j.inner.TerminateJob(ctx, in, opts...)
}

func (j *jobs) DescribeJobs(ctx context.Context, in *batch.DescribeJobsInput, opts ...func(*batch.Options)) (*batch.DescribeJobsOutput, error) {
	var pass []string
	out := &batch.DescribeJobsOutput{}
	for _, id := range in.Jobs {
		if job, _ := j.s.batchJob(id); job != nil {
			out.Jobs = append(out.Jobs, job.jobDetail())
			continue
		}
		pass = append(pass, id)
	}
	if len(pass) > 0 {
		more, err := j.inner.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: pass}, opts...)
		if err != nil {
			return nil, err
		}
		out.Jobs = append(out.Jobs, more.Jobs...)
	}
	return out, nil
}

func (j *jobs) ListJobs(ctx context.Context, in *batch.ListJobsInput, opts ...func(*batch.Options)) (*batch.ListJobsOutput, error) {
	return j.inner.ListJobs(ctx, in, opts...)
}

// batchJob returns a simulated job and the head it belongs to.
func (s *Simulator) batchJob(id string) (*batchJob, *head) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.heads[id]; ok && h.batch != nil {
		return h.batch, h
	}
	if t, ok := s.tasks[id]; ok {
		return t.job, t.head
	}
	return nil, nil
}

// simTask is a compute task of a Batch head.
type simTask struct {
	job  *batchJob
	head *head
}

func (s *Simulator) sendJob(ctx context.Context, h *head, j *batchJob) {
	if err := s.event(ctx, s.opts.BatchQueueURL, batchSource, batchStateChange, []string{j.arn()}, j.detail(), time.Now()); err != nil && ctx.Err() == nil {
		s.opts.Log.Warn("head simulator: event", "run_id", h.runID, "job_id", j.id, "error", err.Error())
	}
}

func envOf(in *batch.SubmitJobInput) map[string]string {
	env := map[string]string{}
	if in.ContainerOverrides != nil {
		for _, kv := range in.ContainerOverrides.Environment {
			env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
		}
	}
	return env
}

var processQueue = regexp.MustCompile(`(?m)^process\.queue = '([^']*)'`)

// computeQueueOf reads the compute queue from the Nextflow config ceforge
// gives the head (base64, as in the job's environment).
func computeQueueOf(config string) string {
	b, err := base64.StdEncoding.DecodeString(config)
	if err != nil {
		return ""
	}
	if m := processQueue.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

func (s *Simulator) queueARN(name string) string {
	if strings.HasPrefix(name, "arn:") {
		return name
	}
	return fmt.Sprintf("arn:aws:batch:%s:%s:job-queue/%s", s.opts.Region, s.opts.Account, name)
}

// startBatchHead plays a submitted head job: SUBMITTED, RUNNABLE,
// STARTING, RUNNING, its compute tasks, then SUCCEEDED or FAILED.
func (s *Simulator) startBatchHead(in *batch.SubmitJobInput, jobID string) {
	env := envOf(in)
	t := map[string]string{}
	for k, v := range in.Tags {
		t[k] = v
	}
	jd := aws.ToString(in.JobDefinition)
	jdName := jd
	if i := strings.LastIndex(jd, "/"); i >= 0 {
		jdName = jd[i+1:]
	}
	jdName, _, _ = strings.Cut(jdName, ":")
	task := newID(16)
	cluster := jdName + "_Batch_" + newID(4)
	job := &batchJob{
		id: jobID, name: aws.ToString(in.JobName), queueARN: s.queueARN(aws.ToString(in.JobQueue)), jobDef: jd, tags: t,
		status: "SUBMITTED", created: time.Now(), logStream: jdName + "/default/" + task,
		instance: fmt.Sprintf("arn:aws:ecs:%s:%s:container-instance/%s/%s", s.opts.Region, s.opts.Account, cluster, newID(16)),
		task:     fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", s.opts.Region, s.opts.Account, cluster, task),
	}
	if env["CEFORGE_STUDIO_IMAGE"] != "" {
		// A studio is reached on its host: one ECS knows.
		if ci := s.batchHost(context.Background(), aws.ToString(in.JobQueue)); ci != "" {
			job.instance = ci
		}
	}
	h := &head{
		id: jobID, runID: t[tags.RunID], ceID: t[tags.CEID], fail: t[FailLabel] == FailValue, studio: env["CEFORGE_STUDIO_IMAGE"] != "",
		pipeline: env["CEFORGE_PIPELINE"], revision: env["CEFORGE_REVISION"], runName: env["CEFORGE_RUN_NAME"], workDir: env["CEFORGE_WORK_DIR"],
		resume: env["CEFORGE_RESUME"], group: s.jobLogGroup(jd), stream: job.logStream, batch: job, ended: make(chan struct{}),
	}
	s.mu.Lock()
	s.heads[jobID] = h
	s.mu.Unlock()
	s.opts.Log.Info("head simulator: head job submitted", "run_id", h.runID, "job_id", jobID)
	s.playBatch(h, env)
}

// jobLogGroup is the awslogs group of the job definition (Batch's default
// group when it names none).
func (s *Simulator) jobLogGroup(jobDef string) string {
	out, err := s.batch.DescribeJobDefinitions(context.Background(), &batch.DescribeJobDefinitionsInput{JobDefinitions: []string{jobDef}})
	if err == nil {
		for _, d := range out.JobDefinitions {
			if cp := d.ContainerProperties; cp != nil && cp.LogConfiguration != nil {
				if g := cp.LogConfiguration.Options["awslogs-group"]; g != "" {
					return g
				}
			}
		}
	}
	return forge.DefaultBatchLogGroup
}

func (s *Simulator) playBatch(h *head, env map[string]string) {
	began := time.Now()
	j := h.batch
	to := func(status string, f func(*batchJob)) func(context.Context) {
		return func(ctx context.Context) {
			j.set(status, f)
			s.sendJob(ctx, h, j)
		}
	}
	log := func(lines ...string) func(context.Context) {
		return func(ctx context.Context) { s.logLines(ctx, h, lines...) }
	}
	steps := []step{
		{s.at(0.3), to("SUBMITTED", nil)},
		{s.at(1), to("RUNNABLE", nil)},
		{s.at(3), to("STARTING", nil)},
		{s.at(5), to("RUNNING", func(j *batchJob) { j.started = time.Now() })},
	}
	computeQueue := s.queueARN(computeQueueOf(env["CEFORGE_NF_CONFIG"]))
	if h.studio {
		port := env["CEFORGE_STUDIO_PORT"]
		steps = append(steps,
			step{s.at(6), log("ceforge: studio " + env["CEFORGE_STUDIO_IMAGE"] + " starting")},
			step{s.at(8), log("ceforge: studio listening on port " + port + " (connect with Session Manager port forwarding)")},
			step{24 * time.Hour * 365, func(context.Context) {}},
		)
	} else {
		var rep *reporter // Nextflow's progress reports, when the head is given them
		report := func(do func(*reporter)) {
			if rep != nil {
				do(rep)
			}
		}
		steps = append(steps, step{s.at(6), func(ctx context.Context) {
			s.logLines(ctx, h, append([]string{"ceforge: run " + h.runID + " head job starting"}, pipelineStart(h, "awsbatch")...)...)
			if rep = s.newReporter(ctx, h, env, "awsbatch"); rep != nil {
				rep.begin(ctx)
			}
		}})
		var failed *task
		n, at, taskID := 0, 7.0, 0
		for gi, group := range taskGroups() {
			if gi == 0 && h.resume != "" {
				// Resumed: the first process's tasks ran before, cached now.
				for _, t := range group {
					taskID++
					id := taskID
					steps = append(steps, step{s.at(at), func(ctx context.Context) {
						s.logLines(ctx, h, fmt.Sprintf("[%s] Cached process > %s", t.hash, t.name()))
						report(func(r *reporter) { r.task(ctx, id, t, "CACHED", "") })
					}})
				}
				at += 1.5
				continue
			}
			var ts []*batchJob
			var ids []int
			for _, t := range group {
				tj := &batchJob{id: uuid(), name: "nf-" + t.process + "_" + t.tag, queueARN: computeQueue, jobDef: "nf-" + t.process, tags: j.tags, status: "SUBMITTED", created: time.Now()}
				s.mu.Lock()
				s.tasks[tj.id] = &simTask{job: tj, head: h}
				s.mu.Unlock()
				taskID++
				id := taskID
				ts, ids = append(ts, tj), append(ids, id)
				steps = append(steps, step{s.at(at), func(ctx context.Context) {
					tj.set("SUBMITTED", func(b *batchJob) { b.created = time.Now() })
					s.sendJob(ctx, h, tj)
					s.logLines(ctx, h, fmt.Sprintf("[%s] Submitted process > %s", t.hash, t.name()))
					report(func(r *reporter) { r.task(ctx, id, t, "SUBMITTED", tj.id) })
				}})
			}
			for ti, tj := range ts {
				tj, t, id := tj, group[ti], ids[ti]
				steps = append(steps, step{s.at(at + 1), func(ctx context.Context) { tj.set("RUNNABLE", nil); s.sendJob(ctx, h, tj) }})
				steps = append(steps, step{s.at(at + 2), func(ctx context.Context) {
					tj.set("RUNNING", func(b *batchJob) { b.started, b.logStream = time.Now(), "nf-task/default/"+newID(16) })
					s.sendJob(ctx, h, tj)
					report(func(r *reporter) { r.task(ctx, id, t, "RUNNING", tj.id) })
				}})
			}
			at += 5
			for ti, t := range group {
				t, tj, id := t, ts[ti], ids[ti]
				if h.fail && gi == 1 && ti == 1 {
					failed = &t
					steps = append(steps, step{s.at(at), func(ctx context.Context) {
						tj.set("FAILED", func(b *batchJob) {
							b.stopped, b.exitCode, b.reason = time.Now(), aws.Int32(1), "Essential container in task exited"
						})
						s.sendJob(ctx, h, tj)
						s.logLines(ctx, h, fmt.Sprintf("[%s] NOTE: Process `%s` terminated with an error exit status (1)", t.hash, t.name()))
						report(func(r *reporter) { r.task(ctx, id, t, "FAILED", tj.id) })
					}})
					continue
				}
				n++
				steps = append(steps, step{s.at(at), func(ctx context.Context) {
					tj.set("SUCCEEDED", func(b *batchJob) { b.stopped, b.exitCode = time.Now(), aws.Int32(0) })
					s.sendJob(ctx, h, tj)
					s.logLines(ctx, h, fmt.Sprintf("[%s] Completed process > %s ✔", t.hash, t.name()))
					report(func(r *reporter) { r.task(ctx, id, t, "COMPLETED", tj.id) })
				}})
			}
			at += 1.5
			if failed != nil {
				break
			}
		}
		steps = append(steps, step{s.at(at), func(ctx context.Context) {
			s.logLines(ctx, h, endLines(h, began, n, failed)...)
			report(func(r *reporter) { r.complete(ctx, failed) })
		}})
	}
	finish := func() {
		ctx := context.Background()
		stopped, reason := h.wasStopped()
		code := int32(0)
		status := "SUCCEEDED"
		switch {
		case stopped:
			code, status = 143, "FAILED"
		case h.fail:
			code, status, reason = 1, "FAILED", "Essential container in task exited"
		}
		j.set(status, func(b *batchJob) {
			b.stopped, b.exitCode, b.reason = time.Now(), aws.Int32(code), reason
			if b.started.IsZero() {
				b.started = b.stopped
			}
		})
		s.sendJob(ctx, h, j)
		s.opts.Log.Info("head simulator: head job ended", "run_id", h.runID, "job_id", j.id, "status", status)
	}
	s.play(h, steps, finish)
}

// terminateJob is TerminateJob on a simulated job: a head stops (and
// reports FAILED with the reason), a task ends FAILED at once.
func (s *Simulator) terminateJob(j *batchJob, h *head, reason string) {
	if j.terminal() {
		return
	}
	if h != nil && h.batch == j {
		h.stop(reason)
		return
	}
	j.set("FAILED", func(b *batchJob) {
		b.stopped, b.exitCode, b.reason = time.Now(), aws.Int32(143), reason
	})
	if h != nil {
		s.sendJob(context.Background(), h, j)
	}
}
