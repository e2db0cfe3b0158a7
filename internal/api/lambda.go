package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// LambdaHandler adapts h to API Gateway HTTP API (payload v2) events. The
// caller's identity comes from API Gateway's IAM authorizer context (or a
// JWT authorizer's subject); without one the router answers 401, so the
// function refuses unsigned requests even if API Gateway were misconfigured.
func LambdaHandler(h http.Handler) func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		req, err := RequestFromEvent(ctx, ev)
		if err != nil {
			return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusBadRequest, Body: `{"error":{"code":"bad_request","message":"cannot read the request"}}`,
				Headers: map[string]string{"Content-Type": "application/json"}}, nil
		}
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		return responseToEvent(rec), nil
	}
}

// RequestFromEvent builds the net/http request for an API Gateway event.
func RequestFromEvent(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (*http.Request, error) {
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return nil, fmt.Errorf("decode body: %w", err)
		}
	}
	u := url.URL{Path: ev.RawPath, RawQuery: ev.RawQueryString}
	if u.Path == "" {
		u.Path = ev.RequestContext.HTTP.Path
	}
	method := ev.RequestContext.HTTP.Method
	if id := ev.RequestContext.RequestID; id != "" {
		ctx = WithRequestID(ctx, id)
	}
	if who := identityOf(ev.RequestContext); who != "" {
		ctx = WithIdentity(ctx, who)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range ev.Headers {
		// API Gateway joins repeated headers with commas.
		req.Header.Set(k, v)
	}
	for _, c := range ev.Cookies {
		req.Header.Add("Cookie", c)
	}
	req.RemoteAddr = ev.RequestContext.HTTP.SourceIP
	return req, nil
}

func identityOf(rc events.APIGatewayV2HTTPRequestContext) string {
	if a := rc.Authorizer; a != nil {
		if a.IAM != nil && a.IAM.UserARN != "" {
			return a.IAM.UserARN
		}
		if a.JWT != nil {
			if sub, ok := a.JWT.Claims["sub"]; ok && sub != "" {
				iss := a.JWT.Claims["iss"]
				return strings.TrimSuffix(iss, "/") + "#" + sub
			}
		}
	}
	return ""
}

// recorder buffers a response in memory. (net/http/httptest would do, but
// importing it into a function costs start-up time for its test certificates.)
type recorder struct {
	code   int
	header http.Header
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

// responseToEvent converts a recorded response to the API Gateway shape.
func responseToEvent(rec *recorder) events.APIGatewayV2HTTPResponse {
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	res := events.APIGatewayV2HTTPResponse{StatusCode: rec.code, Headers: map[string]string{}}
	for k, v := range rec.header {
		res.Headers[k] = strings.Join(v, ",")
	}
	b := rec.body.Bytes()
	if utf8.Valid(b) {
		res.Body = string(b)
	} else {
		res.Body, res.IsBase64Encoded = base64.StdEncoding.EncodeToString(b), true
	}
	return res
}
