package app

import (
	"context"

	"github.com/ceforge/ceforge/internal/logs"
)

// The run log routes: pages, follow (server-sent events) and download.
func init() {
	platforms = append(platforms, func(_ context.Context, a *App) error {
		svc := logs.New(logs.Deps{Runs: a.Runs, CEs: a.ComputeEnvs, AWS: a.AWS, Log: a.Log}, logs.Options{
			CursorKey: logs.CursorKeyFrom(a.Config.Table, a.Config.Prefix),
			// Set by the stack on the API function, so a follow request that
			// reached the buffered API is told where to go.
			FollowURL: a.Config.LogsURL,
		})
		a.Routes = append(a.Routes, svc.Routes)
		return nil
	})
}
