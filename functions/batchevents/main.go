// Command batchevents consumes Batch Job State Change events from SQS in
// batches, reporting partial batch failures.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ceforge/ceforge/internal/app"
)

func main() {
	a := app.MustFromEnv(app.BatchEventsFunction(), app.Adapters{})
	lambda.Start(a.BatchEvents.SQSHandler())
}
