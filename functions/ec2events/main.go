// Command ec2events consumes EC2 instance state-change and Spot
// interruption events from SQS in batches, reporting partial batch failures.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ceforge/ceforge/internal/app"
)

func main() {
	a := app.MustFromEnv("ec2events", app.Cloud(nil, app.ProvisionElsewhere))
	lambda.Start(a.EC2Events.SQSHandler())
}
