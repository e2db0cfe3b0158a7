package iamcheck

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ceforge/ceforge/internal/awsclient"
)

// HTTPClient returns an HTTP client (awsclient.Options.HTTPClient) that
// sends through inner and records, as made by function, the signed
// requests no SDK client made: awsclient/signed sends EFS and FSx
// describes, SSM GetParameter, IAM GetInstanceProfile and ECS
// DescribeContainerInstances, credential verification's STS and IAM
// reads and the pipeline-secret writes itself (for the
// api's binary size), so Middleware never sees them. SDK requests (they
// carry Amz-Sdk-Invocation-Id) are recorded by Middleware and pass as they
// are. A request the tier cannot name is recorded by its signing name,
// method and path, and fails the test as unmapped.
func (r *Recorder) HTTPClient(function string, inner aws.HTTPClient) aws.HTTPClient {
	return &recordingHTTP{r: r, function: function, inner: inner}
}

type recordingHTTP struct {
	r        *Recorder
	function string
	inner    aws.HTTPClient
}

func (h *recordingHTTP) Do(req *http.Request) (*http.Response, error) {
	service, region, signed := signingScope(req.Header.Get("Authorization"))
	if !signed || req.Header.Get("Amz-Sdk-Invocation-Id") != "" {
		return h.inner.Do(req)
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	c := &Call{Function: h.function, ActingAs: awsclient.ActingAs(req.Context()), Region: region}
	c.Service, c.Operation, c.Input = handSigned(service, req, body)
	if m, ok := mappings[c.Name()]; ok && m.facts != nil && h.r.facts != nil {
		m.facts(req.Context(), c, h.r.facts)
	}
	res, err := h.inner.Do(req)
	if err == nil && res.StatusCode < 300 {
		c.Output = res.StatusCode
	}
	h.r.mu.Lock()
	h.r.calls = append(h.r.calls, c)
	h.r.mu.Unlock()
	return res, err
}

// signingScope reads the service and region of a SigV4 Authorization
// header ("AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, …").
func signingScope(auth string) (service, region string, ok bool) {
	_, cred, found := strings.Cut(auth, "Credential=")
	if !found {
		return "", "", false
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return "", "", false
	}
	return parts[3], parts[2], true
}

// handSigned names a hand-signed request as the SDK would (service id,
// operation, the SDK's input type, so the operation's mapping applies).
func handSigned(service string, req *http.Request, body []byte) (string, string, any) {
	q := req.URL.Query()
	switch service {
	case "elasticfilesystem":
		if req.Method == http.MethodGet {
			switch strings.TrimSuffix(req.URL.Path, "/") {
			case "/2015-02-01/file-systems":
				return "EFS", "DescribeFileSystems", &efs.DescribeFileSystemsInput{FileSystemId: optional(q.Get("FileSystemId"))}
			case "/2015-02-01/mount-targets":
				return "EFS", "DescribeMountTargets", &efs.DescribeMountTargetsInput{
					FileSystemId: optional(q.Get("FileSystemId")), MountTargetId: optional(q.Get("MountTargetId")),
				}
			}
		}
	case "fsx":
		if _, op, ok := strings.Cut(req.Header.Get("X-Amz-Target"), "."); ok && op == "DescribeFileSystems" {
			in := &fsx.DescribeFileSystemsInput{}
			_ = json.Unmarshal(body, in) // the mapping needs nothing of it
			return "FSx", op, in
		}
	case "ssm":
		if _, op, ok := strings.Cut(req.Header.Get("X-Amz-Target"), "."); ok && op == "GetParameter" {
			var in struct{ Name string }
			_ = json.Unmarshal(body, &in)
			return "SSM", op, &ssm.GetParameterInput{Name: aws.String(in.Name)}
		}
	case "ecs":
		if _, op, ok := strings.Cut(req.Header.Get("X-Amz-Target"), "."); ok && op == "DescribeContainerInstances" {
			var in struct {
				Cluster            string   `json:"cluster"`
				ContainerInstances []string `json:"containerInstances"`
			}
			_ = json.Unmarshal(body, &in)
			return "ECS", op, &ecs.DescribeContainerInstancesInput{Cluster: optional(in.Cluster), ContainerInstances: in.ContainerInstances}
		}
	case "iam":
		// The query protocol: the action and its parameters are the form.
		// credential/rolecheck reads a member role's own policies this way.
		form, err := url.ParseQuery(string(body))
		if err != nil {
			break
		}
		role, policy := optional(form.Get("RoleName")), optional(form.Get("PolicyArn"))
		switch op := form.Get("Action"); op {
		case "GetInstanceProfile":
			return "IAM", op, &iam.GetInstanceProfileInput{InstanceProfileName: optional(form.Get("InstanceProfileName"))}
		case "GetRole":
			return "IAM", op, &iam.GetRoleInput{RoleName: role}
		case "ListAttachedRolePolicies":
			return "IAM", op, &iam.ListAttachedRolePoliciesInput{RoleName: role}
		case "ListRolePolicies":
			return "IAM", op, &iam.ListRolePoliciesInput{RoleName: role}
		case "GetRolePolicy":
			return "IAM", op, &iam.GetRolePolicyInput{RoleName: role, PolicyName: optional(form.Get("PolicyName"))}
		case "GetPolicy":
			return "IAM", op, &iam.GetPolicyInput{PolicyArn: policy}
		case "GetPolicyVersion":
			return "IAM", op, &iam.GetPolicyVersionInput{PolicyArn: policy, VersionId: optional(form.Get("VersionId"))}
		}
	case "sts":
		// credential/rolecheck asks who it is, as the member role.
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") == "GetCallerIdentity" {
			return "STS", "GetCallerIdentity", &sts.GetCallerIdentityInput{}
		}
	case "secretsmanager":
		// secret/smvault writes pipeline secrets (JSON 1.1, the SDK's
		// field names, blobs as base64: the SDK input types decode it).
		_, op, _ := strings.Cut(req.Header.Get("X-Amz-Target"), ".")
		var in any
		switch op {
		case "CreateSecret":
			in = &secretsmanager.CreateSecretInput{}
		case "PutResourcePolicy":
			in = &secretsmanager.PutResourcePolicyInput{}
		case "PutSecretValue":
			in = &secretsmanager.PutSecretValueInput{}
		case "DeleteSecret":
			in = &secretsmanager.DeleteSecretInput{}
		}
		if in != nil && json.Unmarshal(body, in) == nil {
			return "Secrets Manager", op, in
		}
	}
	return service, "HTTP " + req.Method + " " + req.URL.Path + " " + req.Header.Get("X-Amz-Target"), nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
