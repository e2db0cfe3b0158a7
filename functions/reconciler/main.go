// Command reconciler runs one reconcile pass per scheduled invocation.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ceforge/ceforge/internal/app"
)

func main() {
	a := app.MustFromEnv("reconciler")
	lambda.Start(func(ctx context.Context) error { return a.Reconciler.Once(ctx) })
}
