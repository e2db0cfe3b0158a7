// Package rolecheck verifies a member account's role for registered
// credentials: AssumeRole with the External ID ceforge generated, then,
// as the role, a read of its own permission policies and a check that they
// grant every permission group (member.Groups). All of it is read-only.
// The reads are sent by awsclient/signed (the requests the SDK sends): the
// SDK's IAM client would cost the api, the one function that verifies,
// part of its 12 MB budget.
package rolecheck

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"

	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/awsclient/signed"
	"github.com/ceforge/ceforge/internal/credential"
	"github.com/ceforge/ceforge/internal/member"
)

// Caller sends one signed request (signed.Client).
type Caller interface {
	Call(ctx context.Context, req signed.Request, out any) error
}

// Verifier implements credential.Verifier against AWS, through the
// factory (so the role must be registered before it can be verified).
type Verifier struct {
	AWS *awsclient.Factory
	Now func() time.Time
	// Client, when set, replaces the signed client of a configuration
	// (tests of error paths).
	Client func(cfg aws.Config) Caller
}

// New returns a Verifier on f.
func New(f *awsclient.Factory) credential.Verifier { return &Verifier{AWS: f} }

func (v *Verifier) client(cfg aws.Config) Caller {
	if v.Client != nil {
		return v.Client(cfg)
	}
	return signed.New(cfg)
}

// CallerIdentity is STS GetCallerIdentity of cfg's credentials (no
// permission needed).
func CallerIdentity(ctx context.Context, c Caller) (account, arn string, err error) {
	var out struct {
		Result struct{ Account, Arn string } `xml:"GetCallerIdentityResult"`
	}
	form := url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}}
	if err := c.Call(ctx, signed.Request{Service: "sts", Form: form}, &out); err != nil {
		return "", "", err
	}
	return out.Result.Account, out.Result.Arn, nil
}

// Verify implements credential.Verifier.
func (v *Verifier) Verify(ctx context.Context, c *credential.Credential) credential.Verification {
	out := credential.Verification{CheckedAt: time.Now().UTC()}
	if v.Now != nil {
		out.CheckedAt = v.Now().UTC()
	}
	cl := v.client(v.AWS.ForRole("", awsclient.Credentials{RoleARN: c.RoleARN, ExternalID: c.ExternalID}))
	account, arn, err := CallerIdentity(ctx, cl)
	if err != nil {
		out.Message = assumeMessage(c, err)
		return out
	}
	out.Assumed, out.Identity = true, arn
	if account != c.AccountID {
		out.Assumed = false
		out.Message = fmt.Sprintf("the assumed role reports account %s, not %s", account, c.AccountID)
		return out
	}
	docs, err := readPolicies(ctx, iamReader{cl}, roleName(c.RoleARN))
	if err != nil {
		out.Message = fmt.Sprintf("the role could not read its own policies (%v); the member stack grants %s on the role itself", err, strings.Join(member.SelfReadActions, ", "))
		return out
	}
	out.Groups = docs.groups()
	return out
}

// groups checks every permission group's actions.
func (p rolePolicies) groups() []credential.GroupCheck {
	var out []credential.GroupCheck
	for _, g := range member.Groups {
		gc := credential.GroupCheck{Name: g.Name, OK: true}
		for _, a := range g.Actions {
			if !p.allow(a) {
				gc.OK = false
				gc.Missing = append(gc.Missing, a)
			}
		}
		out = append(out, gc)
	}
	return out
}

// assumeMessage explains a failed AssumeRole.
func assumeMessage(c *credential.Credential, err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "AccessDenied" || ae.ErrorCode() == "AccessDeniedException") {
		return fmt.Sprintf("AssumeRole was refused: the role %s must trust the control plane's function roles with the External ID %s (deploy the member stack in account %s with that External ID)", c.RoleARN, c.ExternalID, c.AccountID)
	}
	return "could not assume " + c.RoleARN + ": " + err.Error()
}

// roleName is the name of a role ARN (its path left out).
func roleName(arn string) string {
	_, res, _ := strings.Cut(arn, ":role/")
	if i := strings.LastIndex(res, "/"); i >= 0 {
		return res[i+1:]
	}
	return res
}

// rolePolicies are a role's permission policies and its boundary (an
// action must be allowed by both).
type rolePolicies struct {
	identity []document
	boundary []document
}

