package stack_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/ceforge/ceforge/infra/stack"
	"github.com/ceforge/ceforge/internal/eventsrc"
	"github.com/ceforge/ceforge/internal/handlers"
	"github.com/ceforge/ceforge/internal/metrics"
	"github.com/ceforge/ceforge/internal/store"
)

func TestSynthTime(t *testing.T) {
	s := synthDefault(t)
	t.Logf("synth with cdk-nag (defaults): %v; %d resources", s.elapsed.Round(1e6), len(s.tmpl["Resources"].(map[string]any)))
}

func TestTable(t *testing.T) {
	s := synthDefault(t)
	s.count(t, "AWS::DynamoDB::Table", 1)

	attrs := map[string]bool{store.PartitionKey: true}
	var gsis []any
	for _, ix := range store.Indexes() {
		keys := []any{map[string]any{"AttributeName": ix.PartitionKey, "KeyType": "HASH"}}
		attrs[ix.PartitionKey] = true
		if ix.SortKey != "" {
			keys = append(keys, map[string]any{"AttributeName": ix.SortKey, "KeyType": "RANGE"})
			attrs[ix.SortKey] = true
		}
		gsis = append(gsis, map[string]any{
			"IndexName":  ix.Name,
			"KeySchema":  keys,
			"Projection": map[string]any{"ProjectionType": "ALL"},
		})
	}
	var defs []any
	for a := range attrs {
		defs = append(defs, map[string]any{"AttributeName": a, "AttributeType": "S"})
	}
	s.hasResource(t, "AWS::DynamoDB::Table", obj(map[string]any{
		"DeletionPolicy":      "Retain",
		"UpdateReplacePolicy": "Retain",
		"Properties": obj(map[string]any{
			// Only a partition key: a sort key would change every lookup.
			"KeySchema":                        []any{map[string]any{"AttributeName": store.PartitionKey, "KeyType": "HASH"}},
			"BillingMode":                      "PAY_PER_REQUEST",
			"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			"TimeToLiveSpecification":          map[string]any{"AttributeName": store.TTLAttribute, "Enabled": true},
			"DeletionProtectionEnabled":        true,
			"GlobalSecondaryIndexes":           gsis,
		}),
	}))
	// Every key attribute is a string, and nothing else is declared.
	for _, r := range s.resources("AWS::DynamoDB::Table") {
		got := props(r)["AttributeDefinitions"].([]any)
		if len(got) != len(defs) {
			t.Errorf("attribute definitions %v, want the %d key attributes %v", got, len(defs), attrs)
		}
		for _, d := range got {
			m := d.(map[string]any)
			if !attrs[m["AttributeName"].(string)] || m["AttributeType"] != "S" {
				t.Errorf("unexpected attribute definition %v", m)
			}
		}
	}
}

func TestFunctions(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		cfg := s.cfg
		s.count(t, "AWS::Lambda::Function", len(stack.FunctionNames))
		tableID := s.logicalID(t, "AWS::DynamoDB::Table", "BillingMode", "PAY_PER_REQUEST")
		for _, spec := range stack.FunctionSpecs() {
			env := map[string]any{
				"CEFORGE_TABLE":           map[string]any{"Ref": tableID},
				"CEFORGE_PREFIX":          cfg.Prefix,
				"CEFORGE_ALLOWED_REGIONS": strings.Join(cfg.AllowedRegions, ","),
				"CEFORGE_RUN_LOG_GROUP":   cfg.RunLogGroup,
				"CEFORGE_SWEEP_DRY_RUN":   strconv.FormatBool(cfg.SweeperDryRun),
				"CEFORGE_SWEEP_GRACE":     cfg.SweeperGrace,
				"CEFORGE_LOG_LEVEL":       cfg.LogLevel,
				"CEFORGE_ACCOUNT":         map[string]any{"Ref": "AWS::AccountId"},
			}
			if spec.Name == stack.FnAPI {
				env["CEFORGE_SWEEPER_FUNCTION"] = map[string]any{"Ref": s.functionID(t, stack.FnSweeper)}
				env["CEFORGE_RECONCILER_FUNCTION"] = map[string]any{"Ref": s.functionID(t, stack.FnReconciler)}
			}
			want := map[string]any{
				"FunctionName":  cfg.Prefix + spec.Name,
				"Runtime":       "provided.al2023",
				"Architectures": []any{"arm64"},
				"Handler":       "bootstrap",
				"MemorySize":    spec.MemoryMB,
				"Timeout":       spec.Timeout.Seconds(),
				"LoggingConfig": obj(map[string]any{
					"LogFormat": "JSON", "LogGroup": assertions.Match_AnyValue(),
					// Never above INFO: EMF lines carry no level and count as INFO.
					"ApplicationLogLevel": map[bool]string{true: "DEBUG", false: "INFO"}[cfg.LogLevel == "debug"],
				}),
				"Environment": map[string]any{"Variables": obj(env)},
			}
			if spec.Reserved > 0 {
				want["ReservedConcurrentExecutions"] = spec.Reserved
			} else {
				want["ReservedConcurrentExecutions"] = assertions.Match_Absent()
			}
			s.has(t, "AWS::Lambda::Function", obj(want))
			s.has(t, "AWS::Logs::LogGroup", obj(map[string]any{
				"LogGroupName":    "/aws/lambda/" + cfg.Prefix + spec.Name,
				"RetentionInDays": cfg.LogRetentionDays,
			}))
		}
		// The sweeper runs alone.
		s.has(t, "AWS::Lambda::Function", obj(map[string]any{"FunctionName": cfg.Prefix + "sweeper", "ReservedConcurrentExecutions": 1}))
	}
}

