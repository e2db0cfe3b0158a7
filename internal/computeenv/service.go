package computeenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/ids"
	"github.com/ceforge/ceforge/internal/logging"
	"github.com/ceforge/ceforge/internal/store"
)

// Provisioner is what a platform implements. The Service calls it; it never
// writes records itself (the Service saves the CE it mutates).
type Provisioner interface {
	// Prepare validates the platform options against the user's account with
	// read-only calls, fills defaults into ce and returns warnings. Problems
	// with the request are *apierr.Error naming the field; nothing is created.
	Prepare(ctx context.Context, ce *ComputeEnv) (warnings []string, err error)
	// Plan lists what Advance would create for ce (dry run).
	Plan(ctx context.Context, ce *ComputeEnv) (Plan, error)
	// Advance takes the next idempotent steps towards ce's goal: from
	// CREATING to AVAILABLE (or ERRORED, with the AWS reason and what was
	// left), from DELETING to DELETED. It records progress in
	// ce.ForgedResources and ce.Status. A returned error is transient: the
	// reconciler calls Advance again later.
	Advance(ctx context.Context, ce *ComputeEnv) error
}

// ErrProvisionElsewhere is what a Provisioner's Advance returns when this
// function cannot take the step: it lacks the clients and the permissions
// to forge (the API function). The Service leaves the CE as recorded and
// hands it on (Handoff); the reconciler's next pass would take it anyway.
var ErrProvisionElsewhere = errors.New("provisioning runs in another function")

// Plan is the list of AWS resources and IAM policies a CE needs.
type Plan struct {
	Resources []PlannedResource `json:"resources"`
}

// PlannedResource is one step of a plan.
type PlannedResource struct {
	Action     string         `json:"action"` // "create" or "use" (exists already)
	Type       string         `json:"type"`
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties,omitempty"`
}

// RunTracker is the part of the run service the CE service needs at delete time.
type RunTracker interface {
	// ActiveRuns returns the ids of the CE's runs that have not ended.
	ActiveRuns(ctx context.Context, ceID string) ([]string, error)
	// CancelRuns requests cancellation of the CE's active runs.
	CancelRuns(ctx context.Context, ceID, reason string) error
}

// CredentialResolver looks up registered credentials by id for a compute
// environment that names them (internal/credential): a missing id is a
// 400 naming credentialsId, unverified credentials a 409.
type CredentialResolver interface {
	Resolve(ctx context.Context, id string) (*Credentials, error)
}

