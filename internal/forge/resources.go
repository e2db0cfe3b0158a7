package forge

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ceforge/ceforge/internal/computeenv"
)

// Progress states recorded on forged resources.
const (
	StateCreated  = "CREATED"
	StatePending  = "PENDING" // created, not usable yet (Batch CREATING, EFS creating)
	StateDeleting = "DELETING"
	StateDeleted  = "DELETED"
	StateUsed     = "USED" // exists independently (a public AMI); never deleted
)

// Find returns the recorded resource of a type and name (nil if none).
func Find(ce *computeenv.ComputeEnv, typ, name string) *computeenv.Resource {
	for i := range ce.ForgedResources {
		if r := &ce.ForgedResources[i]; r.Type == typ && r.Name == name {
			return r
		}
	}
	return nil
}

// FindType returns the first recorded resource of a type (nil if none).
func FindType(ce *computeenv.ComputeEnv, typ string) *computeenv.Resource { return ce.Resource(typ) }

// Record inserts or updates a resource, keyed by type and name.
func Record(ce *computeenv.ComputeEnv, r computeenv.Resource) {
	if cur := Find(ce, r.Type, r.Name); cur != nil {
		if r.ARN == "" {
			r.ARN = cur.ARN
		}
		if r.ID == "" {
			r.ID = cur.ID
		}
		if r.PermissionsBoundary == "" {
			r.PermissionsBoundary = cur.PermissionsBoundary
		}
		*cur = r
		return
	}
	ce.ForgedResources = append(ce.ForgedResources, r)
}

// Done reports whether a resource of the type and name is recorded as created.
func Done(ce *computeenv.ComputeEnv, typ, name string) bool {
	r := Find(ce, typ, name)
	return r != nil && r.State == StateCreated
}

// Applier creates and tears down a Design in one account and region:
// Create and Delete take the next idempotent steps and report whether the
// goal is reached. A *StepError is a refusal; other errors are transient.
// forge/steps implements it against AWS.
type Applier interface {
	Create(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error)
	Delete(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error)
	// Bound puts every role the CE's record names under d.Boundary (roles
	// forged before ceforge set boundaries) and reports whether it changed
	// the record.
	Bound(ctx context.Context, ce *computeenv.ComputeEnv, d Design) (bool, error)
}

// ApplierFactory returns the Applier acting with cfg (the CE's account and region).
type ApplierFactory func(cfg aws.Config) Applier
