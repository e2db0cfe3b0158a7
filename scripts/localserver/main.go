// Command localserver serves the whole ceforge API on 127.0.0.1 against the
// local AWS emulator, with the event consumers and the reconciler running.
// `make local` starts the emulator and then this; see the README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ceforge/ceforge/internal/app"
	"github.com/ceforge/ceforge/internal/app/allinone"
	"github.com/ceforge/ceforge/internal/config"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/local"
)

// demoBucket is created in the emulator for the example work directory.
const demoBucket = "ceforge-demo"

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
	a, err := allinone.New(ctx, cfg, app.Options{})
	if err != nil {
		return err
	}
	s, err := local.Start(ctx, a, local.Options{Addr: "127.0.0.1:" + port})
	if err != nil {
		return err
	}
	// A bucket for the example work dir, so the commands below work as printed.
	s3c := s3.NewFromConfig(a.AWS.Config(""), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(demoBucket)}); err != nil && !strings.Contains(err.Error(), "BucketAlready") {
		return fmt.Errorf("create demo bucket: %w", err)
	}
	base := "http://" + s.Addr
	fmt.Fprintf(os.Stderr, `
ceforge is serving on %[1]s (emulator: %[2]s). Try:

  # a compute environment (AWS Cloud: one EC2 instance per run); dryRun=true shows the plan
  curl -s -X POST '%[1]s/compute-envs?dryRun=true' -H 'Content-Type: application/json' \
    -d '{"name":"demo","platform":"aws-cloud","region":"%[3]s","workDir":"s3://%[5]s/work"}'
  CE=$(curl -s -X POST %[1]s/compute-envs -H 'Content-Type: application/json' \
    -d '{"name":"demo","platform":"aws-cloud","region":"%[3]s","workDir":"s3://%[5]s/work"}' | jq -r .id)

  # a pipeline run on it, then its record (backend.instanceId is the EC2 head instance)
  RUN=$(curl -s -X POST %[1]s/runs -H 'Content-Type: application/json' \
    -d '{"kind":"pipeline","computeEnvId":"'$CE'","pipeline":"nf-core/rnaseq","revision":"3.14.0","configProfiles":["test"]}' | jq -r .id)
  curl -s %[1]s/runs/$RUN

  # simulate EventBridge: the instance is running (the run becomes RUNNING)
  IID=$(curl -s %[1]s/runs/$RUN | jq -r .backend.instanceId)
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws --endpoint-url %[2]s --region %[3]s sqs send-message \
    --queue-url %[4]s --message-body "$(sed "s/i-0abcd1234ef567890/$IID/g" events/ec2-running.json)"
  curl -s %[1]s/runs/$RUN

  curl -s %[1]s/openapi.json | head

Ctrl-C stops the server and the emulator.
`, base, cfg.Endpoint, cfg.Region, s.QueueURLs[eventsrc.EC2Queue], demoBucket)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\nstopping…")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Stop(shutdown)
}
