package batchce_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/shellstub"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) {
	// The head-script tests run this binary as their `aws` command.
	if ok, code := shellstub.FakeAWSCLI(); ok {
		os.Exit(code)
	}
	os.Exit(testenv.Main(m))
}

const (
	region = testenv.Region
	bucket = "ceforge-work"
)

// newHarness is a wired app with the work bucket in the test region.
func newHarness(t testing.TB) *apptest.Harness {
	t.Helper()
	h := apptest.New(t)
	makeBucket(t, h, bucket, region)
	return h
}

func makeBucket(t testing.TB, h *apptest.Harness, name, in string) {
	t.Helper()
	client := s3.NewFromConfig(h.AWS.Config(in), func(o *s3.Options) { o.UsePathStyle = true })
	req := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if in != "us-east-1" {
		req.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(in)}
	}
	_, err := client.CreateBucket(context.Background(), req)
	require.NoError(t, err)
}

// forgeBody is a valid forge request; mutate adjusts it.
func forgeBody(name string, mutate ...func(b *computeenv.BatchOptions, f *computeenv.ForgeOptions)) computeenv.CreateRequest {
	f := &computeenv.ForgeOptions{Type: "SPOT", MaxCpus: 64}
	b := &computeenv.BatchOptions{Forge: f}
	for _, m := range mutate {
		m(b, f)
	}
	return computeenv.CreateRequest{
		Name: name, Platform: computeenv.PlatformBatch, Region: region, WorkDir: "s3://" + bucket + "/work",
		Labels: map[string]string{"team": "genomics"}, Batch: b,
		Environment: []computeenv.EnvVar{{Name: "HEAD_ONLY", Value: "1", Head: true}, {Name: "TASKS", Value: "2", Compute: true}},
	}
}

func fusion(b *computeenv.BatchOptions, _ *computeenv.ForgeOptions) {
	b.WaveEnabled, b.Fusion2Enabled = true, true
}

// createCE creates a CE through the API and advances it (as the reconciler
// would) until it is stable.
func createCE(t testing.TB, h *apptest.Harness, req computeenv.CreateRequest) computeenv.ComputeEnv {
	t.Helper()
	res := h.Do(t, "POST", "/compute-envs", req)
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	return settle(t, h, ce.ID)
}

func settle(t testing.TB, h *apptest.Harness, id string) computeenv.ComputeEnv {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		ce, err := h.Reconciler.ComputeEnvs.Get(ctx, id)
		require.NoError(t, err)
		if ce.Stable() {
			return *ce
		}
		require.NoError(t, h.Reconciler.ComputeEnvs.Advance(ctx, id))
	}
	t.Fatalf("compute environment %s did not settle", id)
	return computeenv.ComputeEnv{}
}

func getRun(t testing.TB, h *apptest.Harness, id string) run.Run {
	t.Helper()
	res := h.Do(t, "GET", "/runs/"+id, nil)
	require.Equal(t, 200, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	return r
}

func launch(t testing.TB, h *apptest.Harness, ceID string, extra ...func(*run.LaunchRequest)) run.Run {
	t.Helper()
	req := run.LaunchRequest{Kind: run.KindPipeline, LaunchSettings: run.LaunchSettings{
		ComputeEnvID: ceID, Pipeline: "nf-core/rnaseq", Revision: "3.14.0",
		ConfigProfiles: []string{"test", "docker"}, ParamsText: `{"outdir": "s3://ceforge-work/results"}`,
		ConfigText: "process.cpus = 2", PreRunScript: "echo pre", PostRunScript: "echo post", Labels: map[string]string{"project": "p1"},
	}}
	for _, e := range extra {
		e(&req)
	}
	res := h.Do(t, "POST", "/runs", req)
	require.Equal(t, 201, res.Status, string(res.Body))
	var r run.Run
	res.JSON(t, &r)
	return r
}

// sample loads events/<name>.json and points it at a job of a run.
func sample(t testing.TB, name, runID, jobID string, head bool, prefix string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", name+".json"))
	require.NoError(t, err)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(raw, &ev))
	d := ev["detail"].(map[string]any)
	d["jobId"] = jobID
	d["jobArn"] = "arn:aws:batch:us-east-1:123456789012:job/" + jobID
	ev["resources"] = []any{d["jobArn"]}
	d["tags"].(map[string]any)["ceforge:run-id"] = runID
	if head {
		d["jobName"] = prefix + "head-" + runID
	}
	return ev
}

var msgSeq int

func messages(t testing.TB, evs ...map[string]any) []eventsrc.Message {
	t.Helper()
	out := make([]eventsrc.Message, len(evs))
	for i, e := range evs {
		b, err := json.Marshal(e)
		require.NoError(t, err)
		msgSeq++
		out[i] = eventsrc.Message{ID: fmt.Sprintf("m-%d", msgSeq), Body: string(b)}
	}
	return out
}

func at(ev map[string]any, ts time.Time) map[string]any {
	ev["time"] = ts.UTC().Format(time.RFC3339)
	return ev
}

// foreign is a job event of someone else's queue, without ceforge tags.
func foreign(t testing.TB) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "batch-foreign-running.json"))
	require.NoError(t, err)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(raw, &ev))
	return ev
}
