package iamcheck

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// policiesJSON is every function role's policies as the CDK app
// synthesizes them, rendered by infra/stack TestRolePoliciesGolden (which
// fails when this file is stale).
//
//go:embed policies.json
var policiesJSON []byte

// Policy is one named policy document.
type Policy struct {
	Name     string `json:"name"`
	Document any    `json:"document"`
}

// Role is what a principal's requests are evaluated against.
type Role struct {
	// ARN of the role (the request's principal).
	ARN        string
	Policies   []Policy
	Boundaries []Policy
}

type golden struct {
	Prefix         string   `json:"prefix"`
	RegionSentinel string   `json:"regionSentinel"`
	Default        rendered `json:"default"`
	Regional       rendered `json:"regional"`
}

type renderedRole struct {
	Role       string   `json:"role"`
	Policies   []Policy `json:"policies"`
	Boundaries []Policy `json:"boundaries"`
}

type rendered struct {
	Functions       map[string]renderedRole `json:"functions"`
	ManagedPolicies map[string]any          `json:"managedPolicies"`
	// Member is the member stack's role (<prefix>member).
	Member *renderedRole `json:"member"`
}

// Deployment is the configuration the policies are rendered for: what
// the CDK context would hold for the test's functions.
type Deployment struct {
	Prefix string
	// Region of the control plane (${AWS::Region}).
	Region string
	// Table is the DynamoDB table's name (${Table}).
	Table string
	// AllowedRegions, when set, is the stack's allowedRegions: the
	// regional rendering, with aws:RequestedRegion conditions.
	AllowedRegions []string
	// Members are the roles in other accounts that calls acting through a
	// compute environment's credentials (Call.ActingAs) are evaluated
	// against, by role name. The member stack's role (<prefix>member) is
	// evaluated as the stack synthesizes it (MemberRole) unless a test
	// registers another here; calls through any other role are counted
	// apart, not evaluated.
	Members map[string]Role
}

func loadGolden() (*golden, error) {
	var g golden
	if err := json.Unmarshal(policiesJSON, &g); err != nil {
		return nil, fmt.Errorf("policies.json: %w", err)
	}
	return &g, nil
}

// resolve renders a golden value for d: placeholders, the prefix, and the
// region sentinel list.
func (g *golden) resolve(v any, d Deployment) any { return g.resolveIn(v, d, Account) }

// resolveIn is resolve in account (${AWS::AccountId}).
func (g *golden) resolveIn(v any, d Deployment, account string) any {
	switch x := v.(type) {
	case string:
		r := strings.NewReplacer("${AWS::Partition}", Partition, "${AWS::AccountId}", account,
			"${AWS::Region}", d.Region, "${AWS::URLSuffix}", "amazonaws.com", "${Table}", d.Table)
		s := r.Replace(x)
		if d.Prefix != "" && d.Prefix != g.Prefix {
			s = strings.ReplaceAll(s, g.Prefix, d.Prefix)
		}
		return s
	case []any:
		if len(x) == 1 && x[0] == g.RegionSentinel {
			out := make([]any, len(d.AllowedRegions))
			for i, r := range d.AllowedRegions {
				out[i] = r
			}
			return out
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = g.resolveIn(e, d, account)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if e == g.RegionSentinel { // a one-region list rendered as a string
				out[k] = g.resolveIn([]any{e}, d, account)
				continue
			}
			out[k] = g.resolveIn(e, d, account)
		}
		return out
	default:
		return v
	}
}

// FunctionRole returns a function's role as the stack deploys it for d.
func FunctionRole(function string, d Deployment) (Role, error) {
	g, err := loadGolden()
	if err != nil {
		return Role{}, err
	}
	section := g.Default
	if len(d.AllowedRegions) > 0 {
		section = g.Regional
	}
	fn, ok := section.Functions[function]
	if !ok {
		names := make([]string, 0, len(section.Functions))
		for n := range section.Functions {
			names = append(names, n)
		}
		sort.Strings(names)
		return Role{}, fmt.Errorf("no function %q in policies.json (it has %v): is it in infra/stack FunctionNames, and policies.json current?", function, names)
	}
	role := Role{ARN: fmt.Sprintf("arn:%s:iam::%s:role/%s", Partition, Account, g.resolve(fn.Role, d))}
	for _, p := range fn.Policies {
		role.Policies = append(role.Policies, Policy{Name: p.Name, Document: g.resolve(p.Document, d)})
	}
	for _, p := range fn.Boundaries {
		role.Boundaries = append(role.Boundaries, Policy{Name: p.Name, Document: g.resolve(p.Document, d)})
	}
	return role, nil
}

