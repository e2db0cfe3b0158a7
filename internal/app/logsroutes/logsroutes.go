// Package logsroutes adds the run log routes (pages, follow as server-sent
// events, download) to an App. It is apart from app because the logs
// package links the CloudWatch Logs client: only the functions that serve
// logs import it.
package logsroutes

import (
	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/logs"
)

// Feature adds the log routes.
var Feature = app.Routes(build)

func build(a *app.App) func(*api.Router) {
	svc := logs.New(logs.Deps{Runs: a.Runs, CEs: a.ComputeEnvs, AWS: a.AWS, Log: a.Log}, logs.Options{
		CursorKey: logs.CursorKeyFrom(a.Config.Table, a.Config.Prefix),
		// Set by the stack on the API function, so a follow request that
		// reached the buffered API is told where to go.
		FollowURL: a.Config.LogsURL,
	})
	return svc.Routes
}
