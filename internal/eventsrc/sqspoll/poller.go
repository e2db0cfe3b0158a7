package sqspoll

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// QueueAPI is the part of the SQS client the poller uses.
type QueueAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Handler is what consumes a batch: the Lambda handler itself
// (eventsrc.Processor.SQSHandler), so the local path is the one AWS runs.
type Handler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// Poller plays the part of Lambda's SQS event source locally: it receives
// batches with their system attributes, hands them to the handler as the
// Lambda SQS event, and deletes the messages the handler did not report as
// failed (failed ones reappear after the visibility timeout and, after
// maxReceiveCount, go to the dead-letter queue, as in AWS).
type Poller struct {
	Queue    QueueAPI
	QueueURL string
	QueueARN string // eventSourceARN of the records (optional)
	Handler  Handler
	// BatchSize up to 10 (SQS maximum per receive).
	BatchSize int32
	// Wait is the long-poll time per receive.
	Wait time.Duration
}

// PollOnce receives and processes one batch; it returns how many messages it received.
func (p *Poller) PollOnce(ctx context.Context) (int, error) {
	size := p.BatchSize
	if size <= 0 || size > 10 {
		size = 10
	}
	out, err := p.Queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: &p.QueueURL, MaxNumberOfMessages: size, WaitTimeSeconds: int32(p.Wait / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	if err != nil {
		return 0, fmt.Errorf("receive from %s: %w", p.QueueURL, err)
	}
	if len(out.Messages) == 0 {
		return 0, nil
	}
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(out.Messages))}
	for i, m := range out.Messages {
		ev.Records[i] = events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Md5OfBody: aws.ToString(m.MD5OfBody), Attributes: m.Attributes, EventSource: "aws:sqs", EventSourceARN: p.QueueARN,
		}
	}
	res, err := p.Handler(ctx, ev)
	if err != nil {
		// Lambda retries the whole batch after a handler error.
		return len(out.Messages), fmt.Errorf("handle batch from %s: %w", p.QueueURL, err)
	}
	failed := map[string]bool{}
	for _, f := range res.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	var del []types.DeleteMessageBatchRequestEntry
	for i, m := range out.Messages {
		if !failed[aws.ToString(m.MessageId)] {
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
		}
	}
	if len(del) > 0 {
		if _, err := p.Queue.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &p.QueueURL, Entries: del}); err != nil {
			return len(out.Messages), fmt.Errorf("delete from %s: %w", p.QueueURL, err)
		}
	}
	return len(out.Messages), nil
}

// Run polls until ctx ends, reporting errors to onErr.
func (p *Poller) Run(ctx context.Context, onErr func(error)) {
	for ctx.Err() == nil {
		n, err := p.PollOnce(ctx)
		if err != nil && ctx.Err() == nil {
			onErr(err)
			time.Sleep(time.Second)
		}
		if n == 0 && p.Wait == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}
