package batchce_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/awsclient/ecsread"
	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
)

const jupyter = "jupyter/base-notebook:2024-10-07"

func studioReq(ceID, image string) run.LaunchRequest {
	return run.LaunchRequest{Kind: run.KindStudio, LaunchSettings: run.LaunchSettings{ComputeEnvID: ceID}, Studio: &run.Studio{Image: image}}
}

func launchStudio(t *testing.T, h *apptest.Harness, req run.LaunchRequest) run.Run {
	t.Helper()
	res := h.Do(t, "POST", "/runs", req)
	require.Equal(t, 201, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	require.Equal(t, run.StatusSubmitted, r.Status, r.StatusReason)
	return r
}

// batchHost is an EC2 instance registered as a container instance in the
// ECS cluster of the Batch compute environment behind queue, as Batch's
// ECS agent registers a host it launches; it returns the instance id and
// the container instance ARN.
func batchHost(t *testing.T, h *apptest.Harness, queue string) (string, string) {
	t.Helper()
	ctx := context.Background()
	cfg := h.AWS.Config(region)
	b := batch.NewFromConfig(cfg)
	q, err := b.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: []string{queue}})
	require.NoError(t, err)
	require.Len(t, q.JobQueues, 1)
	c, err := b.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{ComputeEnvironments: []string{aws.ToString(q.JobQueues[0].ComputeEnvironmentOrder[0].ComputeEnvironment)}})
	require.NoError(t, err)
	cluster := aws.ToString(c.ComputeEnvironments[0].EcsClusterArn)
	require.NotEmpty(t, cluster)
	ran, err := ec2.NewFromConfig(cfg).RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-12c6146b"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: ec2types.InstanceTypeM5Large})
	require.NoError(t, err)
	iid := aws.ToString(ran.Instances[0].InstanceId)
	reg, err := ecs.NewFromConfig(cfg).RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{
		Cluster: aws.String(cluster), InstanceIdentityDocument: aws.String(`{"instanceId":"` + iid + `"}`),
	})
	require.NoError(t, err)
	return iid, aws.ToString(reg.ContainerInstance.ContainerInstanceArn)
}

// runningOn is the head's RUNNING event, on a container instance.
func runningOn(t *testing.T, r run.Run, containerInstance string) map[string]any {
	t.Helper()
	ev := sample(t, "batch-head-running", r.ID, r.Backend.JobID, true, prefix)
	ev["detail"].(map[string]any)["container"].(map[string]any)["containerInstanceArn"] = containerInstance
	return ev
}

// countHosts wraps the api's host lookups (the real ECS reader, against
// the emulator, with the api's IAM-checked clients) to count them.
func countHosts(h *apptest.Harness) *atomic.Int32 {
	n := &atomic.Int32{}
	l := h.API.Runs.Launchers[computeenv.PlatformBatch].(*batchce.Launcher)
	l.Hosts = func(ce *computeenv.ComputeEnv) batchce.HostFinder {
		return countingHosts{ecsread.New(h.API.AWS.Config(ce.Region)), n}
	}
	return n
}

type countingHosts struct {
	inner batchce.HostFinder
	n     *atomic.Int32
}

func (c countingHosts) EC2InstanceOf(ctx context.Context, arn string) (string, error) {
	c.n.Add(1)
	return c.inner.EC2InstanceOf(ctx, arn)
}