// Service implements the compute-environment operations of the API and the reconciler.
type Service struct {
	// Credentials resolves credentialsId; nil refuses every CE that names
	// credentials.
	Credentials CredentialResolver
	// Secrets checks the pipeline secrets a CE names; nil refuses them.
	Secrets        SecretChecker
	Store          *store.Store
	Provisioners   map[string]Provisioner
	AllowedRegions []string
	// AllowedBuckets are the buckets work directories and allowBuckets may
	// name (patterns with '*'); empty allows any.
	AllowedBuckets []string
	Runs           RunTracker
	// Handoff, when set, asks the provisioning function to advance a CE
	// now (an asynchronous invoke of the reconciler) instead of at its
	// next scheduled pass.
	Handoff func(ctx context.Context, ceID string) error
	Log     *slog.Logger
	Now     func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// log returns the request's logger (with its request id) when there is one.
func (s *Service) log(ctx context.Context) *slog.Logger { return logging.From(ctx, s.Log) }

func (s *Service) provisioner(platform string) (Provisioner, error) {
	p, ok := s.Provisioners[platform]
	if !ok || p == nil {
		return nil, apierr.NotImplemented("compute environments on platform %q are not implemented yet", platform)
	}
	return p, nil
}

// Create validates the request, asks the platform to validate against the
// account, writes the record (unique name) and takes the first provisioning
// steps. With dryRun it returns the plan and writes nothing.
func (s *Service) Create(ctx context.Context, req CreateRequest, createdBy string, dryRun bool) (*ComputeEnv, *Plan, error) {
	if err := req.Validate(s.AllowedRegions); err != nil {
		return nil, nil, err
	}
	if err := req.CheckBuckets(s.AllowedBuckets); err != nil {
		return nil, nil, err
	}
	p, err := s.provisioner(req.Platform)
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	var creds *Credentials
	if req.CredentialsID != "" {
		if s.Credentials == nil {
			return nil, nil, apierr.Invalid("credentialsId", "this deployment has no credentials registry")
		}
		if creds, err = s.Credentials.Resolve(ctx, req.CredentialsID); err != nil {
			return nil, nil, err
		}
	}
	ce := &ComputeEnv{
		ID: ids.New(), Name: req.Name, Platform: req.Platform, Region: req.Region, WorkDir: req.WorkDir,
		CredentialsID: req.CredentialsID, Credentials: creds, PreRunScript: req.PreRunScript, PostRunScript: req.PostRunScript,
		NextflowConfig: req.NextflowConfig, Environment: req.Environment, Labels: req.Labels, TraceEnabled: req.TraceEnabled,
		Batch: req.Batch, Cloud: req.Cloud, Status: StatusCreating, CreatedBy: createdBy, CreatedAt: now, UpdatedAt: now,
		Secrets: req.Secrets, SeqeraTokenSecret: req.SeqeraTokenSecret, RegistryCredentials: req.RegistryCredentials,
	}
	if err := s.checkSecrets(ctx, ce); err != nil {
		return nil, nil, err
	}
	if dryRun {
		// The name check is advisory here; the real create is the authority.
		if _, err := s.Store.GetRef(ctx, store.KindCEName, req.Name); err == nil {
			return nil, nil, nameTaken(req.Name)
		}
	}
	warnings, err := p.Prepare(ctx, ce)
	if err != nil {
		return nil, nil, err
	}
	ce.Warnings = warnings
	if dryRun {
		plan, err := p.Plan(ctx, ce)
		if err != nil {
			return nil, nil, err
		}
		return ce, &plan, nil
	}
	opts := []store.Option{store.WithGuard(store.KindCEName, ce.Name)}
	if ce.CredentialsID != "" {
		// The credentials must still be there and verified when the CE is
		// recorded, and count it as a user: a delete of the credentials
		// checks that count in its own transaction.
		opts = append(opts, store.WithCheck(store.StatusIs(store.KindCredential, ce.CredentialsID, credentialsVerified)),
			store.WithCount(store.Count{Kind: store.KindCredUse, ID: ce.CredentialsID, Delta: 1}))
	}
	err = s.Store.Create(ctx, store.KindCE, ce.ID, ce, opts...)
	if errors.Is(err, store.ErrExists) {
		return nil, nil, nameTaken(req.Name)
	}
	if errors.Is(err, store.ErrCheckFailed) {
		return nil, nil, apierr.Conflict("credentials_unverified", "credentialsId", "credentials %s were deleted or are no longer VERIFIED", ce.CredentialsID)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("create compute environment %s: %w", ce.Name, err)
	}
	ce.Version = 1
	if err := s.advance(ctx, p, ce); err != nil {
		// Transient: the record stays CREATING and the reconciler carries on.
		s.log(ctx).Warn("compute environment provisioning will be retried", "ce_id", ce.ID, "error", err.Error())
	}
	return ce, nil, nil
}

// checkSecrets: every pipeline secret the CE names exists in its account
// and region.
func (s *Service) checkSecrets(ctx context.Context, ce *ComputeEnv) error {
	named := ce.Named()
	if len(named) == 0 {
		return nil
	}
	if s.Secrets == nil {
		return apierr.Invalid(named[0].Field, "this deployment keeps no pipeline secrets")
	}
	return s.Secrets.Check(ctx, ce, named)
}

// credentialsVerified is internal/credential's StatusVerified (the
// credential package imports this one).
const credentialsVerified = "VERIFIED"

func nameTaken(name string) error {
	return apierr.Conflict("name_taken", "name", "a compute environment named %q already exists", name)
}

// advance runs one provisioning step and saves the result.
func (s *Service) advance(ctx context.Context, p Provisioner, ce *ComputeEnv) error {
	stepErr := p.Advance(ctx, ce)
	if errors.Is(stepErr, ErrProvisionElsewhere) {
		// Nothing was done here and nothing is saved: the record already
		// says CREATING or DELETING, which is the whole hand-over.
		if s.Handoff == nil {
			return nil
		}
		if err := s.Handoff(ctx, ce.ID); err != nil {
			return fmt.Errorf("hand compute environment %s to the reconciler: %w", ce.ID, err)
		}
		return nil
	}
	ce.UpdatedAt = s.now()
	var opts []store.Option
	if ce.Status == StatusDeleted && ce.DeletedAt == nil {
		t := s.now()
		ce.DeletedAt = &t
		if ce.CredentialsID != "" {
			// The save that records DELETED (once: it is conditional on the
			// version) releases the CE's use of its credentials.
			opts = append(opts, store.WithCount(store.Count{Kind: store.KindCredUse, ID: ce.CredentialsID, Delta: -1}))
		}
	}
	v, err := s.Store.Save(ctx, store.KindCE, ce.ID, ce, ce.Version, opts...)
	if err != nil {
		return errors.Join(stepErr, fmt.Errorf("save compute environment %s: %w", ce.ID, err))
	}
	ce.Version = v
	if ce.Status == StatusDeleted {
		// Free the name for reuse; the record stays as history.
		if err := s.Store.Delete(ctx, store.KindCEName, ce.Name); err != nil {
			return errors.Join(stepErr, err)
		}
	}
	return stepErr
}

// Get returns a compute environment.
func (s *Service) Get(ctx context.Context, id string) (*ComputeEnv, error) {
	if !ids.Valid(id) {
		return nil, apierr.NotFound("compute environment %q not found", id)
	}
	var ce ComputeEnv
	v, err := s.Store.Get(ctx, store.KindCE, id, &ce)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("compute environment %q not found", id)
	}
	if err != nil {
		return nil, err
	}
	ce.Version = v
	return &ce, nil
}

