package batchce_test

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/tags"
)

const prefix = "ceforge-"

func envOf(env []btypes.KeyValuePair) map[string]string {
	out := map[string]string{}
	for _, kv := range env {
		out[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
	}
	return out
}

func TestLaunchSubmitsOneHeadJob(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("launch"))
	h.Calls.Reset()
	r := launch(t, h, ce.ID)
	require.Equal(t, 1, h.Calls.Count("Batch.SubmitJob"))
	require.Equal(t, 1, h.Calls.Total("Batch"), "a launch is exactly one Batch call")
	require.Equal(t, run.StatusSubmitted, r.Status)
	require.Equal(t, run.BackendBatch, r.Backend.Type)
	require.NotEmpty(t, r.Backend.JobID)
	names := forge.NamesFor(prefix, ce.ID)
	require.Equal(t, names.HeadQueue, r.Backend.JobQueue)
	require.Equal(t, names.LogGroup, r.Logs.Group)

	out, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobs(context.Background(), &batch.DescribeJobsInput{Jobs: []string{r.Backend.JobID}})
	require.NoError(t, err)
	require.Len(t, out.Jobs, 1)
	j := out.Jobs[0]
	require.Equal(t, prefix+"head-"+r.ID, aws.ToString(j.JobName))
	require.Equal(t, r.ID, j.Tags["ceforge:run-id"])
	require.Equal(t, ce.ID, j.Tags["ceforge:ce-id"])
	require.Equal(t, "p1", j.Tags["project"])
	env := envOf(j.Container.Environment)
	require.Equal(t, "nf-core/rnaseq", env["CEFORGE_PIPELINE"])
	require.Equal(t, "3.14.0", env["CEFORGE_REVISION"])
	require.Equal(t, "test,docker", env["CEFORGE_PROFILES"])
	require.Equal(t, "s3://ceforge-work/work", env["CEFORGE_WORK_DIR"])
	require.Equal(t, "s3://ceforge-work/work/cloudcache/.cache", env["NXF_CLOUDCACHE_PATH"])
	require.Equal(t, "1", env["HEAD_ONLY"], "the CE's head env comes from the job definition")
	params, _ := base64.StdEncoding.DecodeString(env["CEFORGE_PARAMS"])
	require.JSONEq(t, `{"outdir": "s3://ceforge-work/results"}`, string(params))
	pre, _ := base64.StdEncoding.DecodeString(env["CEFORGE_PRE_RUN"])
	require.Equal(t, "echo pre", string(pre))
	cfg, _ := base64.StdEncoding.DecodeString(env["CEFORGE_NF_CONFIG"])
	for _, want := range []string{
		"process.executor = 'awsbatch'", "process.queue = '" + names.WorkQueue + "'",
		"'ceforge:run-id': '" + r.ID + "'", "TASKS = '2'", "aws.batch.jobRole = 'arn:aws:iam::", "process.cpus = 2",
		"aws.batch.logsGroup = '" + names.LogGroup + "'",
	} {
		require.Contains(t, string(cfg), want)
	}

	// The same Idempotency-Key gives the same run and no second job.
	h.Calls.Reset()
	first := h.Do(t, "POST", "/runs", run.LaunchRequest{Kind: run.KindPipeline, LaunchSettings: run.LaunchSettings{ComputeEnvID: ce.ID, Pipeline: "nf-core/rnaseq"}}, "Idempotency-Key", "k1")
	again := h.Do(t, "POST", "/runs", run.LaunchRequest{Kind: run.KindPipeline, LaunchSettings: run.LaunchSettings{ComputeEnvID: ce.ID, Pipeline: "nf-core/rnaseq"}}, "Idempotency-Key", "k1")
	require.Equal(t, 201, first.Status)
	var a, b run.Run
	first.JSON(t, &a)
	again.JSON(t, &b)
	require.Equal(t, a.ID, b.ID)
	require.Equal(t, 1, h.Calls.Count("Batch.SubmitJob"))
}

