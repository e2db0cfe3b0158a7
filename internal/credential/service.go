package credential

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/logging"
	"github.com/ceforge/ceforge/internal/member"
	"github.com/ceforge/ceforge/internal/store"
)

// Verifier checks a credential's role and returns the result.
type Verifier interface {
	Verify(ctx context.Context, c *Credential) Verification
}

// Service implements the credentials API, the lookup compute environments
// make when they name credentials, and the registry the AWS client factory
// asks before it assumes any role.
type Service struct {
	Store    *store.Store
	Prefix   string
	Verifier Verifier
	// Setup, when set, describes what to deploy in a member account for
	// credentials whose role cannot be assumed yet (the member stack and
	// its parameters).
	Setup func(ctx context.Context, c *Credential) string
	Log   *slog.Logger
	Now   func() time.Time
}

var _ computeenv.CredentialResolver = (*Service)(nil)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log(ctx context.Context) *slog.Logger { return logging.From(ctx, s.Log) }

// Create registers a role: it generates the External ID, records the
// credential (unique name), verifies it and records the result. The
// credential is created even when verification fails (its External ID is
// what the member stack needs); it is VERIFIED only once the role can be
// assumed and holds every permission group.
func (s *Service) Create(ctx context.Context, req CreateRequest, createdBy string) (*Credential, error) {
	if err := req.Validate(s.Prefix); err != nil {
		return nil, err
	}
	now := s.now()
	c := &Credential{
		ID: ids.New(), Name: req.Name, Description: req.Description, Provider: ProviderAWSRole,
		RoleARN: req.RoleARN, AccountID: AccountOf(req.RoleARN), ExternalID: member.NewExternalID(s.Prefix),
		Status: StatusUnverified, StatusReason: "not verified yet", CreatedBy: createdBy, CreatedAt: now, UpdatedAt: now,
	}
	err := s.Store.Create(ctx, store.KindCredential, c.ID, c,
		store.WithGuard(store.KindCredName, c.Name), store.WithGuard(store.KindCredRole, roleKey(c.RoleARN, c.ExternalID)))
	var exists *store.ExistsError
	if errors.As(err, &exists) && exists.Kind == store.KindCredName {
		return nil, apierr.Conflict("name_taken", "name", "credentials named %q already exist", c.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("record credentials %s: %w", c.Name, err)
	}
	c.Version = 1
	s.verify(ctx, c)
	v, err := s.Store.Save(ctx, store.KindCredential, c.ID, c, c.Version)
	if err != nil {
		// The credential stands (UNVERIFIED): its verification can be run again.
		s.log(ctx).Warn("credentials verification not recorded", "credentials_id", c.ID, "error", err.Error())
		return c, nil
	}
	c.Version = v
	return c, nil
}

// verify runs the verifier on c and sets its status from the result.
func (s *Service) verify(ctx context.Context, c *Credential) {
	if s.Verifier == nil {
		c.Status, c.StatusReason = StatusUnverified, "this deployment cannot verify credentials"
		return
	}
	v := s.Verifier.Verify(ctx, c)
	if v.CheckedAt.IsZero() {
		v.CheckedAt = s.now()
	}
	c.Verification = &v
	c.UpdatedAt = s.now()
	c.Status, c.StatusReason, c.Setup = StatusVerified, "", ""
	switch {
	case !v.Assumed || len(v.Groups) == 0:
		c.Status, c.StatusReason = StatusUnverified, v.Message
	default:
		var missing []string
		for _, g := range v.Groups {
			if !g.OK {
				missing = append(missing, g.Name)
			}
		}
		if len(missing) > 0 {
			c.Status, c.StatusReason = StatusUnverified, fmt.Sprintf("the role lacks the permission group(s) %v", missing)
		}
	}
	if !v.Assumed && s.Setup != nil {
		c.Setup = s.Setup(ctx, c)
	}
	s.log(ctx).Info("credentials verified", "credentials_id", c.ID, "status", c.Status, "reason", c.StatusReason)
}

// Verify checks a credential's role again (after the member stack was
// deployed or changed) and records the result.
func (s *Service) Verify(ctx context.Context, id string) (*Credential, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	s.verify(ctx, c)
	v, err := s.Store.Save(ctx, store.KindCredential, c.ID, c, c.Version)
	if errors.Is(err, store.ErrConflict) {
		return nil, apierr.Conflict("concurrent_change", "", "credentials %s changed while verifying; retry", id)
	}
	if err != nil {
		return nil, fmt.Errorf("record verification of credentials %s: %w", id, err)
	}
	c.Version = v
	return c, nil
}

// Get returns a credential.
func (s *Service) Get(ctx context.Context, id string) (*Credential, error) {
	if !ids.Valid(id) {
		return nil, apierr.NotFound("credentials %q not found", id)
	}
	var c Credential
	v, err := s.Store.Get(ctx, store.KindCredential, id, &c)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("credentials %q not found", id)
	}
	if err != nil {
		return nil, err
	}
	c.Version = v
	return &c, nil
}

