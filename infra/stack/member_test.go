package stack_test

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ceforge/ceforge/infra/stack"
	"github.com/ceforge/ceforge/internal/credential/rolecheck"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/member"
)

// memberRole returns the logical id and properties of the member role.
func (s *synthesis) memberRole(t *testing.T) (string, map[string]any) {
	t.Helper()
	id := s.logicalID(t, "AWS::IAM::Role", "RoleName", member.RoleName(s.cfg.Prefix))
	return id, props(s.resources("AWS::IAM::Role")[id])
}

// The member stack's role: trusted only by the control plane's function
// roles with the External ID parameter, holding exactly the member groups
// (the same statements as the control plane's group policies), unable to
// change itself; its template has only parameters, no assets.
func TestMemberRole(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		m := s.member
		p := s.cfg.Prefix
		params := m.tmpl["Parameters"].(map[string]any)
		for _, name := range []string{"ControlPlaneAccount", "ControlPlaneRegion", "ExternalId", "EventsOnly"} {
			if params[name] == nil {
				t.Errorf("%s: no parameter %s", m.cfg.StackName, name)
			}
		}
		if got := params["ExternalId"].(map[string]any)["AllowedPattern"]; got != "^"+p+"[0-9a-f]{40}$" {
			t.Errorf("ExternalId pattern %v: only External IDs ceforge generates", got)
		}
		if len(m.resources("AWS::Lambda::Function")) != 0 || len(m.resources("AWS::S3::Bucket")) != 0 {
			t.Error("the member stack deploys no functions or buckets (no assets: plain CloudFormation)")
		}

		id, role := m.memberRole(t)
		trust := role["AssumeRolePolicyDocument"].(map[string]any)
		sts := trust["Statement"].([]any)
		if len(sts) != 1 {
			t.Fatalf("trust policy has %d statements", len(sts))
		}
		st := sts[0].(map[string]any)
		if got := flat(st["Principal"].(map[string]any)["AWS"]); got != "arn:${AWS::Partition}:iam::${ControlPlaneAccount}:root" {
			t.Errorf("trust principal %s", got)
		}
		cond := st["Condition"].(map[string]any)
		if got := flat(cond["StringEquals"].(map[string]any)["sts:ExternalId"]); got != "${ExternalId}" {
			t.Errorf("sts:ExternalId %s: want the parameter", got)
		}
		// The functions that assume member roles (hold the assume group).
		var want []string
		for _, fn := range stack.FunctionNames {
			if slices.Contains(stack.FunctionGroups[fn], stack.GroupAssume) {
				want = append(want, "arn:${AWS::Partition}:iam::${ControlPlaneAccount}:role/lambda-"+p+fn)
			}
		}
		got := strs(cond["ArnEquals"].(map[string]any)["aws:PrincipalArn"])
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("trusted principals %v, want the function roles %v", got, want)
		}

		// Exactly the member groups, as the control plane holds them.
		var attached []string
		for _, a := range role["ManagedPolicyArns"].([]any) {
			pid := strings.Trim(flat(a), "${}")
			attached = append(attached, flat(props(m.resources("AWS::IAM::ManagedPolicy")[pid])["ManagedPolicyName"]))
		}
		var wantPolicies []string
		for _, g := range stack.MemberGroups {
			wantPolicies = append(wantPolicies, p+"member-"+g)
		}
		sort.Strings(attached)
		sort.Strings(wantPolicies)
		if !slices.Equal(attached, wantPolicies) {
			t.Errorf("member role policies %v, want %v", attached, wantPolicies)
		}
		for _, g := range stack.MemberGroups {
			if a, b := sids(m, p+"member-"+g), sids(s, "", g); !slices.Equal(a, b) {
				t.Errorf("group %s: member statements %v, control plane %v", g, a, b)
			}
		}

		// It may read its own policies and change nothing of itself.
		inline := role["Policies"].([]any)[0].(map[string]any)["PolicyDocument"].(map[string]any)["Statement"].([]any)
		var deny []string
		for _, x := range inline {
			st := x.(map[string]any)
			if st["Effect"] == "Deny" {
				deny = strs(st["Action"])
				res := strs(st["Resource"])
				if !slices.Contains(res, "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"+member.RoleName(p)) {
					t.Errorf("the deny does not name the role itself: %v", res)
				}
			}
		}
		for _, a := range []string{"iam:DeleteRole", "iam:UpdateAssumeRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePolicy", "iam:DetachRolePolicy", "iam:DeleteRolePolicy"} {
			if !slices.Contains(deny, a) {
				t.Errorf("the member role may %s on itself", a)
			}
		}
		if m.tmpl["Resources"].(map[string]any)[id].(map[string]any)["Condition"] != "WithRole" {
			t.Error("the role is not under the WithRole condition (EventsOnly regions must not create it again)")
		}
		m.has(t, "AWS::IAM::ManagedPolicy", obj(map[string]any{"ManagedPolicyName": p + "boundary"}))
	}
}

