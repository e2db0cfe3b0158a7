// Package secrettest holds what the secrets tests of both platforms share:
// secret values that a test stores and then looks for in every readable
// place (user data, job definitions, records, answers, logs).
package secrettest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Values are secret values by name.
type Values map[string]string

// RequireAbsent fails when any value, or its first line or the part before
// a tab (what a shell or a log line would cut it to), is in text.
func (v Values) RequireAbsent(t testing.TB, where, text string) {
	t.Helper()
	for name, value := range v {
		for _, part := range []string{value, strings.SplitN(value, "\n", 2)[0], strings.SplitN(value, "\t", 2)[0]} {
			if len(part) >= 8 {
				require.NotContains(t, text, part, "the value of %s is in %s", name, where)
			}
		}
	}
}