func (p rolePolicies) allow(action string) bool {
	return allowedBy(p.identity, action) && (p.boundary == nil || allowedBy(p.boundary, action))
}

// iamReader reads a role's own IAM documents (IAM's query protocol).
type iamReader struct{ c Caller }

func (r iamReader) call(ctx context.Context, action string, params url.Values, out any) error {
	params.Set("Action", action)
	params.Set("Version", "2010-05-08")
	if err := r.c.Call(ctx, signed.Request{Service: "iam", Form: params}, out); err != nil {
		return fmt.Errorf("iam:%s: %w", action, err)
	}
	return nil
}

// readPolicies reads a role's inline and attached policies and its
// permissions boundary.
func readPolicies(ctx context.Context, r iamReader, role string) (rolePolicies, error) {
	var out rolePolicies
	var got struct {
		Result struct {
			Role struct {
				PermissionsBoundary struct{ PermissionsBoundaryArn string }
			}
		} `xml:"GetRoleResult"`
	}
	if err := r.call(ctx, "GetRole", url.Values{"RoleName": {role}}, &got); err != nil {
		return out, err
	}
	if b := got.Result.Role.PermissionsBoundary.PermissionsBoundaryArn; b != "" {
		d, err := r.managed(ctx, b)
		if err != nil {
			return out, err
		}
		out.boundary = []document{d}
	}
	marker := ""
	for {
		var page struct {
			Result struct {
				AttachedPolicies struct {
					Member []struct{ PolicyArn string } `xml:"member"`
				}
				IsTruncated bool
				Marker      string
			} `xml:"ListAttachedRolePoliciesResult"`
		}
		q := url.Values{"RoleName": {role}}
		if marker != "" {
			q.Set("Marker", marker)
		}
		if err := r.call(ctx, "ListAttachedRolePolicies", q, &page); err != nil {
			return out, err
		}
		for _, p := range page.Result.AttachedPolicies.Member {
			d, err := r.managed(ctx, p.PolicyArn)
			if err != nil {
				return out, err
			}
			out.identity = append(out.identity, d)
		}
		if !page.Result.IsTruncated {
			break
		}
		marker = page.Result.Marker
	}
	marker = ""
	for {
		var page struct {
			Result struct {
				PolicyNames struct {
					Member []string `xml:"member"`
				}
				IsTruncated bool
				Marker      string
			} `xml:"ListRolePoliciesResult"`
		}
		q := url.Values{"RoleName": {role}}
		if marker != "" {
			q.Set("Marker", marker)
		}
		if err := r.call(ctx, "ListRolePolicies", q, &page); err != nil {
			return out, err
		}
		for _, name := range page.Result.PolicyNames.Member {
			var pol struct {
				Result struct{ PolicyDocument string } `xml:"GetRolePolicyResult"`
			}
			if err := r.call(ctx, "GetRolePolicy", url.Values{"RoleName": {role}, "PolicyName": {name}}, &pol); err != nil {
				return out, err
			}
			d, err := parseDocument(pol.Result.PolicyDocument)
			if err != nil {
				return out, fmt.Errorf("inline policy %s: %w", name, err)
			}
			out.identity = append(out.identity, d)
		}
		if !page.Result.IsTruncated {
			break
		}
		marker = page.Result.Marker
	}
	return out, nil
}

// managed reads the default version of a managed policy.
func (r iamReader) managed(ctx context.Context, arn string) (document, error) {
	var p struct {
		Result struct {
			Policy struct{ DefaultVersionId string }
		} `xml:"GetPolicyResult"`
	}
	if err := r.call(ctx, "GetPolicy", url.Values{"PolicyArn": {arn}}, &p); err != nil {
		return document{}, err
	}
	var v struct {
		Result struct {
			PolicyVersion struct{ Document string }
		} `xml:"GetPolicyVersionResult"`
	}
	if err := r.call(ctx, "GetPolicyVersion", url.Values{"PolicyArn": {arn}, "VersionId": {p.Result.Policy.DefaultVersionId}}, &v); err != nil {
		return document{}, err
	}
	d, err := parseDocument(v.Result.PolicyVersion.Document)
	if err != nil {
		return document{}, fmt.Errorf("policy %s: %w", arn, err)
	}
	return d, nil
}
