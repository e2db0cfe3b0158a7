// Package handlers maps the HTTP API onto the domain services: one file per
// resource, one router for the API Lambda and the local server.
package handlers

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/price"
	"github.com/ceforge/ceforge/internal/progress"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/secret"
)

// The OpenAPI document (openapi.json, the source) is embedded compressed:
// 20 KB instead of 170 KB of the api function's 12 MB budget. A test
// fails when the copy is stale.
//
//go:generate sh -c "gzip -9 -n -c openapi.json > openapi.json.gz"
//go:embed openapi.json.gz
var openAPIGzip []byte

var openAPIDocument = sync.OnceValue(func() []byte {
	zr, err := gzip.NewReader(bytes.NewReader(openAPIGzip))
	if err != nil {
		panic("handlers: embedded openapi.json.gz: " + err.Error())
	}
	doc, err := io.ReadAll(zr)
	if err != nil {
		panic("handlers: embedded openapi.json.gz: " + err.Error())
	}
	return doc
})

// OpenAPIDocument returns the API's OpenAPI 3.1 document.
func OpenAPIDocument() []byte { return openAPIDocument() }

// Deps are the services behind the API.
type Deps struct {
	ComputeEnvs *computeenv.Service
	Runs        *run.Service
	// Progress serves runs' live progress, tasks and metrics (nil: those
	// routes are not served).
	Progress    *progress.Store
	Credentials *credential.Service
	Secrets     *secret.Service
	Log         *slog.Logger
	// Extra registers further routes (logs, sweeps) from their own packages.
	Extra []func(*api.Router)
}

// New returns the router of the whole API.
func New(d Deps) *api.Router {
	rt := api.NewRouter(d.Log)
	rt.Handle("GET", "/openapi.json", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(OpenAPIDocument())
		return err
	})
	ce := computeEnvHandlers{svc: d.ComputeEnvs}
	rt.Handle("POST", "/compute-envs", ce.create)
	rt.Handle("GET", "/compute-envs", ce.list)
	rt.Handle("GET", "/compute-envs/{id}", byID(d.ComputeEnvs.Get))
	rt.Handle("DELETE", "/compute-envs/{id}", ce.delete)
	if d.Credentials != nil {
		registerCredentials(rt, d.Credentials)
	}
	if d.Secrets != nil {
		registerSecrets(rt, d.Secrets)
	}
	runs := runHandlers{svc: d.Runs}
	rt.Handle("POST", "/runs", runs.launch)
	rt.Handle("GET", "/runs", runs.list)
	rt.Handle("GET", "/runs/{id}", runs.get)
	rt.Handle("POST", "/runs/{id}/cancel", runs.cancel)
	if d.Progress != nil {
		progressHandlers{runs: d.Runs, progress: d.Progress, prices: price.Default}.register(rt)
	}
	for _, register := range d.Extra {
		register(rt)
	}
	return rt
}

// Query reads query parameters, refusing any not in allowed.
type Query struct {
	vals url.Values
}

// Limits on query strings: every parameter has one (a value reaches keys
// and conditions of the table, whose key attributes hold at most 2,048
// bytes); parameters not listed take MaxQueryValueLen.
const (
	MaxQueryLen      = 8 << 10
	MaxQueryValueLen = 2048
)

var queryValueLimits = map[string]int{
	"computeEnvId": 64, "status": 32, "limit": 5, "dryRun": 5, "force": 5, "follow": 5,
}

// ParseQuery checks that r's query string is well formed (escapes, no
// semicolons) and holds only the allowed parameters, each once and within
// its length limit.
func ParseQuery(r *http.Request, allowed ...string) (Query, error) {
	raw := r.URL.RawQuery
	if len(raw) > MaxQueryLen {
		return Query{}, apierr.BadRequest("invalid_query", "", "the query string is longer than %d bytes", MaxQueryLen)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		// url.Query() would drop the malformed pair and read, say, page 1.
		return Query{}, apierr.BadRequest("invalid_query", "", "malformed query string: %v", err)
	}
	for name, vals := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok {
			return Query{}, apierr.BadRequest("unknown_parameter", name, "unknown query parameter %q", name)
		}
		if len(vals) > 1 {
			return Query{}, apierr.BadRequest("invalid_parameter", name, "query parameter %q is given more than once", name)
		}
		max := MaxQueryValueLen
		if l, ok := queryValueLimits[name]; ok {
			max = l
		}
		if len(vals[0]) > max {
			return Query{}, apierr.BadRequest("invalid_parameter", name, "%s is longer than %d bytes", name, max)
		}
	}
	return Query{vals: q}, nil
}

// String returns a parameter ("" when absent); ParseQuery bounded its length.
func (q Query) String(name string) (string, error) {
	return q.vals.Get(name), nil
}

// Bool returns a boolean parameter (absent is false).
func (q Query) Bool(name string) (bool, error) {
	v := q.vals.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, apierr.BadRequest("invalid_parameter", name, "%s must be true or false", name)
	}
	return b, nil
}

// Limit returns the page size parameter "limit" (0 when absent).
func (q Query) Limit() (int, error) {
	v := q.vals.Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100 {
		return 0, apierr.BadRequest("invalid_parameter", "limit", "limit must be an integer from 1 to 100")
	}
	return n, nil
}

// page is the shape of every listing.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor,omitempty"`
}
