package app

import (
	"context"
	"fmt"
	"os"

	"github.com/ceforge/ceforge/internal/config"
)

// MustFromEnv builds the App of a Lambda function from its environment
// with its features, or exits: a function that cannot wire itself must fail
// its init, loudly.
func MustFromEnv(function string, features ...Feature) *App {
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: configuration: %v\n", function, err)
		os.Exit(1)
	}
	a, err := New(context.Background(), cfg, Options{}, features...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", function, err)
		os.Exit(1)
	}
	a.Log = a.Log.With("function", function)
	return a
}
