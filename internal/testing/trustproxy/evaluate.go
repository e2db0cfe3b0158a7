package trustproxy

import (
	"encoding/json"
	"path"
	"strings"
)

// Evaluate decides a trust policy for an AssumeRole by caller (a principal
// ARN) with externalID, as AWS does for what ceforge's policies use: Allow
// statements for sts:AssumeRole whose AWS principal is the caller, its
// account or its account's root, under StringEquals/StringLike on
// sts:ExternalId and ArnEquals/ArnLike on aws:PrincipalArn. Anything it
// does not understand refuses. It returns "" when allowed, else the reason.
func Evaluate(policy, caller, externalID string) string {
	var doc struct {
		Statement []struct {
			Effect    string
			Principal json.RawMessage
			Action    json.RawMessage
			Condition map[string]map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return "unreadable trust policy: " + err.Error()
	}
	reason := "no statement of the trust policy allows the caller"
	for _, s := range doc.Statement {
		if s.Effect != "Allow" || !contains(list(s.Action), "sts:AssumeRole") {
			continue
		}
		var p struct{ AWS json.RawMessage }
		if json.Unmarshal(s.Principal, &p) != nil || !principalMatches(list(p.AWS), caller) {
			continue
		}
		if why := conditionsHold(s.Condition, caller, externalID); why != "" {
			reason = why
			continue
		}
		return ""
	}
	return reason
}

func principalMatches(principals []string, caller string) bool {
	account := ""
	if parts := strings.SplitN(caller, ":", 6); len(parts) == 6 {
		account = parts[4]
	}
	for _, p := range principals {
		if p == caller || p == account || p == "arn:aws:iam::"+account+":root" {
			return true
		}
	}
	return false
}

func conditionsHold(cond map[string]map[string]json.RawMessage, caller, externalID string) string {
	values := map[string]string{"sts:externalid": externalID, "aws:principalarn": caller}
	for op, kv := range cond {
		for key, raw := range kv {
			have, known := values[strings.ToLower(key)]
			if !known {
				return "condition key " + key + " is not understood"
			}
			want := list(raw)
			ok := false
			for _, w := range want {
				switch op {
				case "StringEquals", "ArnEquals":
					ok = ok || (have != "" && have == w)
				case "StringLike", "ArnLike":
					m, _ := path.Match(w, have)
					ok = ok || (have != "" && m)
				default:
					return "condition operator " + op + " is not understood"
				}
			}
			if !ok {
				return op + " " + key + " does not hold"
			}
		}
	}
	return ""
}

func list(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
