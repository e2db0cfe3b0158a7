// Command trace is the Nextflow trace receiver: the routes `nextflow run
// -with-tower <ceforge>` calls (POST /trace/create, PUT /trace/{id}/begin,
// progress, heartbeat, complete; PATCH /workflow/{id}), behind API Gateway
// without IAM (Nextflow cannot sign requests) and authorised by each run's
// token. It writes only progress and task items; begin, complete and a
// crossed cost limit go to the reconciler, which may change runs.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/awsclient/lambdainvoke"
)

func main() {
	a := app.MustFromEnv(app.TraceFunction(), app.Adapters{Invoker: lambdainvoke.Func})
	lambda.Start(api.LambdaHandler(a.TraceRouter()))
}
