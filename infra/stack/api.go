package stack

import (
	"encoding/json"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/ceforge/ceforge/internal/trace"
)

// Route is one API route; every route is declared (no catch-all) so each
// carries its own authorization.
type Route struct{ Method, Path string }

// Routes of the HTTP API, all served by the api function.
var Routes = []Route{
	{"GET", "/openapi.json"},
	{"POST", "/compute-envs"},
	{"GET", "/compute-envs"},
	{"GET", "/compute-envs/{id}"},
	{"DELETE", "/compute-envs/{id}"},
	{"POST", "/runs"},
	{"GET", "/runs"},
	{"GET", "/runs/{id}"},
	{"POST", "/runs/{id}/cancel"},
	{"POST", "/runs/{id}/relaunch"},
	{"GET", "/runs/{id}/progress"},
	{"GET", "/runs/{id}/tasks"},
	{"GET", "/runs/{id}/tasks/{taskId}"},
	{"GET", "/runs/{id}/metrics"},
	{"GET", "/runs/{id}/logs"},
	{"GET", "/runs/{id}/logs/download"},
	{"POST", "/sweeps"},
	{"GET", "/sweeps"},
	{"GET", "/sweeps/{id}"},
	{"POST", "/credentials"},
	{"GET", "/credentials"},
	{"GET", "/credentials/{id}"},
	{"DELETE", "/credentials/{id}"},
	{"POST", "/credentials/{id}/verify"},
	{"POST", "/secrets"},
	{"GET", "/secrets"},
	{"GET", "/secrets/{id}"},
	{"PUT", "/secrets/{id}"},
	{"DELETE", "/secrets/{id}"},
}

// TraceRoutes are Nextflow's trace routes and the Wave relay, served by
// the trace function without IAM authorization (Nextflow cannot sign
// requests): each call is authorised by its run's token.
func TraceRoutes() []Route {
	out := make([]Route, 0, len(trace.Routes)+len(trace.WaveRoutes))
	for _, r := range append(append([]trace.Route{}, trace.Routes...), trace.WaveRoutes...) {
		out = append(out, Route{r.Method, r.Path})
	}
	return out
}

// API is the HTTP API and the log-follow Function URL.
type API struct {
	HTTPAPI   awsapigatewayv2.HttpApi
	Stage     awsapigatewayv2.HttpStage
	AccessLog awslogs.LogGroup
	LogsURL   awslambda.FunctionUrl
	// ClientPolicy is the managed policy for ceforge users.
	ClientPolicy awsiam.ManagedPolicy
}

