package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/awsclient/fsread"
	_ "github.com/ceforge/ceforge/internal/cloudce/cloudiam" // provisions AWS Cloud roles
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/forge/steps"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const bucket = "ceforge-work"

func forgeRequest(name string) computeenv.CreateRequest {
	return computeenv.CreateRequest{
		Name: name, Platform: computeenv.PlatformBatch, Region: testenv.Region, WorkDir: "s3://" + bucket + "/work",
		Batch: &computeenv.BatchOptions{Forge: &computeenv.ForgeOptions{Type: "SPOT", MaxCpus: 64}},
	}
}

// The API function validates and records a forge-mode CE, creates nothing,
// and hands it to the reconciler function (an asynchronous invoke), which
// forges it (and later tears it down) with the AMI the API resolved: the
// split the deployed functions run, each wired as its main wires it, with
// its own clients, IAM-checked against its own role.
func TestAPIHandsForgingToTheReconciler(t *testing.T) {
	h := apptest.New(t)
	ctx := context.Background()
	cfg := h.AWS.Config(testenv.Region)
	makeBucket(t, cfg)

	res := h.Do(t, "POST", "/compute-envs", forgeRequest("split"))
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	require.Equal(t, computeenv.StatusCreating, ce.Status)
	inv := take(t, h)
	require.Equal(t, "ceforge-reconciler", inv.Function)
	require.JSONEq(t, `{"computeEnvId":"`+ce.ID+`"}`, string(inv.Payload))
	ami := forge.Find(&ce, forge.TypeAMI, forge.AMIParamX86)
	require.NotNil(t, ami, "the API resolved the AMI while validating")

	// The reconciler's invocation with that payload forged the first
	// steps; its scheduled passes finish.
	got := settle(t, h.Reconciler, ce.ID)
	require.Equal(t, computeenv.StatusAvailable, got.Status, got.StatusReason)
	names := forge.NamesFor("ceforge-", ce.ID)
	out, err := batch.NewFromConfig(cfg).DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{ComputeEnvironments: []string{names.WorkCE}})
	require.NoError(t, err)
	require.Len(t, out.ComputeEnvironments, 1)
	require.Equal(t, ami.ID, aws.ToString(out.ComputeEnvironments[0].ComputeResources.Ec2Configuration[0].ImageIdOverride))

	// Delete: the API marks it DELETING and hands it on; the reconciler tears down.
	res = h.Do(t, "DELETE", "/compute-envs/"+ce.ID, nil)
	require.Equal(t, 202, res.Status, string(res.Body))
	take(t, h)
	got = settle(t, h.Reconciler, ce.ID)
	require.Equal(t, computeenv.StatusDeleted, got.Status, got.StatusReason)
	_, err = iam.NewFromConfig(cfg).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(names.InstanceRole)})
	require.Error(t, err, "the reconciler removed the forged roles")

	// An AWS Cloud CE: the API validates it (resolving its AMI) and the
	// reconciler creates its IAM role and instance profile.
	res = h.Do(t, "POST", "/compute-envs", computeenv.CreateRequest{
		Name: "cloud", Platform: computeenv.PlatformCloud, Region: testenv.Region, WorkDir: "s3://" + bucket + "/work",
	})
	require.Equal(t, 201, res.Status, string(res.Body))
	var cloud computeenv.ComputeEnv
	res.JSON(t, &cloud)
	require.Equal(t, computeenv.StatusCreating, cloud.Status)
	require.NotEmpty(t, cloud.Cloud.ImageID, "the AMI was resolved while validating")
	take(t, h)
	require.Equal(t, computeenv.StatusAvailable, get(t, h.Reconciler, cloud.ID).Status)
	_, err = iam.NewFromConfig(cfg).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("ceforge-" + cloud.ID + "-instance")})
	require.NoError(t, err, "the reconciler created the instance role")

	// A scheduled invocation (any other payload) is a full pass.
	require.NoError(t, h.Reconciler.Reconcile(ctx, sample(t, "reconciler-schedule.json")))
	// A hand-off for a CE that is gone is done, not retried forever.
	require.NoError(t, h.Reconciler.Reconcile(ctx, sample(t, "reconciler-handoff.json")))
}

// The API function forges nothing itself: every create and delete call it
// would need is the reconciler's (the tier holds each function to its
// role; this says which function made which calls).
func TestAPIMakesNoForgeCalls(t *testing.T) {
	h := apptest.New(t)
	makeBucket(t, h.AWS.Config(testenv.Region))
	api := h.CallsOf(app.FnAPI)
	res := h.Do(t, "POST", "/compute-envs", forgeRequest("counted"))
	require.Equal(t, 201, res.Status, string(res.Body))
	require.Zero(t, api.Count("IAM.CreateRole")+api.Count("Batch.CreateComputeEnvironment"), "the API forges nothing")
	require.Positive(t, api.Count("Lambda.Invoke"), "the API handed the CE on")
}

