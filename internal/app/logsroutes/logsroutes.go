// Package logsroutes adds the run log routes (pages, follow as server-sent
// events, download) to an App. It is apart from app because the logs
// package links the CloudWatch Logs client: only the functions that serve
// logs import it.
package logsroutes

import (
	"context"
	"errors"
	"time"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/awsclient/secretvalue"
	"github.com/ceforge/ceforge/internal/logs"
	"github.com/ceforge/ceforge/internal/price"
	"github.com/ceforge/ceforge/internal/run"
)

// Feature adds the log routes.
func Feature(_ context.Context, a *app.App) error {
	key, err := cursorKey(a)
	if err != nil {
		return err
	}
	a.CursorKey = key
	progress := func(ctx context.Context, r *run.Run) (any, error) {
		return a.Progress.ViewOf(ctx, r, price.Default, time.Now())
	}
	svc := logs.New(logs.Deps{Runs: a.Runs, CEs: a.ComputeEnvs, AWS: a.AWS, Log: a.Log, Leases: a.Store, Progress: progress}, logs.Options{
		CursorKey: key,
		// Set by the stack on the API function, so a follow request that
		// reached the buffered API is told where to go.
		FollowURL: a.Config.LogsURL,
	})
	a.Routes = append(a.Routes, svc.Routes)
	return nil
}

// cursorKey is where the key that signs log cursors comes from: the
// deployment's secret, generated at deploy and shared by every instance of
// the api and logs functions (read at the first log request of a cold
// start); against the local emulator, a random key of this process (cursors
// do not survive a restart of `make local`). Against AWS without the
// secret the function refuses to start: a key derived from names would let
// anyone forge cursors.
func cursorKey(a *app.App) (func(context.Context) ([]byte, error), error) {
	switch {
	case a.Config.CursorKeySecret != "":
		return secretvalue.Source(a.AWS.Config(""), a.Config.CursorKeySecret), nil
	case a.Config.Endpoint == "":
		return nil, errors.New("CEFORGE_CURSOR_KEY_SECRET is not set: the log routes need the deployment's cursor key secret")
	default:
		return logs.FixedKey(logs.RandomKey()), nil
	}
}
