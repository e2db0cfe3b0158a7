package iamcheck_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/testenv"
	"github.com/ceforge/ceforge/internal/testing/iamcheck"
)

// The emulator's own IAM enforcement as a cross-check of the tier: moto
// sees every request on the wire, so a call the tier's recorder missed
// (a client built around the function's factory) still meets its role.
// moto checks actions only (no resources, no conditions), so each function
// runs as a user holding exactly its deployed role's actions, and one
// end-to-end flow drives every function: both platforms' compute
// environments created and deleted (api, reconciler), runs launched,
// followed and cancelled (api), their events (batchevents, ec2events),
// logs served by the logs function, a trace call (trace), a sweep
// (sweeper).
func TestMotoEnforcesEachFunctionsActions(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	_, err := s3.NewFromConfig(env.AWS.Config(region), func(o *s3.Options) { o.UsePathStyle = true }).
		CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	actions := map[string][]string{}
	for _, fn := range app.FunctionNames() {
		a, err := iamcheck.MotoActions(fn, env.Deployment)
		require.NoError(t, err)
		actions[fn] = a
	}
	env.EnforceIAM(actions)
	h := apptest.NewOn(t, env, apptest.Clients{}, func(c *config.Config) { c.TraceURL = "https://api.ceforge.test" })
	do := func(method, path string, body any, want int) apptest.Response {
		t.Helper()
		res := h.Do(t, method, path, body)
		require.Equal(t, want, res.Status, "%s %s: %s", method, path, res.Body)
		return res
	}
	handedOff := func() {
		t.Helper()
		for _, inv := range h.Invocations() {
			require.NoError(t, inv.Err, "the %s function's handler", inv.Function)
		}
	}

	// AWS Cloud: the api validates, the reconciler creates the role.
	var cloud computeenv.ComputeEnv
	do("POST", "/compute-envs", computeenv.CreateRequest{Name: "cloud", Platform: computeenv.PlatformCloud, Region: region, WorkDir: "s3://" + bucket + "/work"}, 201).JSON(t, &cloud)
	handedOff()
	// Batch forge: the reconciler forges until the CE is AVAILABLE.
	var forged computeenv.ComputeEnv
	do("POST", "/compute-envs", computeenv.CreateRequest{Name: "forged", Platform: computeenv.PlatformBatch, Region: region, WorkDir: "s3://" + bucket + "/work",
		Batch: &computeenv.BatchOptions{Forge: &computeenv.ForgeOptions{Type: "SPOT", MaxCpus: 64}}}, 201).JSON(t, &forged)
	handedOff()
	for i := 0; i < 5; i++ {
		require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	}
	for _, id := range []string{cloud.ID, forged.ID} {
		var ce computeenv.ComputeEnv
		do("GET", "/compute-envs/"+id, nil, 200).JSON(t, &ce)
		require.Equal(t, computeenv.StatusAvailable, ce.Status, ce.StatusReason)
	}

	// Runs on both: launched by the api, their events consumed.
	var head, batchRun run.Run
	do("POST", "/runs", run.LaunchRequest{Kind: run.KindPipeline, LaunchSettings: run.LaunchSettings{ComputeEnvID: cloud.ID, Pipeline: "nf-core/demo"}}, 201).JSON(t, &head)
	do("POST", "/runs", run.LaunchRequest{Kind: run.KindPipeline, LaunchSettings: run.LaunchSettings{ComputeEnvID: forged.ID, Pipeline: "nf-core/demo"}}, 201).JSON(t, &batchRun)
	feed := func(p *eventsrc.Processor, sample, from, to string) {
		t.Helper()
		raw, err := os.ReadFile("../../../events/" + sample)
		require.NoError(t, err)
		failed, _ := p.Process(ctx, []eventsrc.Message{{ID: sample, Body: strings.ReplaceAll(string(raw), from, to)}})
		require.Empty(t, failed, sample)
	}
	feed(h.EC2Events.EC2Events, "ec2-running.json", "i-0abcd1234ef567890", head.Backend.InstanceID)
	feed(h.BatchEvents.BatchEvents, "batch-head-running.json", "", "") // not ours: one read
	do("GET", "/runs/"+head.ID, nil, 200)
	// A trace call with a token that is not the run's: the trace function
	// reads the run to refuse it.
	require.Equal(t, 401, h.Do(t, "POST", "/trace/create", map[string]any{"workflowId": head.ID}, "Authorization", "Bearer not-the-token").Status)

	// Logs: a page from the api, the same route served by the logs function.
	cwl := cloudwatchlogs.NewFromConfig(env.AWS.Config(region))
	_, err = cwl.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(head.Logs.Group)})
	require.NoError(t, err)
	_, err = cwl.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(head.Logs.Group), LogStreamName: aws.String(head.Logs.Stream)})
	require.NoError(t, err)
	do("GET", "/runs/"+head.ID+"/logs", nil, 200)
	srv := httptest.NewServer(api.LocalIdentity(h.Logs.Handler(), apptest.Caller))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/runs/" + head.ID + "/logs")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)

	// Cancel both, sweep, reconcile, delete both CEs.
	do("POST", "/runs/"+head.ID+"/cancel", nil, 202)
	do("POST", "/runs/"+batchRun.ID+"/cancel", nil, 202)
	do("POST", "/sweeps", map[string]any{"dryRun": true}, 202)
	handedOff()
	require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	for _, id := range []string{cloud.ID, forged.ID} {
		do("DELETE", "/compute-envs/"+id+"?force=true", nil, 202)
	}
	handedOff()
	for i := 0; i < 5; i++ {
		require.NoError(t, h.Reconciler.Reconciler.Once(ctx))
	}
	for _, id := range []string{cloud.ID, forged.ID} {
		var ce computeenv.ComputeEnv
		do("GET", "/compute-envs/"+id, nil, 200).JSON(t, &ce)
		require.Equal(t, computeenv.StatusDeleted, ce.Status, ce.StatusReason)
	}
	for _, fn := range app.FunctionNames() {
		require.Positive(t, h.CallsOf(fn).Total(""), "the flow drives the %s function", fn)
	}
}

