package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	yaml "go.yaml.in/yaml/v3"
)

// Profile is one ceforge deployment the CLI talks to.
type Profile struct {
	// Endpoint is the API's URL (the stack's ApiUrl output).
	Endpoint string `yaml:"endpoint"`
	// LogsURL is the log-follow Function URL (the stack's LogsUrl output).
	LogsURL string `yaml:"logsUrl,omitempty"`
	// Region signs requests; empty: read from the endpoint's host name, else
	// the AWS configuration's region.
	Region string `yaml:"region,omitempty"`
	// AWSProfile names the AWS shared-config profile whose credentials sign
	// requests; empty: the standard credential chain (AWS_PROFILE, env, SSO…).
	AWSProfile string `yaml:"awsProfile,omitempty"`
}

// Config is the CLI's configuration file.
type Config struct {
	Profiles map[string]Profile `yaml:"profiles"`
}

// DefaultProfile is the profile used when none is named.
const DefaultProfile = "default"

// configPath is where the configuration lives: $CEFORGE_CONFIG, else
// ceforge/config.yaml in the user's configuration directory
// ($XDG_CONFIG_HOME or ~/.config on Linux, ~/Library/Application Support on macOS).
func configPath(env func(string) string) (string, error) {
	if p := env("CEFORGE_CONFIG"); p != "" {
		return p, nil
	}
	dir := env("XDG_CONFIG_HOME")
	if dir == "" {
		d, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("find the configuration directory (set CEFORGE_CONFIG): %w", err)
		}
		dir = d
	}
	return filepath.Join(dir, "ceforge", "config.yaml"), nil
}

func loadConfig(path string) (*Config, error) {
	c := &Config{Profiles: map[string]Profile{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := yaml.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if c.Profiles == nil {
		c.Profiles = map[string]Profile{}
	}
	return c, nil
}

func (c *Config) save(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode configuration: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append([]byte("# ceforge CLI configuration (ceforge configure writes it)\n"), b...), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (c *Config) names() []string {
	out := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
