// Package sigv4 checks AWS Signature Version 4 on incoming requests the way
// API Gateway's IAM authorization (service execute-api) and Lambda Function
// URLs with AWS_IAM auth (service lambda) do, for the local stack: the
// caller's identity is the IAM user the access key belongs to, and an
// unsigned, expired or wrongly signed request is refused with 403 and the
// message AWS sends. It also signs outgoing requests (the CLI).
//
// The canonical request follows the published algorithm (not the Go SDK's
// code), so the tests can hold clients built on the SDK, botocore and curl
// against one independent reading of the specification.
package sigv4

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm accepted.
const Algorithm = "AWS4-HMAC-SHA256"

// MaxSkew is how far a request's X-Amz-Date may be from the server's clock.
const MaxSkew = 15 * time.Minute

// MaxBody bounds the body read to hash it (API Gateway's payload limit).
const MaxBody = 10 << 20

// Key is one access key the verifier knows.
type Key struct {
	AccessKeyID     string
	SecretAccessKey string
	// ARN is the identity of the key's owner (arn:aws:iam::<account>:user/<name>).
	ARN string
}

// Verifier checks signatures for one service in one region.
type Verifier struct {
	Service string // "execute-api" or "lambda"
	Region  string
	Keys    map[string]Key // by access key id
	Now     func() time.Time
}

// Error is a refused request: AWS answers these with 403 and {"message": ...}.
type Error struct{ Message string }

func (e *Error) Error() string { return e.Message }

// The messages AWS sends for each refusal.
const (
	msgMissing   = "Missing Authentication Token"
	msgMismatch  = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgBadToken  = "The security token included in the request is invalid."
	msgMalformed = "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters."
)

func refuse(format string, args ...any) error { return &Error{Message: fmt.Sprintf(format, args...)} }

type authHeader struct {
	akid, date, region, service string
	signedHeaders               []string
	signature                   string
}

func parseAuthorization(v string) (authHeader, error) {
	var a authHeader
	rest, ok := strings.CutPrefix(v, Algorithm+" ")
	if !ok {
		if strings.HasPrefix(v, "AWS4-") || strings.HasPrefix(v, "AWS ") {
			return a, refuse("Only %s is supported.", Algorithm)
		}
		return a, refuse(msgMissing)
	}
	var cred, signed string
	for _, part := range strings.Split(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = val
		case "SignedHeaders":
			signed = val
		case "Signature":
			a.signature = val
		}
	}
	if cred == "" || signed == "" || a.signature == "" {
		return a, refuse(msgMalformed)
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return a, refuse("Credential should be scoped to a valid region, not '%s'.", strings.Join(scope[min(len(scope), 2):], "/"))
	}
	a.akid, a.date, a.region, a.service = scope[0], scope[1], scope[2], scope[3]
	a.signedHeaders = strings.Split(signed, ";")
	return a, nil
}

// Verify checks r's signature and returns the caller's ARN. It reads the
// body to hash it and puts it back, so the handler reads it as sent.
func (v *Verifier) Verify(r *http.Request) (string, error) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return "", refuse(msgMissing)
	}
	a, err := parseAuthorization(authz)
	if err != nil {
		return "", err
	}
	if a.service != v.Service {
		return "", refuse("Credential should be scoped to correct service: '%s'. ", v.Service)
	}
	if a.region != v.Region {
		return "", refuse("Credential should be scoped to a valid region, not '%s'. ", a.region)
	}
	key, ok := v.Keys[a.akid]
	if !ok {
		return "", refuse(msgBadToken)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return "", refuse("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, a.date) {
		return "", refuse("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s'", a.date, amzDate)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if d := now().Sub(t); d > MaxSkew || d < -MaxSkew {
		return "", refuse("Signature expired: %s is now earlier than %s (%s - 15 min.)", amzDate,
			now().UTC().Add(-MaxSkew).Format("20060102T150405Z"), now().UTC().Format("20060102T150405Z"))
	}
	signed := map[string]bool{}
	for _, h := range a.signedHeaders {
		signed[h] = true
	}
	if !signed["host"] {
		return "", refuse("'Host' must be a signed header")
	}
	body, err := readBody(r)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payload {
		return "", refuse("The provided 'x-amz-content-sha256' header does not match what was computed.")
	}
	canonical := CanonicalRequest(r, a.signedHeaders, payload)
	scope := strings.Join([]string{a.date, a.region, a.service, "aws4_request"}, "/")
	want := Signature(key.SecretAccessKey, a.date, a.region, a.service, StringToSign(amzDate, scope, canonical))
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(a.signature))) != 1 {
		return "", refuse(msgMismatch)
	}
	return key.ARN, nil
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	_ = r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(b) > MaxBody {
		return nil, &Error{Message: "Request Too Long"}
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, nil
}

// CanonicalRequest builds the canonical request of r over the given signed
// headers (lower case) and payload hash.
func CanonicalRequest(r *http.Request, signedHeaders []string, payloadHash string) string {
	path := r.URL.EscapedPath()
	if r.RequestURI != "" && !strings.HasPrefix(r.RequestURI, "http") {
		// The path exactly as sent (the server's URL may hold a re-encoded one).
		path, _, _ = strings.Cut(r.RequestURI, "?")
	}
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalPath(path))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	for _, h := range signedHeaders {
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(headerValue(r, h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// canonicalPath encodes the path as sent once more: every service but S3
// signs the doubly encoded path.
func canonicalPath(p string) string {
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = encode(s)
	}
	return strings.Join(segs, "/")
}

func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	type kv struct{ k, v string }
	var pairs []kv
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			dk, dv = k, v
		}
		pairs = append(pairs, kv{encode(dk), encode(dv)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

func headerValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			vals = v
		} else {
			vals = []string{fmt.Sprint(max(r.ContentLength, 0))}
		}
	default:
		vals = r.Header.Values(name)
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

// encode is RFC 3986 percent-encoding of everything but the unreserved characters.
func encode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// StringToSign is the string the signature covers.
func StringToSign(amzDate, scope, canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return Algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
}

// Signature derives the signing key and signs stringToSign.
func Signature(secret, date, region, service, stringToSign string) string {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, stringToSign))
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// Middleware lets through only requests that v verifies, with the caller's
// ARN set by withIdentity; the others get 403 and AWS's {"message": ...}.
func (v *Verifier) Middleware(next http.Handler, withIdentity func(*http.Request, string) *http.Request) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arn, err := v.Verify(r)
		if err != nil {
			var e *Error
			status := http.StatusForbidden
			msg := "Internal Server Error"
			switch {
			case errors.As(err, &e) && e.Message == "Request Too Long":
				status, msg = http.StatusRequestEntityTooLarge, e.Message
			case errors.As(err, &e):
				msg = e.Message
			default:
				status = http.StatusInternalServerError
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-Errortype", "ForbiddenException")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
			return
		}
		next.ServeHTTP(w, withIdentity(r, arn))
	})
}