// List returns a page of compute environments, newest first.
func (s *Service) List(ctx context.Context, status, cursor string, limit int) ([]ComputeEnv, string, error) {
	switch status {
	case "", StatusCreating, StatusAvailable, StatusErrored, StatusDeleting, StatusDeleted, StatusInvalid:
	default:
		return nil, "", apierr.Invalid("status", "unknown compute environment status %q", status)
	}
	page, err := s.Store.List(ctx, store.Query{Kind: store.KindCE, Status: status, Cursor: cursor, Limit: limit})
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", apierr.Invalid("cursor", "the cursor is not one this API returned")
	}
	if err != nil {
		return nil, "", err
	}
	out := []ComputeEnv{}
	if err := page.Decode(&out); err != nil {
		return nil, "", fmt.Errorf("decode compute environments: %w", err)
	}
	return out, page.NextCursor, nil
}

// deleteAttempts bounds re-reads when a launch or a run's end changes the
// compute environment's records while Delete decides.
const deleteAttempts = 3

// Delete starts tearing a compute environment down. It refuses while runs
// are active unless force, which cancels them. One conditional write
// decides against concurrent launches: the move to DELETING checks (unless
// force) that the CE counts no active run, and a launch records its run only
// while the CE is AVAILABLE, counting it; so a run either exists before the
// delete (refused, or cancelled with force) or is refused itself.
func (s *Service) Delete(ctx context.Context, id string, force bool) (*ComputeEnv, error) {
	var ce *ComputeEnv
	var p Provisioner
	for attempt := 1; ; attempt++ {
		var err error
		if ce, err = s.Get(ctx, id); err != nil {
			return nil, err
		}
		if ce.Status == StatusDeleted {
			return ce, nil
		}
		if p, err = s.provisioner(ce.Platform); err != nil {
			return nil, err
		}
		if ce.Status == StatusDeleting {
			break
		}
		var opts []store.Option
		if !force {
			// The listing names runs recorded before the count existed; the
			// count, checked in the write itself, closes the race with a
			// launch (and with the listing's index lagging behind).
			if s.Runs != nil {
				active, err := s.Runs.ActiveRuns(ctx, id)
				if err != nil {
					return nil, err
				}
				if len(active) > 0 {
					return nil, activeRuns(id, len(active))
				}
			}
			opts = append(opts, store.WithCheck(store.CountAtMost(store.KindCERuns, id, 0)))
		}
		ce.Status, ce.StatusReason = StatusDeleting, ""
		ce.UpdatedAt = s.now()
		v, err := s.Store.Save(ctx, store.KindCE, ce.ID, ce, ce.Version, opts...)
		if errors.Is(err, store.ErrCheckFailed) {
			n, cerr := s.Store.GetCount(ctx, store.KindCERuns, id)
			if cerr != nil {
				return nil, cerr
			}
			return nil, activeRuns(id, int(max(n, 1)))
		}
		if errors.Is(err, store.ErrConflict) && attempt < deleteAttempts {
			continue // changed meanwhile (advanced by the reconciler): decide again on the new state
		}
		if errors.Is(err, store.ErrConflict) {
			return nil, apierr.Conflict("concurrent_change", "", "compute environment %s changed while deleting; retry", id)
		}
		if err != nil {
			return nil, err
		}
		ce.Version = v
		break
	}
	if force && s.Runs != nil {
		// DELETING already refuses new launches; the runs recorded before
		// are cancelled (and the reconciler cancels any this listing misses).
		if err := s.Runs.CancelRuns(ctx, id, ReasonDeleted); err != nil {
			return nil, fmt.Errorf("cancel runs of compute environment %s: %w", id, err)
		}
	}
	if err := s.advance(ctx, p, ce); err != nil {
		s.log(ctx).Warn("compute environment teardown will be retried", "ce_id", ce.ID, "error", err.Error())
	}
	return ce, nil
}

func activeRuns(id string, n int) error {
	return apierr.Conflict("active_runs", "", "compute environment %s has %d active run(s); wait for them, cancel them, or delete with force=true", id, n)
}

