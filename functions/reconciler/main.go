// Command reconciler runs one reconcile pass per scheduled invocation, and
// advances one compute environment when the API hands it one
// ({"computeEnvId": …}, an asynchronous invoke). It is the function that
// forges and tears down Batch resources and AWS Cloud roles.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/forge/steps"
)

func main() {
	a := app.MustFromEnv("reconciler", app.Batch(steps.NewApplier, nil, nil), app.Cloud(nil, app.ProvisionHere))
	lambda.Start(func(ctx context.Context, payload json.RawMessage) error {
		return a.Reconcile(ctx, payload)
	})
}
