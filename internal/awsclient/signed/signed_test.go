package signed

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/sigv4"
)

const (
	testKeyID  = "AKIDSIGNEDTEST"
	testSecret = "signed-test-secret"
)

// server answers with handle after checking the request's signature as
// AWS would (internal/sigv4, the verifier the local API uses) for the
// service and region the test expects.
func server(t *testing.T, service, region string, handle func(w http.ResponseWriter, r *http.Request, body []byte)) (*Client, *atomic.Int32) {
	t.Helper()
	v := &sigv4.Verifier{Service: service, Region: region, Keys: map[string]sigv4.Key{
		testKeyID: {AccessKeyID: testKeyID, SecretAccessKey: testSecret, ARN: "arn:aws:iam::123456789012:user/test"},
	}}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if _, err := v.Verify(r); err != nil {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"__type":"InvalidSignatureException","message":"`+err.Error()+`"}`)
			return
		}
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		handle(w, r, body)
	}))
	t.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(testKeyID, testSecret, ""),
	}
	c := New(cfg)
	return c, &calls
}

func TestProtocolsSendWhatTheSDKSends(t *testing.T) {
	t.Run("json 1.1", func(t *testing.T) {
		c, _ := server(t, "ssm", "eu-west-1", func(w http.ResponseWriter, r *http.Request, body []byte) {
			require.Equal(t, http.MethodPost, r.Method)
			require.Equal(t, "/", r.URL.Path)
			require.Equal(t, "AmazonSSM.GetParameter", r.Header.Get("X-Amz-Target"))
			require.Equal(t, "application/x-amz-json-1.1", r.Header.Get("Content-Type"))
			require.JSONEq(t, `{"Name":"/p"}`, string(body))
			_, _ = io.WriteString(w, `{"Parameter":{"Value":"v"}}`)
		})
		var out struct{ Parameter struct{ Value string } }
		require.NoError(t, c.Call(context.Background(), Request{Service: "ssm", Target: "AmazonSSM.GetParameter", Body: []byte(`{"Name":"/p"}`)}, &out))
		require.Equal(t, "v", out.Parameter.Value)
	})
	t.Run("rest json", func(t *testing.T) {
		c, _ := server(t, "elasticfilesystem", "eu-west-1", func(w http.ResponseWriter, r *http.Request, body []byte) {
			require.Equal(t, http.MethodGet, r.Method)
			require.Equal(t, "/2015-02-01/file-systems", r.URL.Path)
			require.Equal(t, "fs-1", r.URL.Query().Get("FileSystemId"))
			require.Empty(t, body)
			_, _ = io.WriteString(w, `{"FileSystems":[{"FileSystemId":"fs-1"}]}`)
		})
		var out struct {
			FileSystems []struct{ FileSystemId string }
		}
		err := c.Call(context.Background(), Request{Service: "elasticfilesystem", Method: http.MethodGet,
			Path: "/2015-02-01/file-systems", Query: url.Values{"FileSystemId": {"fs-1"}}}, &out)
		require.NoError(t, err)
		require.Equal(t, "fs-1", out.FileSystems[0].FileSystemId)
	})
	t.Run("query protocol is signed for IAM's global region", func(t *testing.T) {
		// IAM is global: a client configured for eu-west-1 signs for us-east-1.
		c, _ := server(t, "iam", "us-east-1", func(w http.ResponseWriter, r *http.Request, body []byte) {
			require.Equal(t, "application/x-www-form-urlencoded; charset=utf-8", r.Header.Get("Content-Type"))
			form, err := url.ParseQuery(string(body))
			require.NoError(t, err)
			require.Equal(t, "GetInstanceProfile", form.Get("Action"))
			require.Equal(t, "p", form.Get("InstanceProfileName"))
			_, _ = io.WriteString(w, `<GetInstanceProfileResponse><GetInstanceProfileResult><InstanceProfile><Arn>arn:aws:iam::1:instance-profile/p</Arn></InstanceProfile></GetInstanceProfileResult></GetInstanceProfileResponse>`)
		})
		c.cfg.Region = "eu-west-1"
		var out struct {
			Result struct {
				InstanceProfile struct{ Arn string }
			} `xml:"GetInstanceProfileResult"`
		}
		err := c.Call(context.Background(), Request{Service: "iam", Form: url.Values{
			"Action": {"GetInstanceProfile"}, "Version": {"2010-05-08"}, "InstanceProfileName": {"p"}}}, &out)
		require.NoError(t, err)
		require.Equal(t, "arn:aws:iam::1:instance-profile/p", out.Result.InstanceProfile.Arn)
	})
}

func TestErrorsReadAsSDKErrors(t *testing.T) {
	cases := []struct {
		name    string
		req     Request
		status  int
		header  map[string]string
		body    string
		code    string
		message string
		fault   smithy.ErrorFault
	}{
		{name: "json 1.1 __type with a namespace", req: Request{Service: "ssm", Target: "AmazonSSM.GetParameter", Body: []byte(`{}`)},
			status: 400, body: `{"__type":"com.amazonaws.ssm#ParameterNotFound","message":"no such parameter"}`,
			code: "ParameterNotFound", message: "no such parameter", fault: smithy.FaultClient},
		{name: "rest json header with a suffix", req: Request{Service: "fsx", Method: http.MethodGet, Path: "/"},
			status: 404, header: map[string]string{"X-Amzn-ErrorType": "FileSystemNotFound:http://internal.amazon.com/"},
			body: `{"Message":"not found"}`, code: "FileSystemNotFound", message: "not found", fault: smithy.FaultClient},
		{name: "rest json ErrorCode field", req: Request{Service: "elasticfilesystem", Method: http.MethodGet, Path: "/"},
			status: 404, body: `{"ErrorCode":"FileSystemNotFound","Message":"gone"}`, code: "FileSystemNotFound", message: "gone", fault: smithy.FaultClient},
		{name: "query protocol XML", req: Request{Service: "iam", Form: url.Values{"Action": {"GetInstanceProfile"}}},
			status: 404, body: `<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>profile p not found</Message></Error></ErrorResponse>`,
			code: "NoSuchEntity", message: "profile p not found", fault: smithy.FaultClient},
		{name: "no body names the status", req: Request{Service: "iam", Form: url.Values{"Action": {"GetInstanceProfile"}}},
			status: 403, code: "Forbidden", fault: smithy.FaultClient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			region := "eu-west-1"
			if tc.req.Service == "iam" {
				region = "us-east-1"
			}
			c, calls := server(t, tc.req.Service, region, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			c.cfg.Region = region
			err := c.Call(context.Background(), tc.req, &struct{}{})
			var ae smithy.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, tc.code, ae.ErrorCode())
			require.Equal(t, tc.message, ae.ErrorMessage())
			require.Equal(t, tc.fault, ae.ErrorFault())
			require.EqualValues(t, 1, calls.Load(), "a client error is not retried")
		})
	}
}

func TestRetriesThrottlingAndServerErrorsOnly(t *testing.T) {
	cases := []struct {
		name     string
		failures []int // statuses answered before success
		wantErr  string
		calls    int32
	}{
		{name: "throttled then served", failures: []int{400}, calls: 2},
		{name: "5xx then served", failures: []int{503, 500}, calls: 3},
		{name: "still failing after the attempts", failures: []int{503, 503, 503, 503}, wantErr: "ServiceUnavailable", calls: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			c, calls := server(t, "ssm", "eu-west-1", func(w http.ResponseWriter, r *http.Request, _ []byte) {
				i := int(n.Add(1)) - 1
				if i < len(tc.failures) {
					status := tc.failures[i]
					code := "ServiceUnavailable"
					if status == 400 {
						code = "ThrottlingException"
					}
					w.WriteHeader(status)
					_, _ = io.WriteString(w, `{"__type":"`+code+`","message":"try later"}`)
					return
				}
				_, _ = io.WriteString(w, `{"ok":true}`)
			})
			var out struct{ OK bool }
			err := c.Call(context.Background(), Request{Service: "ssm", Target: "AmazonSSM.GetParameter", Body: []byte(`{}`)}, &out)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
				require.True(t, out.OK)
			}
			require.Equal(t, tc.calls, calls.Load())
		})
	}
}

func TestRefusesWithoutCredentialsOrWithBadAnswers(t *testing.T) {
	c, calls := server(t, "ssm", "eu-west-1", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		_, _ = io.WriteString(w, `not json`)
	})
	err := c.Call(context.Background(), Request{Service: "ssm", Target: "AmazonSSM.GetParameter", Body: []byte(`{}`)}, &struct{}{})
	require.ErrorContains(t, err, "decode ssm answer")
	require.EqualValues(t, 1, calls.Load(), "an answer that does not decode is not asked again")

	c.cfg.Credentials = nil
	before := calls.Load()
	err = c.Call(context.Background(), Request{Service: "ssm", Target: "AmazonSSM.GetParameter", Body: []byte(`{}`)}, &struct{}{})
	require.ErrorContains(t, err, "no credentials")
	require.Equal(t, before, calls.Load(), "nothing is sent unsigned")

	// A wrong secret is refused by the verifier as AWS refuses it.
	c.cfg.Credentials = credentials.NewStaticCredentialsProvider(testKeyID, "wrong", "")
	c = New(c.cfg) // a fresh signer: the SDK's caches derived keys per access key
	err = c.Call(context.Background(), Request{Service: "ssm", Target: "AmazonSSM.GetParameter", Body: []byte(`{}`)}, &struct{}{})
	var ae *APIError
	require.True(t, errors.As(err, &ae), "%v", err)
	require.Equal(t, "InvalidSignatureException", ae.Code)
	require.Equal(t, 403, ae.Status)
}

func TestEndpoints(t *testing.T) {
	cases := []struct {
		region, service, endpoint, iamEndpoint, iamRegion string
	}{
		{"eu-west-1", "ssm", "https://ssm.eu-west-1.amazonaws.com", "https://iam.amazonaws.com", "us-east-1"},
		{"cn-north-1", "fsx", "https://fsx.cn-north-1.amazonaws.com.cn", "https://iam.cn-north-1.amazonaws.com.cn", "cn-north-1"},
		{"us-gov-east-1", "ssm", "https://ssm.us-gov-east-1.amazonaws.com", "https://iam.us-gov.amazonaws.com", "us-gov-west-1"},
	}
	for _, tc := range cases {
		c := New(aws.Config{Region: tc.region})
		require.Equal(t, tc.endpoint, c.endpoint(tc.service))
		endpoint, region := c.globalEndpoint()
		require.Equal(t, tc.iamEndpoint, endpoint)
		require.Equal(t, tc.iamRegion, region)
	}
}