func TestEventsDriveRunAndCounters(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("events"))
	r := launch(t, h, ce.ID)
	head := r.Backend.JobID
	ctx := context.Background()
	process := func(evs ...map[string]any) {
		t.Helper()
		failed, _ := h.BatchEvents.BatchEvents.Process(ctx, messages(t, evs...))
		require.Empty(t, failed)
	}
	ev := func(name, job string, isHead bool) map[string]any { return sample(t, name, r.ID, job, isHead, prefix) }
	base := time.Now().UTC()

	// Head queued: still SUBMITTED.
	process(ev("batch-head-submitted", head, true), ev("batch-head-runnable", head, true), foreign(t))
	require.Equal(t, run.StatusSubmitted, getRun(t, h, r.ID).Status)

	// Head running: RUNNING with time-to-running and the log stream.
	running := ev("batch-head-running", head, true)
	running["detail"].(map[string]any)["startedAt"] = base.Add(30 * time.Second).UnixMilli()
	process(running)
	got := getRun(t, h, r.ID)
	require.Equal(t, run.StatusRunning, got.Status)
	require.NotNil(t, got.TimeToRunningMs)
	require.NotNil(t, got.Logs)
	require.Equal(t, forge.NamesFor(prefix, ce.ID).LogGroup, got.Logs.Group)
	require.Contains(t, got.Logs.Stream, "/default/")

	// Compute jobs, one batch, out of order and duplicated: one store write for the run.
	h.Calls.Reset()
	process(
		ev("batch-compute-running", "t1", false), ev("batch-compute-submitted", "t1", false), ev("batch-compute-running", "t1", false),
		ev("batch-compute-submitted", "t2", false), ev("batch-compute-runnable", "t2", false),
		ev("batch-compute-succeeded", "t3", false), ev("batch-compute-running", "t3", false),
		ev("batch-compute-failed", "t4", false),
	)
	require.Equal(t, 1, h.Calls.Count("DynamoDB.UpdateItem")+h.Calls.Count("DynamoDB.PutItem")+h.Calls.Count("DynamoDB.TransactWriteItems"))
	require.Equal(t, &run.Progress{Submitted: 1, Running: 1, Succeeded: 1, Failed: 1}, getRun(t, h, r.ID).Progress)
	// Replays change nothing; later states move tasks forward.
	process(ev("batch-compute-succeeded", "t1", false), ev("batch-compute-succeeded", "t3", false), ev("batch-compute-submitted", "t4", false))
	require.Equal(t, &run.Progress{Submitted: 1, Running: 0, Succeeded: 2, Failed: 1}, getRun(t, h, r.ID).Progress)

	// Head ends.
	process(ev("batch-head-succeeded", head, true), ev("batch-head-failed", head, true))
	got = getRun(t, h, r.ID)
	require.Equal(t, run.StatusSucceeded, got.Status)
	require.NotNil(t, got.ExitCode)
	require.Equal(t, 0, *got.ExitCode)
	require.NotNil(t, got.Timeline.Completed)

	// A failing run: reason and exit code from the event.
	r2 := launch(t, h, ce.ID)
	process(sample(t, "batch-head-failed", r2.ID, r2.Backend.JobID, true, prefix))
	got = getRun(t, h, r2.ID)
	require.Equal(t, run.StatusFailed, got.Status)
	require.Equal(t, 1, *got.ExitCode)
	require.Equal(t, "Essential container in task exited", got.StatusReason)
	require.NotNil(t, got.Timeline.Running, "a missed RUNNING is filled from startedAt")
}

