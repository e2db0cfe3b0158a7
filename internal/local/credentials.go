package local

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ceforge/ceforge/internal/sigv4"
)

// Account is the emulator's account id.
const Account = "123456789012"

// CredentialsProfile is the profile name in the local credentials file.
const CredentialsProfile = "ceforge-local"

// LoadOrCreateKey returns the local stack's access key, kept in path in the
// AWS shared-credentials format (profile ceforge-local), creating it on
// first use so it stays the same across restarts. Its identity is the IAM
// user named user in the emulator's account.
func LoadOrCreateKey(path, user string) (sigv4.Key, error) {
	arn := fmt.Sprintf("arn:aws:iam::%s:user/%s", Account, user)
	if k, err := readKey(path); err == nil {
		k.ARN = arn
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return sigv4.Key{}, err
	}
	k := sigv4.Key{AccessKeyID: "AKIA" + randomText(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
		SecretAccessKey: randomText(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"), ARN: arn}
	body := fmt.Sprintf("# Local ceforge stack (make local): the key it accepts, for %s.\n[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		arn, CredentialsProfile, k.AccessKeyID, k.SecretAccessKey)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return sigv4.Key{}, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return sigv4.Key{}, fmt.Errorf("write local credentials: %w", err)
	}
	return k, nil
}

func readKey(path string) (sigv4.Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return sigv4.Key{}, err
	}
	defer f.Close()
	var k sigv4.Key
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(name) {
		case "aws_access_key_id":
			k.AccessKeyID = strings.TrimSpace(value)
		case "aws_secret_access_key":
			k.SecretAccessKey = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return sigv4.Key{}, fmt.Errorf("read %s: %w", path, err)
	}
	if k.AccessKeyID == "" || k.SecretAccessKey == "" {
		return sigv4.Key{}, fmt.Errorf("%s holds no access key; delete it to make a new one", path)
	}
	return k, nil
}

func randomText(n int, alphabet string) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