// sids lists the statement ids of a managed policy found by name (or by
// its construct id prefix in the control plane's template).
func sids(s *synthesis, name string, constructID ...string) []string {
	var out []string
	for id, r := range s.resources("AWS::IAM::ManagedPolicy") {
		pr := props(r)
		match := name != "" && flat(pr["ManagedPolicyName"]) == name
		if len(constructID) > 0 && pr["ManagedPolicyName"] == nil && strings.HasPrefix(id, "Permissions"+constructID[0]) &&
			len(strings.TrimLeft(strings.TrimPrefix(id, "Permissions"+constructID[0]), "0123456789ABCDEF")) == 0 {
			match = true
		}
		if !match {
			continue
		}
		for _, st := range pr["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out = append(out, flat(st.(map[string]any)["Sid"]))
		}
	}
	sort.Strings(out)
	return out
}

// Verification of the synthesized member role finds every permission
// group: member.Groups' actions are what the CDK app grants.
func TestMemberRolePassesVerification(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		m := s.member
		_, role := m.memberRole(t)
		var docs []string
		add := func(doc any) {
			var sts []any
			for _, x := range doc.(map[string]any)["Statement"].([]any) {
				st := x.(map[string]any)
				out := map[string]any{"Effect": st["Effect"], "Action": strs(st["Action"]), "Resource": strs(st["Resource"])}
				if st["NotAction"] != nil {
					out["NotAction"] = strs(st["NotAction"])
					delete(out, "Action")
				}
				if st["Condition"] != nil {
					out["Condition"] = st["Condition"]
				}
				sts = append(sts, out)
			}
			b, _ := json.Marshal(map[string]any{"Statement": sts})
			docs = append(docs, string(b))
		}
		for _, a := range role["ManagedPolicyArns"].([]any) {
			add(props(m.resources("AWS::IAM::ManagedPolicy")[strings.Trim(flat(a), "${}")])["PolicyDocument"])
		}
		for _, p := range role["Policies"].([]any) {
			add(p.(map[string]any)["PolicyDocument"])
		}
		groups, err := rolecheck.Groups(docs)
		if err != nil {
			t.Fatal(err)
		}
		if len(groups) != len(member.Groups) {
			t.Fatalf("%d groups checked", len(groups))
		}
		for _, g := range groups {
			if !g.OK {
				t.Errorf("%s: group %s lacks %v", m.cfg.StackName, g.Name, g.Missing)
			}
		}
		// And each group's checked actions come from its own policies.
		for _, g := range member.Groups {
			var own []string
			for _, pol := range g.Policies {
				for id, r := range m.resources("AWS::IAM::ManagedPolicy") {
					if flat(props(r)["ManagedPolicyName"]) == s.cfg.Prefix+"member-"+pol {
						_ = id
						b, _ := json.Marshal(props(r)["PolicyDocument"])
						own = append(own, string(b))
					}
				}
			}
			for _, a := range g.Actions {
				found := false
				for _, doc := range own {
					found = found || strings.Contains(doc, `"`+a+`"`)
				}
				if !found {
					t.Errorf("group %s: %s is not granted by its policies %v", g.Name, a, g.Policies)
				}
			}
		}
	}
}

