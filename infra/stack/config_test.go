package stack_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ceforge/ceforge/infra/stack"
)

func lookup(m map[string]any) func(string) (any, bool) {
	return func(k string) (any, bool) { v, ok := m[k]; return v, ok }
}

// cdk.json's context holds exactly the documented defaults, under the keys
// the app reads.
func TestCdkJSONContextIsTheDefaults(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cdk struct {
		App     string         `json:"app"`
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &cdk); err != nil {
		t.Fatal(err)
	}
	if cdk.App != "go run ./infra" {
		t.Errorf("cdk.json app = %q", cdk.App)
	}
	for k := range cdk.Context {
		if !slices.Contains(stack.ContextKeys, k) && !strings.HasPrefix(k, "@aws-cdk/") {
			t.Errorf("cdk.json context key %q is not read by the app", k)
		}
	}
	for _, k := range stack.ContextKeys {
		if _, ok := cdk.Context[k]; !ok {
			t.Errorf("cdk.json lacks context key %q (document every default there)", k)
		}
	}
	cfg, err := stack.ConfigFromMap(lookup(cdk.Context))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, stack.DefaultConfig()) {
		t.Errorf("cdk.json context gives %+v, defaults are %+v", cfg, stack.DefaultConfig())
	}
}

func TestConfigParsing(t *testing.T) {
	cfg, err := stack.ConfigFromMap(lookup(map[string]any{
		"prefix":           "acme-",
		"allowedRegions":   "eu-west-1, us-east-1",
		"sweeperDryRun":    "true",
		"logRetentionDays": "90",
		"jwtIssuer":        "https://issuer.example.com",
		"jwtAudience":      `["a","b"]`,
		"apiRateLimit":     float64(10),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Prefix != "acme-" || !slices.Equal(cfg.AllowedRegions, []string{"eu-west-1", "us-east-1"}) || !cfg.SweeperDryRun ||
		cfg.LogRetentionDays != 90 || !slices.Equal(cfg.JwtAudience, []string{"a", "b"}) || cfg.APIRateLimit != 10 {
		t.Errorf("parsed %+v", cfg)
	}
	// JSON values from cdk.json work as well as strings from -c.
	cfg, err = stack.ConfigFromMap(lookup(map[string]any{"allowedRegions": []any{"eu-west-2"}, "sweeperDryRun": true}))
	if err != nil || !slices.Equal(cfg.AllowedRegions, []string{"eu-west-2"}) || !cfg.SweeperDryRun {
		t.Errorf("parsed %+v, %v", cfg, err)
	}
}

func TestConfigRejects(t *testing.T) {
	for name, ctx := range map[string]map[string]any{
		"prefix chars":            {"prefix": "Ceforge_"},
		"prefix long":             {"prefix": strings.Repeat("a", 21)},
		"prefix matches own role": {"prefix": "lambda-"},
		"region":                  {"allowedRegions": "eu-west-1,mars-1"},
		"schedule":                {"sweeperSchedule": "every 5 minutes"},
		"grace":                   {"sweeperGrace": "30 minutes"},
		"retention":               {"logRetentionDays": 31},
		"log level":               {"logLevel": "verbose"},
		"jwt half":                {"jwtIssuer": "https://issuer.example.com"},
		"jwt http":                {"jwtIssuer": "http://issuer.example.com", "jwtAudience": "a"},
		"email":                   {"alarmEmail": "ops"},
		"bool":                    {"sweeperDryRun": "maybe"},
		"number":                  {"logRetentionDays": "a month"},
		"rate":                    {"apiRateLimit": 0},
		"stack name":              {"stackName": "1stack"},
	} {
		if _, err := stack.ConfigFromMap(lookup(ctx)); err == nil {
			t.Errorf("%s: %v accepted", name, ctx)
		}
	}
}
