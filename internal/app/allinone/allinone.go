// Package allinone wires every feature into one App: what the local server
// runs. In AWS each function wires only its own features (app's function
// table), and so do the end-to-end tests (apptest).
package allinone

import (
	"context"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/logsroutes"
	"github.com/ceforge/ceforge/internal/app/tokens"
	"github.com/ceforge/ceforge/internal/awsclient/fsread"
	"github.com/ceforge/ceforge/internal/awsclient/ssmparam"
	_ "github.com/ceforge/ceforge/internal/cloudce/cloudiam" // provisions AWS Cloud roles
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/credential/rolecheck"
	"github.com/ceforge/ceforge/internal/forge/steps"
	"github.com/ceforge/ceforge/internal/secret/smvault"
)

// Features are every feature, with sweeps run in this process.
func Features() []app.Feature {
	return []app.Feature{
		app.Batch(steps.NewApplier, ssmparam.New, fsread.New),
		app.Cloud(ssmparam.New, app.ProvisionHere),
		app.Sweeps(app.SweepsHere),
		logsroutes.Feature,
		tokens.Feature,
		app.TraceReceiver(app.RunsHere),
		app.VerifyCredentials(rolecheck.New),
		app.Secrets(smvault.New),
	}
}

// New wires an App with every feature, plus extra ones.
func New(ctx context.Context, cfg config.Config, opts app.Options, extra ...app.Feature) (*app.App, error) {
	return app.New(ctx, cfg, opts, append(Features(), extra...)...)
}
