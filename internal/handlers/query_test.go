package handlers_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestQueryStringsAreStrict: a malformed escape or separator is a 400 (not
// the first page), and every parameter has a length limit (an over-long
// computeEnvId used to be dropped, listing every run).
func TestQueryStringsAreStrict(t *testing.T) {
	h, _ := newHarness(t)
	long := strings.Repeat("a", 3000)
	cases := []struct{ name, path, code, field string }{
		{"malformed escape in cursor", "/runs?cursor=%zz", "invalid_query", ""},
		{"malformed escape in name", "/compute-envs?%zzstatus=x", "invalid_query", ""},
		{"semicolon separator", "/runs?limit=1;status=RUNNING", "invalid_query", ""},
		{"over-long computeEnvId", "/runs?computeEnvId=" + long, "invalid_parameter", "computeEnvId"},
		{"computeEnvId that is no id", "/runs?computeEnvId=" + strings.Repeat("x", 40), "invalid_parameter", "computeEnvId"},
		{"over-long status", "/runs?status=" + strings.Repeat("S", 100), "invalid_parameter", "status"},
		{"over-long ce status", "/compute-envs?status=" + long, "invalid_parameter", "status"},
		{"over-long cursor", "/compute-envs?cursor=" + long, "invalid_parameter", "cursor"},
		{"over-long dryRun", "/compute-envs?dryRun=" + strings.Repeat("t", 10), "invalid_parameter", "dryRun"},
		{"over-long query", "/runs?cursor=" + strings.Repeat("a", 9000), "invalid_query", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := "GET"
			if strings.Contains(tc.path, "dryRun") {
				method = "POST"
			}
			res := h.Do(t, method, tc.path, nil)
			require.Equal(t, 400, res.Status, string(res.Body))
			code, field, msg := res.Error(t)
			require.Equal(t, tc.code, code, msg)
			require.Equal(t, tc.field, field)
		})
	}
	res := h.Do(t, "GET", "/runs?computeEnvId=aaaaaaaaaaaaaa&status=RUNNING&limit=5", nil)
	require.Equal(t, 200, res.Status, "well-formed filters still work: %s", res.Body)
}
