package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ceforge/ceforge/internal/apierr"
)

// FuzzDecode feeds arbitrary bodies to the strict decoder: it must never
// panic, and every rejection must be a caller error (4xx) with a code.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"name":"a","items":["x"],"n":1}`, `{"name":`, `{}{}`, `[]`, `{"evil":1}`, "\x00", `{"n":1e999}`, `{"items":[` + strings.Repeat(`"x",`, 100) + `"y"]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/x", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		var v struct {
			Name  string   `json:"name"`
			Items []string `json:"items"`
			N     int      `json:"n"`
		}
		err := Decode(httptest.NewRecorder(), req, &v)
		if err == nil {
			return
		}
		e, ok := apierr.As(err)
		if !ok {
			t.Fatalf("decode error is not a caller error: %v", err)
		}
		if e.Status < 400 || e.Status >= 500 || e.Code == "" || e.Message == "" {
			t.Fatalf("bad error %+v", e)
		}
	})
}

// FuzzRouter sends arbitrary methods and paths through the router: it must
// answer every one without a 5xx.
func FuzzRouter(f *testing.F) {
	rt := NewRouter(nil)
	rt.Handle("GET", "/runs/{id}", func(w http.ResponseWriter, r *http.Request) error {
		return apierr.NotFound("run %q not found", r.PathValue("id"))
	})
	for _, s := range []string{"/runs/x", "/runs/../../etc/passwd", "/%2e%2e/", "/runs/%00", "//runs//x"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		req, err := http.NewRequest(method, "http://h"+path, nil)
		if err != nil {
			return
		}
		req = req.WithContext(WithIdentity(req.Context(), "u"))
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q answered %d", method, path, rec.Code)
		}
	})
}
