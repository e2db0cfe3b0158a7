// Command api is the API Lambda: API Gateway HTTP API (payload v2) events
// in, the ceforge router, JSON out.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/app"
)

func main() {
	a := app.MustFromEnv("api")
	lambda.Start(api.LambdaHandler(a.Handler()))
}