// The member stack forwards the account's Batch and EC2 events, as the
// consumers' rules match them, to the control plane's member bus with a
// role that may put events there only; the control plane's bus lets the
// configured member accounts in and routes to the consumer queues.
func TestEventForwarding(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		m := s.member
		p := s.cfg.Prefix
		bus := "arn:${AWS::Partition}:events:${ControlPlaneRegion}:${ControlPlaneAccount}:event-bus/" + p + "events"
		rules := m.resources("AWS::Events::Rule")
		if len(rules) != len(eventsrc.Rules) {
			t.Fatalf("%d forwarding rules", len(rules))
		}
		for _, r := range eventsrc.Rules {
			id := m.logicalID(t, "AWS::Events::Rule", "Name", p+"forward-"+r.Name)
			pr := props(rules[id])
			pat := pr["EventPattern"].(map[string]any)
			if !slices.Equal(strs(pat["source"]), []string{r.Source}) || !slices.Equal(strs(pat["detail-type"]), r.DetailTypes) {
				t.Errorf("rule %s pattern %v", r.Name, pat)
			}
			target := pr["Targets"].([]any)[0].(map[string]any)
			if got := flat(target["Arn"]); got != bus {
				t.Errorf("rule %s targets %s, want %s", r.Name, got, bus)
			}
			if target["RoleArn"] == nil {
				t.Errorf("rule %s: cross-account bus target without a role", r.Name)
			}
			if rules[id]["Condition"] != nil {
				t.Errorf("rule %s is conditional: every region forwards", r.Name)
			}
		}
		for _, st := range m.statements() {
			if slices.Contains(st.actions, "events:PutEvents") && (st.effect != "Allow" || !slices.Equal(st.resources, []string{bus})) {
				t.Errorf("%s: events:PutEvents on %v", st.where, st.resources)
			}
		}

		// The control plane: the member bus, its rules to the queues.
		s.has(t, "AWS::Events::EventBus", obj(map[string]any{"Name": p + "events"}))
		for _, r := range eventsrc.Rules {
			id := s.logicalID(t, "AWS::Events::Rule", "Name", p+"member-"+r.Name)
			pr := props(s.resources("AWS::Events::Rule")[id])
			if !strings.Contains(flat(pr["EventBusName"]), "MemberBus") {
				t.Errorf("rule %s is not on the member bus: %v", r.Name, pr["EventBusName"])
			}
			q := flat(pr["Targets"].([]any)[0].(map[string]any)["Arn"])
			if !strings.Contains(q, "Queue") {
				t.Errorf("rule %s targets %s", r.Name, q)
			}
		}
		pols := s.resources("AWS::Events::EventBusPolicy")
		if len(s.cfg.MemberAccounts) == 0 {
			if len(pols) != 0 {
				t.Errorf("%s: a bus policy without member accounts", s.cfg.StackName)
			}
			continue
		}
		if len(pols) != 1 {
			t.Fatalf("%s: %d bus policies", s.cfg.StackName, len(pols))
		}
		for _, pol := range pols {
			st := props(pol)["Statement"].(map[string]any)
			var want []string
			for _, a := range s.cfg.MemberAccounts {
				want = append(want, "arn:${AWS::Partition}:iam::"+a+":root")
			}
			if got := strs(st["Principal"].(map[string]any)["AWS"]); !slices.Equal(got, want) || st["Action"] != "events:PutEvents" {
				t.Errorf("bus policy %v", st)
			}
		}
	}
}