// The cross-check fails a flow whose function lacks an action: the api
// without ec2:RunInstances cannot launch on an AWS Cloud CE.
func TestMotoDeniesAnActionTheRoleLacks(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	_, err := s3.NewFromConfig(env.AWS.Config(region), func(o *s3.Options) { o.UsePathStyle = true }).
		CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	actions := map[string][]string{}
	for _, fn := range app.FunctionNames() {
		a, err := iamcheck.MotoActions(fn, env.Deployment)
		require.NoError(t, err)
		actions[fn] = a
	}
	var kept []string
	for _, a := range actions[app.FnAPI] {
		if !strings.EqualFold(a, "ec2:RunInstances") {
			kept = append(kept, a)
		}
	}
	actions[app.FnAPI] = kept
	env.EnforceIAM(actions)
	h := apptest.NewOn(t, env, apptest.Clients{})
	res := h.Do(t, "POST", "/compute-envs", computeenv.CreateRequest{Name: "cloud", Platform: computeenv.PlatformCloud, Region: region, WorkDir: "s3://" + bucket + "/work"})
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	res = h.Do(t, "POST", "/runs", run.LaunchRequest{Kind: run.KindPipeline, LaunchSettings: run.LaunchSettings{ComputeEnvID: ce.ID, Pipeline: "nf-core/demo"}})
	require.Contains(t, string(res.Body), "is not authorized to perform: ec2:RunInstances", "moto's denial reaches the caller")
	// The tier, which records what the api asked for, has nothing to add:
	// the deployed role allows it.
	require.Empty(t, h.IAMFindings())
}