// A studio on a forged Batch CE: a head job of the studio's image (its job
// definition registered once per image), its host found through the
// container instance Batch reports it on, reachable with Session Manager
// port forwarding; cancel ends it, deleting the CE removes its job
// definitions.
func TestBatchStudio(t *testing.T) {
	h := newHarness(t)
	ce := createCE(t, h, forgeBody("studio"))
	names := forge.NamesFor(prefix, ce.ID)
	ctx := context.Background()
	b := batch.NewFromConfig(h.AWS.Config(region))

	h.Calls.Reset()
	req := studioReq(ce.ID, jupyter)
	req.HeadJobMemoryMb = 8192
	st := launchStudio(t, h, req)
	require.Equal(t, 1, h.Calls.Count("Batch.RegisterJobDefinition"), "the image's job definition, at its first studio")
	require.Equal(t, 1, h.Calls.Count("Batch.SubmitJob"))
	require.Equal(t, run.BackendBatch, st.Backend.Type)
	require.Equal(t, names.HeadQueue, st.Backend.JobQueue)
	require.Equal(t, names.LogGroup, st.Logs.Group)
	require.Equal(t, run.DefaultStudioPort, st.Studio.Port)
	require.Equal(t, 8192, st.Backend.HeadMemoryMb, "the head's size prices the studio")

	jobs, err := b.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{st.Backend.JobID}})
	require.NoError(t, err)
	j := jobs.Jobs[0]
	require.Equal(t, prefix+"head-"+st.ID, aws.ToString(j.JobName), "named like every head: events and the sweeper know it")
	require.Equal(t, st.ID, j.Tags["ceforge:run-id"])
	require.Equal(t, "true", j.Tags["ceforge:managed"])
	env := envOf(j.Container.Environment)
	require.Equal(t, "8888", env["PORT"])
	require.Equal(t, jupyter, env["CEFORGE_STUDIO_IMAGE"])
	require.Equal(t, "s3://ceforge-work/work", env["CEFORGE_WORK_DIR"])
	require.Equal(t, "1", env["HEAD_ONLY"], "the CE's head environment, from the job definition")
	require.Equal(t, int32(8192), aws.ToInt32(j.Container.Memory))

	jdARN := aws.ToString(j.JobDefinition)
	require.Contains(t, jdARN, ":job-definition/"+names.StudioJobDefinition+":")
	defs, err := b.DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitions: []string{jdARN}})
	require.NoError(t, err)
	jd := defs.JobDefinitions[0]
	require.Equal(t, jupyter, aws.ToString(jd.ContainerProperties.Image))
	require.Empty(t, jd.ContainerProperties.Command, "the image's own entrypoint runs")
	require.False(t, aws.ToBool(jd.ContainerProperties.Privileged))
	require.Equal(t, forge.Find(&ce, forge.TypeRole, names.HeadJobRole).ARN, aws.ToString(jd.ContainerProperties.JobRoleArn))
	require.Equal(t, names.LogGroup, jd.ContainerProperties.LogConfiguration.Options["awslogs-group"])
	require.Equal(t, ce.ID, jd.Tags["ceforge:ce-id"])
	require.NotContains(t, jd.PlatformCapabilities, "FARGATE")

	// The same image again reuses its job definition; another image gets its own.
	h.Calls.Reset()
	again := launchStudio(t, h, studioReq(ce.ID, jupyter))
	require.Zero(t, h.Calls.Count("Batch.RegisterJobDefinition"))
	other := launchStudio(t, h, studioReq(ce.ID, "rocker/rstudio:4.4.1"))
	require.Equal(t, 1, h.Calls.Count("Batch.RegisterJobDefinition"))
	for _, r := range []run.Run{again, other} {
		out, err := b.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{r.Backend.JobID}})
		require.NoError(t, err)
		if r.ID == again.ID {
			require.Equal(t, jdARN, aws.ToString(out.Jobs[0].JobDefinition))
		} else {
			require.NotEqual(t, jdARN, aws.ToString(out.Jobs[0].JobDefinition))
		}
	}

	// Not reachable until it runs on a known host.
	lookups := countHosts(h)
	res := h.Do(t, "GET", "/runs/"+st.ID, nil)
	require.NotContains(t, string(res.Body), `"connect"`)
	iid, ci := batchHost(t, h, names.HeadQueue)
	failed, _ := h.BatchEvents.BatchEvents.Process(ctx, messages(t, runningOn(t, st, ci)))
	require.Empty(t, failed)

	var view struct {
		run.Run
		Connect *run.Connect `json:"connect"`
	}
	res = h.Do(t, "GET", "/runs/"+st.ID, nil)
	require.Equal(t, 200, res.Status, string(res.Body))
	res.JSON(t, &view)
	require.Equal(t, run.StatusRunning, view.Status)
	require.Equal(t, &run.Connect{
		Method: run.ConnectMethodSSM, InstanceID: iid, Region: region, Port: 8888, Document: run.PortForwardingDocument,
		Command: `aws ssm start-session --region us-east-1 --target ` + iid + ` --document-name AWS-StartPortForwardingSession --parameters '{"portNumber":["8888"],"localPortNumber":["8888"]}'`,
	}, view.Connect)
	require.Equal(t, ci, view.Backend.ContainerInstanceARN)
	require.Equal(t, iid, view.Backend.HostInstanceID)
	require.EqualValues(t, 1, lookups.Load())
	var stored run.Run
	_, err = h.Store.Get(ctx, store.KindRun, st.ID, &stored)
	require.NoError(t, err)
	require.Equal(t, iid, stored.Backend.HostInstanceID, "the host is recorded")
	res = h.Do(t, "GET", "/runs/"+st.ID, nil)
	require.Contains(t, string(res.Body), `"instanceId":"`+iid+`"`)
	require.EqualValues(t, 1, lookups.Load(), "found once, then read from the run")

	// Seen on another container instance (a replayed event of another
	// attempt), the studio's host is found anew.
	iid2, ci2 := batchHost(t, h, names.HeadQueue)
	failed, _ = h.BatchEvents.BatchEvents.Process(ctx, messages(t, runningOn(t, st, ci2)))
	require.Empty(t, failed)
	res = h.Do(t, "GET", "/runs/"+st.ID, nil)
	view.Connect = nil
	res.JSON(t, &view)
	require.Equal(t, iid2, view.Connect.InstanceID)

	// Cancel: the job is terminated, its end reported as CANCELLED; no more connect.
	h.Calls.Reset()
	res = h.Do(t, "POST", "/runs/"+st.ID+"/cancel", nil)
	require.Equal(t, 202, res.Status, string(res.Body))
	require.Equal(t, 1, h.Calls.Count("Batch.TerminateJob"))
	failed, _ = h.BatchEvents.BatchEvents.Process(ctx, messages(t, sample(t, "batch-head-failed", st.ID, st.Backend.JobID, true, prefix)))
	require.Empty(t, failed)
	res = h.Do(t, "GET", "/runs/"+st.ID, nil)
	view.Connect = nil
	res.JSON(t, &view)
	require.Equal(t, run.StatusCancelled, view.Status)
	require.Nil(t, view.Connect)

	// A pipeline's head records no host.
	p := launch(t, h, ce.ID)
	failed, _ = h.BatchEvents.BatchEvents.Process(ctx, messages(t, runningOn(t, p, ci)))
	require.Empty(t, failed)
	require.Empty(t, getRun(t, h, p.ID).Backend.ContainerInstanceARN)

	// Deleting the CE deregisters the studios' job definitions too.
	res = h.Do(t, "DELETE", "/compute-envs/"+ce.ID+"?force=true", nil)
	require.Equal(t, 202, res.Status, string(res.Body))
	deleted := settle(t, h, ce.ID)
	require.Equal(t, computeenv.StatusDeleted, deleted.Status, deleted.StatusReason)
	left, err := b.DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(names.StudioJobDefinition), Status: aws.String("ACTIVE")})
	require.NoError(t, err)
	require.Empty(t, left.JobDefinitions)
}