// The code of each function is build/<name>/bootstrap from the asset
// directory.
func TestFunctionAssets(t *testing.T) {
	s := synthDefault(t)
	seen := map[string]string{}
	for _, name := range stack.FunctionNames {
		code := props(s.resources("AWS::Lambda::Function")[s.functionID(t, name)])["Code"].(map[string]any)
		key := flat(code["S3Key"])
		if other, dup := seen[key]; dup {
			t.Errorf("%s and %s share asset %s", name, other, key)
		}
		seen[key] = name
		staged := filepath.Join(s.outdir, "asset."+strings.TrimSuffix(key, ".zip"), "bootstrap")
		b, err := os.ReadFile(staged)
		if err != nil {
			t.Errorf("%s: staged asset: %v", name, err)
			continue
		}
		if string(b) != bootstrapContent(name) {
			t.Errorf("%s: staged bootstrap is %q, want the one from %s/%s", name, b, s.assets, name)
		}
	}
}

// requiredRoutes is the API of the design, spelled out here rather than
// taken from stack.Routes so that a route dropped from the stack fails.
var requiredRoutes = []string{
	"GET /openapi.json",
	"POST /compute-envs", "GET /compute-envs", "GET /compute-envs/{id}", "DELETE /compute-envs/{id}",
	"POST /runs", "GET /runs", "GET /runs/{id}", "POST /runs/{id}/cancel", "GET /runs/{id}/logs", "GET /runs/{id}/logs/download",
	"POST /runs/{id}/relaunch", "GET /runs/{id}/progress", "GET /runs/{id}/tasks", "GET /runs/{id}/tasks/{taskId}", "GET /runs/{id}/metrics",
	"POST /sweeps", "GET /sweeps", "GET /sweeps/{id}",
	"POST /credentials", "GET /credentials", "GET /credentials/{id}", "DELETE /credentials/{id}", "POST /credentials/{id}/verify",
	"POST /secrets", "GET /secrets", "GET /secrets/{id}", "PUT /secrets/{id}", "DELETE /secrets/{id}",
}

// The HTTP API declares every route of the OpenAPI document (which a
// handlers test holds to the router), and no other: a route the router
// serves but API Gateway does not declare would answer 404 in AWS.
func TestAPIRoutesMatchOpenAPI(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(handlers.OpenAPIDocument(), &doc); err != nil {
		t.Fatal(err)
	}
	var documented, declared []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, r := range append(append([]stack.Route{}, stack.Routes...), stack.TraceRoutes()...) {
		declared = append(declared, r.Method+" "+r.Path)
	}
	sort.Strings(documented)
	sort.Strings(declared)
	if !slices.Equal(documented, declared) {
		t.Errorf("API Gateway routes %v\nOpenAPI paths %v", declared, documented)
	}
}

// traceRoutes are Nextflow's trace protocol: no IAM (Nextflow cannot
// sign), the trace function, each call authorised by its run's token.
var traceRoutes = []string{
	"POST /trace/create", "PUT /trace/{id}/begin", "PUT /trace/{id}/progress", "PUT /trace/{id}/heartbeat",
	"PUT /trace/{id}/complete", "PATCH /workflow/{id}",
	"POST /wave/container-token", "POST /wave/v1alpha2/container", "GET /wave/v1alpha2/container/{requestId}/status",
	"GET /wave/v1alpha1/builds/{buildId}/status",
}

