package local_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/apptest"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/local"
	"github.com/ceforge/ceforge/internal/sigv4"
	"github.com/ceforge/ceforge/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

type sink struct {
	mu  sync.Mutex
	got []eventsrc.Event
}

func (s *sink) Apply(_ context.Context, evs []eventsrc.Event) eventsrc.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, evs...)
	return eventsrc.Result{}
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// TestLocalStackServesAPIAndConsumesQueues is what `make local` runs: the
// API on net/http with a local identity, and an EventBridge event sent to
// the queue reaching its consumer, as in AWS.
func TestLocalStackServesAPIAndConsumesQueues(t *testing.T) {
	h := apptest.NewLocal(t)
	kind := eventsrc.Kind{Source: "aws.ec2", DetailType: "EC2 Instance State-change Notification"}
	s := &sink{}
	h.API.EC2Events.Handle(s, map[eventsrc.Kind]eventsrc.Parser{kind: func(env eventsrc.Envelope) (any, error) {
		return eventsrc.Decode[map[string]any](env)
	}})
	ctx := context.Background()
	stack, err := local.Start(ctx, h.API, local.Options{Addr: "127.0.0.1:0", Identity: "local:test", ReconcileEvery: 100 * time.Millisecond})
	require.NoError(t, err)
	defer stack.Stop(ctx)

	res, err := http.Get("http://" + stack.Addr + "/compute-envs")
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode, string(b))
	require.JSONEq(t, `{"items":[]}`, string(b))

	event, err := json.Marshal(map[string]any{
		"version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": kind.DetailType, "source": kind.Source,
		"account": "123456789012", "time": "2026-11-23T12:00:00Z", "region": "us-east-1",
		"resources": []string{"arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"},
		"detail":    map[string]string{"instance-id": "i-0123456789abcdef0", "state": "running"},
	})
	require.NoError(t, err)
	q := sqs.NewFromConfig(h.AWS.Config(""))
	url := stack.QueueURLs[eventsrc.EC2Queue]
	_, err = q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(string(event))})
	require.NoError(t, err)

	require.Eventually(t, func() bool { return s.count() == 1 }, 10*time.Second, 50*time.Millisecond, "the event must reach its consumer")
	require.Equal(t, "i-0123456789abcdef0", s.got[0].Value.(map[string]any)["instance-id"])
	require.Eventually(t, func() bool {
		attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
		return err == nil && attrs.Attributes["ApproximateNumberOfMessages"] == "0" && attrs.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
	}, 5*time.Second, 50*time.Millisecond, "a consumed message is deleted from the queue")
}

// With signing on, the trace routes are still served unsigned (as API
// Gateway does: Nextflow cannot sign; a run token authorises each call),
// and everything else still needs a signature.
func TestLocalTraceRoutesAreUnsigned(t *testing.T) {
	h := apptest.NewLocal(t)
	ctx := context.Background()
	stack, err := local.Start(ctx, h.API, local.Options{Addr: "127.0.0.1:0", Identity: "local:test",
		Keys: []sigv4.Key{{AccessKeyID: "AKIALOCAL", SecretAccessKey: "secret", ARN: "arn:aws:iam::123456789012:user/local"}}})
	require.NoError(t, err)
	defer stack.Stop(ctx)
	res, err := http.Post("http://"+stack.Addr+"/trace/create", "application/json", strings.NewReader(`{"workflowId":"abcdefghijklmn"}`))
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, string(b))
	require.Contains(t, string(b), "Authorization", "the receiver answered, asking for the run's token")
	res, err = http.Get("http://" + stack.Addr + "/compute-envs")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusForbidden, res.StatusCode)
}
