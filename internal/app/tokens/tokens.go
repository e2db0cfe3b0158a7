// Package tokens adds per-run progress tokens to an App: launches issue
// them (the api function), the reconciler deletes their secrets after the
// runs end. Apart from app because it links the Secrets Manager client.
package tokens

import (
	"context"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/runtoken"
)

// Feature issues tokens at launch and cleans their secrets up.
func Feature(_ context.Context, a *app.App) error {
	iss := &runtoken.Issuer{AWS: a.AWS, Prefix: a.Config.Prefix, Endpoint: a.Config.TraceURL, Log: a.Log}
	a.Runs.Trace = iss
	a.Reconciler.Tokens = &runtoken.Cleaner{Issuer: iss, Store: a.Store, Runs: a.Runs, Log: a.Log}
	return nil
}
