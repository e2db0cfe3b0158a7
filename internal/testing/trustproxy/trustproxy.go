// Package trustproxy stands between the AWS SDK and the emulator and makes
// STS AssumeRole decide as AWS does where moto does not: moto lets anyone
// assume any role (it need not even exist), AWS lets a caller assume a
// role only when the role exists and its trust policy allows that caller,
// with the External ID its conditions require. The proxy reads the role's
// trust policy from the emulator (in the role's account), evaluates it for
// the configured caller and answers AccessDenied as STS does, or forwards
// the call. Every other request passes through untouched. It records each
// AssumeRole it saw, so tests can assert which roles were (not) assumed.
package trustproxy

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Call is one AssumeRole the proxy saw.
type Call struct {
	RoleARN    string
	ExternalID string
	Allowed    bool
	Reason     string // why it was refused
}

// Proxy is a running trust-checking proxy.
type Proxy struct {
	URL    string
	target *url.URL
	caller string
	rp     *httputil.ReverseProxy

	mu    sync.Mutex
	calls []Call
}

// Start runs a proxy to the emulator at target for a control plane whose
// calls are made by caller (the principal ARN a trust policy sees, e.g. a
// function's role ARN). It stops when the test ends.
func Start(t testing.TB, target, caller string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: u, caller: caller, rp: httputil.NewSingleHostReverseProxy(u)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.URL = "http://" + l.Addr().String()
	return p
}

// Calls returns the AssumeRole calls seen so far.
func (p *Proxy) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Call(nil), p.calls...)
}

// Assumed returns the roles assumed successfully (role ARN -> External ID).
func (p *Proxy) Assumed() map[string]string {
	out := map[string]string{}
	for _, c := range p.Calls() {
		if c.Allowed {
			out[c.RoleARN] = c.ExternalID
		}
	}
	return out
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if role, ext, ok := assumeRole(r, body); ok {
		reason := p.check(r.Context(), role, ext)
		p.mu.Lock()
		p.calls = append(p.calls, Call{RoleARN: role, ExternalID: ext, Allowed: reason == "", Reason: reason})
		p.mu.Unlock()
		if reason != "" {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: %s is not authorized to perform: sts:AssumeRole on resource: %s (%s)</Message></Error><RequestId>trustproxy</RequestId></ErrorResponse>`,
				xmlEscape(p.caller), xmlEscape(role), xmlEscape(reason))
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

// assumeRole recognises an STS AssumeRole call (query protocol) and
// returns its role and External ID.
func assumeRole(r *http.Request, body []byte) (role, externalID string, ok bool) {
	if r.Method != http.MethodPost || !strings.Contains(r.Header.Get("Authorization"), "/sts/aws4_request") {
		return "", "", false
	}
	v, err := url.ParseQuery(string(body))
	if err != nil || v.Get("Action") != "AssumeRole" {
		return "", "", false
	}
	return v.Get("RoleArn"), v.Get("ExternalId"), true
}

// check returns why AWS would refuse the caller this role ("" if allowed).
func (p *Proxy) check(ctx context.Context, roleARN, externalID string) string {
	parts := strings.SplitN(roleARN, ":", 6)
	if len(parts) < 6 || !strings.HasPrefix(parts[5], "role/") {
		return "not a role ARN"
	}
	account, name := parts[4], parts[5][strings.LastIndex(parts[5], "/")+1:]
	client := iam.New(iam.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(p.target.String()),
		Credentials: credentials.NewStaticCredentialsProvider("trustproxy", "trustproxy", ""),
		APIOptions:  []func(*middleware.Stack) error{smithyhttp.AddHeaderValue("x-moto-account-id", account)},
	})
	out, err := client.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	if err != nil {
		return "the role does not exist in account " + account
	}
	doc, err := url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	if err != nil {
		doc = aws.ToString(out.Role.AssumeRolePolicyDocument)
	}
	return Evaluate(doc, p.caller, externalID)
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Reset forgets the calls seen so far.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = nil
}
