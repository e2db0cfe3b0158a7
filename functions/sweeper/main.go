// Command sweeper runs one sweep per invocation: on the EventBridge
// schedule (a Scheduled Event; dry-run per CEFORGE_SWEEP_DRY_RUN) or
// asynchronously from POST /sweeps ({"sweepId": …}). The Lambda deadline
// bounds the sweep; the next invocation resumes. The CDK app sets reserved
// concurrency 1, so sweeps never overlap.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/sweep"
)

func main() {
	a := app.MustFromEnv(app.SweeperFunction(), app.Adapters{})
	sw := a.Sweeper()
	lambda.Start(func(ctx context.Context, payload json.RawMessage) (*sweep.Report, error) {
		return sw.HandleInvocation(ctx, payload, a.Config.SweepDryRun)
	})
}
