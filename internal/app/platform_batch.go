package app

import (
	"context"

	"github.com/ceforge/ceforge/internal/batchce"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/forge/steps"
)

// The aws-batch platform: forge/manual compute environments, head jobs,
// and the Batch Job State Change consumer.
func init() {
	platforms = append(platforms, func(_ context.Context, a *App) error {
		log := a.Log.With("platform", computeenv.PlatformBatch)
		sink := &batchce.Sink{Store: a.Store, Runs: a.Runs, Log: log}
		a.ComputeEnvs.Provisioners[computeenv.PlatformBatch] = &batchce.Provisioner{AWS: a.AWS, Prefix: a.Config.Prefix, Applier: steps.NewApplier, Log: log}
		a.Runs.Launchers[computeenv.PlatformBatch] = &batchce.Launcher{AWS: a.AWS, Prefix: a.Config.Prefix, Store: a.Store, Sink: sink, Log: log}
		a.BatchEvents.Handle(sink, map[eventsrc.Kind]eventsrc.Parser{batchce.JobStateChange: batchce.Parser(a.Config.Prefix)})
		return nil
	})
}
