// Package faultproxy is an HTTP reverse proxy placed between the AWS SDK
// and the local emulator that makes the emulator behave like AWS under load:
// per-operation token buckets answering with AWS-shaped throttling errors,
// injected 5xx errors, added latency and dropped connections. A time-scale
// factor compresses AWS time so tests of minute-long behaviour run in
// seconds. It is test support, but a real package: the sweeper benchmark,
// the event-chaos and crash tests all reuse it.
package faultproxy

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rule applies to the requests it matches. Zero fields do nothing, so a
// rule with only Burst/Refill is a pure token bucket and a rule with only
// ErrorRate is a pure fault injector.
type Rule struct {
	// Operation matches the API operation: the EC2/query protocol's Action
	// ("DeleteVolume"), the operation part of a JSON protocol's
	// X-Amz-Target ("ListTables"), or for REST protocols the last path
	// segment ("listjobs"). "" or "*" match every operation.
	Operation string
	// Service matches the SigV4 signing name ("ec2", "batch", "dynamodb");
	// "" matches every service.
	Service string

	// Burst and RefillPerSec define a token bucket in AWS time (e.g. EC2's
	// DeleteVolume: 100 and 5). A request that finds the bucket empty is
	// answered with a throttling error and never reaches the target.
	// Burst 0 disables the bucket.
	Burst        int
	RefillPerSec float64
	// StartEmpty starts the bucket with no tokens (an account whose bucket
	// another client has already drained).
	StartEmpty bool

	// ErrorRate is the probability (0..1) of answering with a server error
	// (ErrorStatus, default 500) instead of forwarding.
	ErrorRate   float64
	ErrorStatus int
	// DropRate is the probability of closing the connection without an
	// answer. With DropAfterForward the request reaches the target first
	// (its effect happens, the caller never learns it): the crash case
	// idempotency must survive.
	DropRate         float64
	DropAfterForward bool
	// Latency is added to every matching request (in AWS time).
	Latency time.Duration
	// MaxFaults bounds how many errors and drops this rule injects in
	// total (0 = unbounded): "fail the first three calls".
	MaxFaults int
	// Skip lets the first Skip matching requests through untouched: "fail
	// the second call" (Skip 1, MaxFaults 1).
	Skip int

	// ThrottleStatus and ThrottleCode override the throttling answer
	// (defaults: EC2/query 503 RequestLimitExceeded; JSON 400
	// ThrottlingException).
	ThrottleStatus int
	ThrottleCode   string
}

func (r Rule) matches(service, op string) bool {
	return (r.Service == "" || strings.EqualFold(r.Service, service)) &&
		(r.Operation == "" || r.Operation == "*" || r.Operation == op)
}

// OpStats counts what the proxy did with one operation's requests.
type OpStats struct {
	Forwarded int `json:"forwarded"`
	Throttled int `json:"throttled"`
	Errors    int `json:"errors"`  // injected server errors
	Dropped   int `json:"dropped"` // connections closed without an answer
}

// Total is every request seen.
func (s OpStats) Total() int { return s.Forwarded + s.Throttled + s.Errors + s.Dropped }

// Proxy is a fault-injecting reverse proxy to one target.
type Proxy struct {
	target *url.URL
	rp     *httputil.ReverseProxy

	mu        sync.Mutex
	timeScale float64
	rules     []*ruleState
	stats     map[string]*OpStats
	rnd       *rand.Rand

	srv      *http.Server
	listener net.Listener
}

type ruleState struct {
	Rule
	bucket  *rate.Limiter
	faults  int
	skipped int
}

// New returns a proxy to target (e.g. the emulator's endpoint) applying
// rules; every rule whose matcher fits a request applies, in order. Call
// Start before URL.
func New(target string, rules ...Rule) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: invalid target %q", target)
	}
	p := &Proxy{target: u, timeScale: 1, stats: map[string]*OpStats{}, rnd: rand.New(rand.NewPCG(1, 2))}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// Keep the Host the SDK signed: the proxy is transparent.
			pr.Out.Host = pr.In.Host
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "faultproxy: target unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.SetRules(rules...)
	return p, nil
}

// SetTimeScale makes AWS time pass factor times faster: buckets refill
// factor times faster and latencies are factor times shorter. It resets
// the buckets.
func (p *Proxy) SetTimeScale(factor float64) {
	if factor <= 0 {
		factor = 1
	}
	p.mu.Lock()
	p.timeScale = factor
	rules := make([]Rule, len(p.rules))
	for i, r := range p.rules {
		rules[i] = r.Rule
	}
	p.mu.Unlock()
	p.SetRules(rules...)
}

// TimeScale returns the factor set by SetTimeScale (1 by default).
func (p *Proxy) TimeScale() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.timeScale
}

// SetRules replaces the rules (fresh buckets and fault budgets); tests
// change the proxy's behaviour between phases with it.
func (p *Proxy) SetRules(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = p.rules[:0]
	for _, r := range rules {
		rs := &ruleState{Rule: r}
		if r.Burst > 0 {
			rs.bucket = rate.NewLimiter(rate.Limit(r.RefillPerSec*p.timeScale), r.Burst)
			if r.StartEmpty {
				rs.bucket.AllowN(time.Now(), r.Burst)
			}
		}
		p.rules = append(p.rules, rs)
	}
}

// Start listens on a free loopback port and serves in the background.
func (p *Proxy) Start() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("faultproxy: listen: %w", err)
	}
	p.listener = l
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return nil
}

// URL is the proxy's endpoint (use it as the SDK's BaseEndpoint).
func (p *Proxy) URL() string {
	if p.listener == nil {
		return ""
	}
	return "http://" + p.listener.Addr().String()
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	if p.srv == nil {
		return nil
	}
	return p.srv.Close()
}

