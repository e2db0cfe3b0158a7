package app

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/ceforge/ceforge/internal/sweep"
)

// The sweeper: orphaned volumes, outlived instances, stray Batch jobs, and
// the /sweeps routes. In AWS (CEFORGE_SWEEPER_FUNCTION set) POST /sweeps
// hands the sweep to the sweeper function with an asynchronous invoke,
// because a sweep runs for up to 15 minutes and the API must answer in
// seconds; the local server runs it in a goroutine instead.
func init() {
	platforms = append(platforms, func(_ context.Context, a *App) error {
		sw, err := a.Sweeper()
		if err != nil {
			return err
		}
		var d sweep.Dispatcher = &sweep.LocalDispatcher{Sweeper: sw}
		if fn := a.Config.SweeperFunction; fn != "" {
			client := lambda.NewFromConfig(a.AWS.Config(""))
			d = sweep.LambdaDispatcher{Invoke: func(ctx context.Context, payload []byte) error {
				_, err := client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn),
					InvocationType: lambdatypes.InvocationTypeEvent, Payload: payload})
				if err != nil {
					return fmt.Errorf("invoke %s: %w", fn, err)
				}
				return nil
			}}
		}
		h := &sweep.HTTP{Sweeper: sw, Dispatcher: d}
		a.Routes = append(a.Routes, h.Routes)
		return nil
	})
}

// Sweeper returns the sweeper configured from the App's configuration.
func (a *App) Sweeper() (*sweep.Sweeper, error) {
	opts := sweep.Options{Grace: a.Config.SweepGrace, Prefix: a.Config.Prefix,
		PricePerGiBMonth: a.Config.SweepGP3Price, MaxDeletions: a.Config.SweepMaxDeletions}
	return &sweep.Sweeper{
		Store: a.Store, Clients: sweep.FactoryClients(a.AWS, ""), Options: opts,
		Log: a.Log.With("component", "sweeper"), Metrics: a.Metrics,
	}, nil
}
