// Package fsread reads EFS and FSx file systems for compute-environment
// validation (awsclient.FileSystemReader): EFS DescribeFileSystems and
// DescribeMountTargets (REST-JSON), FSx DescribeFileSystems (JSON 1.1),
// sent through the configuration's HTTP client and signed with the SDK's
// SigV4 signer. The SDK's EFS and FSx clients would add 0.4 MB to the api
// function, past its 12 MB budget, for these three read-only calls; the
// forge (forge/steps), which creates file systems, uses the SDK clients.
package fsread

import (
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
	"github.com/aws/smithy-go"

	"github.com/ceforge/ceforge/internal/awsclient"
)

// Reader reads with one configuration (account, region, credentials).
type Reader struct {
	cfg      aws.Config
	signer   *v4.Signer
	attempts int
	// pageSize bounds FSx pages (0: the service's default); tests page.
	pageSize int
}

// New returns a Reader acting with cfg.
func New(cfg aws.Config) awsclient.FileSystemReader { return newReader(cfg) }

func newReader(cfg aws.Config) *Reader {
	attempts := cfg.RetryMaxAttempts
	if attempts <= 0 {
		attempts = 3
	}
	return &Reader{cfg: cfg, signer: v4.NewSigner(), attempts: attempts}
}

// APIError is an error answer of EFS or FSx; it satisfies smithy.APIError
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

// EFS returns the file system and its mount targets, nil when it does not exist.
func (r *Reader) EFS(ctx context.Context, id string) (*awsclient.EFSFileSystem, error) {
	var fss struct {
		FileSystems []struct{ FileSystemId, LifeCycleState string }
	}
	err := r.call(ctx, "elasticfilesystem", http.MethodGet, "/2015-02-01/file-systems", url.Values{"FileSystemId": {id}}, "", nil, &fss)
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == "FileSystemNotFound" {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe EFS %s: %w", id, err)
	}
	if len(fss.FileSystems) == 0 {
		return nil, nil
	}
	fs := &awsclient.EFSFileSystem{ID: id, State: fss.FileSystems[0].LifeCycleState}
	q := url.Values{"FileSystemId": {id}}
	for {
		var mts struct {
			MountTargets []struct{ SubnetId, AvailabilityZoneName, VpcId, LifeCycleState string }
			NextMarker   string
		}
		if err := r.call(ctx, "elasticfilesystem", http.MethodGet, "/2015-02-01/mount-targets", q, "", nil, &mts); err != nil {
			return nil, fmt.Errorf("describe mount targets of EFS %s: %w", id, err)
		}
		for _, mt := range mts.MountTargets {
			fs.MountTargets = append(fs.MountTargets, awsclient.EFSMountTarget{
				SubnetID: mt.SubnetId, AvailabilityZone: mt.AvailabilityZoneName, VpcID: mt.VpcId, State: mt.LifeCycleState,
			})
		}
		if mts.NextMarker == "" {
			return fs, nil
		}
		q.Set("Marker", mts.NextMarker)
	}
}

// FSxByDNSName pages through the region's FSx file systems for the one
// with that DNS name, nil when none.
func (r *Reader) FSxByDNSName(ctx context.Context, dns string) (*awsclient.FSxFileSystem, error) {
	req := map[string]any{}
	if r.pageSize > 0 {
		req["MaxResults"] = r.pageSize
	}
	for {
		body, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		var out struct {
			FileSystems []struct{ FileSystemId, FileSystemType, Lifecycle, VpcId, DNSName string }
			NextToken   string
		}
		if err := r.call(ctx, "fsx", http.MethodPost, "/", nil, "AWSSimbaAPIService_v20180301.DescribeFileSystems", body, &out); err != nil {
			return nil, fmt.Errorf("describe FSx file systems: %w", err)
		}
		for _, fs := range out.FileSystems {
			if fs.DNSName == dns {
				return &awsclient.FSxFileSystem{ID: fs.FileSystemId, Type: fs.FileSystemType, Lifecycle: fs.Lifecycle, VpcID: fs.VpcId}, nil
			}
		}
		if out.NextToken == "" {
			return nil, nil
		}
		req["NextToken"] = out.NextToken
	}
}

// endpoint is the service's regional endpoint, or the configured override
// (the local emulator).
func (r *Reader) endpoint(service string) string {
	if r.cfg.BaseEndpoint != nil && *r.cfg.BaseEndpoint != "" {
		return strings.TrimRight(*r.cfg.BaseEndpoint, "/")
	}
	suffix := "amazonaws.com"
	if strings.HasPrefix(r.cfg.Region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	return "https://" + service + "." + r.cfg.Region + "." + suffix
}

func (r *Reader) httpClient() aws.HTTPClient {
	if r.cfg.HTTPClient != nil {
		return r.cfg.HTTPClient
	}
	return http.DefaultClient
}

// call sends one signed request, retrying throttling, 5xx and network
// errors a few times, and decodes the JSON answer into out.
func (r *Reader) call(ctx context.Context, service, method, path string, query url.Values, target string, body []byte, out any) error {
	var err error
	for attempt := 1; attempt <= r.attempts; attempt++ {
		if err = r.once(ctx, service, method, path, query, target, body, out); err == nil {
			return nil
		}
		var ae *APIError
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

func (r *Reader) once(ctx context.Context, service, method, path string, query url.Values, target string, body []byte, out any) error {
	u := r.endpoint(service) + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	}
	if r.cfg.Credentials == nil {
		return errors.New("no credentials")
	}
	creds, err := r.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := r.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), service, r.cfg.Region, time.Now().UTC()); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	res, err := r.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return apiError(res, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s answer: %w", service, err)
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