// A studio on a manual-mode CE uses the user's head queue and the head
// job's settings; its host is found the same way.
func TestBatchStudioManual(t *testing.T) {
	h := newHarness(t)
	headQ, workQ := manualQueuesOn(t, h, btypes.JQStateEnabled, btypes.CRTypeEc2)
	ce := createCE(t, h, computeenv.CreateRequest{Name: "manual-studio", Platform: computeenv.PlatformBatch, Region: region,
		WorkDir: "s3://" + bucket + "/work", Batch: &computeenv.BatchOptions{HeadQueue: headQ, ComputeQueue: workQ, HeadJobMemoryMb: 6144}})
	require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	require.Equal(t, "EC2", forge.FindType(&ce, forge.TypeJobDefinition).Platform)
	st := launchStudio(t, h, studioReq(ce.ID, jupyter))
	require.Equal(t, headQ, st.Backend.JobQueue)
	ctx := context.Background()
	b := batch.NewFromConfig(h.AWS.Config(region))
	jobs, err := b.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{st.Backend.JobID}})
	require.NoError(t, err)
	defs, err := b.DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitions: []string{aws.ToString(jobs.Jobs[0].JobDefinition)}})
	require.NoError(t, err)
	require.Equal(t, jupyter, aws.ToString(defs.JobDefinitions[0].ContainerProperties.Image))
	require.Equal(t, int32(6144), aws.ToInt32(defs.JobDefinitions[0].ContainerProperties.Memory))

	iid, ci := batchHost(t, h, headQ)
	failed, _ := h.BatchEvents.BatchEvents.Process(ctx, messages(t, runningOn(t, st, ci)))
	require.Empty(t, failed)
	res := h.Do(t, "GET", "/runs/"+st.ID, nil)
	require.Contains(t, string(res.Body), `"connect":{"method":"ssm-port-forwarding","instanceId":"`+iid+`"`)

	res = h.Do(t, "DELETE", "/compute-envs/"+ce.ID+"?force=true", nil)
	require.Equal(t, 202, res.Status, string(res.Body))
	require.Equal(t, computeenv.StatusDeleted, settle(t, h, ce.ID).Status)
	left, err := b.DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String(forge.NamesFor(prefix, ce.ID).StudioJobDefinition), Status: aws.String("ACTIVE")})
	require.NoError(t, err)
	require.Empty(t, left.JobDefinitions)
}