func TestCancelTerminatesHeadAndTasks(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("cancel"))
	r := launch(t, h, ce.ID)
	ctx := context.Background()
	// A task as Nextflow submits it: tagged with the run's labels
	// (process.resourceLabels), which the api's TerminateJob requires.
	b := batch.NewFromConfig(h.AWS.Config(region))
	jd, err := b.RegisterJobDefinition(ctx, &batch.RegisterJobDefinitionInput{JobDefinitionName: aws.String("nf-task"), Type: btypes.JobDefinitionTypeContainer,
		ContainerProperties: &btypes.ContainerProperties{Image: aws.String("busybox"), Vcpus: aws.Int32(1), Memory: aws.Int32(512), Command: []string{"true"}}})
	require.NoError(t, err)
	task, err := b.SubmitJob(ctx, &batch.SubmitJobInput{JobName: aws.String("nf-FASTQC"), JobQueue: aws.String(forge.NamesFor(prefix, ce.ID).WorkQueue),
		JobDefinition: jd.JobDefinitionArn, Tags: map[string]string{tags.Managed: "true", tags.RunID: r.ID}})
	require.NoError(t, err)
	failed, _ := h.BatchEvents.BatchEvents.Process(ctx, messages(t,
		sample(t, "batch-head-running", r.ID, r.Backend.JobID, true, prefix),
		sample(t, "batch-compute-running", r.ID, aws.ToString(task.JobId), false, prefix),
		sample(t, "batch-compute-succeeded", r.ID, "task-b", false, prefix),
	))
	require.Empty(t, failed)
	h.Calls.Reset()
	res := h.Do(t, "POST", "/runs/"+r.ID+"/cancel", nil)
	require.Equal(t, 202, res.Status, string(res.Body))
	require.Equal(t, 2, h.Calls.Count("Batch.TerminateJob"), "the head and the one active task")
	require.True(t, getRun(t, h, r.ID).CancelRequested)

	failed, _ = h.BatchEvents.BatchEvents.Process(ctx, messages(t, sample(t, "batch-head-failed", r.ID, r.Backend.JobID, true, prefix)))
	require.Empty(t, failed)
	got := getRun(t, h, r.ID)
	require.Equal(t, run.StatusCancelled, got.Status)
}

func TestReconcileRepairsMissedEvents(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("reconcile"))
	r := launch(t, h, ce.ID)
	// The emulator runs jobs to the end at once; no event arrives here.
	ctx := context.Background()
	require.Eventually(t, func() bool {
		out, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{r.Backend.JobID}})
		return err == nil && len(out.Jobs) == 1 && (out.Jobs[0].Status == btypes.JobStatusSucceeded || out.Jobs[0].Status == btypes.JobStatusFailed)
	}, 20*time.Second, 200*time.Millisecond)
	h.Calls.Reset()
	require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	require.Equal(t, 1, h.Calls.Count("Batch.DescribeJobs"))
	got := getRun(t, h, r.ID)
	require.True(t, run.Terminal(got.Status), got.Status)
}

// manualQueues creates, outside ceforge, a Fargate Batch CE and two queues.
func manualQueues(t *testing.T, h *apptest.Harness, state btypes.JQState) (string, string) {
	t.Helper()
	return manualQueuesOn(t, h, state, btypes.CRTypeFargate)
}

// manualQueuesOn creates, outside ceforge, a Batch CE of a type and two queues.
func manualQueuesOn(t *testing.T, h *apptest.Harness, state btypes.JQState, typ btypes.CRType) (string, string) {
	t.Helper()
	ctx := context.Background()
	iamc := iam.NewFromConfig(h.AWS.Config(region))
	role, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("my-batch-service"), AssumeRolePolicyDocument: aws.String(forge.TrustPolicy("batch.amazonaws.com"))})
	require.NoError(t, err)
	b := batch.NewFromConfig(h.AWS.Config(region))
	dr := planOf(t, h, forgeBody("probe")) // resolves the default network
	c, err := b.CreateComputeEnvironment(ctx, &batch.CreateComputeEnvironmentInput{
		ComputeEnvironmentName: aws.String("my-ce"), Type: btypes.CETypeManaged, ServiceRole: role.Role.Arn,
		ComputeResources: computeResources(t, h, typ, dr.ComputeEnv.Batch.Forge.Subnets, dr.ComputeEnv.Batch.Forge.SecurityGroups),
	})
	require.NoError(t, err)
	for _, q := range []string{"my-head", "my-work"} {
		_, err := b.CreateJobQueue(ctx, &batch.CreateJobQueueInput{JobQueueName: aws.String(q), Priority: aws.Int32(1), State: state,
			ComputeEnvironmentOrder: []btypes.ComputeEnvironmentOrder{{Order: aws.Int32(1), ComputeEnvironment: c.ComputeEnvironmentArn}}})
		require.NoError(t, err)
	}
	return "my-head", "my-work"
}

