package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apierr"
)

type body struct {
	Name  string            `json:"name"`
	Items []string          `json:"items"`
	N     int               `json:"n"`
	Sub   *sub              `json:"sub"`
	Tags  map[string]string `json:"tags"`
	List  []sub             `json:"list"`
}

type sub struct {
	Key string `json:"key"`
}

func testRouter() *Router {
	rt := NewRouter(nil)
	rt.Handle("POST", "/things", func(w http.ResponseWriter, r *http.Request) error {
		var b body
		if err := Decode(w, r, &b); err != nil {
			return err
		}
		return WriteJSON(w, http.StatusCreated, map[string]string{"name": b.Name, "caller": IdentityFrom(r.Context())})
	})
	rt.Handle("GET", "/things/{id}", func(w http.ResponseWriter, r *http.Request) error {
		switch r.PathValue("id") {
		case "boom":
			panic("boom")
		case "internal":
			return errors.New("secret detail")
		}
		return apierr.NotFound("thing %s not found", r.PathValue("id"))
	})
	return rt
}

func serve(rt http.Handler, method, path, payload string, identity string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(payload))
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	if identity != "" {
		req = req.WithContext(WithIdentity(req.Context(), identity))
	}
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, req)
	return rec
}

func errorOf(t *testing.T, rec *httptest.ResponseRecorder) apierr.Error {
	t.Helper()
	var e struct{ Error apierr.Error }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	return e.Error
}

func TestDecodeErrors(t *testing.T) {
	rt := testRouter()
	cases := []struct {
		name, payload string
		status        int
		code, field   string
	}{
		{"malformed", `{"name":`, 400, "malformed_json", ""},
		{"empty", ``, 400, "malformed_json", ""},
		{"unknown field", `{"name":"a","evil":1}`, 400, "unknown_field", "evil"},
		{"wrong type", `{"name":"a","n":"x"}`, 400, "invalid_type", "n"},
		{"two values", `{"name":"a"}{"name":"b"}`, 400, "malformed_json", ""},
		{"not an object", `[1,2]`, 400, "invalid_type", ""},
		{"too large", `{"name":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, 413, "body_too_large", ""},
		// Names match exactly: encoding/json alone would set name from "Name".
		{"miscased name", `{"Name":"a"}`, 400, "unknown_field", "Name"},
		{"upper-cased nested name", `{"sub":{"KEY":"a"}}`, 400, "unknown_field", "sub.KEY"},
		{"miscased name in a list", `{"list":[{"key":"a"},{"kEy":"b"}]}`, 400, "unknown_field", "list[1].kEy"},
		// A repeated name is refused, not "last one wins".
		{"duplicate name", `{"name":"a","n":1,"name":"b"}`, 400, "duplicate_field", "name"},
		{"duplicate nested name", `{"sub":{"key":"a","key":"b"}}`, 400, "duplicate_field", "sub.key"},
		{"duplicate map key", `{"tags":{"k":"a","k":"b"}}`, 400, "duplicate_field", "tags.k"},
		{"invalid UTF-8", "{\"name\":\"\xff\"}", 400, "malformed_json", ""},
		{"trailing garbage", `{"name":"a"} x`, 400, "malformed_json", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(rt, "POST", "/things", tc.payload, "arn:aws:iam::1:user/u")
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			e := errorOf(t, rec)
			require.Equal(t, tc.code, e.Code)
			require.Equal(t, tc.field, e.Field)
			require.NotEmpty(t, e.Message)
		})
	}
}

// TestDecodeContentType: the body must be declared application/json
// (charset utf-8 allowed), not merely start with it.
func TestDecodeContentType(t *testing.T) {
	rt := testRouter()
	for ct, status := range map[string]int{
		"application/json":                    201,
		"application/json; charset=utf-8":     201,
		"Application/JSON; Charset=\"UTF-8\"": 201,
		"":                                    415,
		"application/jsonp":                   415,
		"application/json-patch+json":         415,
		"application/json; charset=latin1":    415,
		"application/json; boundary=x":        415,
		"text/json":                           415,
		"application/json;;":                  415,
	} {
		req := httptest.NewRequest("POST", "/things", strings.NewReader(`{"name":"a"}`))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		req = req.WithContext(WithIdentity(req.Context(), "u"))
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		require.Equal(t, status, rec.Code, "%q: %s", ct, rec.Body.String())
		if status == 415 {
			require.Equal(t, "unsupported_media_type", errorOf(t, rec).Code)
		}
	}
}

func TestRouterRules(t *testing.T) {
	rt := testRouter()

	rec := serve(rt, "POST", "/things", `{"name":"a"}`, "")
	require.Equal(t, 401, rec.Code, "no identity")
	require.Equal(t, "unauthenticated", errorOf(t, rec).Code)

	rec = serve(rt, "POST", "/things", `{"name":"a"}`, "arn:aws:iam::1:user/u")
	require.Equal(t, 201, rec.Code)
	require.Contains(t, rec.Body.String(), `"caller":"arn:aws:iam::1:user/u"`)
	require.Len(t, rec.Header().Get("X-Request-Id"), 24)

	rec = serve(rt, "GET", "/nowhere", "", "u")
	require.Equal(t, 404, rec.Code)
	rec = serve(rt, "DELETE", "/things", "", "u")
	require.Equal(t, 405, rec.Code)
	require.Equal(t, "method_not_allowed", errorOf(t, rec).Code)

	rec = serve(rt, "GET", "/things/boom", "", "u")
	require.Equal(t, 500, rec.Code, "a panic is a 500, not a crash")
	rec = serve(rt, "GET", "/things/internal", "", "u")
	require.Equal(t, 500, rec.Code)
	require.NotContains(t, rec.Body.String(), "secret detail", "internal errors stay in the log")
	require.Contains(t, errorOf(t, rec).Message, rec.Header().Get("X-Request-Id"))

	req := httptest.NewRequest("GET", "/things/x", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	req = req.WithContext(WithIdentity(req.Context(), "u"))
	rec = httptest.NewRecorder()
	rt.ServeHTTP(rec, req)
	require.Equal(t, "abc-123", rec.Header().Get("X-Request-Id"))
}

func TestLambdaAdapter(t *testing.T) {
	h := LambdaHandler(testRouter())
	ev := events.APIGatewayV2HTTPRequest{
		RawPath: "/things", Body: `{"name":"lambda"}`,
		Headers: map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "gw-req-1",
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/things"},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: "arn:aws:iam::111122223333:user/alice"},
			},
		},
	}
	res, err := h(context.Background(), ev)
	require.NoError(t, err)
	require.Equal(t, 201, res.StatusCode, res.Body)
	require.Contains(t, res.Body, "arn:aws:iam::111122223333:user/alice")
	require.Equal(t, "gw-req-1", res.Headers["X-Request-Id"])

	ev.RequestContext.Authorizer = nil
	res, err = h(context.Background(), ev)
	require.NoError(t, err)
	require.Equal(t, 401, res.StatusCode, "the function refuses unsigned requests by itself")

	ev.Body, ev.IsBase64Encoded = "%%%", true
	res, err = h(context.Background(), ev)
	require.NoError(t, err)
	require.Equal(t, 400, res.StatusCode)
}

func TestWriteJSONDoesNotEscapeHTML(t *testing.T) {
	rec := httptest.NewRecorder()
	require.NoError(t, WriteJSON(rec, 200, map[string]string{"s": "<a&b>"}))
	require.True(t, bytes.Contains(rec.Body.Bytes(), []byte("<a&b>")))
}
