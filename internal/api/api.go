// Package api is ceforge's HTTP layer: one router that serves both the API
// Lambda (API Gateway HTTP API payload v2) and the local net/http server,
// with JSON decoding rules, the error format, caller identity and request ids.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/logging"
)

// HandlerFunc serves one route; a returned error is written in the API's
// error format (apierr.Error for the caller's faults, 500 otherwise).
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Route is one method and path pattern (net/http ServeMux syntax: /runs/{id}).
type Route struct {
	Method  string
	Path    string
	Handler HandlerFunc
}

// Router dispatches requests to routes and applies the cross-cutting rules.
type Router struct {
	mux    *http.ServeMux
	routes []Route
	log    *slog.Logger
	// RequireIdentity rejects requests that carry no caller identity. The
	// Lambda adapter sets the identity from API Gateway's IAM context; the
	// local server sets a fixed one.
	RequireIdentity bool
}

// NewRouter returns an empty router logging to log.
func NewRouter(log *slog.Logger) *Router {
	if log == nil {
		log = slog.Default()
	}
	return &Router{mux: http.NewServeMux(), log: log, RequireIdentity: true}
}

// Handle registers a route.
func (rt *Router) Handle(method, path string, h HandlerFunc) {
	rt.routes = append(rt.routes, Route{Method: method, Path: path, Handler: h})
	rt.mux.HandleFunc(method+" "+path, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, err)
		}
	})
}

// Routes returns the registered routes in registration order.
func (rt *Router) Routes() []Route { return append([]Route(nil), rt.routes...) }

// ServeHTTP implements http.Handler.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := r.Header.Get("X-Request-Id")
	if !validRequestID(reqID) {
		reqID = newRequestID()
	}
	if id, ok := RequestIDFrom(r.Context()); ok {
		reqID = id // set by the Lambda adapter from API Gateway
	}
	log := rt.log.With("request_id", reqID)
	ctx := context.WithValue(r.Context(), requestIDKey{}, reqID)
	ctx = logging.WithLogger(ctx, log)
	r = r.WithContext(ctx)
	w.Header().Set("X-Request-Id", reqID)
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}

	defer func() {
		if p := recover(); p != nil {
			log.Error("panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !sw.wrote {
				WriteError(sw, r, fmt.Errorf("panic: %v", p))
			}
		}
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration_ms", time.Since(start).Milliseconds(), "caller", IdentityFrom(ctx))
	}()

	if rt.RequireIdentity && IdentityFrom(ctx) == "" {
		WriteError(sw, r, apierr.Unauthorized("the request carries no IAM identity; sign it with SigV4"))
		return
	}
	if _, pattern := rt.mux.Handler(r); pattern == "" {
		// Distinguish an unknown path (404) from a known path with the wrong method (405).
		if rt.pathKnown(r) {
			WriteError(sw, r, &apierr.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
				Message: fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)})
			return
		}
		WriteError(sw, r, apierr.NotFound("no route for %s %s", r.Method, r.URL.Path))
		return
	}
	rt.mux.ServeHTTP(sw, r)
}

func (rt *Router) pathKnown(r *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := rt.mux.Handler(probe); p != "" {
			return true
		}
	}
	return false
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Flush lets streaming handlers (server-sent events) flush through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type (
	requestIDKey struct{}
	identityKey  struct{}
)

// WithRequestID sets the request id (the Lambda adapter uses API Gateway's).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id.
func RequestIDFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(requestIDKey{}).(string)
	return id, ok && id != ""
}

// Logger returns the request-scoped logger (with request_id).
func Logger(ctx context.Context) *slog.Logger { return logging.From(ctx, nil) }

// WithIdentity records the caller's identity (an IAM ARN).
func WithIdentity(ctx context.Context, arn string) context.Context {
	return context.WithValue(ctx, identityKey{}, arn)
}

// IdentityFrom returns the caller's identity, "" if none.
func IdentityFrom(ctx context.Context) string {
	s, _ := ctx.Value(identityKey{}).(string)
	return s
}

// LocalIdentity makes every request of h carry identity (the local server,
// which has no IAM in front of it).
func LocalIdentity(h http.Handler, identity string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), identity)))
	})
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// errorBody is the wire format of every error.
type errorBody struct {
	Error *apierr.Error `json:"error"`
}

// WriteError writes err in the API's error format. Caller faults
// (*apierr.Error) keep their status and message; anything else is a 500
// whose detail goes to the log, not to the caller.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := apierr.As(err)
	if !ok {
		Logger(r.Context()).Error("internal error", "error", err.Error())
		rid, _ := RequestIDFrom(r.Context())
		e = &apierr.Error{Status: http.StatusInternalServerError, Code: "internal",
			Message: "internal error; quote request id " + rid + " when reporting it"}
	}
	WriteJSON(w, e.Status, errorBody{Error: e})
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// MaxBodyBytes bounds request bodies: scripts and configs are text, not data.
const MaxBodyBytes = 256 << 10

// Decode reads a JSON request body into v: Content-Type application/json
// (a charset of utf-8 allowed), at most MaxBodyBytes, valid UTF-8, exactly
// one JSON value, and every object name known to v's type exactly as
// written (encoding/json alone matches names case-insensitively, so "Name"
// would set name, and takes the last of repeated names): an unknown,
// miscased or repeated name is a 400 naming it. Errors name the field.
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return decodeError(err)
	}
	if len(body) == 0 {
		return apierr.BadRequest("malformed_json", "", "the body is empty; send a JSON object")
	}
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	if !utf8.Valid(body) {
		return apierr.BadRequest("malformed_json", "", "the body is not UTF-8")
	}
	if err := checkNames(body, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	return nil
}

func checkContentType(ct string) error {
	unsupported := &apierr.Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
		Message: "send the body with Content-Type: application/json"}
	if ct == "" {
		return unsupported
	}
	media, params, err := mime.ParseMediaType(ct)
	if err != nil || media != "application/json" {
		return unsupported
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return &apierr.Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
				Message: "application/json takes only charset=utf-8"}
		}
	}
	return nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &apierr.Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("the body exceeds %d bytes", tooBig.Limit)}
	case errors.As(err, &syn):
		return apierr.BadRequest("malformed_json", "", "malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return apierr.BadRequest("invalid_type", typ.Field, "%s must be a JSON %s, not %s", orBody(typ.Field), jsonKindOf(typ.Type), typ.Value)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return apierr.BadRequest("malformed_json", "", "the body is empty or truncated")
	}
	return apierr.BadRequest("malformed_json", "", "malformed JSON: %s", err.Error())
}

func orBody(field string) string {
	if field == "" {
		return "the body"
	}
	return field
}

// jsonKindOf names the JSON kind a Go type decodes from.
func jsonKindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return t.Kind().String()
}
