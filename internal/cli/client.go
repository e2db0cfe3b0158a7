package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Signing services: the API sits behind API Gateway, log follow behind a
// Lambda Function URL.
const (
	serviceAPI  = "execute-api"
	serviceLogs = "lambda"
)

// APIError is an error answer of the API (or of API Gateway / Lambda in
// front of it, which answer {"message": ...}).
type APIError struct {
	Status    int
	Code      string
	Message   string
	Field     string
	RequestID string
}

func (e *APIError) Error() string {
	var b strings.Builder
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Message)
	code := e.Code
	if code == "" {
		code = fmt.Sprintf("http_%d", e.Status)
	}
	b.WriteString(" (" + code)
	if e.RequestID != "" {
		b.WriteString(", request " + e.RequestID)
	}
	b.WriteString(")")
	return b.String()
}

// Client calls one ceforge deployment with SigV4-signed requests.
type Client struct {
	Endpoint string // API base URL
	LogsURL  string // log-follow base URL (Endpoint when empty)
	Region   string
	HTTP     *http.Client
	// Credentials returns the signing credentials (the AWS chain).
	Credentials aws.CredentialsProvider
	UserAgent   string
	now         func() time.Time
}

// regionOf reads the region from an API Gateway or Function URL host name.
func regionOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	parts := strings.Split(u.Hostname(), ".")
	for i, p := range parts {
		if (p == "execute-api" || p == "lambda-url") && i+1 < len(parts) {
			return parts[i+1]
		}
	}
	return ""
}

// loadAWS resolves credentials and region through the SDK's standard chain
// (environment, shared config and credentials files, SSO, process
// credentials, container and instance roles).
func loadAWS(ctx context.Context, awsProfile, region string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if awsProfile != "" {
		opts = append(opts, config.WithSharedConfigProfile(awsProfile))
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}

func payloadHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (c *Client) base(service string) string {
	if service == serviceLogs && c.LogsURL != "" {
		return strings.TrimSuffix(c.LogsURL, "/")
	}
	return strings.TrimSuffix(c.Endpoint, "/")
}

// request builds and signs a request to path (with query) on the API or
// the logs URL.
func (c *Client) request(ctx context.Context, service, method, path string, query url.Values, body []byte, header http.Header) (*http.Request, error) {
	u := c.base(service) + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	creds, err := c.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("get AWS credentials to sign the request (configure a profile, SSO or environment credentials): %w", err)
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, payloadHash(body), service, c.Region, now()); err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	return req, nil
}

// Do sends a signed JSON request to the API and decodes a 2xx answer into
// out (when not nil); other answers become *APIError.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	return c.do(ctx, serviceAPI, method, path, query, in, out, nil)
}

func (c *Client) do(ctx context.Context, service, method, path string, query url.Values, in, out any, header http.Header) error {
	var body []byte
	if in != nil {
		var err error
		if raw, ok := in.(json.RawMessage); ok {
			body = raw
		} else if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	req, err := c.request(ctx, service, method, path, query, body, header)
	if err != nil {
		return err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		return decodeError(res, b)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], b...)
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func decodeError(res *http.Response, b []byte) error {
	e := &APIError{Status: res.StatusCode, RequestID: res.Header.Get("X-Request-Id")}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
		Message string `json:"message"`
	}
	switch {
	case json.Unmarshal(b, &body) == nil && body.Error != nil:
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
	case body.Message != "":
		// API Gateway and Lambda answer signature and permission errors themselves.
		e.Message = body.Message
		if res.StatusCode == http.StatusForbidden {
			e.Code = "forbidden"
		}
	default:
		e.Message = strings.TrimSpace(string(b))
		if e.Message == "" {
			e.Message = http.StatusText(res.StatusCode)
		}
	}
	return e
}

// Event is one server-sent event of a follow stream.
type Event struct {
	Name string
	ID   string
	Data []byte
}

// Follow opens the run's log follow stream on the logs URL and calls fn
// for each event until the stream ends, fn returns an error, or ctx ends.
func (c *Client) Follow(ctx context.Context, runID, cursor string, fn func(Event) error) error {
	q := url.Values{"follow": {"true"}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	req, err := c.request(ctx, serviceLogs, http.MethodGet, "/runs/"+url.PathEscape(runID)+"/logs", q, nil, http.Header{"Accept": {"text/event-stream"}})
	if err != nil {
		return err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("follow the log of run %s: %w", runID, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return decodeError(res, b)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev Event
	var data [][]byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if ev.Name != "" || len(data) > 0 {
				ev.Data = bytes.Join(data, []byte("\n"))
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, data = Event{}, nil
		case line[0] == ':':
			// comment (heartbeat)
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				ev.Name = string(value)
			case "id":
				ev.ID = string(value)
			case "data":
				data = append(data, append([]byte(nil), value...))
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return fmt.Errorf("follow the log of run %s: %w", runID, err)
	}
	return nil
}

// request is one API call of a command.
type request struct {
	method, path string
	query        url.Values
	body         any
	header       http.Header
}

// call sends r to the API and decodes the answer as T (what names it in a
// decode error); raw is the answer as sent, for -o json|yaml.
func call[T any](ctx context.Context, c *Client, r request, what string) (T, json.RawMessage, error) {
	var v T
	var raw json.RawMessage
	if err := c.do(ctx, serviceAPI, r.method, r.path, r.query, r.body, &raw, r.header); err != nil {
		return v, nil, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return v, raw, nil
}
