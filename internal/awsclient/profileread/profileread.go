// Package profileread reads an IAM instance profile (GetInstanceProfile)
// with one request sent by awsclient/signed, for functions that validate
// AWS Cloud compute environments but create no IAM: the SDK's IAM client
// would add about 0.4 MB to the api function, past its 12 MB budget.
package profileread

import (
	"context"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/ceforge/ceforge/internal/awsclient/signed"
)

// Reader reads instance profiles with one configuration.
type Reader struct{ client *signed.Client }

// New returns a Reader acting with cfg.
func New(cfg aws.Config) *Reader { return &Reader{client: signed.New(cfg)} }

// GetInstanceProfile has the SDK client's signature, so the caller uses
// either. It fills the profile's name, ARN and its roles' names and ARNs.
// AWS errors (NoSuchEntity, AccessDenied) are smithy.APIError.
func (r *Reader) GetInstanceProfile(ctx context.Context, in *iam.GetInstanceProfileInput, _ ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error) {
	var out struct {
		Result struct {
			InstanceProfile struct {
				InstanceProfileName, Arn string
				Roles                    struct {
					Member []struct{ RoleName, Arn string } `xml:"member"`
				}
			}
		} `xml:"GetInstanceProfileResult"`
	}
	form := url.Values{"Action": {"GetInstanceProfile"}, "Version": {"2010-05-08"}, "InstanceProfileName": {aws.ToString(in.InstanceProfileName)}}
	if err := r.client.Call(ctx, signed.Request{Service: "iam", Form: form}, &out); err != nil {
		return nil, err
	}
	p := out.Result.InstanceProfile
	profile := &iamtypes.InstanceProfile{InstanceProfileName: aws.String(p.InstanceProfileName), Arn: aws.String(p.Arn)}
	for _, role := range p.Roles.Member {
		profile.Roles = append(profile.Roles, iamtypes.Role{RoleName: aws.String(role.RoleName), Arn: aws.String(role.Arn)})
	}
	return &iam.GetInstanceProfileOutput{InstanceProfile: profile}, nil
}
