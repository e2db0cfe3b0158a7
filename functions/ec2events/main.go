// Command ec2events consumes EC2 instance state-change and Spot
// interruption events from SQS in batches, reporting partial batch failures.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ceforge/ceforge/internal/app"
)

func main() {
	a := app.MustFromEnv(app.EC2EventsFunction(), app.Adapters{})
	lambda.Start(a.EC2Events.SQSHandler())
}