// MemberRole returns the member stack's role (<prefix>member) as deployed
// in account for d: the permission groups the functions act with there.
func MemberRole(d Deployment, account string) (Role, error) {
	g, err := loadGolden()
	if err != nil {
		return Role{}, err
	}
	section := g.Default
	if len(d.AllowedRegions) > 0 {
		section = g.Regional
	}
	if section.Member == nil {
		return Role{}, fmt.Errorf("policies.json has no member role: rewrite it (infra/stack TestRolePoliciesGolden)")
	}
	role := Role{ARN: fmt.Sprintf("arn:%s:iam::%s:role/%s", Partition, account, g.resolve(section.Member.Role, d))}
	for _, p := range section.Member.Policies {
		role.Policies = append(role.Policies, Policy{Name: p.Name, Document: g.resolveIn(p.Document, d, account)})
	}
	return role, nil
}

// MemberRoleName is the member stack's role for d's prefix.
func MemberRoleName(d Deployment) string {
	prefix := d.Prefix
	if prefix == "" {
		if g, err := loadGolden(); err == nil {
			prefix = g.Prefix
		}
	}
	return prefix + "member"
}

// Functions are the functions policies.json holds, sorted.
func Functions() []string {
	g, err := loadGolden()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(g.Default.Functions))
	for n := range g.Default.Functions {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ManagedPolicy returns one of the stack's named managed policies (such
// as the permissions boundary of forged roles) for d; ok is false when the
// stack has none of that name (prefix included, as deployed).
func ManagedPolicy(name string, d Deployment) (Policy, bool) {
	g, err := loadGolden()
	if err != nil {
		return Policy{}, false
	}
	for n, doc := range g.Default.ManagedPolicies {
		if g.resolve(n, d).(string) == name {
			return Policy{Name: name, Document: g.resolve(doc, d)}, true
		}
	}
	return Policy{}, false
}

// motoActions are the names moto's own IAM enforcement checks where they
// differ from the IAM action AWS authorizes: it names the action after the
// API operation (TransactWriteItems, Invoke, HeadObject), and in lower
// case for REST services such as Batch (MotoActions adds those).
var motoActions = map[string][]string{
	"lambda:InvokeFunction": {"lambda:Invoke"},
	"dynamodb:PutItem":      {"dynamodb:TransactWriteItems", "dynamodb:BatchWriteItem"},
	"dynamodb:UpdateItem":   {"dynamodb:TransactWriteItems"},
	"dynamodb:DeleteItem":   {"dynamodb:TransactWriteItems"},
	"dynamodb:GetItem":      {"dynamodb:TransactGetItems"},
	"s3:GetObject":          {"s3:HeadObject"},
	"s3:ListBucket":         {"s3:ListObjectsV2", "s3:HeadBucket"},
}

// MotoActions are the actions a function's deployed role allows, for
// moto's action-level enforcement (the emulator's cross-check of the tier,
// testenv.Env.EnforceIAM): every action its policies allow on any
// resource, under any condition, with moto's names for them.
func MotoActions(function string, d Deployment) ([]string, error) {
	role, err := FunctionRole(function, d)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, p := range role.Policies {
		doc, _ := p.Document.(map[string]any)
		stmts, _ := doc["Statement"].([]any)
		for _, s := range stmts {
			st, _ := s.(map[string]any)
			if st["Effect"] != "Allow" {
				continue
			}
			var actions []any
			switch a := st["Action"].(type) {
			case string:
				actions = []any{a}
			case []any:
				actions = a
			}
			for _, a := range actions {
				name, _ := a.(string)
				for _, n := range append([]string{name}, motoActions[name]...) {
					set[n], set[strings.ToLower(n)] = true, true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}
