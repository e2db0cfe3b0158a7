package logs_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/faultproxy"
	"github.com/ceforge/ceforge/internal/handlers"
	"github.com/ceforge/ceforge/internal/logs"
	"github.com/ceforge/ceforge/internal/run"
)

// TestThrottledReadsBackOff puts CloudWatch's GetLogEvents behind a token
// bucket: a follower backs off (far fewer calls than its poll interval
// allows) yet delivers every line, and a page answers 503 with Retry-After.
func TestThrottledReadsBackOff(t *testing.T) {
	f := newFixture(t, logs.Options{})
	r := f.createRun(t, run.StatusRunning, &run.LogRef{Group: testGroup, Stream: "throttled"})
	f.ensureStream(t, testGroup, "throttled")
	f.putLines(t, testGroup, "throttled", 0, 50)

	proxy, err := faultproxy.New(f.h.Endpoint, faultproxy.Rule{Service: "logs", Operation: "GetLogEvents", Burst: 1, RefillPerSec: 3, StartEmpty: true})
	require.NoError(t, err)
	require.NoError(t, proxy.Start())
	defer proxy.Close()
	throughProxy := f.h.FunctionAt(app.FnLogs, proxy.URL())

	o := fastFollow
	o.PollInterval = 10 * time.Millisecond
	o.MaxThrottleInterval = 320 * time.Millisecond
	o.MaxFollow = 1500 * time.Millisecond
	o.CursorKey = f.h.Logs.CursorKey
	fn := f.h.Logs
	svc := logs.New(logs.Deps{Runs: fn.Runs, CEs: fn.ComputeEnvs, AWS: throughProxy, Log: quiet}, o)
	rt := handlers.New(handlers.Deps{ComputeEnvs: fn.ComputeEnvs, Runs: fn.Runs, Log: quiet, Extra: []func(*api.Router){svc.Routes}})
	srv := httptest.NewServer(api.LocalIdentity(rt, apptest.Caller))
	defer srv.Close()
	f.srv = srv

	ch, stop := f.followStream(t, r.ID, "")
	defer stop()
	var got []string
	for ev := range ch {
		if ev.Name == "line" {
			got = append(got, decodeLine(t, ev).Message)
		}
	}
	requireSequence(t, got, 0, 50)
	st := proxy.Stats()
	var throttled, total int
	for op, s := range st {
		if strings.Contains(op, "GetLogEvents") {
			throttled += s.Throttled
			total += s.Total()
		}
	}
	require.Positive(t, throttled)
	// 1.5 s at a 10 ms poll would be ~150 calls; doubling up to 320 ms keeps it to a handful.
	require.Less(t, total, 20, "stats %+v", st)

	// A page that meets throttling says so: 503 with Retry-After.
	proxy.SetRules(faultproxy.Rule{Service: "logs", Operation: "GetLogEvents", Burst: 1, RefillPerSec: 0.001, StartEmpty: true})
	f.router = rt
	res := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/runs/"+r.ID+"/logs", nil)
	rt.ServeHTTP(res, req.WithContext(api.WithIdentity(req.Context(), apptest.Caller)))
	require.Equal(t, 503, res.Code, res.Body.String())
	require.Equal(t, "2", res.Header().Get("Retry-After"))
	require.Contains(t, res.Body.String(), `"throttled"`)
}
