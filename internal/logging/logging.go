// Package logging builds the process logger: JSON lines (what CloudWatch
// Logs and Lambda's JSON log format expect) at the configured level.
package logging

import (
	"io"
	"log/slog"
)

// New returns a JSON logger writing to w at level ("debug", "info", "warn", "error").
func New(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
