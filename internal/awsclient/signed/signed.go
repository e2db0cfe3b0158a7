// Package signed sends single AWS API requests signed with the SDK's SigV4
// signer through the configuration's HTTP client and credentials, for the
// few read-only calls whose SDK client packages would cost a function more
// binary size and cold-start time than the call is worth (the api
// function's 12 MB budget): EFS and FSx describes (awsclient/fsread), SSM
// GetParameter (awsclient/ssmparam). On the wire they are the requests the
// SDK sends, so IAM, the emulator and the IAM-checked test tier see the
// same action. Functions that create resources use the SDK clients.
package signed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

// Client calls AWS with one configuration (account, region, credentials).
type Client struct {
	cfg    aws.Config
	signer *v4.Signer
	// Attempts bounds tries of a throttled, 5xx or failed-network call.
	Attempts int
}

// New returns a Client acting with cfg (its RetryMaxAttempts, default 3).
func New(cfg aws.Config) *Client {
	attempts := cfg.RetryMaxAttempts
	if attempts <= 0 {
		attempts = 3
	}
	return &Client{cfg: cfg, signer: v4.NewSigner(), Attempts: attempts}
}

// Request is one API call. Target set means the JSON 1.1 protocol (POST /,
// X-Amz-Target); Form set, the query protocol (POST / of the form, an XML
// answer: IAM); otherwise REST-JSON with Method, Path and Query.
type Request struct {
	Service string // the signing name and endpoint prefix (ssm, fsx, elasticfilesystem, iam)
	Method  string
	Path    string
	Query   url.Values
	Target  string
	Body    []byte
	Form    url.Values
}

// APIError is an error answer of AWS; it satisfies smithy.APIError
// (ErrorCode, ErrorMessage, ErrorFault), so callers classify it as they do
// the SDK's errors.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// ErrorCode is the AWS error code.
func (e *APIError) ErrorCode() string { return e.Code }

// ErrorMessage is the AWS error message.
func (e *APIError) ErrorMessage() string { return e.Message }

// ErrorFault says whose fault it is.
func (e *APIError) ErrorFault() smithy.ErrorFault {
	if e.Status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

var _ smithy.APIError = (*APIError)(nil)

func (e *APIError) retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || strings.Contains(e.Code, "Throttl")
}

// Call sends req, retrying throttling, 5xx and network errors a few times,
// and decodes the JSON answer into out.
func (c *Client) Call(ctx context.Context, req Request, out any) error {
	var err error
	for attempt := 1; attempt <= c.Attempts; attempt++ {
		if err = c.once(ctx, req, out); err == nil {
			return nil
		}
		var ae *APIError
		var perm permanent
		if errors.As(err, &perm) {
			return perm.error
		}
		if errors.As(err, &ae) && !ae.retryable() || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	return err
}

// permanent is an error that another attempt cannot mend (no credentials,
// an answer that does not decode): returned at once, unwrapped.
type permanent struct{ error }

// endpoint is the service's regional endpoint, or the configured override
// (the local emulator).
func (c *Client) endpoint(service string) string {
	if c.cfg.BaseEndpoint != nil && *c.cfg.BaseEndpoint != "" {
		return strings.TrimRight(*c.cfg.BaseEndpoint, "/")
	}
	suffix := "amazonaws.com"
	if strings.HasPrefix(c.cfg.Region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	return "https://" + service + "." + c.cfg.Region + "." + suffix
}

// globalEndpoint is IAM's endpoint and signing region in the partition of
// the configured region, or the configured override.
func (c *Client) globalEndpoint() (string, string) {
	region := "us-east-1"
	endpoint := "https://iam.amazonaws.com"
	switch {
	case strings.HasPrefix(c.cfg.Region, "cn-"):
		region, endpoint = "cn-north-1", "https://iam.cn-north-1.amazonaws.com.cn"
	case strings.HasPrefix(c.cfg.Region, "us-gov-"):
		region, endpoint = "us-gov-west-1", "https://iam.us-gov.amazonaws.com"
	}
	if c.cfg.BaseEndpoint != nil && *c.cfg.BaseEndpoint != "" {
		endpoint = strings.TrimRight(*c.cfg.BaseEndpoint, "/")
	}
	return endpoint, region
}

func (c *Client) httpClient() aws.HTTPClient {
	if c.cfg.HTTPClient != nil {
		return c.cfg.HTTPClient
	}
	return http.DefaultClient
}

func (c *Client) once(ctx context.Context, r Request, out any) error {
	method, path := r.Method, r.Path
	if r.Target != "" || r.Form != nil {
		method, path = http.MethodPost, "/"
	}
	if r.Form != nil {
		r.Body = []byte(r.Form.Encode())
	}
	endpoint, region := c.endpoint(r.Service), c.cfg.Region
	if r.Service == "iam" {
		endpoint, region = c.globalEndpoint()
	}
	u := endpoint + path
	if len(r.Query) > 0 {
		u += "?" + r.Query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(r.Body))
	if err != nil {
		return permanent{err}
	}
	if r.Target != "" {
		req.Header.Set("X-Amz-Target", r.Target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	}
	if r.Form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	if c.cfg.Credentials == nil {
		return permanent{errors.New("no credentials")}
	}
	creds, err := c.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("credentials: %w", err) // may pass (an STS hiccup)
	}
	sum := sha256.Sum256(r.Body)
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), r.Service, region, time.Now().UTC()); err != nil {
		return permanent{fmt.Errorf("sign: %w", err)}
	}
	res, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return err
	}
	if r.Form != nil {
		if res.StatusCode >= 300 {
			return xmlError(res, data)
		}
		if err := xml.Unmarshal(data, out); err != nil {
			return permanent{fmt.Errorf("decode %s answer: %w", r.Service, err)}
		}
		return nil
	}
	if res.StatusCode >= 300 {
		return apiError(res, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return permanent{fmt.Errorf("decode %s answer: %w", r.Service, err)}
	}
	return nil
}

// apiError reads an error answer: REST-JSON services name the code in the
// x-amzn-ErrorType header or an ErrorCode field, JSON 1.1 in __type (both
// may carry a "prefix#" or a ":suffix").
func apiError(res *http.Response, data []byte) *APIError {
	var body struct {
		Type      string `json:"__type"`
		ErrorCode string
		Code      string
		Message   string
		Message2  string `json:"message"`
	}
	_ = json.Unmarshal(data, &body)
	code := res.Header.Get("X-Amzn-Errortype")
	for _, c := range []string{body.ErrorCode, body.Type, body.Code} {
		if code == "" {
			code = c
		}
	}
	if i := strings.LastIndex(code, "#"); i >= 0 {
		code = code[i+1:]
	}
	code, _, _ = strings.Cut(code, ":")
	if code == "" {
		code = http.StatusText(res.StatusCode)
	}
	msg := body.Message
	if msg == "" {
		msg = body.Message2
	}
	return &APIError{Status: res.StatusCode, Code: code, Message: msg}
}

// xmlError reads a query-protocol error answer
// (<ErrorResponse><Error><Code>…</Code><Message>…</Message></Error>).
func xmlError(res *http.Response, data []byte) *APIError {
	var body struct {
		Error struct{ Code, Message string }
	}
	_ = xml.Unmarshal(data, &body)
	code := body.Error.Code
	if code == "" {
		code = http.StatusText(res.StatusCode)
	}
	return &APIError{Status: res.StatusCode, Code: code, Message: body.Error.Message}
}
