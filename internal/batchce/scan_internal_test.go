package batchce

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScanDetailMatchesEncodingJSON(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "batch-*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	details := []string{
		`{}`, `{"tags":null,"container":null}`,
		`{"jobId":"a\"b\\c\u00e9","status":"FAILED","container":{"exitCode":null,"reason":"OOM \"killed\""},"tags":{"x":[1,{"y":"}"}],"ceforge:run-id":"r1"}}`,
		`{"attempts":[{"container":{"exitCode":3}}],"container":{"exitCode":137,"logStreamName":"a/default/b"},"propagateTags":true,"retry":false,"n":1.5e3,"startedAt":1795428045000}`,
		` { "jobId" : "j" , "tags" : { "ceforge:run-id" : "r" } } `,
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var env struct{ Detail json.RawMessage }
		require.NoError(t, json.Unmarshal(raw, &env))
		details = append(details, string(env.Detail))
	}
	for _, d := range details {
		var want, got jobDetail
		require.NoError(t, json.Unmarshal([]byte(d), &want), d)
		require.NoError(t, scanDetail([]byte(d), &got), d)
		require.Equal(t, want, got, d)
	}
	for _, bad := range []string{``, `[]`, `{"jobId":}`, `{"jobId":"x"`, `{"tags":{"a":"b"`} {
		var got jobDetail
		require.Error(t, scanDetail([]byte(bad), &got), bad)
	}
}