func newAPI(scope constructs.Construct, cfg Config, fns *Functions) *API {
	c := constructs.NewConstruct(scope, jsii.String("Api"))
	a := &API{}
	a.HTTPAPI = awsapigatewayv2.NewHttpApi(c, jsii.String("HttpApi"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String(cfg.Prefix + "api"),
		Description:        jsii.String("ceforge control plane API"),
		CreateDefaultStage: jsii.Bool(false),
	})

	a.AccessLog = awslogs.NewLogGroup(c, jsii.String("AccessLogs"), &awslogs.LogGroupProps{
		Retention:     fns.Retention,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	a.Stage = awsapigatewayv2.NewHttpStage(c, jsii.String("DefaultStage"), &awsapigatewayv2.HttpStageProps{
		HttpApi:    a.HTTPAPI,
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit:  jsii.Number(cfg.APIRateLimit),
			BurstLimit: jsii.Number(cfg.APIBurstLimit),
		},
		DetailedMetricsEnabled: jsii.Bool(true),
	})
	format, _ := json.Marshal(map[string]string{
		"requestId":        "$context.requestId",
		"requestTime":      "$context.requestTime",
		"ip":               "$context.identity.sourceIp",
		"caller":           "$context.identity.caller",
		"user":             "$context.identity.userArn",
		"jwtSub":           "$context.authorizer.claims.sub",
		"routeKey":         "$context.routeKey",
		"status":           "$context.status",
		"protocol":         "$context.protocol",
		"responseLength":   "$context.responseLength",
		"latency":          "$context.responseLatency",
		"integrationError": "$context.integrationErrorMessage",
		"authorizerError":  "$context.authorizer.error",
	})
	a.Stage.Node().DefaultChild().(awsapigatewayv2.CfnStage).SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: a.AccessLog.LogGroupArn(),
		Format:         jsii.String(string(format)),
	})

	var auth awsapigatewayv2.IHttpRouteAuthorizer
	if cfg.JwtIssuer != "" {
		auth = awsapigatewayv2authorizers.NewHttpJwtAuthorizer(jsii.String("JwtAuthorizer"), jsii.String(cfg.JwtIssuer),
			&awsapigatewayv2authorizers.HttpJwtAuthorizerProps{
				AuthorizerName: jsii.String(cfg.Prefix + "jwt"),
				JwtAudience:    jsii.Strings(cfg.JwtAudience...),
			})
	} else {
		auth = awsapigatewayv2authorizers.NewHttpIamAuthorizer()
	}
	integration := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("ApiFunction"), fns.Fn[FnAPI],
		&awsapigatewayv2integrations.HttpLambdaIntegrationProps{
			PayloadFormatVersion: awsapigatewayv2.PayloadFormatVersion_VERSION_2_0(),
		})
	for _, r := range Routes {
		a.HTTPAPI.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(r.Path),
			Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod(r.Method)},
			Integration: integration,
			Authorizer:  auth,
		})
	}

	traceIntegration := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("TraceFunction"), fns.Fn[FnTrace],
		&awsapigatewayv2integrations.HttpLambdaIntegrationProps{
			PayloadFormatVersion: awsapigatewayv2.PayloadFormatVersion_VERSION_2_0(),
		})
	for _, r := range TraceRoutes() {
		routes := a.HTTPAPI.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(r.Path),
			Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod(r.Method)},
			Integration: traceIntegration,
			Authorizer:  awsapigatewayv2.NewHttpNoneAuthorizer(),
		})
		for _, route := range *routes {
			// The stage's route settings name these routes: they must exist first.
			a.Stage.Node().AddDependency(route)
			cdknag.NagSuppressions_AddResourceSuppressions(route, &[]*cdknag.NagPackSuppression{{
				Id: jsii.String("AwsSolutions-APIG4"),
				Reason: jsii.String("Nextflow's trace protocol (-with-tower) cannot sign requests: the trace function authorises " +
					"each call by its run's own token (stored as a hash, valid for that run until shortly after it ends), throttled per token."),
			}}, jsii.Bool(true))
		}
	}
	// Each trace route has its own throttle: reporting runs must not use up
	// the users' API limits (nor the other way round).
	var settings = map[string]any{}
	for _, r := range TraceRoutes() {
		settings[r.Method+" "+r.Path] = map[string]any{"ThrottlingRateLimit": cfg.TraceRateLimit, "ThrottlingBurstLimit": cfg.TraceBurstLimit}
	}
	a.Stage.Node().DefaultChild().(awsapigatewayv2.CfnStage).SetRouteSettings(settings)
	// Heads report to the API's own URL (the trace routes above).
	fns.Fn[FnAPI].AddEnvironment(jsii.String("CEFORGE_TRACE_URL"), a.HTTPAPI.ApiEndpoint(), nil)

	// Log follow streams through a Function URL (API Gateway buffers
	// responses); the caller signs with SigV4.
	a.LogsURL = fns.Fn[FnLogs].AddFunctionUrl(&awslambda.FunctionUrlOptions{
		AuthType:   awslambda.FunctionUrlAuthType_AWS_IAM,
		InvokeMode: awslambda.InvokeMode_RESPONSE_STREAM,
	})
	// The api hands the follow URL to clients (GET /runs/{id}/logs).
	fns.Fn[FnAPI].AddEnvironment(jsii.String("CEFORGE_LOGS_URL"), a.LogsURL.Url(), nil)

	// What a ceforge user (CLI, CI job) needs: call every route, read logs
	// through the Function URL. Operators attach it to users or roles.
	apiRoutes := awscdk.Stack_Of(c).FormatArn(&awscdk.ArnComponents{
		Service:      jsii.String("execute-api"),
		Resource:     a.HTTPAPI.ApiId(),
		ResourceName: jsii.String("*"),
	})
	// Session Manager calls stay in the regions compute environments may use.
	inRegions := func(eq map[string]any) *map[string]any {
		if len(cfg.AllowedRegions) > 0 {
			eq["aws:RequestedRegion"] = slices.Clone(cfg.AllowedRegions)
		}
		if len(eq) == 0 {
			return nil
		}
		return &map[string]any{"StringEquals": eq}
	}
	a.ClientPolicy = awsiam.NewManagedPolicy(c, jsii.String("ClientPolicy"), &awsiam.ManagedPolicyProps{
		ManagedPolicyName: jsii.String(cfg.Prefix + "client"),
		Description:       jsii.String("ceforge users: call the ceforge API and follow run logs"),
		Statements: &[]awsiam.PolicyStatement{
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("CallApi"),
				Actions:   jsii.Strings("execute-api:Invoke"),
				Resources: jsii.Strings(*apiRoutes),
			}),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("FollowLogs"),
				Actions:    jsii.Strings("lambda:InvokeFunctionUrl"),
				Resources:  jsii.Strings(*fns.Fn[FnLogs].FunctionArn()),
				Conditions: &map[string]any{"StringEquals": map[string]any{"lambda:FunctionUrlAuthType": "AWS_IAM"}},
			}),
			// ceforge studio connect: Session Manager port forwarding to the
			// hosts of studios (instances ceforge launched), nothing else.
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("ConnectToStudioHosts"),
				Actions:    jsii.Strings("ssm:StartSession"),
				Resources:  jsii.Strings(*awscdk.Stack_Of(c).FormatArn(&awscdk.ArnComponents{Service: jsii.String("ec2"), Region: jsii.String("*"), Resource: jsii.String("instance"), ResourceName: jsii.String("*")})),
				Conditions: inRegions(map[string]any{"ssm:resourceTag/ceforge:managed": "true"}),
			}),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("PortForwardingDocument"),
				Conditions: inRegions(map[string]any{}),
				Actions:    jsii.Strings("ssm:StartSession"),
				Resources:  jsii.Strings(*awscdk.Stack_Of(c).FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Region: jsii.String("*"), Account: jsii.String(""), Resource: jsii.String("document"), ResourceName: jsii.String("AWS-StartPortForwardingSession")})),
			}),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("EndOwnSessions"),
				Conditions: inRegions(map[string]any{}),
				Actions:    jsii.Strings("ssm:TerminateSession", "ssm:ResumeSession"),
				Resources:  jsii.Strings(*awscdk.Stack_Of(c).FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Region: jsii.String("*"), Resource: jsii.String("session"), ResourceName: jsii.String("${aws:userid}-*")})),
			}),
		},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(a.ClientPolicy, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("CallApi: every stage, method and route of this one API (each route is authorized by IAM); " +
			"the policy is for ceforge users and holds nothing else."),
		AppliesTo: &[]any{regexAppliesTo(`^Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<[A-Za-z0-9]+>/\*$`)},
	}, {
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("ConnectToStudioHosts: Session Manager port forwarding to instances ceforge launched (condition on the " +
			"ceforge:managed tag), in any region a compute environment may use; EndOwnSessions: the caller's own sessions only."),
		AppliesTo: &[]any{
			regexAppliesTo(`^Resource::arn:<AWS::Partition>:ec2:\*:<AWS::AccountId>:instance/\*$`),
			regexAppliesTo(`^Resource::arn:<AWS::Partition>:ssm:\*:<AWS::AccountId>:session/\$\{aws:userid\}-\*$`),
		},
	}}, nil)
	return a
}

func regexAppliesTo(re string) any { return &cdknag.RegexAppliesTo{Regex: jsii.String("/" + re + "/")} }
