// Package local runs the whole of ceforge in one process against the local
// emulator: the API on net/http, the two event consumers polling their SQS
// queues (as Lambda's event source would), and the reconciler on a timer.
package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/user"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ceforge/ceforge/internal/api"
	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/eventsrc/sqspoll"
	"github.com/ceforge/ceforge/internal/store"
)

// Options of a local stack.
type Options struct {
	// Addr to serve the API on, e.g. 127.0.0.1:8080.
	Addr string
	// ReconcileEvery is the reconciler period (default 10s).
	ReconcileEvery time.Duration
	// Identity recorded as the caller of every request (default local:<user>).
	Identity string
}

// Stack is a running local stack.
type Stack struct {
	App       *app.App
	Addr      string
	QueueURLs map[string]string // BatchQueue/EC2Queue -> URL
	server    *http.Server
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// Start prepares the emulator (table, queues) and starts serving.
func Start(ctx context.Context, a *app.App, opts Options) (*Stack, error) {
	if opts.ReconcileEvery <= 0 {
		opts.ReconcileEvery = 10 * time.Second
	}
	if opts.Identity == "" {
		opts.Identity = "local:unknown"
		if u, err := user.Current(); err == nil {
			opts.Identity = "local:" + u.Username
		}
	}
	if err := store.CreateTable(ctx, dynamodb.NewFromConfig(a.AWS.Config("")), a.Config.Table); err != nil {
		return nil, err
	}
	q := sqs.NewFromConfig(a.AWS.Config(""))
	urls := map[string]string{}
	for _, name := range []string{eventsrc.BatchQueue, eventsrc.EC2Queue} {
		url, err := sqspoll.EnsureQueue(ctx, q, a.Config.Prefix+name)
		if err != nil {
			return nil, err
		}
		urls[name] = url
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Stack{App: a, Addr: ln.Addr().String(), QueueURLs: urls, cancel: cancel}
	s.server = &http.Server{Handler: api.LocalIdentity(a.Handler(), opts.Identity), ReadHeaderTimeout: 10 * time.Second}

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Log.Error("local api server stopped", "error", err.Error())
		}
	}()
	for name, proc := range map[string]*eventsrc.Processor{eventsrc.BatchQueue: a.BatchEvents, eventsrc.EC2Queue: a.EC2Events} {
		p := &sqspoll.Poller{Queue: q, QueueURL: urls[name], Processor: proc, BatchSize: 10, Wait: time.Second}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			p.Run(runCtx, func(err error) { a.Log.Warn("event poller", "queue", name, "error", err.Error()) })
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(opts.ReconcileEvery)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				_ = a.Reconciler.Once(runCtx)
			}
		}
	}()
	return s, nil
}

// Stop shuts the stack down and waits for its goroutines.
func (s *Stack) Stop(ctx context.Context) error {
	err := s.server.Shutdown(ctx)
	s.cancel()
	s.wg.Wait()
	return err
}