func computeResources(t *testing.T, h *apptest.Harness, typ btypes.CRType, subnets, sgs []string) *btypes.ComputeResource {
	t.Helper()
	cr := &btypes.ComputeResource{Type: typ, MaxvCpus: aws.Int32(16), Subnets: subnets, SecurityGroupIds: sgs}
	if typ == btypes.CRTypeFargate {
		return cr
	}
	ctx := context.Background()
	iamc := iam.NewFromConfig(h.AWS.Config(region))
	_, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("my-ecs-instance"), AssumeRolePolicyDocument: aws.String(forge.TrustPolicy("ec2.amazonaws.com"))})
	require.NoError(t, err)
	prof, err := iamc.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String("my-ecs-instance")})
	require.NoError(t, err)
	cr.MinvCpus, cr.InstanceTypes, cr.InstanceRole = aws.Int32(0), []string{"optimal"}, prof.InstanceProfile.Arn
	return cr
}

func TestManualCE(t *testing.T) {
	h := newHarness(t)
	headQ, workQ := manualQueues(t, h, btypes.JQStateEnabled)
	req := computeenv.CreateRequest{Name: "manual", Platform: computeenv.PlatformBatch, Region: region, WorkDir: "s3://" + bucket + "/work",
		Batch: &computeenv.BatchOptions{HeadQueue: headQ, ComputeQueue: workQ}}

	missing := req
	missing.Batch = &computeenv.BatchOptions{HeadQueue: "nope", ComputeQueue: workQ}
	res := h.Do(t, "POST", "/compute-envs", missing)
	require.Equal(t, 422, res.Status, string(res.Body))
	_, field, _ := res.Error(t)
	require.Equal(t, "batch.headQueue", field)

	h.Calls.Reset()
	ce := createCE(t, h, req)
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	require.Equal(t, computeenv.ModeManual, ce.ConfigMode)
	for _, op := range []string{"Batch.CreateComputeEnvironment", "Batch.CreateJobQueue", "IAM.CreateRole", "EC2.CreateLaunchTemplate", "CloudWatch Logs.CreateLogGroup"} {
		require.Zero(t, h.Calls.Count(op), op)
	}
	require.Equal(t, 1, h.Calls.Count("Batch.RegisterJobDefinition"), "only the head job definition")

	r := launch(t, h, ce.ID)
	require.Equal(t, headQ, r.Backend.JobQueue)
	require.Equal(t, forge.DefaultBatchLogGroup, r.Logs.Group)

	res = h.Do(t, "DELETE", "/compute-envs/"+ce.ID+"?force=true", nil)
	require.Equal(t, 202, res.Status, string(res.Body))
	ce = settle(t, h, ce.ID)
	require.Equal(t, computeenv.StatusDeleted, ce.Status)
	qs, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobQueues(context.Background(), &batch.DescribeJobQueuesInput{JobQueues: []string{headQ, workQ}})
	require.NoError(t, err)
	require.Len(t, qs.JobQueues, 2, "the user's queues stay")
}

