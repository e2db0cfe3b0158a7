package logs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"
)

// eventsGetter is the one CloudWatch Logs call this package makes.
type eventsGetter interface {
	GetLogEvents(ctx context.Context, in *cloudwatchlogs.GetLogEventsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error)
}

// maxEventsPerCall is GetLogEvents' own ceiling on Limit.
const maxEventsPerCall = 10000

// Line is one log line.
type Line struct {
	Timestamp time.Time `json:"timestamp"`
	Message   string    `json:"message"`
}

// batch is the result of one read.
type batch struct {
	lines []Line
	// after[i] is the position just past lines[i].
	after []position
	// next is where the following read starts.
	next position
	// end is true when CloudWatch said there is nothing more right now (the
	// forward token came back unchanged, or the stream does not exist yet).
	end   bool
	calls int
}

// errThrottled marks CloudWatch throttling, so followers back off.
var errThrottled = errors.New("cloudwatch logs throttled the read")

// read returns up to limit lines of group/stream starting at from, making at
// most maxCalls GetLogEvents calls. Oldest first (startFromHead).
//
// Paging rule: at the end of a stream GetLogEvents returns the token it was
// given; that is where reading stops. An empty response with a new token
// (the first call on an empty stream, or a gap) moves on without a line.
func read(ctx context.Context, cl eventsGetter, group, stream string, from position, limit, maxCalls int, optFns ...func(*cloudwatchlogs.Options)) (batch, error) {
	b := batch{next: from}
	for b.calls < maxCalls && len(b.lines) < limit {
		pos := b.next
		want := min(maxEventsPerCall, pos.Skip+limit-len(b.lines))
		in := &cloudwatchlogs.GetLogEventsInput{
			LogGroupName:  aws.String(group),
			LogStreamName: aws.String(stream),
			StartFromHead: aws.Bool(true),
			Limit:         aws.Int32(int32(want)),
		}
		if pos.Token != "" {
			in.NextToken = aws.String(pos.Token)
		}
		b.calls++
		out, err := cl.GetLogEvents(ctx, in, optFns...)
		if err != nil {
			var nf *cwtypes.ResourceNotFoundException
			if errors.As(err, &nf) {
				// The head has not created its stream (or group) yet: nothing to read.
				b.end = true
				return b, nil
			}
			if isThrottle(err) {
				return b, fmt.Errorf("get log events %s/%s: %w: %w", group, stream, errThrottled, err)
			}
			return b, fmt.Errorf("get log events %s/%s: %w", group, stream, err)
		}
		next := aws.ToString(out.NextForwardToken)
		evs := out.Events
		if len(evs) == 0 {
			if next == "" || next == pos.Token {
				b.end = true
				return b, nil
			}
			b.next = position{Token: next, Skip: pos.Skip} // nothing was skipped yet
			continue
		}
		for i := min(pos.Skip, len(evs)); i < len(evs); i++ {
			e := evs[i]
			b.lines = append(b.lines, Line{
				Timestamp: time.UnixMilli(aws.ToInt64(e.Timestamp)).UTC(),
				Message:   aws.ToString(e.Message),
			})
			after := position{Token: pos.Token, Skip: i + 1}
			if i == len(evs)-1 {
				after = position{Token: next}
			}
			b.after = append(b.after, after)
		}
		// A response shorter than the skip (1 MB cap) leaves part of the skip
		// for the next token.
		b.next = position{Token: next, Skip: max(0, pos.Skip-len(evs))}
		if next == pos.Token {
			// Cannot happen with events in the response; guard against a loop.
			b.end = true
			return b, nil
		}
		if len(evs) < want {
			// A short response: the end of the stream, or CloudWatch's 1 MB
			// response cap. Either way the caller comes back with the cursor.
			return b, nil
		}
	}
	return b, nil
}

func isThrottle(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "LimitExceededException":
			return true
		}
	}
	return false
}
