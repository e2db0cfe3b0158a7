package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/handlers"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// instantProvisioner is a stand-in platform for testing the common CE path
// (names, records, lifecycle) without any AWS resource.
type instantProvisioner struct{ advanced int }

func (p *instantProvisioner) Prepare(context.Context, *computeenv.ComputeEnv) ([]string, error) {
	return []string{"stand-in platform"}, nil
}

func (p *instantProvisioner) Plan(context.Context, *computeenv.ComputeEnv) (computeenv.Plan, error) {
	return computeenv.Plan{Resources: []computeenv.PlannedResource{{Action: "create", Type: "nothing", Name: "n"}}}, nil
}

func (p *instantProvisioner) Advance(_ context.Context, ce *computeenv.ComputeEnv) error {
	p.advanced++
	switch ce.Status {
	case computeenv.StatusCreating:
		ce.Status = computeenv.StatusAvailable
	case computeenv.StatusDeleting:
		ce.Status = computeenv.StatusDeleted
	}
	return nil
}

const testPlatform = computeenv.PlatformCloud

func newHarness(t testing.TB) (*apptest.Harness, *instantProvisioner) {
	h := apptest.New(t, func(c *config.Config) { c.AllowedRegions = []string{"eu-west-1", "us-east-1"} })
	p := &instantProvisioner{}
	h.API.ComputeEnvs.Provisioners = map[string]computeenv.Provisioner{testPlatform: p}
	h.API.Runs.Launchers = map[string]run.Launcher{} // platforms are tested in their own packages
	return h, p
}

func validCE(name string) map[string]any {
	return map[string]any{"name": name, "platform": testPlatform, "region": "eu-west-1", "workDir": "s3://ceforge-my-bucket/work"}
}

func with(base map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func countRecords(t *testing.T, h *apptest.Harness, kind store.Kind) int {
	t.Helper()
	page, err := h.Store.List(context.Background(), store.Query{Kind: kind, Limit: 100})
	require.NoError(t, err)
	return len(page.Items)
}

func TestComputeEnvBadRequestsWriteNothing(t *testing.T) {
	h, _ := newHarness(t)
	require.Equal(t, 201, h.Do(t, "POST", "/compute-envs", validCE("taken")).Status)
	before := countRecords(t, h, store.KindCE)

	cases := []struct {
		name   string
		body   any
		query  string
		status int
		code   string
		field  string
	}{
		{"malformed json", `{"name":`, "", 400, "malformed_json", ""},
		{"unknown field", with(validCE("a"), "status", "AVAILABLE"), "", 400, "unknown_field", "status"},
		{"missing name", with(validCE(""), "name", nil), "", 400, "missing_field", "name"},
		{"bad name", validCE("no spaces please"), "", 400, "invalid_field", "name"},
		{"long name", validCE(strings.Repeat("a", 101)), "", 400, "invalid_field", "name"},
		{"missing platform", with(validCE("a"), "platform", nil), "", 400, "missing_field", "platform"},
		{"bad platform", with(validCE("a"), "platform", "gcp"), "", 400, "invalid_field", "platform"},
		{"bad region", with(validCE("a"), "region", "moon-1"), "", 400, "invalid_field", "region"},
		{"region not allowed", with(validCE("a"), "region", "ap-south-1"), "", 400, "invalid_field", "region"},
		{"missing work dir", with(validCE("a"), "workDir", nil), "", 400, "missing_field", "workDir"},
		{"work dir not s3", with(validCE("a"), "workDir", "/tmp/work"), "", 400, "invalid_field", "workDir"},
		{"work dir bad bucket", with(validCE("a"), "workDir", "s3://UPPER/x"), "", 400, "invalid_field", "workDir"},
		{"work dir traversal", with(validCE("a"), "workDir", "s3://bucket/a/../b"), "", 400, "invalid_field", "workDir"},
		{"role and external id", with(validCE("a"), "credentials", map[string]any{"roleArn": "arn:aws:iam::111122223333:role/ceforge-member", "externalId": "x1"}), "", 400, "credentials_not_accepted", "credentials"},
		{"unknown credentials", with(validCE("a"), "credentialsId", "abcdefghijklmn"), "", 400, "invalid_field", "credentialsId"},
		{"malformed credentials id", with(validCE("a"), "credentialsId", "../x"), "", 400, "invalid_field", "credentialsId"},
		{"reserved label", with(validCE("a"), "labels", map[string]string{"ceforge:managed": "false"}), "", 400, "invalid_field", "labels"},
		{"bad env name", with(validCE("a"), "environment", []map[string]any{{"name": "1X", "value": "v", "head": true}}), "", 400, "invalid_field", "environment[0].name"},
		{"wrong platform block", with(validCE("a"), "batch", map[string]any{}), "", 400, "invalid_field", "batch"},
		{"wrong type", with(validCE("a"), "labels", "x"), "", 400, "invalid_type", "labels"},
		{"script too big", with(validCE("a"), "preRunScript", strings.Repeat("x", computeenv.MaxScriptBytes+1)), "", 400, "invalid_field", "preRunScript"},
		{"oversized body", with(validCE("a"), "nextflowConfig", strings.Repeat("x", 300<<10)), "", 413, "body_too_large", ""},
		{"duplicate name", validCE("taken"), "", 409, "name_taken", "name"},
		{"unknown query parameter", validCE("a"), "?dry=true", 400, "unknown_parameter", "dry"},
		{"bad dryRun", validCE("a"), "?dryRun=maybe", 400, "invalid_parameter", "dryRun"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.Do(t, "POST", "/compute-envs"+tc.query, tc.body)
			require.Equal(t, tc.status, res.Status, string(res.Body))
			code, field, msg := res.Error(t)
			require.Equal(t, tc.code, code)
			require.Equal(t, tc.field, field)
			require.NotEmpty(t, msg)
		})
	}
	require.Equal(t, before, countRecords(t, h, store.KindCE), "bad requests must write nothing")
}

