package metrics

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPutWritesEMF(t *testing.T) {
	var buf bytes.Buffer
	e := New(&buf)
	e.Put(TimeToRunning, 42, Milliseconds, map[string]string{"Platform": "aws-cloud"})

	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	require.EqualValues(t, 42, rec[TimeToRunning])
	require.Equal(t, "aws-cloud", rec["Platform"])
	aws := rec["_aws"].(map[string]any)
	cw := aws["CloudWatchMetrics"].([]any)[0].(map[string]any)
	require.Equal(t, Namespace, cw["Namespace"])
	require.Equal(t, []any{[]any{"Platform"}}, cw["Dimensions"])
	require.Equal(t, TimeToRunning, cw["Metrics"].([]any)[0].(map[string]any)["Name"])
}
