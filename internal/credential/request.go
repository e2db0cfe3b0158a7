package credential

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/computeenv"
)

// CreateRequest is the body of POST /credentials. The External ID is not
// part of it (ceforge generates it), and neither are access keys: the
// fields exist only to refuse them with an explanation instead of a bare
// unknown_field.
type CreateRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	RoleARN     string `json:"roleArn"`

	ExternalID      json.RawMessage `json:"externalId,omitempty"`
	AccessKeyID     json.RawMessage `json:"accessKeyId,omitempty"`
	SecretAccessKey json.RawMessage `json:"secretAccessKey,omitempty"`
	SessionToken    json.RawMessage `json:"sessionToken,omitempty"`
}

// Limits on credentials.
const (
	MaxNameLen        = 100
	MaxDescriptionLen = 1024
	MaxRoleARNLen     = 2048
)

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	roleARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`) // lengths are checked in code
)

// MessageAccessKeys explains why access keys are refused.
const MessageAccessKeys = "ceforge does not take access keys: it stores no long-lived secret. " +
	"Deploy the member stack in the account (it creates the role ceforge assumes) and register that role with roleArn; " +
	"ceforge assumes it with short-lived credentials and an External ID it generates"

// MessageExternalID explains why the External ID cannot be chosen.
const MessageExternalID = "ceforge generates the External ID (it is in this call's response and in GET /credentials/{id}); " +
	"a chosen one would let anyone who learns a role's External ID make ceforge act with that role"

// Validate checks the request for a deployment whose resources are named
// with prefix (the role must be one the functions may assume: its name
// starts with the prefix).
func (r *CreateRequest) Validate(prefix string) error {
	// In a fixed order: the error names the first key field present.
	for _, k := range []struct {
		field string
		v     json.RawMessage
	}{{"accessKeyId", r.AccessKeyID}, {"secretAccessKey", r.SecretAccessKey}, {"sessionToken", r.SessionToken}} {
		if k.v != nil {
			return apierr.BadRequest("access_keys_refused", k.field, "%s", MessageAccessKeys)
		}
	}
	if r.ExternalID != nil {
		return apierr.BadRequest("external_id_generated", "externalId", "%s", MessageExternalID)
	}
	switch {
	case r.Name == "":
		return apierr.Missing("name")
	case len(r.Name) > MaxNameLen || !nameRE.MatchString(r.Name):
		return apierr.Invalid("name", "name must be 1-%d characters of letters, digits, '-' and '_', starting with a letter or digit", MaxNameLen)
	}
	if err := computeenv.CheckText("description", r.Description, MaxDescriptionLen); err != nil {
		return err
	}
	if r.RoleARN == "" {
		return apierr.Missing("roleArn")
	}
	if len(r.RoleARN) > MaxRoleARNLen || !roleARNRE.MatchString(r.RoleARN) {
		return apierr.Invalid("roleArn", "roleArn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
	}
	if _, name, _ := strings.Cut(r.RoleARN, ":role/"); !strings.HasPrefix(name, prefix) {
		return apierr.Invalid("roleArn", "the role's name must start with %q (the member stack creates %smember): ceforge's functions may assume no other role", prefix, prefix)
	}
	return nil
}
