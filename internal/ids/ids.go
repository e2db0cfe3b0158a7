// Package ids makes record identifiers: short, random, lowercase
// alphanumeric, so they fit AWS resource names (IAM role names are at most
// 64 characters) and tags without escaping.
package ids

import (
	"crypto/rand"
	"regexp"
)

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// Length of an id.
const Length = 14

var valid = regexp.MustCompile(`^[0-9a-z]{14}$`)

// New returns a fresh random id.
func New() string {
	out := make([]byte, 0, Length)
	buf := make([]byte, 32)
	for len(out) < Length {
		if _, err := rand.Read(buf); err != nil {
			panic("ids: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			// Reject the top of the byte range so every character is equally likely.
			if c < 252 && len(out) < Length {
				out = append(out, alphabet[int(c)%len(alphabet)])
			}
		}
	}
	return string(out)
}

// Valid reports whether s has the shape of an id (cheap check before a read).
func Valid(s string) bool { return valid.MatchString(s) }