func TestAPIRoutesUseIAM(t *testing.T) {
	s := synthDefault(t)
	integrations := s.resources("AWS::ApiGatewayV2::Integration")
	if len(integrations) != 2 {
		t.Fatalf("want two integrations (the api and trace functions), got %d", len(integrations))
	}
	byFunction := map[string]string{}
	for id, r := range integrations {
		p := props(r)
		if p["PayloadFormatVersion"] != "2.0" {
			t.Errorf("integration %v: payload %v, want 2.0", id, p["PayloadFormatVersion"])
		}
		byFunction[flat(p["IntegrationUri"])] = id
	}
	apiIntegration := byFunction["${"+s.functionID(t, stack.FnAPI)+".Arn}"]
	traceIntegration := byFunction["${"+s.functionID(t, stack.FnTrace)+".Arn}"]
	if apiIntegration == "" || traceIntegration == "" {
		t.Fatalf("integrations %v: want one for the api function and one for the trace function", byFunction)
	}
	for _, key := range requiredRoutes {
		s.has(t, "AWS::ApiGatewayV2::Route", obj(map[string]any{
			"RouteKey":          key,
			"AuthorizationType": "AWS_IAM",
			"Target":            obj(map[string]any{"Fn::Join": arr(arr("integrations/", map[string]any{"Ref": apiIntegration}))}),
		}))
	}
	for _, key := range traceRoutes {
		s.has(t, "AWS::ApiGatewayV2::Route", obj(map[string]any{
			"RouteKey":          key,
			"AuthorizationType": "NONE",
			"Target":            obj(map[string]any{"Fn::Join": arr(arr("integrations/", map[string]any{"Ref": traceIntegration}))}),
		}))
	}
	routes := s.resources("AWS::ApiGatewayV2::Route")
	if len(routes) != len(requiredRoutes)+len(traceRoutes) {
		t.Errorf("%d routes, want exactly the %d of the design", len(routes), len(requiredRoutes)+len(traceRoutes))
	}
	for id, r := range routes {
		p := props(r)
		key := p["RouteKey"].(string)
		if p["AuthorizationType"] != "AWS_IAM" && !slices.Contains(traceRoutes, key) {
			t.Errorf("route %s (%s): authorization %v, want AWS_IAM", key, id, p["AuthorizationType"])
		}
		if strings.Contains(key, "{proxy+}") || strings.HasPrefix(key, "ANY ") || key == "$default" {
			t.Errorf("catch-all route %s", key)
		}
	}
	s.count(t, "AWS::ApiGatewayV2::Authorizer", 0)
	// Each trace route has its own throttle.
	for id, r := range s.resources("AWS::ApiGatewayV2::Stage") {
		settings, _ := props(r)["RouteSettings"].(map[string]any)
		for _, key := range traceRoutes {
			rs, _ := settings[key].(map[string]any)
			if rs["ThrottlingRateLimit"] != s.cfg.TraceRateLimit {
				t.Errorf("stage %s: route %s settings %v, want rate %v", id, key, rs, s.cfg.TraceRateLimit)
			}
		}
	}
}

func TestAPIStage(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		s.count(t, "AWS::ApiGatewayV2::Stage", 1)
		s.has(t, "AWS::ApiGatewayV2::Stage", obj(map[string]any{
			"StageName":  "$default",
			"AutoDeploy": true,
			"DefaultRouteSettings": obj(map[string]any{
				"ThrottlingRateLimit":  s.cfg.APIRateLimit,
				"ThrottlingBurstLimit": s.cfg.APIBurstLimit,
			}),
			"AccessLogSettings": obj(map[string]any{
				"DestinationArn": obj(map[string]any{"Fn::GetAtt": arr("Arn")}),
				"Format":         assertions.Match_StringLikeRegexp(jsii.String(`\$context\.requestId`)),
			}),
		}))
	}
}

