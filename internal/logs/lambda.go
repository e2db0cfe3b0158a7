package logs

import (
	"context"
	"net/http"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/ceforge/ceforge/internal/api"
)

type streamingKey struct{}

// WithStreaming marks ctx as served by a streaming response (the logs
// Function URL), where follow mode may hold the connection.
func WithStreaming(ctx context.Context) context.Context {
	return context.WithValue(ctx, streamingKey{}, true)
}

// Streaming reports whether ctx is served by a streaming response.
func Streaming(ctx context.Context) bool {
	v, _ := ctx.Value(streamingKey{}).(bool)
	return v
}

// FunctionURLHandler adapts h to a Lambda Function URL with AWS_IAM auth
// and response streaming: the caller's identity is the IAM ARN Lambda puts
// in requestContext.authorizer.iam.userArn. A request without one carries no
// identity, so the router answers 401 (even if the URL's auth type were
// changed to NONE by mistake).
func FunctionURLHandler(h http.Handler) func(context.Context, *events.LambdaFunctionURLRequest) (*events.LambdaFunctionURLStreamingResponse, error) {
	return lambdaurl.Wrap(FunctionURLIdentity(h))
}

// FunctionURLIdentity sets the request id, the caller identity and the
// streaming mark from the Function URL request lambdaurl put in the context.
func FunctionURLIdentity(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := WithStreaming(r.Context())
		if ev, ok := lambdaurl.RequestFromContext(ctx); ok {
			if id := ev.RequestContext.RequestID; id != "" {
				ctx = api.WithRequestID(ctx, id)
			}
			if a := ev.RequestContext.Authorizer; a != nil && a.IAM != nil && a.IAM.UserARN != "" {
				ctx = api.WithIdentity(ctx, a.IAM.UserARN)
			}
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
