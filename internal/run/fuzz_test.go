package run

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ceforge/ceforge/internal/apierr"
)

// FuzzLaunchRequestValidate: never a panic; rejections are 400s naming a
// field; accepted pipeline names and revisions carry no shell metacharacters.
func FuzzLaunchRequestValidate(f *testing.F) {
	for _, s := range []string{
		`{"kind":"pipeline","computeEnvId":"abc","pipeline":"https://github.com/nf-core/rnaseq","revision":"3.14.0","configProfiles":["test"],"paramsText":"a: 1"}`,
		`{"kind":"studio","computeEnvId":"abc","studio":{"image":"jupyter/base-notebook:latest","port":8888,"spot":true}}`,
		`{"kind":"pipeline","computeEnvId":"abc","pipeline":"a/b;reboot","revision":"$(id)"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req LaunchRequest
		if json.Unmarshal([]byte(body), &req) != nil {
			return
		}
		err := req.Validate()
		if err != nil {
			e, ok := apierr.As(err)
			if !ok || e.Status != 400 || e.Field == "" {
				t.Fatalf("validation error must be a 400 naming a field: %v", err)
			}
			return
		}
		for _, v := range append([]string{req.Pipeline, req.Revision}, req.ConfigProfiles...) {
			if strings.ContainsAny(v, " ;|&$`'\"\\<>(){}\n\r\t*?!") {
				t.Fatalf("accepted a value with shell metacharacters: %q", v)
			}
		}
	})
}
