// Package secret keeps pipeline secrets: values stored in AWS Secrets
// Manager under the prefix (<prefix>secrets/<NAME>) in the account and
// region where the runs that use them run, and records of their names and
// dates in the table. ceforge writes a value (create, rotate) and never
// reads one back: no API response, record or log holds it, the functions
// have no grant to read it, and each secret's resource policy lets only
// roles ceforge forges there (the runs' roles) read it. Runs and compute
// environments name the secrets they use; the head reads them with its
// own role when it starts and hands them to Nextflow.
package secret

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/computeenv"
)

// Secret is a pipeline secret: the record and the API shape, never the value.
type Secret struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Region and CredentialsID are where the value is kept: the region and
	// the member account (registered credentials; empty: the control
	// plane's own account) of the compute environments that use it.
	Region        string `json:"region"`
	CredentialsID string `json:"credentialsId,omitempty"`
	AccountID     string `json:"accountId,omitempty"`
	// SecretARN is the Secrets Manager secret (empty until it exists).
	SecretARN string    `json:"secretArn,omitempty"`
	CreatedBy string    `json:"createdBy,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	// UpdatedAt is when the value last changed (created or rotated).
	UpdatedAt time.Time `json:"updatedAt"`
	Version   int64     `json:"version"`
}

// CreateRequest is the body of POST /secrets.
type CreateRequest struct {
	Name          string `json:"name"`
	Value         string `json:"value"`
	Description   string `json:"description,omitempty"`
	Region        string `json:"region"`
	CredentialsID string `json:"credentialsId,omitempty"`
}

// RotateRequest is the body of PUT /secrets/{id}.
type RotateRequest struct {
	Value string `json:"value"`
}

// Limits.
const (
	MaxValueBytes     = 64 << 10 // Secrets Manager's limit for a value
	MaxDescriptionLen = 1024
)

var regionRE = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$`)

// SecretName is the Secrets Manager name of a pipeline secret: under the
// prefix like every secret ceforge keeps (<prefix><kind>/<id>: run tokens
// are <prefix>trace/<run-id>), so the forged roles' grants and the
// permissions boundary reach ceforge's secrets only.
func SecretName(prefix, name string) string { return prefix + "secrets/" + name }

// checkValue validates a secret value: UTF-8 text of at most 64 KiB,
// newlines and tabs allowed, no other control character (the head writes
// values into Nextflow's secrets file, a JSON document).
func checkValue(v string) error {
	switch {
	case v == "":
		return apierr.Missing("value")
	case len(v) > MaxValueBytes:
		return apierr.Invalid("value", "a secret value is at most %d bytes", MaxValueBytes)
	case !utf8.ValidString(v):
		return apierr.Invalid("value", "a secret value is UTF-8 text (base64-encode binary values)")
	}
	if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\r' && r != '\t' || r == 0x7f }) >= 0 {
		return apierr.Invalid("value", "a secret value holds no control characters but newline, carriage return and tab (base64-encode binary values)")
	}
	return nil
}

// Validate checks a create request (allowed regions: empty allows any).
func (r *CreateRequest) Validate(allowedRegions []string) error {
	if err := computeenv.CheckSecretName("name", r.Name); err != nil {
		return err
	}
	if err := checkValue(r.Value); err != nil {
		return err
	}
	if len(r.Description) > MaxDescriptionLen || strings.IndexFunc(r.Description, func(r rune) bool { return r < 0x20 }) >= 0 {
		return apierr.Invalid("description", "description is at most %d characters on one line", MaxDescriptionLen)
	}
	if r.Region == "" {
		return apierr.Missing("region")
	}
	if !regionRE.MatchString(r.Region) {
		return apierr.Invalid("region", "%q is not an AWS region name", r.Region)
	}
	if len(allowedRegions) > 0 {
		ok := false
		for _, a := range allowedRegions {
			ok = ok || a == r.Region
		}
		if !ok {
			return apierr.Invalid("region", "region %q is not allowed here; allowed: %s", r.Region, strings.Join(allowedRegions, ", "))
		}
	}
	return nil
}

// locationKey identifies where a secret lives, for the unique-name guard.
func locationKey(credentialsID, region, name string) string {
	acct := credentialsID
	if acct == "" {
		acct = "self"
	}
	return acct + "/" + region + "/" + name
}