// ReasonDeleted is the statusReason of runs cancelled because their
// compute environment was deleted.
const ReasonDeleted = "compute environment deleted"

// Advance takes the next provisioning or teardown steps of one CE; the
// reconciler calls it for every CE that is not stable.
func (s *Service) Advance(ctx context.Context, id string) error {
	ce, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if ce.Stable() {
		return nil
	}
	p, err := s.provisioner(ce.Platform)
	if err != nil {
		return err
	}
	return s.advance(ctx, p, ce)
}

// Bounder is implemented by the platforms that forge IAM roles: Bound puts
// the roles a CE's record names under the permissions boundary (roles
// forged before ceforge set one) and reports whether it changed the record.
type Bounder interface {
	Bound(ctx context.Context, ce *ComputeEnv) (bool, error)
}

// BoundRoles brings the forged roles of every stable compute environment
// that still has them under the permissions boundary; the reconciler calls
// it on each pass. A CE whose roles all carry the boundary costs no AWS
// call (its record says so). Errors of single CEs are collected.
func (s *Service) BoundRoles(ctx context.Context) error {
	var errs []error
	for _, status := range []string{StatusAvailable, StatusErrored, StatusInvalid} {
		ces, err := store.All[ComputeEnv](ctx, s.Store, store.Query{Kind: store.KindCE, Status: status})
		if err != nil {
			return fmt.Errorf("list %s compute environments: %w", status, err)
		}
		for i := range ces {
			ce := &ces[i]
			b, ok := s.Provisioners[ce.Platform].(Bounder)
			if !ok {
				continue
			}
			if err := s.bound(ctx, b, ce); err != nil {
				errs = append(errs, fmt.Errorf("bound roles of compute environment %s: %w", ce.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// bound runs b on a listed CE and, when that changed roles, records it on
// a fresh read (the listing may lag): Bound is idempotent, so the second
// run only reads the roles it just bounded.
func (s *Service) bound(ctx context.Context, b Bounder, listed *ComputeEnv) error {
	changed, err := b.Bound(ctx, listed)
	if err != nil || !changed {
		return err
	}
	ce, err := s.Get(ctx, listed.ID)
	if err != nil {
		return err
	}
	if changed, err = b.Bound(ctx, ce); err != nil || !changed {
		return err
	}
	ce.UpdatedAt = s.now()
	if _, err := s.Store.Save(ctx, store.KindCE, ce.ID, ce, ce.Version); err != nil && !errors.Is(err, store.ErrConflict) {
		// On a conflict the next pass records it, at one GetRole per role.
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// Unstable lists the ids of CEs in CREATING or DELETING.
func (s *Service) Unstable(ctx context.Context) ([]string, error) {
	var out []string
	for _, status := range []string{StatusCreating, StatusDeleting} {
		ces, err := store.All[ComputeEnv](ctx, s.Store, store.Query{Kind: store.KindCE, Status: status})
		if err != nil {
			return nil, err
		}
		for _, ce := range ces {
			out = append(out, ce.ID)
		}
	}
	return out, nil
}

// Checker is a Provisioner that can check a CE in service (AVAILABLE or
// INVALID) against what it relies on outside ceforge: Check moves it to
// INVALID with the reason when something drifted (and back to AVAILABLE
// once it is repaired), may update its warnings, and reports whether it
// changed ce.
type Checker interface {
	Check(ctx context.Context, ce *ComputeEnv) (changed bool, err error)
}

// CheckInService runs the platforms' drift checks on every CE in service
// and saves the ones that changed (conditionally: a concurrent change wins
// and the next pass looks again). One CE's failure does not stop the others.
func (s *Service) CheckInService(ctx context.Context) error {
	var errs []error
	for _, status := range []string{StatusAvailable, StatusInvalid} {
		ces, err := store.All[ComputeEnv](ctx, s.Store, store.Query{Kind: store.KindCE, Status: status})
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("list %s compute environments: %w", status, err))...)
		}
		for i := range ces {
			ce := &ces[i]
			c, ok := s.Provisioners[ce.Platform].(Checker)
			if !ok {
				continue
			}
			changed, err := c.Check(ctx, ce)
			if err != nil {
				errs = append(errs, fmt.Errorf("check compute environment %s: %w", ce.ID, err))
				continue
			}
			if !changed {
				continue
			}
			if ce.Status != status {
				s.log(ctx).Warn("compute environment status changed by its drift check", "ce_id", ce.ID, "from", status, "to", ce.Status, "reason", ce.StatusReason)
			}
			ce.UpdatedAt = s.now()
			if _, err := s.Store.Save(ctx, store.KindCE, ce.ID, ce, ce.Version); err != nil && !errors.Is(err, store.ErrConflict) {
				errs = append(errs, fmt.Errorf("save compute environment %s: %w", ce.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}
