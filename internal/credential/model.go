// Package credential registers the member-account roles ceforge acts
// through. ceforge generates each role's External ID (the caller never
// chooses it), verifies the role (AssumeRole with that External ID, then a
// read-only check of every permission group the role must hold) and keeps
// the result; compute environments name registered credentials by id, and
// the AWS client factory assumes no role that is not registered here (see
// Service.Registered), so a caller who knows another customer's role ARN
// and External ID cannot make ceforge act with it.
package credential

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Provider is the only kind of credentials ceforge keeps: an IAM role.
const ProviderAWSRole = "aws-role"

// Status of credentials.
const (
	// StatusVerified: the last verification assumed the role and found
	// every permission group. Compute environments may name them.
	StatusVerified = "VERIFIED"
	// StatusUnverified: never verified, or the last verification failed
	// (the reason and the groups at fault are in Verification).
	StatusUnverified = "UNVERIFIED"
)

// Credential is a registered member-account role. The same shape is the
// API response and the stored record; no secret is part of it (the
// External ID is not one).
type Credential struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	Description  string        `json:"description,omitempty"`
	Provider     string        `json:"provider"`
	RoleARN      string        `json:"roleArn"`
	AccountID    string        `json:"accountId"`
	ExternalID   string        `json:"externalId"`
	Status       string        `json:"status"`
	StatusReason string        `json:"statusReason,omitempty"`
	Verification *Verification `json:"verification,omitempty"`
	// Setup tells what to deploy in the member account (the member stack
	// and its parameters) while the role cannot be assumed.
	Setup     string    `json:"setup,omitempty"`
	CreatedBy string    `json:"createdBy,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	Version   int64     `json:"version"`
}

// Verification is the result of one check of a credential's role.
type Verification struct {
	CheckedAt time.Time `json:"checkedAt"`
	// Assumed: AssumeRole with the External ID succeeded.
	Assumed bool `json:"assumed"`
	// Identity is the assumed-role ARN STS reported.
	Identity string `json:"identity,omitempty"`
	// Groups has one entry per permission group (member.Groups), once the
	// role was assumed and could read its own policies.
	Groups []GroupCheck `json:"groups,omitempty"`
	// Message says what failed, when something did.
	Message string `json:"message,omitempty"`
}

// GroupCheck is one permission group's result.
type GroupCheck struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Missing are the checked actions the role's policies do not allow.
	Missing []string `json:"missing,omitempty"`
}

// AccountOf returns the account id of a role ARN ("" if malformed).
func AccountOf(roleARN string) string {
	parts := strings.SplitN(roleARN, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

// roleKey is the id of the guard that says "this role may be assumed with
// this External ID": a digest, because a role ARN can be longer than a key.
func roleKey(roleARN, externalID string) string {
	sum := sha256.Sum256([]byte(roleARN + "\n" + externalID))
	return hex.EncodeToString(sum[:])
}

// MemberTemplate is where `make synth` writes the member stack's template.
const MemberTemplate = "cdk.out/ceforge-member.template.json"

// SetupText tells what to deploy in a credential's account so that its role
// can be assumed: the member stack (plain CloudFormation: it has no assets)
// with the control plane's account and region and the External ID, then a
// new verification. controlPlaneAccount may be "" when unknown.
func SetupText(c *Credential, controlPlaneAccount, controlPlaneRegion string) string {
	if controlPlaneAccount == "" {
		controlPlaneAccount = "<control-plane-account>"
	}
	return "In account " + c.AccountID + ", with its credentials: aws cloudformation deploy --template-file " + MemberTemplate +
		" --stack-name ceforge-member --capabilities CAPABILITY_NAMED_IAM --parameter-overrides ControlPlaneAccount=" + controlPlaneAccount +
		" ControlPlaneRegion=" + controlPlaneRegion + " ExternalId=" + c.ExternalID +
		" (in each further region of that account, add EventsOnly=true); list the account in the control plane's memberAccounts context; then POST /credentials/" + c.ID + "/verify"
}
