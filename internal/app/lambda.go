package app

import (
	"context"
	"fmt"
	"os"

	"github.com/ceforge/ceforge/internal/config"
)

// MustFromEnv builds the App of the deployed function fn from its
// environment, with the features fn wires from the adapters its main
// links, or exits: a function that cannot wire itself must fail its init,
// loudly.
func MustFromEnv(fn Function, ad Adapters) *App {
	function := fn.Name
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: configuration: %v\n", function, err)
		os.Exit(1)
	}
	features, err := fn.Features(ad)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", function, err)
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