func TestJWTAuthorizerWhenConfigured(t *testing.T) {
	s := synthVariant(t)
	s.count(t, "AWS::ApiGatewayV2::Authorizer", 1)
	s.has(t, "AWS::ApiGatewayV2::Authorizer", obj(map[string]any{
		"AuthorizerType": "JWT",
		"JwtConfiguration": map[string]any{
			"Issuer":   s.cfg.JwtIssuer,
			"Audience": []any{"ceforge-cli", "ceforge-web"},
		},
	}))
	authID := ""
	for id := range s.resources("AWS::ApiGatewayV2::Authorizer") {
		authID = id
	}
	routes := s.resources("AWS::ApiGatewayV2::Route")
	if len(routes) != len(requiredRoutes)+len(traceRoutes) {
		t.Errorf("%d routes, want %d", len(routes), len(requiredRoutes)+len(traceRoutes))
	}
	for _, r := range routes {
		p := props(r)
		if slices.Contains(traceRoutes, p["RouteKey"].(string)) {
			// Nextflow sends its run token, never a JWT of the issuer.
			if p["AuthorizationType"] != "NONE" {
				t.Errorf("trace route %v: authorization %v, want NONE", p["RouteKey"], p["AuthorizationType"])
			}
			continue
		}
		if p["AuthorizationType"] != "JWT" || flat(p["AuthorizerId"]) != "${"+authID+"}" {
			t.Errorf("route %v: want the JWT authorizer", p["RouteKey"])
		}
	}
}

func TestLogsFunctionURL(t *testing.T) {
	s := synthDefault(t)
	s.count(t, "AWS::Lambda::Url", 1)
	s.has(t, "AWS::Lambda::Url", map[string]any{
		"AuthType":          "AWS_IAM",
		"InvokeMode":        "RESPONSE_STREAM",
		"TargetFunctionArn": map[string]any{"Fn::GetAtt": []any{s.functionID(t, stack.FnLogs), "Arn"}},
	})
}

// TestEventRules: the Batch rule matches every Batch job state change (no
// queue filter: manual-mode CEs run on the user's own queues), in the
// allowed regions when they are configured; both patterns are eventsrc's.
func TestEventRules(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		p := s.cfg.Prefix
		batchQ := s.logicalID(t, "AWS::SQS::Queue", "QueueName", p+"batch-events")
		ec2Q := s.logicalID(t, "AWS::SQS::Queue", "QueueName", p+"ec2-events")
		want := map[string]string{p + "batch-job-state-change": batchQ, p + "ec2-instance-events": ec2Q}
		rules := 0
		for id, r := range s.resources("AWS::Events::Rule") {
			m := props(r)
			name, _ := m["Name"].(string)
			queue, ok := want[name]
			if !ok {
				continue
			}
			rules++
			var rule eventsrc.Rule
			for _, er := range eventsrc.Rules {
				if p+er.Name == name {
					rule = er
				}
			}
			got, _ := json.Marshal(m["EventPattern"])
			exp, _ := json.Marshal(rule.Pattern(s.cfg.AllowedRegions))
			if string(got) != string(exp) {
				t.Errorf("rule %s (%s) pattern %s, want %s", name, id, got, exp)
			}
			if strings.Contains(string(got), "jobQueue") {
				t.Errorf("rule %s filters on job queues: runs on manual-mode CEs would get no events", name)
			}
			targets, _ := m["Targets"].([]any)
			if len(targets) != 1 || flat(targets[0].(map[string]any)["Arn"]) != "${"+queue+".Arn}" {
				t.Errorf("rule %s targets %v, want queue %s", name, targets, queue)
			}
		}
		if rules != 2 {
			t.Errorf("found %d consumer rules, want 2", rules)
		}
	}
	if r := synthVariant(t); !strings.Contains(fmt.Sprint(props(r.resources("AWS::Events::Rule")[r.logicalID(t, "AWS::Events::Rule", "Name", "acme-batch-job-state-change")])["EventPattern"]), "eu-west-1") {
		t.Error("the variant's Batch rule is not limited to its allowed regions")
	}
}