// List returns a page of credentials, newest first.
func (s *Service) List(ctx context.Context, cursor string, limit int) ([]Credential, string, error) {
	page, err := s.Store.List(ctx, store.Query{Kind: store.KindCredential, Cursor: cursor, Limit: limit})
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", apierr.Invalid("cursor", "the cursor is not one this API returned")
	}
	if err != nil {
		return nil, "", err
	}
	out := []Credential{}
	if err := page.Decode(&out); err != nil {
		return nil, "", fmt.Errorf("decode credentials: %w", err)
	}
	return out, page.NextCursor, nil
}

// Delete removes a credential that no compute environment uses (any not
// DELETED): from then on ceforge can no longer assume its role. In one
// transaction with the use count, so a compute environment created at the
// same time either counts (409) or is refused.
func (s *Service) Delete(ctx context.Context, id string) error {
	c, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	err = s.Store.DeleteChecked(ctx, store.KindCredential, id,
		store.WithCheck(store.CountAtMost(store.KindCredUse, id, 0)),
		store.WithGuard(store.KindCredName, c.Name), store.WithGuard(store.KindCredRole, roleKey(c.RoleARN, c.ExternalID)))
	if errors.Is(err, store.ErrCheckFailed) {
		n, _ := s.Store.GetCount(ctx, store.KindCredUse, id)
		return apierr.Conflict("credentials_in_use", "", "credentials %s are used by %d compute environment(s); delete them first", id, max(n, 1))
	}
	if errors.Is(err, store.ErrNotFound) {
		return apierr.NotFound("credentials %q not found", id)
	}
	if err != nil {
		return err
	}
	s.log(ctx).Info("credentials deleted", "credentials_id", id, "role_arn", c.RoleARN)
	return nil
}

// Resolve returns the role a compute environment naming credentials id
// acts through: the credentials must exist and be VERIFIED.
func (s *Service) Resolve(ctx context.Context, id string) (*computeenv.Credentials, error) {
	if !ids.Valid(id) {
		return nil, apierr.Invalid("credentialsId", "credentials %q not found", id)
	}
	var c Credential
	_, err := s.Store.Get(ctx, store.KindCredential, id, &c)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.Invalid("credentialsId", "credentials %q not found", id)
	}
	if err != nil {
		return nil, err
	}
	if c.Status != StatusVerified {
		return nil, apierr.Conflict("credentials_unverified", "credentialsId",
			"credentials %s are %s (%s): deploy the member stack with their External ID, then POST /credentials/%s/verify", id, c.Status, c.StatusReason, id)
	}
	return &computeenv.Credentials{RoleARN: c.RoleARN, ExternalID: c.ExternalID}, nil
}

// ErrNotRegistered is what Registered returns for a role and External ID
// no credentials of this deployment hold.
var ErrNotRegistered = errors.New("not registered in this deployment")

// Registered is the AWS client factory's check before every AssumeRole
// (awsclient.Factory.UseRegistry): only a role and External ID that
// credentials of this deployment hold may be assumed.
func (s *Service) Registered(ctx context.Context, c awsclient.Credentials) error {
	_, err := s.Store.GetRef(ctx, store.KindCredRole, roleKey(c.RoleARN, c.ExternalID))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("role %s with this External ID: %w (register it with POST /credentials)", c.RoleARN, ErrNotRegistered)
	}
	return err
}
