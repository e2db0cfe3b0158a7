package handlers_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/computeenv"
)

// TestLaunchValuesThatReadAsOptions: pipeline, revision and profile values
// reach `nextflow run` as arguments; one starting with '-' would read as an
// option, so each is a 400 naming the field.
func TestLaunchValuesThatReadAsOptions(t *testing.T) {
	h, _ := newHarness(t)
	res := h.Do(t, "POST", "/compute-envs", validCE("opts"))
	require.Equal(t, 201, res.Status, string(res.Body))
	var ce computeenv.ComputeEnv
	res.JSON(t, &ce)
	pipe := map[string]any{"kind": "pipeline", "computeEnvId": ce.ID, "pipeline": "nf-core/rnaseq"}
	for _, tc := range []struct {
		name, field string
		body        map[string]any
	}{
		{"pipeline shorthand starting with -", "pipeline", with(pipe, "pipeline", "-with-trace/x")},
		{"pipeline shorthand starting with --", "pipeline", with(pipe, "pipeline", "--dump-hashes/y")},
		{"revision starting with -", "revision", with(pipe, "revision", "-resume")},
		{"profile starting with -", "configProfiles[1]", with(pipe, "configProfiles", []string{"test", "-with-dag"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.Do(t, "POST", "/runs", tc.body)
			require.Equal(t, 400, res.Status, string(res.Body))
			code, field, msg := res.Error(t)
			require.Equal(t, "invalid_field", code)
			require.Equal(t, tc.field, field)
			require.Contains(t, msg, "'-'")
		})
	}
}
