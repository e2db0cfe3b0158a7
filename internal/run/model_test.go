package run

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPlaceKeepsTimelineOrdered: whatever time an event claims, the
// recorded times stay ordered (submitted < running < completed) with
// positive durations, and a far-future time is taken as now.
func TestPlaceKeepsTimelineOrdered(t *testing.T) {
	sub := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	now := sub.Add(10 * time.Minute)
	ms := time.Millisecond
	running := sub.Add(time.Minute)
	completed := sub.Add(5 * time.Minute)
	for _, tc := range []struct {
		name   string
		tl     Timeline
		status string
		at     time.Time
		want   time.Time
	}{
		{"running as reported", Timeline{Submitted: &sub}, StatusRunning, sub.Add(30 * time.Second), sub.Add(30 * time.Second)},
		{"running before submission", Timeline{Submitted: &sub}, StatusRunning, sub.Add(-time.Hour), sub.Add(ms)},
		{"running at submission", Timeline{Submitted: &sub}, StatusRunning, sub, sub.Add(ms)},
		{"running far in the future", Timeline{Submitted: &sub}, StatusRunning, now.Add(time.Hour), now},
		{"running a little in the future", Timeline{Submitted: &sub}, StatusRunning, now.Add(time.Minute), now.Add(time.Minute)},
		{"no time", Timeline{Submitted: &sub}, StatusRunning, time.Time{}, now},
		{"completed before running", Timeline{Submitted: &sub, Running: &running}, StatusSucceeded, sub.Add(30 * time.Second), running.Add(ms)},
		{"completed before submission, never running", Timeline{Submitted: &sub}, StatusFailed, sub.Add(-time.Minute), sub.Add(ms)},
		{"completed as reported", Timeline{Submitted: &sub, Running: &running}, StatusCancelled, completed, completed},
		{"late running after the end", Timeline{Submitted: &sub, Completed: &completed}, StatusRunning, completed.Add(time.Minute), completed.Add(-ms)},
		{"late running before the end", Timeline{Submitted: &sub, Completed: &completed}, StatusRunning, running, running},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.tl.Place(tc.status, tc.at, now)
			require.True(t, got.Equal(tc.want), "got %s, want %s", got, tc.want)
		})
	}
}

func TestMovesFollowsTheRankRules(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		want     bool
	}{
		{StatusSubmitted, StatusRunning, true},
		{StatusRunning, StatusSubmitted, false},
		{StatusRunning, StatusRunning, false},
		{StatusRunning, StatusUnknown, true},
		{StatusUnknown, StatusRunning, true},
		{StatusUnknown, StatusFailed, true},
		{StatusSucceeded, StatusFailed, false},
		{StatusFailed, StatusRunning, false},
		{StatusSubmitted, StatusUnknown, true},
	} {
		require.Equal(t, tc.want, Moves(tc.from, tc.to), "%s -> %s", tc.from, tc.to)
	}
}

func TestObservedFrom(t *testing.T) {
	member := &Run{Region: "eu-west-1", AccountID: "222233334444"}
	own := &Run{Region: "us-east-1"}
	legacy := &Run{}
	for _, tc := range []struct {
		name            string
		r               *Run
		account, region string
		controlPlane    string
		want            bool
	}{
		{"member, its account and region", member, "222233334444", "eu-west-1", "123456789012", true},
		{"member, the control plane's account", member, "123456789012", "eu-west-1", "123456789012", false},
		{"member, another region", member, "222233334444", "us-east-1", "", false},
		{"own account, known", own, "123456789012", "us-east-1", "123456789012", true},
		{"own account, a member's event", own, "222233334444", "us-east-1", "123456789012", false},
		{"own account, not known (emulator)", own, "111122223333", "us-east-1", "", true},
		{"own account, another region", own, "123456789012", "us-west-2", "", false},
		{"recorded before locations", legacy, "999999999999", "ap-south-1", "123456789012", false},
		{"recorded before locations, own account", legacy, "123456789012", "ap-south-1", "123456789012", true},
		{"event without account or region", member, "", "", "123456789012", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.r.ObservedFrom(tc.account, tc.region, tc.controlPlane))
		})
	}
}
