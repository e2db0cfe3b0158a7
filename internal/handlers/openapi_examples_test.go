package handlers_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/handlers"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/secret"
	"github.com/ceforge/ceforge/internal/sweep"
	"github.com/ceforge/ceforge/internal/trace"
)

// Every request body of the OpenAPI document has examples, and each one is
// a body the API accepts: strict decoding (unknown fields refused, as the
// API does) and the request's own validation.
func TestOpenAPIRequestExamples(t *testing.T) {
	type operation struct {
		RequestBody *struct {
			Content map[string]struct {
				Examples map[string]struct {
					Value json.RawMessage `json:"value"`
				} `json:"examples"`
			} `json:"content"`
		} `json:"requestBody"`
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(handlers.OpenAPIDocument(), &doc))
	validate := map[string]func(json.RawMessage) error{
		"POST /compute-envs": func(b json.RawMessage) error {
			var r computeenv.CreateRequest
			if err := strict(b, &r); err != nil {
				return err
			}
			return r.Validate(nil)
		},
		"POST /runs": func(b json.RawMessage) error {
			var r run.LaunchRequest
			if err := strict(b, &r); err != nil {
				return err
			}
			return r.Validate()
		},
		"POST /sweeps":             func(b json.RawMessage) error { return strict(b, &sweep.CreateRequest{}) },
		"POST /runs/{id}/relaunch": func(b json.RawMessage) error { return strict(b, &run.RelaunchRequest{}) },
		// Nextflow's bodies are read leniently (unknown fields allowed).
		"POST /trace/create":            func(b json.RawMessage) error { return json.Unmarshal(b, &trace.CreateRequest{}) },
		"PUT /trace/{id}/begin":         func(b json.RawMessage) error { return json.Unmarshal(b, &trace.BeginRequest{}) },
		"PUT /trace/{id}/progress":      func(b json.RawMessage) error { _, err := trace.DecodeProgress(b); return err },
		"PUT /trace/{id}/heartbeat":     func(b json.RawMessage) error { return json.Unmarshal(b, &trace.HeartbeatRequest{}) },
		"PUT /trace/{id}/complete":      func(b json.RawMessage) error { return json.Unmarshal(b, &trace.CompleteRequest{}) },
		"PATCH /workflow/{id}":          func(b json.RawMessage) error { return json.Unmarshal(b, &map[string]any{}) },
		"POST /wave/container-token":    func(b json.RawMessage) error { return json.Unmarshal(b, &map[string]any{}) },
		"POST /wave/v1alpha2/container": func(b json.RawMessage) error { return json.Unmarshal(b, &map[string]any{}) },
		"POST /secrets": func(b json.RawMessage) error {
			var r secret.CreateRequest
			if err := strict(b, &r); err != nil {
				return err
			}
			return r.Validate(nil)
		},
		"PUT /secrets/{id}": func(b json.RawMessage) error { return strict(b, &secret.RotateRequest{}) },
		"POST /credentials": func(b json.RawMessage) error {
			var r credential.CreateRequest
			if err := strict(b, &r); err != nil {
				return err
			}
			return r.Validate("ceforge-")
		},
	}
	bodies := 0
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			if method == "parameters" {
				continue
			}
			var op operation
			require.NoError(t, json.Unmarshal(raw, &op), "%s %s", method, path)
			if op.RequestBody == nil {
				continue
			}
			bodies++
			key := map[string]string{"post": "POST", "put": "PUT", "patch": "PATCH"}[method] + " " + path
			examples := op.RequestBody.Content["application/json"].Examples
			require.NotEmpty(t, examples, "%s has no request example", key)
			check, ok := validate[key]
			require.True(t, ok, "%s: add its request type to this test", key)
			for name, ex := range examples {
				require.NoError(t, check(ex.Value), "%s example %q", key, name)
			}
		}
	}
	require.GreaterOrEqual(t, bodies, 3)
}

func strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// The embedded document is openapi.json: after editing it, run
// `go generate ./internal/handlers` (the api embeds it compressed).
func TestOpenAPICompressedCopyIsCurrent(t *testing.T) {
	src, err := os.ReadFile("openapi.json")
	require.NoError(t, err)
	require.True(t, bytes.Equal(src, handlers.OpenAPIDocument()), "openapi.json.gz is stale: run `go generate ./internal/handlers`")
}