func TestQueues(t *testing.T) {
	s := synthDefault(t)
	s.count(t, "AWS::SQS::Queue", 4)
	p := s.cfg.Prefix
	for _, q := range []struct{ name, consumer string }{{"batch-events", stack.FnBatchEvents}, {"ec2-events", stack.FnEC2Events}} {
		dlq := s.logicalID(t, "AWS::SQS::Queue", "QueueName", p+q.name+"-dlq")
		main := s.logicalID(t, "AWS::SQS::Queue", "QueueName", p+q.name)
		s.has(t, "AWS::SQS::Queue", map[string]any{
			"QueueName":              p + q.name + "-dlq",
			"SqsManagedSseEnabled":   true,
			"MessageRetentionPeriod": 14 * 24 * 3600,
		})
		s.has(t, "AWS::SQS::Queue", obj(map[string]any{
			"QueueName":            p + q.name,
			"SqsManagedSseEnabled": true,
			"RedrivePolicy": map[string]any{
				"deadLetterTargetArn": map[string]any{"Fn::GetAtt": []any{dlq, "Arn"}},
				"maxReceiveCount":     stack.MaxReceiveCount,
			},
		}))
		// Visibility timeout at least six times the consumer's timeout.
		fnTimeout := props(s.resources("AWS::Lambda::Function")[s.functionID(t, q.consumer)])["Timeout"].(float64)
		vis := props(s.resources("AWS::SQS::Queue")[main])["VisibilityTimeout"].(float64)
		if vis < 6*fnTimeout {
			t.Errorf("%s: visibility timeout %vs < 6 x %vs", q.name, vis, fnTimeout)
		}
		// TLS only, on both queues.
		for _, id := range []string{main, dlq} {
			s.has(t, "AWS::SQS::QueuePolicy", obj(map[string]any{
				"Queues": []any{map[string]any{"Ref": id}},
				"PolicyDocument": obj(map[string]any{"Statement": arr(obj(map[string]any{
					"Effect":    "Deny",
					"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
				}))}),
			}))
		}
		// Consumed by its function with partial batch responses.
		size := 0.0
		for _, r := range s.resources("AWS::Lambda::EventSourceMapping") {
			m := props(r)
			if flat(m["EventSourceArn"]) != "${"+main+".Arn}" {
				continue
			}
			if flat(m["FunctionName"]) != "${"+s.functionID(t, q.consumer)+"}" {
				t.Errorf("%s consumed by %v, want %s", q.name, m["FunctionName"], q.consumer)
			}
			size, _ = m["BatchSize"].(float64)
			if w, _ := m["MaximumBatchingWindowInSeconds"].(float64); w <= 0 {
				t.Errorf("%s: no batching window", q.name)
			}
		}
		if size < 10 || size > 100 {
			t.Errorf("%s: batch size %v, want 10-100", q.name, size)
		}
		s.has(t, "AWS::Lambda::EventSourceMapping", obj(map[string]any{
			"EventSourceArn":        map[string]any{"Fn::GetAtt": []any{main, "Arn"}},
			"FunctionResponseTypes": []any{"ReportBatchItemFailures"},
		}))
	}
	s.count(t, "AWS::Lambda::EventSourceMapping", 2)
}

func TestSchedules(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		for _, sc := range []struct{ fn, expr string }{{stack.FnReconciler, "rate(1 minute)"}, {stack.FnSweeper, s.cfg.SweeperSchedule}} {
			s.has(t, "AWS::Events::Rule", obj(map[string]any{
				"ScheduleExpression": sc.expr,
				"State":              "ENABLED",
				"Targets": []any{obj(map[string]any{
					"Arn":         map[string]any{"Fn::GetAtt": []any{s.functionID(t, sc.fn), "Arn"}},
					"RetryPolicy": obj(map[string]any{"MaximumRetryAttempts": 0}),
				})},
			}))
		}
	}
	if synthDefault(t).cfg.SweeperSchedule != "rate(15 minutes)" {
		t.Errorf("default sweeper schedule %s", synthDefault(t).cfg.SweeperSchedule)
	}
}

