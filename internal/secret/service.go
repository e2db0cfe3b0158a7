package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/logging"
	"github.com/ceforge/ceforge/internal/member"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/tags"
)

// Vault is where values go: Secrets Manager in one account and region
// (secret/smvault). It writes values and never reads them.
type Vault interface {
	// Create makes the secret with its value, tags and resource policy and
	// returns its ARN; ErrExists when a secret of that name is there.
	Create(ctx context.Context, name, description string, value []byte, tags map[string]string, policy string) (string, error)
	// Put stores a new value (the previous one stays as AWSPREVIOUS).
	Put(ctx context.Context, name string, value []byte) error
	// Delete removes the secret at once (no recovery window: a name can
	// be used again); a secret that is not there is done.
	Delete(ctx context.Context, name string) error
}

// ErrExists: a Secrets Manager secret of that name already exists.
var ErrExists = errors.New("a secret of that name exists")

// VaultFactory returns the vault of a region and member account (nil
// credentials: the control plane's own).
type VaultFactory func(region string, creds *computeenv.Credentials) Vault

// Service implements the secrets API and the checks compute environments
// and runs make when they name secrets.
type Service struct {
	Store          *store.Store
	Prefix         string
	AllowedRegions []string
	Credentials    computeenv.CredentialResolver
	Vaults         VaultFactory
	Log            *slog.Logger
	Now            func() time.Time
}

var _ computeenv.SecretChecker = (*Service)(nil)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log(ctx context.Context) *slog.Logger { return logging.From(ctx, s.Log) }

// ReadPolicy is a secret's resource policy: nobody reads the value but the
// roles ceforge forges in that account (heads, tasks, instances: named
// with the prefix), and of those not the member role ceforge itself
// assumes. An explicit deny, so no identity policy (an administrator's,
// the control plane's) can read it either; changing the policy is the
// account owner's deliberate act.
func ReadPolicy(prefix string) string {
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{
			map[string]any{
				"Sid": "OnlyTheRunsRolesRead", "Effect": "Deny", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
				"Condition": map[string]any{"StringNotLike": map[string]any{"aws:PrincipalArn": "arn:*:iam::*:role/" + prefix + "*"}},
			},
			map[string]any{
				"Sid": "NotTheControlPlane", "Effect": "Deny", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
				"Condition": map[string]any{"StringLike": map[string]any{"aws:PrincipalArn": "arn:*:iam::*:role/" + member.RoleName(prefix)}},
			},
		},
	})
	return string(b)
}

// location resolves a secret's credentials (nil: the control plane's account).
func (s *Service) location(ctx context.Context, credentialsID string) (*computeenv.Credentials, error) {
	if credentialsID == "" {
		return nil, nil
	}
	if s.Credentials == nil {
		return nil, apierr.Invalid("credentialsId", "this deployment has no credentials registry")
	}
	return s.Credentials.Resolve(ctx, credentialsID)
}