// Studios a Batch CE cannot serve are refused with the field at fault, and
// nothing is recorded or submitted.
func TestBatchStudioRefused(t *testing.T) {
	h := newHarness(t)
	s3CE := createCE(t, h, forgeBody("s3"))
	fargateCE := createCE(t, h, forgeBody("fargate", fusion, func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.FargateHeadEnabled = true }))
	headQ, workQ := manualQueuesOn(t, h, btypes.JQStateEnabled, btypes.CRTypeEc2)
	fsCE := createCE(t, h, computeenv.CreateRequest{Name: "on-efs", Platform: computeenv.PlatformBatch, Region: region,
		WorkDir: "/mnt/shared/work", Batch: &computeenv.BatchOptions{HeadQueue: headQ, ComputeQueue: workQ, WorkDirMount: "/mnt/shared"}})
	require.Equal(t, computeenv.StatusAvailable, fsCE.Status, fsCE.StatusReason)
	with := func(ceID string, f func(*run.LaunchRequest)) run.LaunchRequest {
		r := studioReq(ceID, jupyter)
		f(&r)
		return r
	}
	none := func(*run.LaunchRequest) {}
	cases := []struct {
		name   string
		req    run.LaunchRequest
		status int
		code   string
		field  string
	}{
		{"work dir on a shared file system", with(fsCE.ID, none), 422, "studio_needs_s3_work_dir", "workDir"},
		{"heads on Fargate", with(fargateCE.ID, none), 422, "studio_needs_ec2_head", "computeEnvId"},
		{"spot", with(s3CE.ID, func(r *run.LaunchRequest) { r.Studio.Spot = true }), 400, "invalid_field", "studio.spot"},
		{"a port the host takes", with(s3CE.ID, func(r *run.LaunchRequest) { r.Studio.Port = 51678 }), 400, "invalid_field", "studio.port"},
		{"ssh port", with(s3CE.ID, func(r *run.LaunchRequest) { r.Studio.Port = 22 }), 400, "invalid_field", "studio.port"},
		{"pre-run script", with(s3CE.ID, func(r *run.LaunchRequest) { r.PreRunScript = "echo hi" }), 400, "invalid_field", "preRunScript"},
		{"post-run script", with(s3CE.ID, func(r *run.LaunchRequest) { r.PostRunScript = "echo bye" }), 400, "invalid_field", "postRunScript"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.Calls.Reset()
			res := h.Do(t, "POST", "/runs", c.req)
			require.Equal(t, c.status, res.Status, string(res.Body))
			code, field, msg := res.Error(t)
			require.Equal(t, c.code, code, msg)
			require.Equal(t, c.field, field, msg)
			require.Zero(t, h.Calls.Total("Batch"), "nothing registered or submitted")
		})
	}
	list := h.Do(t, "GET", "/runs", nil)
	require.Equal(t, 200, list.Status)
	require.Contains(t, string(list.Body), `"items":[]`, "no run recorded")

	// The same file-system CE with an S3 work directory for the studio serves it.
	ok := launchStudio(t, h, with(fsCE.ID, func(r *run.LaunchRequest) { r.WorkDir = "s3://" + bucket + "/studios" }))
	require.True(t, strings.HasPrefix(ok.WorkDir, "s3://"))
}
