// Package runtoken gives each run its progress token: it decides whether a
// run reports to ceforge, makes a random token whose hash alone the run
// record keeps, stores the token as a secret named with the prefix in the
// compute environment's account and region (the head reads it at start
// with its own role: never in user-data, job environment, logs or
// records), and deletes that secret once the run has ended.
package runtoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/awsclient"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/run"
	"github.com/ceforge/ceforge/internal/store"
	"github.com/ceforge/ceforge/internal/tags"
	"github.com/ceforge/ceforge/internal/trace"
)

// SecretsAPI is the part of Secrets Manager this package calls.
type SecretsAPI interface {
	CreateSecret(context.Context, *secretsmanager.CreateSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	DeleteSecret(context.Context, *secretsmanager.DeleteSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.DeleteSecretOutput, error)
}

// SecretName is the secret that holds a run's token: under the prefix, so
// the heads' roles (and the permissions boundary) read only ceforge's.
func SecretName(prefix, runID string) string { return prefix + "trace/" + runID }

// Issuer implements run.TraceIssuer.
type Issuer struct {
	AWS    *awsclient.Factory
	Prefix string
	// Endpoint is the URL heads report to (CEFORGE_TRACE_URL): the API's
	// base URL, where the trace routes are.
	Endpoint string
	// Secrets, when set, replaces the per-CE client (tests).
	Secrets func(ce *computeenv.ComputeEnv) SecretsAPI
	Log     *slog.Logger
}

var _ run.TraceIssuer = (*Issuer)(nil)

func (i *Issuer) secrets(ce *computeenv.ComputeEnv) SecretsAPI {
	if i.Secrets != nil {
		return i.Secrets(ce)
	}
	var c awsclient.Credentials
	if ce.Credentials != nil {
		c = awsclient.Credentials{RoleARN: ce.Credentials.RoleARN, ExternalID: ce.Credentials.ExternalID}
	}
	return secretsmanager.NewFromConfig(i.AWS.ForRole(ce.Region, c))
}

// Plan decides whether the run reports and, if so, makes its token.
func (i *Issuer) Plan(ce *computeenv.ComputeEnv, r *run.Run, req run.LaunchRequest) *run.Trace {
	switch {
	case req.TraceEnabled != nil && !*req.TraceEnabled:
		return &run.Trace{Reason: run.TraceOffByRequest}
	case ce.TraceEnabled != nil && !*ce.TraceEnabled:
		return &run.Trace{Reason: "turned off on compute environment " + ce.ID + " (traceEnabled: false)"}
	case i.Endpoint == "":
		return &run.Trace{Reason: "this deployment has no trace endpoint (CEFORGE_TRACE_URL)"}
	}
	token := trace.NewToken()
	return &run.Trace{Enabled: true, Endpoint: i.Endpoint, Secret: SecretName(i.Prefix, r.ID), TokenHash: trace.HashToken(token), Token: token}
}

// Store creates the run's token secret, tagged as ceforge's.
func (i *Issuer) Store(ctx context.Context, ce *computeenv.ComputeEnv, r *run.Run) error {
	if r.Trace == nil || r.Trace.Token == "" {
		return errors.New("no token to store")
	}
	t := tags.Ownership(ce.ID, r.ID)
	st := make([]smtypes.Tag, 0, len(t))
	for _, k := range t.Keys() {
		st = append(st, smtypes.Tag{Key: aws.String(k), Value: aws.String(t[k])})
	}
	_, err := i.secrets(ce).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(r.Trace.Secret),
		Description:  aws.String("ceforge: progress token of run " + r.ID + " (deleted after the run ends)"),
		SecretString: aws.String(r.Trace.Token),
		Tags:         st,
		// The run id makes a retried create of the same secret a no-op.
		ClientRequestToken: aws.String("ceforge-run-token-" + r.ID + "-0000000000000000"),
	})
	if err != nil {
		return fmt.Errorf("create secret %s: %w", r.Trace.Secret, err)
	}
	return nil
}

// Delete removes a run's token secret at once (no recovery window: the
// token is useless once the run has ended). A missing secret is done.
func (i *Issuer) Delete(ctx context.Context, ce *computeenv.ComputeEnv, runID string) error {
	_, err := i.secrets(ce).DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId: aws.String(SecretName(i.Prefix, runID)), ForceDeleteWithoutRecovery: aws.Bool(true),
	})
	var nf *smtypes.ResourceNotFoundException
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("delete secret %s: %w", SecretName(i.Prefix, runID), err)
	}
	return nil
}

// Cleaner deletes the token secrets of ended runs (the reconciler, on
// every pass), as listed by the guards written with each run.
type Cleaner struct {
	Issuer *Issuer
	Store  *store.Store
	Runs   *run.Service
	// Grace after the run's end (the token's own validity, trace.DefaultGrace).
	Grace time.Duration
	Log   *slog.Logger
	Now   func() time.Time
}

func (c *Cleaner) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// Once deletes the secrets of runs that ended more than Grace ago and
// returns how many it deleted.
func (c *Cleaner) Once(ctx context.Context) (int, error) {
	grace := c.Grace
	if grace <= 0 {
		grace = trace.DefaultGrace
	}
	guards, err := c.Store.Guards(ctx, store.KindTraceSecret, 1000)
	if err != nil {
		return 0, err
	}
	var errs []error
	deleted := 0
	ces := map[string]*computeenv.ComputeEnv{}
	for _, g := range guards {
		r, err := c.Runs.Get(ctx, g.ID)
		if e, ok := apierr.As(err); ok && e.Status == 404 {
			// No run, no account to reach: only the guard can go.
			errs = append(errs, c.Store.Delete(ctx, store.KindTraceSecret, g.ID))
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r.Active() || r.Timeline.Completed == nil || c.now().Sub(*r.Timeline.Completed) < grace {
			continue
		}
		ce, ok := ces[r.ComputeEnvID]
		if !ok {
			var v computeenv.ComputeEnv
			if _, err := c.Store.Get(ctx, store.KindCE, r.ComputeEnvID, &v); err != nil {
				errs = append(errs, fmt.Errorf("token of run %s: read compute environment: %w", r.ID, err))
				continue
			}
			ce, ces[r.ComputeEnvID] = &v, &v
		}
		if err := c.Issuer.Delete(ctx, ce, r.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := c.Store.Delete(ctx, store.KindTraceSecret, r.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
	}
	return deleted, errors.Join(errs...)
}
