// Command api is the API Lambda: API Gateway HTTP API (payload v2) events
// in, the ceforge router, JSON out. It validates and records compute
// environments, launches and cancels runs, serves log pages and queues
// sweeps; forging and tearing down Batch resources it hands to the
// reconciler, so it links none of the forge clients (nor holds their
// permissions).
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/logsroutes"
	"github.com/ceforge/ceforge/internal/app/tokens"
	"github.com/ceforge/ceforge/internal/awsclient/fsread"
	"github.com/ceforge/ceforge/internal/awsclient/lambdainvoke"
	"github.com/ceforge/ceforge/internal/awsclient/ssmparam"
	"github.com/ceforge/ceforge/internal/credential/rolecheck"
	"github.com/ceforge/ceforge/internal/secret/smvault"
)

func main() {
	a := app.MustFromEnv(app.APIFunction(), app.Adapters{
		Parameters: ssmparam.New, FileSystems: fsread.New, Invoker: lambdainvoke.Func, LogRoutes: logsroutes.Feature, Tokens: tokens.Feature,
		Verifier: rolecheck.New, Vaults: smvault.New,
	})
	lambda.Start(api.LambdaHandler(a.Handler()))
}
