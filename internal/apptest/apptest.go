// Package apptest runs the whole wired App against the emulator for
// end-to-end tests: API request -> handler -> emulator -> store.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/allinone"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/testenv"
)

// Caller is the identity test requests carry.
const Caller = "arn:aws:iam::123456789012:user/tester"

// Harness is an App on a fresh emulator state.
type Harness struct {
	*testenv.Env
	App    *app.App
	Router *api.Router
	mutate []func(*config.Config)
}

// New resets the emulator and wires an App with every feature on it
// (app/allinone). Adjust cfg (prefix, allowed regions) with mutate before
// wiring.
func New(t testing.TB, mutate ...func(*config.Config)) *Harness {
	t.Helper()
	return NewWith(t, allinone.Features(), mutate...)
}

// NewWith is New with only the given features: the App one function wires.
func NewWith(t testing.TB, features []app.Feature, mutate ...func(*config.Config)) *Harness {
	t.Helper()
	h := &Harness{Env: testenv.New(t), mutate: mutate}
	h.App = h.Wire(t, features...)
	h.Router = h.App.Router()
	return h
}

// Wire builds another App on the harness's emulator and table, with its
// own features: a second function of the same deployment.
func (h *Harness) Wire(t testing.TB, features ...app.Feature) *app.App {
	t.Helper()
	cfg, err := config.FromLookup(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Table, cfg.Region, cfg.Endpoint = testenv.Table, testenv.Region, h.Endpoint
	for _, m := range h.mutate {
		m(&cfg)
	}
	if cfg.PermissionsBoundary == "" {
		// What the CDK app sets: the deployment's <prefix>boundary policy.
		cfg.PermissionsBoundary = testenv.Boundary(cfg.Prefix)
	}
	a, err := app.New(context.Background(), cfg, app.Options{AWS: h.AWS, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.Discard}, features...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Response is a recorded API response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into out.
func (r Response) JSON(t testing.TB, out any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, out); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Error returns the error object of an error response.
func (r Response) Error(t testing.TB) (code, field, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Field, Message string } `json:"error"`
	}
	r.JSON(t, &e)
	return e.Error.Code, e.Error.Field, e.Error.Message
}

// Do sends a request as Caller. body may be nil, a string (sent as is) or a
// value (sent as JSON).
func (h *Harness) Do(t testing.TB, method, path string, body any, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	req = req.WithContext(api.WithIdentity(req.Context(), Caller))
	rec := httptest.NewRecorder()
	h.Router.ServeHTTP(rec, req)
	return Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}
