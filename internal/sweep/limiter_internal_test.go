package sweep

import (
	"context"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

func TestAIMDHalvesAndRecovers(t *testing.T) {
	a := newAIMD(Limit{Rate: 100, Burst: 50})
	require.Equal(t, 100.0, a.Rate())

	a.Throttled()
	require.Equal(t, 50.0, a.Rate())
	require.Equal(t, 1, a.lim.Burst(), "no burst right after a throttle")
	// Throttles of requests already in flight count once per cool-down.
	a.Throttled()
	a.Throttled()
	require.Equal(t, 50.0, a.Rate())
	require.Equal(t, 3, a.Throttles())

	// Additive increase: 1% of the maximum per success.
	for i := 0; i < 10; i++ {
		a.Succeeded()
	}
	require.InDelta(t, 60.0, a.Rate(), 0.001)
	for i := 0; i < 100; i++ {
		a.Succeeded()
	}
	require.Equal(t, 100.0, a.Rate(), "never above the configured rate")
	require.Equal(t, 50, a.lim.Burst(), "burst restored at full rate")

	// Repeated throttles (past the cool-down) keep halving down to a floor.
	for i := 0; i < 20; i++ {
		a.lastCut = time.Time{}
		a.Throttled()
	}
	require.InDelta(t, 100.0/64, a.Rate(), 0.001)
}

func TestCallRetriesThrottles(t *testing.T) {
	a := newAIMD(Limit{Rate: 1000, Burst: 10})
	calls := 0
	err := call(context.Background(), a, func(context.Context) error {
		calls++
		if calls < 3 {
			return &smithy.GenericAPIError{Code: "RequestLimitExceeded"}
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, calls)
	require.Equal(t, 2, a.Throttles())

	// Other errors come back at once.
	calls = 0
	err = call(context.Background(), a, func(context.Context) error {
		calls++
		return &smithy.GenericAPIError{Code: "UnauthorizedOperation"}
	})
	require.Equal(t, "UnauthorizedOperation", ErrorCode(err))
	require.Equal(t, 1, calls)

	// A wait that cannot finish before the deadline is the deadline.
	slow := newAIMD(Limit{Rate: 0.001, Burst: 1})
	require.NoError(t, slow.Wait(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err = call(ctx, slow, func(context.Context) error { return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