func TestComputeEnvLifecycle(t *testing.T) {
	h, p := newHarness(t)

	res := h.Do(t, "POST", "/compute-envs?dryRun=true", validCE("dry"))
	require.Equal(t, 200, res.Status, string(res.Body))
	require.Contains(t, string(res.Body), `"plan"`)
	require.Equal(t, 0, countRecords(t, h, store.KindCE), "a dry run writes nothing")

	res = h.Do(t, "POST", "/compute-envs", with(validCE("alpha"), "labels", map[string]string{"team": "genomics"}))
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	require.Equal(t, computeenv.StatusAvailable, ce.Status)
	require.Equal(t, apptest.Caller, ce.CreatedBy)
	require.Equal(t, []string{"stand-in platform"}, ce.Warnings)
	require.Equal(t, "/compute-envs/"+ce.ID, res.Header.Get("Location"))

	res = h.Do(t, "GET", "/compute-envs/"+ce.ID, nil)
	require.Equal(t, 200, res.Status)
	var got computeenv.ComputeEnv
	res.JSON(t, &got)
	require.Equal(t, ce.ID, got.ID)
	require.Equal(t, "genomics", got.Labels["team"])

	require.Equal(t, 404, h.Do(t, "GET", "/compute-envs/doesnotexist00", nil).Status)
	require.Equal(t, 404, h.Do(t, "GET", "/compute-envs/..%2f..%2fetc", nil).Status)

	for i := 0; i < 4; i++ {
		require.Equal(t, 201, h.Do(t, "POST", "/compute-envs", validCE("more-"+string(rune('a'+i)))).Status)
	}
	var seen []string
	cursor := ""
	for {
		res = h.Do(t, "GET", "/compute-envs?limit=2"+cursor, nil)
		require.Equal(t, 200, res.Status, string(res.Body))
		var page struct {
			Items      []computeenv.ComputeEnv
			NextCursor string
		}
		res.JSON(t, &page)
		for _, c := range page.Items {
			seen = append(seen, c.Name)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + page.NextCursor
	}
	sort.Strings(seen)
	require.Equal(t, []string{"alpha", "more-a", "more-b", "more-c", "more-d"}, seen)
	require.Equal(t, 400, h.Do(t, "GET", "/compute-envs?cursor=garbage", nil).Status)
	require.Equal(t, 400, h.Do(t, "GET", "/compute-envs?limit=1000", nil).Status)
	require.Equal(t, 400, h.Do(t, "GET", "/compute-envs?status=READY", nil).Status)
	require.Equal(t, 200, h.Do(t, "GET", "/compute-envs?status=AVAILABLE", nil).Status)

	// Active runs block a delete unless forced.
	now := time.Now()
	r := run.Run{ID: "activerun00001", Kind: run.KindPipeline, ComputeEnvID: ce.ID, Platform: testPlatform, Status: run.StatusRunning, CreatedAt: now, Timeline: run.Timeline{Submitted: &now}}
	require.NoError(t, h.Store.Create(context.Background(), store.KindRun, r.ID, r, store.WithStatusRank(run.Rank(r.Status))))
	res = h.Do(t, "DELETE", "/compute-envs/"+ce.ID, nil)
	require.Equal(t, 409, res.Status, string(res.Body))
	code, _, _ := res.Error(t)
	require.Equal(t, "active_runs", code)

	res = h.Do(t, "DELETE", "/compute-envs/"+ce.ID+"?force=true", nil)
	require.Equal(t, 202, res.Status, string(res.Body))
	res.JSON(t, &got)
	require.Equal(t, computeenv.StatusDeleted, got.Status)
	require.NotNil(t, got.DeletedAt)
	var cancelled run.Run
	_, err := h.Store.Get(context.Background(), store.KindRun, r.ID, &cancelled)
	require.NoError(t, err)
	require.Equal(t, run.StatusCancelled, cancelled.Status, "force cancels runs first")

	// The name is free again once deleted.
	require.Equal(t, 201, h.Do(t, "POST", "/compute-envs", validCE("alpha")).Status)
	require.Greater(t, p.advanced, 0)
}

func TestCreateAnswers501UntilPlatformExists(t *testing.T) {
	h, _ := newHarness(t)
	h.API.ComputeEnvs.Provisioners = nil
	res := h.Do(t, "POST", "/compute-envs", validCE("later"))
	require.Equal(t, http.StatusNotImplemented, res.Status)
	code, _, msg := res.Error(t)
	require.Equal(t, "not_implemented", code)
	require.Contains(t, msg, testPlatform)
	require.Equal(t, 0, countRecords(t, h, store.KindCE))
}

func TestRunRequestsValidated(t *testing.T) {
	h, _ := newHarness(t)
	res := h.Do(t, "POST", "/compute-envs", validCE("runs"))
	require.Equal(t, 201, res.Status)
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	pipeline := map[string]any{"kind": "pipeline", "computeEnvId": ce.ID, "pipeline": "https://github.com/nf-core/rnaseq"}
	cases := []struct {
		name   string
		body   any
		header []string
		status int
		field  string
	}{
		{"missing kind", with(pipeline, "kind", nil), nil, 400, "kind"},
		{"bad kind", with(pipeline, "kind", "job"), nil, 400, "kind"},
		{"missing ce", with(pipeline, "computeEnvId", nil), nil, 400, "computeEnvId"},
		{"unknown ce", with(pipeline, "computeEnvId", "zzzzzzzzzzzzzz"), nil, 400, "computeEnvId"},
		{"missing pipeline", with(pipeline, "pipeline", nil), nil, 400, "pipeline"},
		{"pipeline injection", with(pipeline, "pipeline", "https://x.org/a;rm -rf /"), nil, 400, "pipeline"},
		{"bad revision", with(pipeline, "revision", "../../x"), nil, 400, "revision"},
		{"bad profile", with(pipeline, "configProfiles", []string{"ok", "$(reboot)"}), nil, 400, "configProfiles[1]"},
		{"params not an object", with(pipeline, "paramsText", "[1,2"), nil, 400, "paramsText"},
		{"studio without image", map[string]any{"kind": "studio", "computeEnvId": ce.ID, "studio": map[string]any{"port": 8888}}, nil, 400, "studio.image"},
		{"bad idempotency key", pipeline, []string{"Idempotency-Key", strings.Repeat("k", 200)}, 400, "Idempotency-Key"},
		{"platform without launcher", pipeline, nil, 501, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.Do(t, "POST", "/runs", tc.body, tc.header...)
			require.Equal(t, tc.status, res.Status, string(res.Body))
			_, field, _ := res.Error(t)
			require.Equal(t, tc.field, field)
		})
	}
	require.Equal(t, 0, countRecords(t, h, store.KindRun), "bad launches must write nothing")
	require.Equal(t, 400, h.Do(t, "GET", "/runs?status=DONE", nil).Status)
	require.Equal(t, 404, h.Do(t, "GET", "/runs/nope", nil).Status)
}

// TestOpenAPIDocumentMatchesRoutes checks the document is valid OpenAPI 3.1
// and that every routed path is documented and vice versa.
func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	h, _ := newHarness(t)
	res := h.Do(t, "GET", "/openapi.json", nil)
	require.Equal(t, 200, res.Status)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	res.JSON(t, &doc)
	require.Equal(t, "3.1.0", doc.OpenAPI)

	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	routed := map[string]bool{}
	for _, r := range h.Routes() { // the api function's and the trace function's
		routed[r.Method+" "+r.Path] = true
	}
	require.Equal(t, keys(routed), keys(documented), "routes and OpenAPI paths differ")

	validator, err := exec.LookPath("openapi-spec-validator")
	require.NoError(t, err, "openapi-spec-validator not on PATH: run make test (scripts/tools.sh installs it)")
	file := filepath.Join(t.TempDir(), "openapi.json")
	require.NoError(t, os.WriteFile(file, handlers.OpenAPIDocument(), 0o600))
	out, err := exec.Command(validator, file).CombinedOutput()
	require.NoError(t, err, string(out))
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
