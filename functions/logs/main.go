// Command logs is the run-log Lambda behind a Function URL (AWS_IAM auth,
// RESPONSE_STREAM invoke mode): the ceforge router with the log routes, so
// pages, follow mode (server-sent events) and downloads behave exactly as
// on the local server.
package main

import (
	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/logsroutes"
	"github.com/ceforge/ceforge/internal/logs"
)

func main() {
	a := app.MustFromEnv(app.LogsFunction(), app.Adapters{LogRoutes: logsroutes.Feature})
	lambdaurl.Start(logs.FunctionURLIdentity(a.Handler()))
}
