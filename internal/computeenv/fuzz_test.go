package computeenv

import (
	"encoding/json"
	"testing"

	"github.com/ceforge/ceforge/internal/apierr"
)

// FuzzCreateRequestValidate decodes arbitrary JSON into a create request and
// validates it: never a panic; a rejection is always a 400 naming a field;
// an accepted request satisfies the invariants later code relies on.
func FuzzCreateRequestValidate(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","platform":"aws-cloud","region":"eu-west-1","workDir":"s3://bucket/work"}`,
		`{"name":"a","platform":"aws-batch","region":"eu-west-1","workDir":"/mnt/efs/x","batch":{"forge":{"efsId":"fs-1"}}}`,
		`{"name":"a b","platform":"x","region":"mars","workDir":"s3://B/../x"}`,
		`{"name":"a","platform":"aws-cloud","region":"eu-west-1","workDir":"s3://bucket/w","labels":{"ceforge:managed":"x"}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req CreateRequest
		if json.Unmarshal([]byte(body), &req) != nil {
			return
		}
		err := req.Validate([]string{"eu-west-1", "us-east-1"})
		if err != nil {
			e, ok := apierr.As(err)
			if !ok || e.Status != 400 || e.Field == "" {
				t.Fatalf("validation error must be a 400 naming a field: %v", err)
			}
			return
		}
		if !nameRE.MatchString(req.Name) || (req.Platform != PlatformBatch && req.Platform != PlatformCloud) {
			t.Fatalf("accepted invalid request %+v", req)
		}
		for k := range req.Labels {
			if len(k) >= 8 && k[:8] == ReservedTagPrefix {
				t.Fatalf("accepted reserved label %q", k)
			}
		}
	})
}
