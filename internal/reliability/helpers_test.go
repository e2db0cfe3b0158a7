package reliability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	btypes "github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/faultproxy"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	region = testenv.Region
	bucket = "ceforge-work"
	prefix = "ceforge-"
)

// fixture is the wired functions on a fresh emulator, with the work bucket and
// the clients the assertions use (straight to the emulator, never through
// a fault proxy).
type fixture struct {
	*apptest.Harness
	EC2   *ec2.Client
	S3    *s3.Client
	Batch *batch.Client
}

func newFixture(tb testing.TB, mutate ...func(*config.Config)) *fixture {
	tb.Helper()
	h := apptest.New(tb, mutate...)
	return fixtureOf(tb, h)
}

// proxied is a fixture whose functions talk to the emulator through a
// fault proxy (no rules until a test sets some) with the SDK retrying up
// to attempts times.
//
// The proxy also serializes DynamoDB writes: the emulator deep-copies a
// table inside TransactWriteItems without a lock and answers a concurrent
// write with an HTML 500 ("dictionary changed size during iteration"), a
// fault of the emulator only. Reads and every other service stay concurrent.
func proxied(tb testing.TB, attempts int) (*fixture, *faultproxy.Proxy) {
	tb.Helper()
	env := testenv.New(tb)
	p, err := faultproxy.New(env.Endpoint)
	require.NoError(tb, err)
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := r.Header.Get("X-Amz-Target"); strings.HasPrefix(t, "DynamoDB_") && !strings.Contains(t, ".Get") &&
			!strings.Contains(t, ".Query") && !strings.Contains(t, ".Scan") && !strings.Contains(t, ".Describe") {
			mu.Lock()
			defer mu.Unlock()
		}
		p.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	h := apptest.NewOn(tb, env, apptest.Clients{Endpoint: srv.URL, Adjust: func(o *awsclient.Options) {
		o.MaxAttempts, o.ConnectionRetryOnly = attempts, false
	}})
	return fixtureOf(tb, h), p
}

func fixtureOf(tb testing.TB, h *apptest.Harness) *fixture {
	tb.Helper()
	// Assertions read the emulator directly, never through a proxy.
	cfg := h.AWS.Config(region)
	f := &fixture{
		Harness: h, EC2: ec2.NewFromConfig(cfg), Batch: batch.NewFromConfig(cfg),
		S3: s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
	}
	_, err := f.S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(tb, err)
	return f
}

func cloudCEBody(name string) map[string]any {
	return map[string]any{"name": name, "platform": computeenv.PlatformCloud, "region": region, "workDir": "s3://" + bucket + "/work", "cloud": map[string]any{}}
}

func batchCEBody(name string) computeenv.CreateRequest {
	return computeenv.CreateRequest{
		Name: name, Platform: computeenv.PlatformBatch, Region: region, WorkDir: "s3://" + bucket + "/work",
		Batch: &computeenv.BatchOptions{Forge: &computeenv.ForgeOptions{Type: "SPOT", MaxCpus: 64}},
	}
}

