package computeenv

import (
	"context"
	"fmt"
	"regexp"

	"github.com/ceforge/ceforge/internal/apierr"
)

// Pipeline secrets are named by compute environments and runs
// (internal/secret keeps them).
const (
	MaxSecretNameLen = 128
	// MaxSecrets bounds the secrets a compute environment or a run (with
	// its compute environment's) names.
	MaxSecrets = 50
)

// SecretNameRE is a pipeline secret's name: what Nextflow accepts (the
// secret directive exports it as an environment variable).
var SecretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckSecretName validates a secret name in field.
func CheckSecretName(field, name string) error {
	if name == "" {
		return apierr.Missing(field)
	}
	if len(name) > MaxSecretNameLen || !SecretNameRE.MatchString(name) {
		return apierr.Invalid(field, "a secret name is 1-%d letters, digits and '_', not starting with a digit (Nextflow exports it as an environment variable)", MaxSecretNameLen)
	}
	return nil
}

// CheckSecretNames validates a list of secret names: valid, each once.
func CheckSecretNames(field string, names []string) error {
	if len(names) > MaxSecrets {
		return apierr.Invalid(field, "at most %d secrets", MaxSecrets)
	}
	seen := map[string]bool{}
	for i, n := range names {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := CheckSecretName(f, n); err != nil {
			return err
		}
		if seen[n] {
			return apierr.Invalid(f, "secret %q is named twice", n)
		}
		seen[n] = true
	}
	return nil
}

// NamedSecret is a secret a request names, with the field that names it.
type NamedSecret struct{ Field, Name string }

// ListedSecrets are the names of a list field (field[i]).
func ListedSecrets(field string, names []string) []NamedSecret {
	out := make([]NamedSecret, 0, len(names))
	for i, n := range names {
		out = append(out, NamedSecret{Field: fmt.Sprintf("%s[%d]", field, i), Name: n})
	}
	return out
}

// Named are the secrets a CE names, each with its field.
func (ce *ComputeEnv) Named() []NamedSecret {
	out := ListedSecrets("secrets", ce.Secrets)
	if ce.SeqeraTokenSecret != "" {
		out = append(out, NamedSecret{Field: "seqeraTokenSecret", Name: ce.SeqeraTokenSecret})
	}
	for i, r := range ce.RegistryCredentials {
		out = append(out, NamedSecret{Field: fmt.Sprintf("registryCredentials[%d].passwordSecret", i), Name: r.PasswordSecret})
	}
	return out
}

// SecretChecker says whether pipeline secrets exist where a compute
// environment's runs run (its account and region): internal/secret.
type SecretChecker interface {
	// Check returns a 4xx naming the field of the first secret not kept there.
	Check(ctx context.Context, ce *ComputeEnv, named []NamedSecret) error
}
