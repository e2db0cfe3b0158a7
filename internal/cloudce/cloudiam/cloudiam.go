// Package cloudiam links the SDK's IAM client into the AWS Cloud platform.
// Import it for its side effect in the functions that create and delete
// AWS Cloud CEs' roles and instance profiles (the reconciler, the all-in-one
// local server). The api hands those steps on and reads instance profiles
// with awsclient/profileread instead: without this import it stays within
// its 12 MB budget (the IAM client is about 0.4 MB).
package cloudiam

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/ceforge/ceforge/internal/cloudce"
)

func init() {
	cloudce.RegisterIAM(func(cfg aws.Config) cloudce.IAMAPI { return iam.NewFromConfig(cfg) })
}
