package app

import (
	"context"
	"fmt"
	"os"

	"github.com/ceforge/ceforge/internal/config"
)

// MustFromEnv builds the App of the deployed function name from its
// environment, with the features that function wires (FunctionFeatures)
// from the adapters its main links, or exits: a function that cannot wire
// itself must fail its init, loudly.
func MustFromEnv(function string, ad Adapters) *App {
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: configuration: %v\n", function, err)
		os.Exit(1)
	}
	features, err := FunctionFeatures(function, ad)
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
