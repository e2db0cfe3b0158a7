// Command ceforge is the command-line client of a ceforge deployment
// (logic in internal/cli). Install with
// `go install github.com/ceforge/ceforge/cmd/ceforge@latest` or `make cli`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ceforge/ceforge/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, IsTerminal: isTerminal(os.Stdout)})
	stop()
	os.Exit(code)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
