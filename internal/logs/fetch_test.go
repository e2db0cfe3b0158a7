package logs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

// awsLikeStream imitates GetLogEvents as AWS documents it, where moto
// differs: opaque tokens, a new token on the first call even for an empty
// stream, the same token back at the end, empty responses with a new token
// while more events lie behind it, and short responses (the 1 MB cap).
type awsLikeStream struct {
	rnd      *rand.Rand
	events   []string
	tokens   map[string]int // token -> index of the next event
	capEvery int            // max events per response (1 MB cap stand-in)
	calls    int
	throttle bool
}

func (s *awsLikeStream) token(pos int) string {
	t := fmt.Sprintf("f/%d/%d", pos, s.rnd.Int64())
	s.tokens[t] = pos
	return t
}

func (s *awsLikeStream) GetLogEvents(_ context.Context, in *cloudwatchlogs.GetLogEventsInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error) {
	s.calls++
	if s.throttle {
		return nil, &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	}
	pos := 0
	if in.NextToken != nil {
		p, ok := s.tokens[*in.NextToken]
		if !ok {
			return nil, &smithy.GenericAPIError{Code: "InvalidParameterException", Message: "bad token"}
		}
		pos = p
	}
	if pos >= len(s.events) {
		if in.NextToken != nil {
			return &cloudwatchlogs.GetLogEventsOutput{NextForwardToken: in.NextToken}, nil
		}
		return &cloudwatchlogs.GetLogEventsOutput{NextForwardToken: aws.String(s.token(pos))}, nil
	}
	if s.rnd.IntN(5) == 0 {
		// Empty page with a new token although events remain.
		return &cloudwatchlogs.GetLogEventsOutput{NextForwardToken: aws.String(s.token(pos))}, nil
	}
	n := min(int(aws.ToInt32(in.Limit)), len(s.events)-pos, 1+s.rnd.IntN(s.capEvery))
	out := &cloudwatchlogs.GetLogEventsOutput{}
	for i := pos; i < pos+n; i++ {
		out.Events = append(out.Events, cwtypes.OutputLogEvent{Message: aws.String(s.events[i]), Timestamp: aws.Int64(int64(i))})
	}
	out.NextForwardToken = aws.String(s.token(pos + n))
	return out, nil
}

// TestReadNeverLosesOrRepeats reads a growing AWS-like stream in random
// page sizes, resuming at random line positions (as a reconnecting
// follower does), and checks every line comes exactly once, in order.
func TestReadNeverLosesOrRepeats(t *testing.T) {
	for seed := range uint64(20) {
		rnd := rand.New(rand.NewPCG(seed, 7))
		s := &awsLikeStream{rnd: rnd, tokens: map[string]int{}, capEvery: 1 + rnd.IntN(300)}
		var got []string
		pos := position{}
		for step := 0; step < 400; step++ {
			if rnd.IntN(3) == 0 {
				for range rnd.IntN(100) {
					s.events = append(s.events, fmt.Sprintf("e%d", len(s.events)))
				}
			}
			b, err := read(context.Background(), s, "g", "s", pos, 1+rnd.IntN(500), 1+rnd.IntN(3))
			require.NoError(t, err)
			require.Len(t, b.after, len(b.lines))
			if len(b.lines) > 0 && rnd.IntN(4) == 0 {
				// Disconnect after a random line: resume from that line's position.
				k := rnd.IntN(len(b.lines))
				for _, l := range b.lines[:k+1] {
					got = append(got, l.Message)
				}
				pos = b.after[k]
				continue
			}
			for _, l := range b.lines {
				got = append(got, l.Message)
			}
			pos = b.next
		}
		// Drain.
		for range 10000 {
			b, err := read(context.Background(), s, "g", "s", pos, 1000, 3)
			require.NoError(t, err)
			for _, l := range b.lines {
				got = append(got, l.Message)
			}
			pos = b.next
			if b.end {
				break
			}
		}
		require.Len(t, got, len(s.events), "seed %d", seed)
		for i := range got {
			require.Equal(t, fmt.Sprintf("e%d", i), got[i], "seed %d", seed)
		}
	}
}

func TestReadEndAndErrors(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	s := &awsLikeStream{rnd: rnd, tokens: map[string]int{}, capEvery: 1000}
	// Empty stream: the first call gets a token, the second sees it repeated.
	b, err := read(context.Background(), s, "g", "s", position{}, 10, 3)
	require.NoError(t, err)
	require.True(t, b.end)
	require.Empty(t, b.lines)
	require.NotEmpty(t, b.next.Token)
	require.Equal(t, 2, s.calls)

	// Stream missing: an empty, ended read (the head has not started).
	b, err = read(context.Background(), notFound{}, "g", "s", position{}, 10, 3)
	require.NoError(t, err)
	require.True(t, b.end)

	// Throttling is recognisable.
	s.throttle = true
	_, err = read(context.Background(), s, "g", "s", position{}, 10, 3)
	require.ErrorIs(t, err, errThrottled)
}

type notFound struct{}

func (notFound) GetLogEvents(context.Context, *cloudwatchlogs.GetLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error) {
	return nil, &cwtypes.ResourceNotFoundException{Message: aws.String("The specified log stream does not exist.")}
}
