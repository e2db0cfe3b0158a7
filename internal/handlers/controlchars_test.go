package handlers_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/store"
)

// TestControlCharactersRefusedInFreeText: every free-text field that reaches
// user data, job definitions or environments refuses control characters
// other than newline and tab (a bare CR ends a line for cloud-init and not
// for bash), names the field, and writes nothing. Tabs and newlines pass.
func TestControlCharactersRefusedInFreeText(t *testing.T) {
	h, _ := newHarness(t)
	res := h.Do(t, "POST", "/compute-envs", validCE("base"))
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	pipe := map[string]any{"kind": "pipeline", "computeEnvId": ce.ID, "pipeline": "nf-core/rnaseq"}
	env := func(v string) []map[string]any { return []map[string]any{{"name": "A", "value": v, "head": true}} }

	for _, bad := range []string{"\r", "\x1b[31m", "\x07", "\x7f", "\u0085", "\x0b"} {
		cases := []struct {
			path, field string
			body        map[string]any
		}{
			{"/compute-envs", "preRunScript", with(validCE("cc"), "preRunScript", "echo a"+bad+"id")},
			{"/compute-envs", "postRunScript", with(validCE("cc"), "postRunScript", "echo a"+bad)},
			{"/compute-envs", "nextflowConfig", with(validCE("cc"), "nextflowConfig", "process.cpus = 2"+bad)},
			{"/compute-envs", "environment[0].value", with(validCE("cc"), "environment", env("v"+bad))},
			{"/runs", "preRunScript", with(pipe, "preRunScript", bad+"id")},
			{"/runs", "postRunScript", with(pipe, "postRunScript", bad+"id")},
			{"/runs", "configText", with(pipe, "configText", "a = 1"+bad)},
			{"/runs", "paramsText", with(pipe, "paramsText", `{"a":"`+bad+`"}`)},
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s %s %q", tc.path, tc.field, bad), func(t *testing.T) {
				res := h.Do(t, "POST", tc.path, tc.body)
				require.Equal(t, 400, res.Status, string(res.Body))
				code, field, _ := res.Error(t)
				require.Equal(t, "invalid_field", code)
				require.Equal(t, tc.field, field)
			})
		}
	}
	require.Equal(t, 1, countRecords(t, h, store.KindCE), "nothing written")
	require.Zero(t, countRecords(t, h, store.KindRun), "nothing written")

	res = h.Do(t, "POST", "/compute-envs", with(validCE("tabs"), "preRunScript", "if true; then\n\techo ok\nfi\n", "environment", env("a\tb\nc")))
	require.Equal(t, 201, res.Status, "tabs and newlines are text: %s", res.Body)
}