// The head job's role is passed to AWS Batch in its job definition (by the
// reconciler), which the control plane may do for roles named with the
// prefix only (the IAM-checked tier denied iam:PassRole of "mine"): such
// a role is refused when the CE is created, naming the field; a prefixed
// one is registered.
func TestManualCEHeadJobRoleMustBePassable(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	headQ, workQ := manualQueues(t, h, btypes.JQStateEnabled)
	iamc := iam.NewFromConfig(h.AWS.Config(region))
	arn := func(name string) string {
		r, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name),
			AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
		require.NoError(t, err)
		return aws.ToString(r.Role.Arn)
	}
	req := func(role string) computeenv.CreateRequest {
		return computeenv.CreateRequest{Name: "manual-role", Platform: computeenv.PlatformBatch, Region: region, WorkDir: "s3://" + bucket + "/work",
			Batch: &computeenv.BatchOptions{HeadQueue: headQ, ComputeQueue: workQ, HeadJobRole: role}}
	}
	res := h.Do(t, "POST", "/compute-envs", req(arn("mine")))
	require.Equal(t, 422, res.Status, string(res.Body))
	code, field, msg := res.Error(t)
	require.Equal(t, "role_not_passable", code)
	require.Equal(t, "batch.headJobRole", field)
	require.Contains(t, msg, `"mine"`)

	mine := arn("ceforge-myhead")
	ce := createCE(t, h, req(mine))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	jd, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{
		JobDefinitionName: aws.String(forge.NamesFor("ceforge-", ce.ID).JobDefinition), Status: aws.String("ACTIVE")})
	require.NoError(t, err)
	require.Len(t, jd.JobDefinitions, 1)
	require.Equal(t, mine, aws.ToString(jd.JobDefinitions[0].ContainerProperties.JobRoleArn))
}

func TestManualCEQueueDisabled(t *testing.T) {
	h := newHarness(t)
	headQ, workQ := manualQueues(t, h, btypes.JQStateDisabled)
	res := h.Do(t, "POST", "/compute-envs", computeenv.CreateRequest{Name: "manual", Platform: computeenv.PlatformBatch, Region: region,
		WorkDir: "s3://" + bucket + "/work", Batch: &computeenv.BatchOptions{HeadQueue: headQ, ComputeQueue: workQ}})
	require.Equal(t, 422, res.Status, string(res.Body))
	code, field, _ := res.Error(t)
	require.Equal(t, "queue_not_ready", code)
	require.Equal(t, "batch.headQueue", field)
}

func TestReconcileRepairsMissedTaskEvents(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("tasks"))
	ctx := context.Background()
	b := batch.NewFromConfig(h.AWS.Config(region))
	jd, err := b.RegisterJobDefinition(ctx, &batch.RegisterJobDefinitionInput{JobDefinitionName: aws.String("nf-task"), Type: btypes.JobDefinitionTypeContainer,
		ContainerProperties: &btypes.ContainerProperties{Image: aws.String("busybox"), Vcpus: aws.Int32(1), Memory: aws.Int32(512), Command: []string{"true"}}})
	require.NoError(t, err)
	// The emulator ends every job at once, the head included: the task runs
	// (and ends) first, as in AWS, where the head ends after its tasks.
	task, err := b.SubmitJob(ctx, &batch.SubmitJobInput{JobName: aws.String("nf-FASTQC"), JobQueue: aws.String(forge.NamesFor(prefix, ce.ID).WorkQueue),
		JobDefinition: jd.JobDefinitionArn})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		out, err := b.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{aws.ToString(task.JobId)}})
		return err == nil && len(out.Jobs) == 1 && (out.Jobs[0].Status == btypes.JobStatusSucceeded || out.Jobs[0].Status == btypes.JobStatusFailed)
	}, 20*time.Second, 200*time.Millisecond)
	r := launch(t, h, ce.ID)
	// Only the task's SUBMITTED event arrives; its end is missed.
	failed, _ := h.BatchEvents.BatchEvents.Process(ctx, messages(t, sample(t, "batch-compute-submitted", r.ID, aws.ToString(task.JobId), false, prefix)))
	require.Empty(t, failed)
	require.Equal(t, 1, getRun(t, h, r.ID).Progress.Submitted)

	require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	p := getRun(t, h, r.ID).Progress
	require.Zero(t, p.Submitted+p.Running)
	require.Equal(t, 1, p.Succeeded+p.Failed)
}

func TestReconcileMarksLostHeadUnknown(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("lost"))
	r := launch(t, h, ce.ID)
	ctx := context.Background()
	require.NoError(t, h.Store.Patch(ctx, "RUN", r.ID, map[string]any{"backend.jobId": "00000000-0000-0000-0000-000000000000"}, 0))
	l := h.Reconciler.Runs.Launchers[computeenv.PlatformBatch].(*batchce.Launcher)
	l.Now = func() time.Time { return time.Now().Add(time.Hour) }
	require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	got := getRun(t, h, r.ID)
	require.Equal(t, run.StatusUnknown, got.Status)
	require.Contains(t, got.StatusReason, "no longer known")
}