// Without the reconciler's name the API hands nothing on: the schedule
// picks the CE up.
func TestHandOffNeedsTheReconcilerName(t *testing.T) {
	h := apptest.New(t, func(c *config.Config) { c.ReconcilerFunction = "" })
	makeBucket(t, h.AWS.Config(testenv.Region))
	res := h.Do(t, "POST", "/compute-envs", forgeRequest("scheduled"))
	require.Equal(t, 201, res.Status, string(res.Body))
	require.Empty(t, h.Invocations())
}

// take returns the one invocation the last request made.
func take(t *testing.T, h *apptest.Harness) apptest.Invocation {
	t.Helper()
	inv := h.Invocations()
	require.NotEmpty(t, inv)
	last := inv[len(inv)-1]
	require.NoError(t, last.Err, "the invoked function's handler")
	return last
}

type deniedParameters struct{}

func (deniedParameters) Parameter(context.Context, string) (string, error) {
	return "", errors.New("AccessDeniedException: not authorized to perform ssm:GetParameter")
}

// SSM access is optional, as in the reference platform: without it the CE
// is still created, with a warning, and AWS Batch picks the AMI itself.
func TestForgeWithoutSSMAccess(t *testing.T) {
	h := apptest.NewWith(t, app.FnReconciler, []app.Feature{
		app.Batch(steps.NewApplier, func(aws.Config) awsclient.ParameterReader { return deniedParameters{} }, fsread.New),
	})
	ctx := context.Background()
	cfg := h.AWS.Config(testenv.Region)
	makeBucket(t, cfg)
	res := h.Do(t, "POST", "/compute-envs", forgeRequest("nossm"))
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	require.NotEmpty(t, ce.Warnings)
	require.Contains(t, ce.Warnings[len(ce.Warnings)-1]+ce.Warnings[0], "could not read the AMI parameter")
	got := settle(t, h.API, ce.ID)
	require.Equal(t, computeenv.StatusAvailable, got.Status, got.StatusReason)
	require.Nil(t, forge.Find(&got, forge.TypeAMI, forge.AMIParamX86))
	out, err := batch.NewFromConfig(cfg).DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{
		ComputeEnvironments: []string{forge.NamesFor("ceforge-", ce.ID).WorkCE}})
	require.NoError(t, err)
	require.Len(t, out.ComputeEnvironments, 1)
	ec2cfg := out.ComputeEnvironments[0].ComputeResources.Ec2Configuration
	require.Equal(t, "ECS_AL2023", aws.ToString(ec2cfg[0].ImageType))
	require.Empty(t, aws.ToString(ec2cfg[0].ImageIdOverride), "AWS Batch picks the image type's AMI")
}

func makeBucket(t *testing.T, cfg aws.Config) {
	t.Helper()
	_, err := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).
		CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
}

// sample is a payload from events/.
func sample(t *testing.T, name string) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile("../../events/" + name)
	require.NoError(t, err)
	return raw
}

func get(t *testing.T, a *app.App, id string) *computeenv.ComputeEnv {
	t.Helper()
	ce, err := a.ComputeEnvs.Get(context.Background(), id)
	require.NoError(t, err)
	return ce
}

// settle runs the reconciler's scheduled passes until the CE is stable.
func settle(t *testing.T, a *app.App, id string) computeenv.ComputeEnv {
	t.Helper()
	for i := 0; i < 10; i++ {
		if ce := get(t, a, id); ce.Stable() {
			return *ce
		}
		require.NoError(t, a.Reconcile(context.Background(), sample(t, "reconciler-schedule.json")))
	}
	t.Fatalf("compute environment %s did not settle", id)
	return computeenv.ComputeEnv{}
}

// A function that forges IAM roles refuses to start without a permissions
// boundary to put them under; the API (which hands forging on) needs none.
func TestForgingFunctionsNeedABoundary(t *testing.T) {
	env := testenv.New(t)
	cfg, err := config.FromLookup(func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	cfg.Table, cfg.Region, cfg.Endpoint = testenv.Table, testenv.Region, env.Endpoint
	opts := app.Options{AWS: env.AWS, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.Discard}
	for name, f := range map[string]app.Feature{
		"batch forge": app.Batch(steps.NewApplier, nil, nil),
		"cloud roles": app.Cloud(nil, app.ProvisionHere),
	} {
		_, err := app.New(context.Background(), cfg, opts, f)
		require.ErrorContains(t, err, "CEFORGE_PERMISSIONS_BOUNDARY", name)
	}
	_, err = app.New(context.Background(), cfg, opts, app.Batch(nil, nil, nil), app.Cloud(nil, app.ProvisionElsewhere))
	require.NoError(t, err)
}
