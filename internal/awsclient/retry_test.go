package awsclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"
)

// TestConnectionRetryOnly drives a real SDK client against a server that
// drops connections or fails: a dropped connection is retried once, an
// HTTP 500 (the emulator's "not implemented") is not retried at all.
func TestConnectionRetryOnly(t *testing.T) {
	cases := []struct {
		name      string
		fail      func(w http.ResponseWriter, attempt int32) bool // true: this attempt failed
		wantCalls int32
		wantErr   bool
	}{
		{name: "dropped connection is retried once", fail: dropFirst(1), wantCalls: 2},
		{name: "a second drop fails the call", fail: dropFirst(2), wantCalls: 2, wantErr: true},
		{name: "HTTP 500 is not retried", fail: func(w http.ResponseWriter, _ int32) bool {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"__type":"InternalServerError","message":"not implemented"}`))
			return true
		}, wantCalls: 1, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.fail(w, calls.Add(1)) {
					return
				}
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				_, _ = w.Write([]byte(`{"TableNames":["t"]}`))
			}))
			defer srv.Close()
			f, err := New(context.Background(), Options{Region: "us-east-1", Endpoint: srv.URL, MaxAttempts: 1, ConnectionRetryOnly: true})
			require.NoError(t, err)
			out, err := dynamodb.NewFromConfig(f.Config("")).ListTables(context.Background(), &dynamodb.ListTablesInput{})
			require.Equal(t, tc.wantCalls, calls.Load())
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, []string{"t"}, out.TableNames)
		})
	}
}

// dropFirst closes the connection without an answer for the first n attempts.
func dropFirst(n int32) func(http.ResponseWriter, int32) bool {
	return func(w http.ResponseWriter, attempt int32) bool {
		if attempt > n {
			return false
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return true
	}
}
