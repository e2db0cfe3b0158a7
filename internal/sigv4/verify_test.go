package sigv4_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/sigv4"
)

var key = sigv4.Key{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ARN: "arn:aws:iam::123456789012:user/alice"}

// server answers 200 with the caller's ARN and the body it read, behind a
// verifier for service.
func server(t *testing.T, service string) *httptest.Server {
	t.Helper()
	v := &sigv4.Verifier{Service: service, Region: "us-east-1", Keys: map[string]sigv4.Key{key.AccessKeyID: key}}
	type ctxKey struct{}
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(map[string]string{"caller": r.Context().Value(ctxKey{}).(string), "body": string(body)})
	}), func(r *http.Request, arn string) *http.Request {
		return r.WithContext(context.WithValue(r.Context(), ctxKey{}, arn))
	})
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func python(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CEFORGE_PYTHON"); p != "" {
		return p
	}
	p, err := exec.LookPath("python3")
	require.NoError(t, err, "python3 with botocore is needed (scripts/tools.sh installs it)")
	return p
}

// botocoreSign signs a request with botocore's SigV4Auth (the AWS CLI's
// signer, an independent implementation) and returns its headers.
const botocoreSign = `
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
a = json.load(sys.stdin)
req = AWSRequest(method=a["method"], url=a["url"], data=a["body"].encode() if a["body"] else None, headers=a["headers"])
SigV4Auth(Credentials(a["akid"], a["secret"], a.get("token")), a["service"], "us-east-1").add_auth(req)
print(json.dumps(dict(req.headers.items())))
`

func signWithBotocore(t *testing.T, method, url, body, service, secret string, headers map[string]string) map[string]string {
	t.Helper()
	in, _ := json.Marshal(map[string]any{"method": method, "url": url, "body": body, "headers": headers, "akid": key.AccessKeyID, "secret": secret, "service": service})
	cmd := exec.Command(python(t), "-c", botocoreSign)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "botocore signing: %s", out)
	var h map[string]string
	require.NoError(t, json.Unmarshal(out, &h), string(out))
	return h
}

func send(t *testing.T, method, url, body string, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// Requests botocore signs (as the AWS CLI does) are accepted, with the key's
// user as the caller; the same requests tampered with are refused with 403
// and AWS's message.
func TestBotocoreSignedRequests(t *testing.T) {
	s := server(t, "execute-api")
	cases := []struct {
		name, method, path, body string
	}{
		{"get", "GET", "/compute-envs", ""},
		{"query", "GET", "/runs?status=RUNNING&computeEnvId=a1b2c3&limit=10", ""},
		{"encoded query", "GET", "/runs?cursor=a%2Bb%3D%3D&x=hello%20world", ""},
		{"post body", "POST", "/runs", `{"kind":"pipeline","computeEnvId":"a1","pipeline":"nf-core/rnaseq"}`},
		{"path escapes", "GET", "/runs/abc%20def/logs", ""},
		{"delete", "DELETE", "/compute-envs/abc?force=true", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json"}
			signed := signWithBotocore(t, tc.method, s.URL+tc.path, tc.body, "execute-api", key.SecretAccessKey, hdr)
			status, body := send(t, tc.method, s.URL+tc.path, tc.body, signed)
			require.Equal(t, 200, status, body)
			require.JSONEq(t, `{"caller":"`+key.ARN+`","body":`+string(mustJSON(tc.body))+`}`, body)

			// Tampered: another body, another path, a changed signature.
			if tc.body != "" {
				status, body = send(t, tc.method, s.URL+tc.path, strings.Replace(tc.body, "rnaseq", "sarek", 1), signed)
				require.Equal(t, 403, status)
				require.Contains(t, body, "The request signature we calculated does not match")
			}
			status, _ = send(t, tc.method, s.URL+tc.path+"x", tc.body, signed)
			require.Equal(t, 403, status)
			bad := map[string]string{}
			for k, v := range signed {
				bad[k] = v
			}
			auth := bad["Authorization"]
			last := auth[len(auth)-1]
			flip := byte('0')
			if last == '0' {
				flip = '1'
			}
			bad["Authorization"] = auth[:len(auth)-1] + string(flip)
			status, body = send(t, tc.method, s.URL+tc.path, tc.body, bad)
			require.Equal(t, 403, status)
			require.JSONEq(t, `{"message":"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}`, body)
		})
	}
}

func mustJSON(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

func TestRefusals(t *testing.T) {
	s := server(t, "execute-api")
	// Unsigned.
	status, body := send(t, "GET", s.URL+"/compute-envs", "", nil)
	require.Equal(t, 403, status)
	require.JSONEq(t, `{"message":"Missing Authentication Token"}`, body)
	// Wrong secret.
	h := signWithBotocore(t, "GET", s.URL+"/compute-envs", "", "execute-api", "not-the-secret", nil)
	status, body = send(t, "GET", s.URL+"/compute-envs", "", h)
	require.Equal(t, 403, status)
	require.Contains(t, body, "signature we calculated does not match")
	// Signed for the Function URL's service instead of the API's.
	h = signWithBotocore(t, "GET", s.URL+"/compute-envs", "", "lambda", key.SecretAccessKey, nil)
	status, body = send(t, "GET", s.URL+"/compute-envs", "", h)
	require.Equal(t, 403, status)
	require.Contains(t, body, "Credential should be scoped to correct service: 'execute-api'")
	// An unknown key.
	req, _ := http.NewRequest("GET", s.URL+"/compute-envs", nil)
	signer := v4.NewSigner()
	require.NoError(t, signer.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIAUNKNOWN", SecretAccessKey: "x"}, req,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "execute-api", "us-east-1", time.Now()))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, 403, res.StatusCode)
	require.JSONEq(t, `{"message":"The security token included in the request is invalid."}`, string(b))
	// A signature older than 15 minutes.
	req, _ = http.NewRequest("GET", s.URL+"/compute-envs", nil)
	require.NoError(t, signer.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}, req,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "execute-api", "us-east-1", time.Now().Add(-20*time.Minute)))
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, 403, res.StatusCode)
	require.Contains(t, string(b), "Signature expired")
}

// The Go SDK's signer (the CLI's) and curl --aws-sigv4 (the README's
// example) are accepted too, for the Function URL's service as well.
func TestGoSDKAndCurlSignedRequests(t *testing.T) {
	s := server(t, "lambda")
	body := `{"dryRun":true}`
	req, _ := http.NewRequest("POST", s.URL+"/runs/abc/logs?follow=true&cursor=x%2Fy", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h := sigv4Payload(body)
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}, req, h, "lambda", "us-east-1", time.Now()))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode, string(b))

	curl, err := exec.LookPath("curl")
	require.NoError(t, err)
	out, err := exec.Command(curl, "-s", "--aws-sigv4", "aws:amz:us-east-1:lambda", "--user", key.AccessKeyID+":"+key.SecretAccessKey,
		"-H", "Content-Type: application/json", "-d", body, s.URL+"/runs/abc/logs?follow=true").CombinedOutput()
	require.NoError(t, err, string(out))
	require.JSONEq(t, `{"caller":"`+key.ARN+`","body":`+string(mustJSON(body))+`}`, string(out))
	out, err = exec.Command(curl, "-s", "--aws-sigv4", "aws:amz:us-east-1:lambda", "--user", key.AccessKeyID+":wrong", s.URL+"/runs").CombinedOutput()
	require.NoError(t, err)
	require.Contains(t, string(out), "signature we calculated does not match")
}

func sigv4Payload(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])
}
