package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRouter measures the router's own overhead per request: request
// id, identity check, logging, dispatch and a JSON response.
func BenchmarkRouter(b *testing.B) {
	rt := NewRouter(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	rt.Handle("GET", "/runs/{id}", func(w http.ResponseWriter, r *http.Request) error {
		return WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	})
	rt.Handle("GET", "/compute-envs/{id}", func(w http.ResponseWriter, r *http.Request) error { return nil })
	req := httptest.NewRequest("GET", "/runs/abc123", nil)
	req = req.WithContext(WithIdentity(req.Context(), "arn:aws:iam::1:user/u"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
