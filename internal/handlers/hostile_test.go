package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/store"
)

// TestHostileRequestsAreRefusedAndWriteNothing sends requests an attacker or
// a broken client would: wrong types, huge values, bad encodings, path
// traversal, injection attempts, oversized lists. Each must get a 4xx with
// an error code and leave the table as it was.
func TestHostileRequestsAreRefusedAndWriteNothing(t *testing.T) {
	h, _ := newHarness(t)
	res := h.Do(t, "POST", "/compute-envs", validCE("base"))
	require.Equal(t, 201, res.Status)
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	pipe := map[string]any{"kind": "pipeline", "computeEnvId": ce.ID, "pipeline": "nf-core/rnaseq"}
	many := func(n int, f func(i int) any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	manyLabels := map[string]string{}
	for i := 0; i < 30; i++ {
		manyLabels[fmt.Sprintf("k%d", i)] = "v"
	}
	type req struct {
		name, method, path string
		body               any
		headers            []string
	}
	ceReq := func(name string, kv ...any) req {
		return req{name, "POST", "/compute-envs", with(validCE("hostile"), kv...), nil}
	}
	runReq := func(name string, kv ...any) req { return req{name, "POST", "/runs", with(pipe, kv...), nil} }
	cases := []req{
		// types
		ceReq("name as number", "name", 42),
		ceReq("name as object", "name", map[string]any{"$ne": ""}),
		ceReq("labels as list", "labels", []string{"a"}),
		ceReq("environment as object", "environment", map[string]any{"name": "X"}),
		ceReq("credentials as string", "credentials", "arn:aws:iam::1:role/x"),
		ceReq("cloud as list", "platform", "aws-cloud", "cloud", []int{1}),
		runReq("headJobCpus as string", "headJobCpus", "2"),
		runReq("headJobCpus negative", "headJobCpus", -1),
		runReq("headJobCpus float", "headJobCpus", 1.5),
		runReq("headJobMemoryMb huge", "headJobMemoryMb", 1<<40),
		runReq("configProfiles as string", "configProfiles", "test"),
		runReq("studio port out of range", "kind", "studio", "pipeline", nil, "studio", map[string]any{"image": "jupyter/base", "port": 70000}),
		// sizes
		ceReq("name 10k", "name", strings.Repeat("n", 10000)),
		ceReq("workDir 2k", "workDir", "s3://bucket/"+strings.Repeat("w", 2000)),
		ceReq("postRunScript too big", "postRunScript", strings.Repeat("#", computeenv.MaxScriptBytes+1)),
		ceReq("env value too big", "environment", []map[string]any{{"name": "A", "value": strings.Repeat("v", 5000), "head": true}}),
		ceReq("label value too long", "labels", map[string]string{"k": strings.Repeat("v", 300)}),
		ceReq("label key too long", "labels", map[string]string{strings.Repeat("k", 200): "v"}),
		runReq("paramsText too big", "paramsText", `{"a":"`+strings.Repeat("x", 70<<10)+`"}`),
		runReq("runName too long", "runName", strings.Repeat("r", 81)),
		{"body over 256 KiB", "POST", "/compute-envs", `{"name":"` + strings.Repeat("x", 300<<10) + `"}`, nil},
		// oversized lists
		ceReq("too many labels", "labels", manyLabels),
		ceReq("too many env vars", "environment", many(101, func(i int) any { return map[string]any{"name": fmt.Sprintf("V%d", i), "value": "x", "head": true} })),
		runReq("too many profiles", "configProfiles", many(21, func(i int) any { return fmt.Sprintf("p%d", i) })),
		// encodings
		{"invalid UTF-8 name", "POST", "/compute-envs", "{\"name\":\"\xff\xfe\",\"platform\":\"aws-cloud\",\"region\":\"eu-west-1\",\"workDir\":\"s3://bucket/w\"}", nil},
		{"NUL in name", "POST", "/compute-envs", `{"name":"a\u0000b","platform":"aws-cloud","region":"eu-west-1","workDir":"s3://bucket/w"}`, nil},
		ceReq("NUL in script", "preRunScript", "echo hi\x00rm -rf /"),
		{"form encoded", "POST", "/compute-envs", "name=x&platform=aws-cloud", []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"xml body", "POST", "/compute-envs", "<ce><name>x</name></ce>", []string{"Content-Type", "application/xml"}},
		{"utf-16 json", "POST", "/compute-envs", "\xff\xfe{\x00}\x00", nil},
		{"json with comments", "POST", "/compute-envs", `{"name":"x" /* hi */}`, nil},
		{"duplicate json documents", "POST", "/compute-envs", `{"name":"a"} {"name":"b"}`, nil},
		{"empty body", "POST", "/compute-envs", "", nil},
		{"null body", "POST", "/compute-envs", "null", nil},
		// path traversal in work dirs
		ceReq("workDir dot-dot", "workDir", "s3://bucket/../../other-bucket"),
		ceReq("workDir dot segment", "workDir", "s3://bucket/./x"),
		ceReq("workDir backslash", "workDir", `s3://bucket/a\..\b`),
		ceReq("workDir newline", "workDir", "s3://bucket/a\nb"),
		ceReq("workDir file scheme", "workDir", "file:///etc/passwd"),
		ceReq("workDir absolute path without fs", "workDir", "/etc"),
		ceReq("workDir bucket with dots only", "workDir", "s3://../x"),
		runReq("run workDir traversal", "workDir", "s3://bucket/run/../../x"),
		runReq("run workDir other scheme", "workDir", "gs://bucket/x"),
		// injection in names and values that reach AWS names or shell
		ceReq("name with shell", "name", "ce;rm -rf /"),
		ceReq("name with subshell", "name", "$(reboot)"),
		ceReq("name with path", "name", "../../admin"),
		ceReq("env name with equals", "environment", []map[string]any{{"name": "A=B", "value": "x", "head": true}}),
		ceReq("env name with shell", "environment", []map[string]any{{"name": "A;id", "value": "x", "head": true}}),
		ceReq("label key with shell", "labels", map[string]string{"a;b": "c"}),
		ceReq("label value with quote", "labels", map[string]string{"a": "b'c"}),
		ceReq("role arn injection", "credentials", map[string]any{"roleArn": "arn:aws:iam::123456789012:role/x\"}", "externalId": "e"}),
		ceReq("external id with space", "credentials", map[string]any{"roleArn": "arn:aws:iam::123456789012:role/x", "externalId": "a b"}),
		runReq("pipeline with backtick", "pipeline", "https://github.com/a/`id`"),
		runReq("pipeline with option", "pipeline", "-with-trace"),
		runReq("revision with option", "revision", "--upload"),
		runReq("profile with comma", "configProfiles", []string{"a,b"}),
		runReq("runName with shell", "runName", "r$(id)"),
		runReq("studio image with shell", "kind", "studio", "pipeline", nil, "studio", map[string]any{"image": "img;reboot"}),
		runReq("reserved run label", "labels", map[string]string{"ceforge:run-id": "other"}),
		{"idempotency key with newline", "POST", "/runs", pipe, []string{"Idempotency-Key", "a\nb"}},
		// unknown fields, ids and parameters
		ceReq("unknown field id", "id", "chosen-id"),
		ceReq("unknown field createdBy", "createdBy", "someone-else"),
		runReq("unknown field status", "status", "SUCCEEDED"),
		{"unknown query", "GET", "/runs?$where=1", nil, nil},
		{"repeated query", "GET", "/runs?limit=1&limit=2", nil, nil},
		{"limit zero", "GET", "/runs?limit=0", nil, nil},
		{"cursor forged", "GET", "/runs?cursor=eyJwayI6IkNFI3gifQ", nil, nil},
		{"run id traversal", "GET", "/runs/..%2F..%2Fcompute-envs", nil, nil},
		{"cancel unknown run", "POST", "/runs/aaaaaaaaaaaaaa/cancel", nil, nil},
		{"delete unknown ce", "DELETE", "/compute-envs/aaaaaaaaaaaaaa", nil, nil},
		{"wrong method", "PUT", "/compute-envs", validCE("x"), nil},
	}
	require.GreaterOrEqual(t, len(cases), 50)

	snapshot := func() (int, int) { return countRecords(t, h, store.KindCE), countRecords(t, h, store.KindRun) }
	ces, runs := snapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.Do(t, tc.method, tc.path, tc.body, tc.headers...)
			require.GreaterOrEqual(t, res.Status, 400, string(res.Body))
			require.Less(t, res.Status, 500, string(res.Body))
			code, _, msg := res.Error(t)
			require.NotEmpty(t, code)
			require.NotEmpty(t, msg)
		})
	}
	c2, r2 := snapshot()
	require.Equal(t, ces, c2, "no compute environment written")
	require.Equal(t, runs, r2, "no run written")
	_, err := h.Store.GetRef(context.Background(), store.KindCEName, "hostile")
	require.ErrorIs(t, err, store.ErrNotFound)
}
