// Package tags defines the ownership tags ceforge sets on everything it
// creates in AWS. They are set at creation (TagSpecifications), never added
// later, and users cannot override them: the sweeper deletes nothing
// without this proof of ownership.
package tags

import (
	"sort"
	"strings"
)

// Reserved tag keys.
const (
	Managed = "ceforge:managed" // "true" on every resource ceforge creates
	CEID    = "ceforge:ce-id"   // compute environment id
	RunID   = "ceforge:run-id"  // run id, on run resources (instances, volumes, jobs)
	Keep    = "ceforge:keep"    // set by a user to protect a resource from the sweeper
	Name    = "Name"
)

// Tags is a set of AWS tags.
type Tags map[string]string

// Ownership returns the reserved tags for a CE resource (runID "" for none).
func Ownership(ceID, runID string) Tags {
	t := Tags{Managed: "true", CEID: ceID}
	if runID != "" {
		t[RunID] = runID
	}
	return t
}

// Merge returns user labels overlaid with the reserved tags, so a label can
// never replace an ownership tag.
func Merge(labels map[string]string, reserved Tags) Tags {
	out := Tags{}
	for k, v := range labels {
		if !IsReserved(k) {
			out[k] = v
		}
	}
	for k, v := range reserved {
		out[k] = v
	}
	return out
}

// IsReserved reports whether a key belongs to ceforge or AWS.
func IsReserved(key string) bool {
	k := strings.ToLower(key)
	return strings.HasPrefix(k, "ceforge:") || strings.HasPrefix(k, "aws:")
}

// Keys returns the keys in sorted order (deterministic API calls and plans).
func (t Tags) Keys() []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