func TestAlarms(t *testing.T) {
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		for _, name := range stack.FunctionNames {
			for _, metric := range []string{"Errors", "Throttles"} {
				s.has(t, "AWS::CloudWatch::Alarm", obj(map[string]any{
					"Namespace":          "AWS/Lambda",
					"MetricName":         metric,
					"Dimensions":         []any{map[string]any{"Name": "FunctionName", "Value": map[string]any{"Ref": s.functionID(t, name)}}},
					"ComparisonOperator": "GreaterThanThreshold",
					"Threshold":          0,
				}))
			}
		}
		for _, q := range []string{"batch-events-dlq", "ec2-events-dlq"} {
			s.has(t, "AWS::CloudWatch::Alarm", obj(map[string]any{
				"Namespace":          "AWS/SQS",
				"MetricName":         "ApproximateNumberOfMessagesVisible",
				"Dimensions":         []any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{s.logicalID(t, "AWS::SQS::Queue", "QueueName", s.cfg.Prefix+q), "QueueName"}}}},
				"ComparisonOperator": "GreaterThanThreshold",
				"Threshold":          0,
			}))
		}
	}
	// Every alarm notifies the alarm topic, with or without an e-mail
	// subscription (alarmEmail adds one).
	for _, s := range []*synthesis{synthDefault(t), synthVariant(t)} {
		s.count(t, "AWS::SNS::Topic", 1)
		topic := s.logicalID(t, "AWS::SNS::Topic", "TopicName", s.cfg.Prefix+"alarms")
		alarms := s.resources("AWS::CloudWatch::Alarm")
		if len(alarms) < 10 {
			t.Errorf("%s: only %d alarms", s.cfg.Prefix, len(alarms))
		}
		for id, a := range alarms {
			if acts := strs(props(a)["AlarmActions"]); len(acts) != 1 || acts[0] != "${"+topic+"}" {
				t.Errorf("alarm %s actions %v, want the alarm topic", id, acts)
			}
		}
		if out, _ := s.tmpl["Outputs"].(map[string]any)["AlarmTopicArn"].(map[string]any); flat(out["Value"]) != "${"+topic+"}" {
			t.Errorf("%s: output AlarmTopicArn = %v", s.cfg.Prefix, out)
		}
	}
	synthDefault(t).count(t, "AWS::SNS::Subscription", 0)
	v := synthVariant(t)
	v.has(t, "AWS::SNS::Subscription", obj(map[string]any{"Protocol": "email", "Endpoint": v.cfg.AlarmEmail}))
}

func TestDashboard(t *testing.T) {
	s := synthDefault(t)
	s.count(t, "AWS::CloudWatch::Dashboard", 1)
	var body string
	for _, d := range s.resources("AWS::CloudWatch::Dashboard") {
		body = flat(props(d)["DashboardBody"])
	}
	for _, want := range []string{
		"{" + metrics.Namespace + ",Status} MetricName=\\\"" + metrics.RunStatus + "\\\"",
		"{" + metrics.Namespace + ",Platform} MetricName=\\\"" + metrics.TimeToRunning + "\\\"', 'p50'",
		"{" + metrics.Namespace + ",Platform} MetricName=\\\"" + metrics.TimeToRunning + "\\\"', 'p90'",
		"{" + metrics.Namespace + ",Kind} MetricName=\\\"" + metrics.EventLag + "\\\"",
		"{" + metrics.Namespace + ",Kind,Outcome} MetricName=\\\"" + metrics.EventsProcessed + "\\\"",
		"{" + metrics.Namespace + ",ResourceKind} MetricName=\\\"" + metrics.SweepItemsDeleted + "\\\"",
		"[\"" + metrics.Namespace + "\",\"" + metrics.SweepDollarsSaved + "\"",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %s", want)
		}
	}
}

func TestOutputs(t *testing.T) {
	s := synthDefault(t)
	outs, _ := s.tmpl["Outputs"].(map[string]any)
	for _, k := range []string{"ApiUrl", "LogsUrl", "TableName", "DashboardName", "ClientPolicyArn"} {
		if _, ok := outs[k]; !ok {
			t.Errorf("output %s missing", k)
		}
	}
}

// The managed policy for ceforge users grants exactly the API and the log
// Function URL.
func TestClientPolicy(t *testing.T) {
	s := synthDefault(t)
	id := s.logicalID(t, "AWS::IAM::ManagedPolicy", "ManagedPolicyName", s.cfg.Prefix+"client")
	var apiID string
	for k := range s.resources("AWS::ApiGatewayV2::Api") {
		apiID = k
	}
	got := map[string][]string{}
	for _, st := range s.statements() {
		if st.owner == id {
			for _, a := range st.actions {
				got[a] = append(got[a], st.resources...)
			}
		}
	}
	want := map[string][]string{
		"execute-api:Invoke":       {"arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + apiID + "}/*"},
		"lambda:InvokeFunctionUrl": {"${" + s.functionID(t, stack.FnLogs) + ".Arn}"},
		"ssm:StartSession": {"arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:instance/*",
			"arn:${AWS::Partition}:ssm:*::document/AWS-StartPortForwardingSession"},
		"ssm:TerminateSession": {"arn:${AWS::Partition}:ssm:*:${AWS::AccountId}:session/${aws:userid}-*"},
		"ssm:ResumeSession":    {"arn:${AWS::Partition}:ssm:*:${AWS::AccountId}:session/${aws:userid}-*"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("client policy %v, want %v", got, want)
	}
}