// Create stores a new secret: the record (its name unique in its account
// and region), then the value in Secrets Manager. The value is in no
// record, response or log.
func (s *Service) Create(ctx context.Context, req CreateRequest, createdBy string) (*Secret, error) {
	if err := req.Validate(s.AllowedRegions); err != nil {
		return nil, err
	}
	creds, err := s.location(ctx, req.CredentialsID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	sec := &Secret{ID: ids.New(), Name: req.Name, Description: req.Description, Region: req.Region,
		CredentialsID: req.CredentialsID, CreatedBy: createdBy, CreatedAt: now, UpdatedAt: now}
	if creds != nil {
		sec.AccountID = (&computeenv.ComputeEnv{Credentials: creds}).AccountID()
	}
	guard := locationKey(sec.CredentialsID, sec.Region, sec.Name)
	err = s.Store.Create(ctx, store.KindSecret, sec.ID, sec, store.WithGuard(store.KindSecretName, guard))
	if errors.Is(err, store.ErrExists) {
		return nil, apierr.Conflict("name_taken", "name", "a secret named %q already exists in this account and region; rotate it with PUT /secrets/{id}", sec.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("record secret %s: %w", sec.Name, err)
	}
	sec.Version = 1
	t := map[string]string{tags.Managed: "true", "ceforge:secret-id": sec.ID}
	arn, err := s.Vaults(sec.Region, creds).Create(ctx, SecretName(s.Prefix, sec.Name), "ceforge pipeline secret "+sec.Name, []byte(req.Value), t, ReadPolicy(s.Prefix))
	if err != nil {
		// Nothing stays recorded for a value that was not stored.
		if derr := s.Store.Delete(ctx, store.KindSecret, sec.ID, store.WithGuard(store.KindSecretName, guard)); derr != nil {
			s.log(ctx).Error("secret record left without a value", "secret_id", sec.ID, "error", derr.Error())
		}
		if errors.Is(err, ErrExists) {
			return nil, apierr.Conflict("secret_exists", "name", "Secrets Manager already holds %s in this account and region, which ceforge did not record: delete it there or choose another name", SecretName(s.Prefix, sec.Name))
		}
		return nil, fmt.Errorf("store secret %s: %w", sec.Name, err)
	}
	sec.SecretARN = arn
	v, err := s.Store.Save(ctx, store.KindSecret, sec.ID, sec, sec.Version)
	if err != nil {
		return nil, fmt.Errorf("record secret %s: %w", sec.Name, err)
	}
	sec.Version = v
	s.log(ctx).Info("secret created", "secret_id", sec.ID, "name", sec.Name, "region", sec.Region, "credentials_id", sec.CredentialsID)
	return sec, nil
}

// Rotate stores a new value.
func (s *Service) Rotate(ctx context.Context, id string, req RotateRequest) (*Secret, error) {
	if err := checkValue(req.Value); err != nil {
		return nil, err
	}
	sec, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	creds, err := s.location(ctx, sec.CredentialsID)
	if err != nil {
		return nil, err
	}
	if err := s.Vaults(sec.Region, creds).Put(ctx, SecretName(s.Prefix, sec.Name), []byte(req.Value)); err != nil {
		return nil, fmt.Errorf("rotate secret %s: %w", sec.Name, err)
	}
	sec.UpdatedAt = s.now()
	v, err := s.Store.Save(ctx, store.KindSecret, sec.ID, sec, sec.Version)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return nil, fmt.Errorf("record rotation of secret %s: %w", sec.Name, err)
	}
	if err == nil {
		sec.Version = v
	}
	s.log(ctx).Info("secret rotated", "secret_id", sec.ID, "name", sec.Name)
	return sec, nil
}

// Delete removes the value and the record. Runs that name the secret after
// this are refused; a head already started keeps what it read.
func (s *Service) Delete(ctx context.Context, id string) error {
	sec, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	creds, err := s.location(ctx, sec.CredentialsID)
	if err != nil {
		return err
	}
	if err := s.Vaults(sec.Region, creds).Delete(ctx, SecretName(s.Prefix, sec.Name)); err != nil {
		return fmt.Errorf("delete secret %s: %w", sec.Name, err)
	}
	if err := s.Store.Delete(ctx, store.KindSecret, sec.ID, store.WithGuard(store.KindSecretName, locationKey(sec.CredentialsID, sec.Region, sec.Name))); err != nil {
		return err
	}
	s.log(ctx).Info("secret deleted", "secret_id", sec.ID, "name", sec.Name)
	return nil
}

// Get returns a secret's record.
func (s *Service) Get(ctx context.Context, id string) (*Secret, error) {
	if !ids.Valid(id) {
		return nil, apierr.NotFound("secret %q not found", id)
	}
	var sec Secret
	v, err := s.Store.Get(ctx, store.KindSecret, id, &sec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("secret %q not found", id)
	}
	if err != nil {
		return nil, err
	}
	sec.Version = v
	return &sec, nil
}

// List returns a page of secrets, newest first.
func (s *Service) List(ctx context.Context, cursor string, limit int) ([]Secret, string, error) {
	page, err := s.Store.List(ctx, store.Query{Kind: store.KindSecret, Cursor: cursor, Limit: limit})
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", apierr.Invalid("cursor", "the cursor is not one this API returned")
	}
	if err != nil {
		return nil, "", err
	}
	out := []Secret{}
	if err := page.Decode(&out); err != nil {
		return nil, "", fmt.Errorf("decode secrets: %w", err)
	}
	return out, page.NextCursor, nil
}

// Check implements computeenv.SecretChecker: every name must be a secret
// kept in the compute environment's account and region.
func (s *Service) Check(ctx context.Context, ce *computeenv.ComputeEnv, named []computeenv.NamedSecret) error {
	for _, ns := range named {
		n := ns.Name
		_, err := s.Store.GetRef(ctx, store.KindSecretName, locationKey(ce.CredentialsID, ce.Region, n))
		if errors.Is(err, store.ErrNotFound) {
			where := "the control plane's account"
			if ce.CredentialsID != "" {
				where = "the account of credentials " + ce.CredentialsID
			}
			return apierr.Invalid(ns.Field, "no secret %q in %s, region %s (POST /secrets)", n, where, ce.Region)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
