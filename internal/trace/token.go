package trace

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// TokenPrefix marks ceforge run tokens (so a leaked one is recognisable).
const TokenPrefix = "cft_"

// NewToken returns a fresh run token: 256 random bits, base64url. It has
// no dots and is not a Seqera token, so Nextflow sends it in the Basic
// form; both forms are accepted.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("trace: crypto/rand failed: " + err.Error())
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// HashToken is what the table keeps of a token: its SHA-256, hex. A token
// has 256 random bits, so a plain hash cannot be reversed or guessed.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenMatches compares a presented token with a stored hash in constant time.
func TokenMatches(token, hash string) bool {
	if token == "" || len(hash) != sha256.Size*2 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(HashToken(token)), []byte(hash)) == 1
}

// ParseAuthorization returns the token of an Authorization header in
// either form Nextflow sends: "Bearer <token>", or "Basic
// base64('@token:' + token)" (user "@token", the token as password).
func ParseAuthorization(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "bearer":
		return cred, cred != "" && len(cred) <= 4096
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			if raw, err = base64.RawStdEncoding.DecodeString(cred); err != nil {
				return "", false
			}
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok || user != "@token" || pass == "" || len(pass) > 4096 {
			return "", false
		}
		return pass, true
	}
	return "", false
}
