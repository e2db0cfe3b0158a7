// Command reconciler runs one reconcile pass per scheduled invocation, and
// advances one compute environment when the API hands it one
// ({"computeEnvId": …}, an asynchronous invoke). It is the function that
// forges and tears down Batch resources and AWS Cloud roles, applies what
// runs' traces report ({"runId": …} from the trace function: begin,
// complete, a crossed cost limit), and deletes ended runs' token secrets.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/tokens"
	_ "github.com/ceforge/ceforge/internal/cloudce/cloudiam" // provisions AWS Cloud roles
	"github.com/ceforge/ceforge/internal/forge/steps"
)

func main() {
	a := app.MustFromEnv(app.ReconcilerFunction(), app.Adapters{Applier: steps.NewApplier, Tokens: tokens.Feature})
	lambda.Start(func(ctx context.Context, payload json.RawMessage) error {
		return a.Reconcile(ctx, payload)
	})
}