// createCE creates a CE through the API and advances it as the reconciler
// would until it is stable; it must end AVAILABLE.
func (f *fixture) createCE(tb testing.TB, body any) computeenv.ComputeEnv {
	tb.Helper()
	res := f.Do(tb, http.MethodPost, "/compute-envs", body)
	require.Equal(tb, http.StatusCreated, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(tb, &ce)
	got := f.settle(tb, ce.ID)
	require.Equal(tb, computeenv.StatusAvailable, got.Status, got.StatusReason)
	return got
}

func (f *fixture) settle(tb testing.TB, id string) computeenv.ComputeEnv {
	tb.Helper()
	ctx := context.Background()
	for i := 0; i < 15; i++ {
		ce, err := f.Reconciler.ComputeEnvs.Get(ctx, id)
		require.NoError(tb, err)
		if ce.Stable() {
			return *ce
		}
		_ = f.Reconciler.ComputeEnvs.Advance(ctx, id) // errors are the reconciler's to retry
	}
	ce, err := f.Reconciler.ComputeEnvs.Get(ctx, id)
	require.NoError(tb, err)
	tb.Fatalf("compute environment %s did not settle: %s %s", id, ce.Status, ce.StatusReason)
	return computeenv.ComputeEnv{}
}

func pipelineReq(ceID string) run.LaunchRequest {
	return run.LaunchRequest{Kind: run.KindPipeline, LaunchSettings: run.LaunchSettings{ComputeEnvID: ceID, Pipeline: "https://github.com/nf-core/rnaseq", Revision: "3.14.0"}}
}

// call sends one request to h as apptest.Caller; safe from goroutines
// (errors instead of t.Fatal).
func call(h http.Handler, method, path string, body any, headers ...string) (int, []byte, error) {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	var req *http.Request
	if rd != nil {
		req = httptest.NewRequest(method, path, rd)
		req.Header.Set("Content-Type", "application/json")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	req = req.WithContext(api.WithIdentity(req.Context(), apptest.Caller))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes(), nil
}

// launchMany launches n runs on the CEs (round robin) with workers in
// parallel and returns them in order.
func launchMany(h http.Handler, ceIDs []string, n, workers int) ([]run.Run, error) {
	out := make([]run.Run, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				status, body, err := call(h, http.MethodPost, "/runs", pipelineReq(ceIDs[i%len(ceIDs)]))
				if err == nil && status != http.StatusCreated {
					err = fmt.Errorf("launch %d: HTTP %d: %s", i, status, body)
				}
				if err == nil {
					err = json.Unmarshal(body, &out[i])
				}
				if err == nil && (out[i].Backend == nil || out[i].Status != run.StatusSubmitted) {
					err = fmt.Errorf("launch %d: not started: %s", i, body)
				}
				errs[i] = err
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// getRun reads a run through the API.
func (f *fixture) getRun(tb testing.TB, id string) run.Run {
	tb.Helper()
	res := f.Do(tb, http.MethodGet, "/runs/"+id, nil)
	require.Equal(tb, http.StatusOK, res.Status, string(res.Body))
	var r run.Run
	res.JSON(tb, &r)
	return r
}

// allRuns lists every run of a CE from the store (all statuses).
func (f *fixture) allRuns(tb testing.TB, ceID string) []run.Run {
	tb.Helper()
	var out []run.Run
	q := run.ListQuery{ComputeEnvID: ceID, Limit: 100}
	for {
		page, next, err := f.API.Runs.List(context.Background(), q)
		require.NoError(tb, err)
		out = append(out, page...)
		if next == "" {
			return out
		}
		q.Cursor = next
	}
}

func timeEq(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// userQueues creates a user's own Batch queues (named without ceforge's
// prefix, as a manual-mode CE uses them) on an unmanaged compute environment.
func (f *fixture) userQueues(tb testing.TB, name string) (head, work string) {
	tb.Helper()
	ctx := context.Background()
	role, err := iam.NewFromConfig(f.AWS.Config(region)).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name + "-batch"),
		AssumeRolePolicyDocument: aws.String(forge.TrustPolicy("batch.amazonaws.com"))})
	require.NoError(tb, err)
	c, err := f.Batch.CreateComputeEnvironment(ctx, &batch.CreateComputeEnvironmentInput{
		ComputeEnvironmentName: aws.String(name), Type: btypes.CETypeUnmanaged, ServiceRole: role.Role.Arn,
	})
	require.NoError(tb, err)
	head, work = name+"-head", name+"-work"
	for _, q := range []string{head, work} {
		_, err := f.Batch.CreateJobQueue(ctx, &batch.CreateJobQueueInput{JobQueueName: aws.String(q), Priority: aws.Int32(1), State: btypes.JQStateEnabled,
			ComputeEnvironmentOrder: []btypes.ComputeEnvironmentOrder{{Order: aws.Int32(1), ComputeEnvironment: c.ComputeEnvironmentArn}}})
		require.NoError(tb, err)
	}
	return head, work
}
