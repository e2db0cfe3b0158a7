package rolecheck

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/ceforge/ceforge/internal/credential"
)

// statement is the part of an IAM policy statement the group check reads.
type statement struct {
	Effect    string          `json:"Effect"`
	Action    stringOrList    `json:"Action"`
	NotAction stringOrList    `json:"NotAction"`
	Resource  stringOrList    `json:"Resource"`
	Condition json.RawMessage `json:"Condition"`
}

// stringOrList is a policy element that is one string or a list.
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("policy element is neither a string nor a list of strings: %w", err)
	}
	*s = many
	return nil
}

// document is an IAM policy document; Statement may be one object or a list.
type document struct {
	Statement []statement
}

func (d *document) UnmarshalJSON(b []byte) error {
	var raw struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var one statement
	if len(raw.Statement) > 0 && raw.Statement[0] == '{' {
		if err := json.Unmarshal(raw.Statement, &one); err != nil {
			return err
		}
		d.Statement = []statement{one}
		return nil
	}
	return json.Unmarshal(raw.Statement, &d.Statement)
}

// parseDocument decodes a policy document as IAM returns it: URL-encoded
// (GetRolePolicy, GetPolicyVersion) or plain JSON.
func parseDocument(text string) (document, error) {
	if dec, err := url.QueryUnescape(text); err == nil && strings.HasPrefix(strings.TrimSpace(dec), "{") {
		text = dec
	}
	var d document
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		return document{}, fmt.Errorf("decode policy document: %w", err)
	}
	return d, nil
}

// actionMatches matches an IAM action pattern (case-insensitive, '*' and
// '?' wildcards) against an action.
func actionMatches(pattern, action string) bool {
	return glob(strings.ToLower(pattern), strings.ToLower(action))
}

func glob(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if glob(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || p[0] != s[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return s == ""
}

func matchesAny(patterns []string, action string) bool {
	for _, p := range patterns {
		if actionMatches(p, action) {
			return true
		}
	}
	return false
}

// covers reports whether a statement names the action (through Action, or
// NotAction's complement).
func (s statement) covers(action string) bool {
	if len(s.NotAction) > 0 {
		return !matchesAny(s.NotAction, action)
	}
	return matchesAny(s.Action, action)
}

// unconditionalEverywhere: no condition and Resource "*", so the statement
// applies to every call of its actions.
func (s statement) unconditionalEverywhere() bool {
	c := strings.TrimSpace(string(s.Condition))
	return (c == "" || c == "null" || c == "{}") && len(s.Resource) == 1 && s.Resource[0] == "*"
}

// allowedBy decides what the group check needs to know of a set of
// documents: whether some statement allows the action (whatever its
// resources and conditions: those scope a grant to the prefix, to tags or
// to regions, and the group check asks only whether the grant exists), and
// that no statement denies it outright (a Deny on every resource, without
// condition). It is not IAM's evaluation: resource scopes, conditions,
// SCPs and resource policies are AWS's to apply at call time.
func allowedBy(docs []document, action string) bool {
	allowed := false
	for _, d := range docs {
		for _, s := range d.Statement {
			if !s.covers(action) {
				continue
			}
			switch {
			case strings.EqualFold(s.Effect, "Deny") && s.unconditionalEverywhere():
				return false
			case strings.EqualFold(s.Effect, "Allow"):
				allowed = true
			}
		}
	}
	return allowed
}

// Groups checks policy documents (JSON, as IAM holds them) against every
// permission group of the member role, as verification does: the infra
// tests run it on the synthesized member stack.
func Groups(identity []string) ([]credential.GroupCheck, error) {
	var p rolePolicies
	for _, text := range identity {
		d, err := parseDocument(text)
		if err != nil {
			return nil, err
		}
		p.identity = append(p.identity, d)
	}
	return p.groups(), nil
}
