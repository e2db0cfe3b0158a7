// Command localserver serves the whole ceforge API on 127.0.0.1 against the
// local AWS emulator, with the event consumers and the reconciler running.
// `make local` starts the emulator and then this; see the README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/local"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "localserver:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if cfg.Endpoint == "" {
		return fmt.Errorf("CEFORGE_AWS_ENDPOINT is not set: the local server only talks to the local emulator")
	}
	port := os.Getenv("CEFORGE_API_PORT")
	if port == "" {
		port = "8080"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, app.Options{})
	if err != nil {
		return err
	}
	s, err := local.Start(ctx, a, local.Options{Addr: "127.0.0.1:" + port})
	if err != nil {
		return err
	}
	base := "http://" + s.Addr
	fmt.Fprintf(os.Stderr, `
ceforge is serving on %[1]s (emulator: %[2]s). Try:

  curl -s %[1]s/compute-envs
  curl -s -X POST '%[1]s/compute-envs?dryRun=true' -H 'Content-Type: application/json' \
    -d '{"name":"demo","platform":"aws-cloud","region":"%[3]s","workDir":"s3://demo-bucket/work"}'
  curl -s -X POST %[1]s/compute-envs -H 'Content-Type: application/json' \
    -d '{"name":"demo","platform":"aws-cloud","region":"%[3]s","workDir":"s3://demo-bucket/work"}'
  curl -s %[1]s/runs
  curl -s %[1]s/openapi.json | head

Simulate an AWS event (see events/):
  AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x aws --endpoint-url %[2]s --region %[3]s sqs send-message \
    --queue-url %[4]s --message-body file://events/ec2-instance-running.json

Ctrl-C stops the server and the emulator.
`, base, cfg.Endpoint, cfg.Region, s.QueueURLs["ec2-events"])
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\nstopping…")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Stop(shutdown)
}