// A manual CE whose work dir is on a file system the user's hosts mount
// (batch.workDirMount): the head and every task bind that host path.
func TestManualCEFileSystemWorkDir(t *testing.T) {
	h := newHarness(t)
	headQ, workQ := manualQueuesOn(t, h, btypes.JQStateEnabled, btypes.CRTypeEc2)
	body := func(workDir, mount string) computeenv.CreateRequest {
		return computeenv.CreateRequest{Name: "manual-efs", Platform: computeenv.PlatformBatch, Region: region, WorkDir: workDir,
			Batch: &computeenv.BatchOptions{HeadQueue: headQ, ComputeQueue: workQ, WorkDirMount: mount}}
	}
	for _, tc := range []struct {
		name, workDir, mount, field string
		status                      int
	}{
		{"file system work dir without a mount", "/mnt/efs/work", "", "workDir", 400},
		{"work dir outside the mount", "/data/work", "/mnt/efs", "workDir", 400},
		{"relative mount", "/mnt/efs/work", "mnt/efs", "batch.workDirMount", 400},
		{"mount with dot segments", "/mnt/efs/work", "/mnt/../efs", "batch.workDirMount", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.Do(t, "POST", "/compute-envs", body(tc.workDir, tc.mount))
			require.Equal(t, tc.status, res.Status, string(res.Body))
			_, field, _ := res.Error(t)
			require.Equal(t, tc.field, field)
		})
	}
	ce := createCE(t, h, body("/mnt/efs/work", "/mnt/efs"))
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	ctx := context.Background()
	jd, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(forge.NamesFor(prefix, ce.ID).JobDefinition), Status: aws.String("ACTIVE")})
	require.NoError(t, err)
	cp := jd.JobDefinitions[0].ContainerProperties
	require.Len(t, cp.Volumes, 1)
	require.Equal(t, "/mnt/efs", aws.ToString(cp.Volumes[0].Host.SourcePath))
	require.Equal(t, "/mnt/efs", aws.ToString(cp.MountPoints[0].ContainerPath))

	r := launch(t, h, ce.ID, func(l *run.LaunchRequest) { l.ParamsText = "" })
	require.Equal(t, headQ, r.Backend.JobQueue)
	out, err := batch.NewFromConfig(h.AWS.Config(region)).DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{r.Backend.JobID}})
	require.NoError(t, err)
	env := envOf(out.Jobs[0].Container.Environment)
	require.Equal(t, "/mnt/efs/work", env["CEFORGE_WORK_DIR"])
	require.NotContains(t, env, "NXF_CLOUDCACHE_PATH", "the cloud cache is for S3 work dirs")
	cfg, _ := base64.StdEncoding.DecodeString(env["CEFORGE_NF_CONFIG"])
	require.Contains(t, string(cfg), "aws.batch.volumes = ['/mnt/efs']")
	require.NotContains(t, string(cfg), "aws.batch.logsGroup", "tasks log to Batch's default group, as the head does")
}

func TestManualCEFileSystemWorkDirNeedsEC2Head(t *testing.T) {
	h := newHarness(t)
	headQ, workQ := manualQueues(t, h, btypes.JQStateEnabled)
	res := h.Do(t, "POST", "/compute-envs", computeenv.CreateRequest{Name: "manual-efs", Platform: computeenv.PlatformBatch, Region: region,
		WorkDir: "/mnt/efs/work", Batch: &computeenv.BatchOptions{HeadQueue: headQ, ComputeQueue: workQ, WorkDirMount: "/mnt/efs"}})
	require.Equal(t, 422, res.Status, string(res.Body))
	code, field, _ := res.Error(t)
	require.Equal(t, "head_queue_fargate", code)
	require.Equal(t, "batch.workDirMount", field)
}