// Stats returns a copy of the counters per operation.
func (p *Proxy) Stats() map[string]OpStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]OpStats, len(p.stats))
	for k, v := range p.stats {
		out[k] = *v
	}
	return out
}

// ResetStats clears the counters.
func (p *Proxy) ResetStats() {
	p.mu.Lock()
	p.stats = map[string]*OpStats{}
	p.mu.Unlock()
}

// Operations returns the operations seen, sorted.
func (p *Proxy) Operations() []string {
	st := p.Stats()
	ops := make([]string, 0, len(st))
	for k := range st {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	return ops
}

// verdict is what the rules decided for one request.
type verdict int

const (
	forward verdict = iota
	throttle
	fail
	drop
	dropAfter
)

// decide applies the rules to one request under the lock.
func (p *Proxy) decide(service, op string) (v verdict, rule *ruleState, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats[op]
	if st == nil {
		st = &OpStats{}
		p.stats[op] = st
	}
	for _, r := range p.rules {
		if !r.matches(service, op) {
			continue
		}
		if r.skipped < r.Skip {
			r.skipped++
			continue
		}
		delay += time.Duration(float64(r.Latency) / p.timeScale)
		if r.bucket != nil && !r.bucket.Allow() {
			st.Throttled++
			return throttle, r, delay
		}
		budget := r.MaxFaults == 0 || r.faults < r.MaxFaults
		if budget && r.ErrorRate > 0 && p.rnd.Float64() < r.ErrorRate {
			r.faults++
			st.Errors++
			return fail, r, delay
		}
		if budget && r.DropRate > 0 && p.rnd.Float64() < r.DropRate {
			r.faults++
			st.Dropped++
			if r.DropAfterForward {
				return dropAfter, r, delay
			}
			return drop, r, delay
		}
	}
	st.Forwarded++
	return forward, nil, delay
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "faultproxy: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	proto, service, op := Classify(r, body)
	v, rule, delay := p.decide(service, op)
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch v {
	case throttle:
		writeThrottle(w, proto, rule.Rule)
	case fail:
		writeServerError(w, proto, rule.ErrorStatus)
	case drop:
		hangUp(w)
	case dropAfter:
		// Let the target act, swallow its answer, then hang up.
		rec := &discardWriter{header: http.Header{}}
		p.rp.ServeHTTP(rec, r)
		hangUp(w)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// Protocols the proxy answers in.
const (
	ProtoQuery = "query" // EC2, IAM, STS...: form body with Action, XML errors
	ProtoJSON  = "json"  // X-Amz-Target JSON protocols
	ProtoREST  = "rest"  // REST-JSON (Batch, Lambda)
)

// Classify returns a request's protocol, SigV4 service and operation name.
func Classify(r *http.Request, body []byte) (proto, service, op string) {
	service = signingService(r.Header.Get("Authorization"))
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		if i := strings.LastIndexByte(t, '.'); i >= 0 {
			t = t[i+1:]
		}
		return ProtoJSON, service, t
	}
	if a := r.URL.Query().Get("Action"); a != "" {
		return ProtoQuery, service, a
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if vals, err := url.ParseQuery(string(body)); err == nil && vals.Get("Action") != "" {
			return ProtoQuery, service, vals.Get("Action")
		}
	}
	path := strings.TrimRight(r.URL.Path, "/")
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		path = path[i+1:]
	}
	return ProtoREST, service, path
}

// signingService reads the service from a SigV4 Authorization header
// ("... Credential=AKID/20240101/us-east-1/ec2/aws4_request, ...").
func signingService(auth string) string {
	i := strings.Index(auth, "Credential=")
	if i < 0 {
		return ""
	}
	cred := auth[i+len("Credential="):]
	if j := strings.IndexAny(cred, ", "); j >= 0 {
		cred = cred[:j]
	}
	parts := strings.Split(cred, "/")
	if len(parts) < 5 {
		return ""
	}
	return parts[3]
}

func writeThrottle(w http.ResponseWriter, proto string, r Rule) {
	if proto == ProtoQuery {
		status, code := orInt(r.ThrottleStatus, http.StatusServiceUnavailable), orStr(r.ThrottleCode, "RequestLimitExceeded")
		writeXMLError(w, status, code, "Request limit exceeded.")
		return
	}
	status, code := orInt(r.ThrottleStatus, http.StatusBadRequest), orStr(r.ThrottleCode, "ThrottlingException")
	writeJSONError(w, status, code, "Rate exceeded")
}

func writeServerError(w http.ResponseWriter, proto string, status int) {
	status = orInt(status, http.StatusInternalServerError)
	code := "InternalError"
	if status == http.StatusServiceUnavailable {
		code = "Unavailable"
	}
	if proto == ProtoQuery {
		writeXMLError(w, status, code, "An internal error has occurred (injected by faultproxy).")
		return
	}
	if code == "InternalError" {
		code = "InternalFailure"
	} else {
		code = "ServiceUnavailable"
	}
	writeJSONError(w, status, code, "injected by faultproxy")
}

func writeXMLError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
		code, msg, requestID())
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", code)
	w.Header().Set("X-Amzn-Requestid", requestID())
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":%q,"message":%q}`, code, msg)
}

func requestID() string {
	return fmt.Sprintf("%08x-faul-tpro-xy00-%012x", rand.Uint32(), rand.Uint64()&0xffffffffffff)
}

// hangUp closes the client connection without an HTTP answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // net/http closes the connection
}

type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orStr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
