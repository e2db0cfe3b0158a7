// Package awsclient builds aws.Config values for the SDK clients ceforge uses:
// one per region and assumed role, pointed at the local emulator when an
// endpoint is configured, with a retry policy fit for bulk work.
package awsclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"
)

// DefaultMaxAttempts bounds retries: enough to ride out throttling bursts,
// few enough that a dead endpoint fails a request within seconds.
const DefaultMaxAttempts = 8

// Options configure a Factory.
type Options struct {
	// Region is the default region (the control plane's own).
	Region string
	// Endpoint, when set, sends every call to this URL (the local emulator).
	Endpoint string
	// MaxAttempts per call; 0 means DefaultMaxAttempts. Tests set 1 so that an
	// emulator's HTTP 500 for an unimplemented feature is not hidden by retries.
	MaxAttempts int
	// StaticCredentials, when set, replaces the default credential chain
	// (the emulator accepts any key).
	StaticCredentials *aws.Credentials
	// Counter, when set, counts every call per service and operation.
	Counter *CallCounter
	// ConnectionRetryOnly replaces the retry policy (and MaxAttempts) with
	// one retry of a connection error and of nothing else. Tests against the
	// emulator use it: its HTTP 500 for an unimplemented feature must fail
	// at once, but a keep-alive connection closed under a request (the Go
	// transport race of aws-sdk-go-v2#2737, which the standard policy
	// retries in production) must not fail a test.
	ConnectionRetryOnly bool
	// Middleware is added to every client's stack (tests record each call
	// for the IAM-checked tier, internal/testing/iamcheck).
	Middleware []func(*middleware.Stack) error
	// HTTPClient, when set, sends every request (the SDK clients' and the
	// hand-signed ones of awsclient/fsread): tests record the latter for
	// the IAM-checked tier, as Middleware cannot see them.
	HTTPClient aws.HTTPClient
}

// SessionDuration is how long an assumed member-account session lasts.
const SessionDuration = 15 * time.Minute

// Credentials name an IAM role to assume in the user's account. The external
// ID guards against the confused-deputy problem; it is not a secret.
type Credentials struct {
	RoleARN    string
	ExternalID string
}

// Factory hands out aws.Config values. It is safe for concurrent use and
// caches assumed-role credentials across warm Lambda invocations.
type Factory struct {
	opts Options
	base aws.Config

	mu       sync.Mutex
	cache    map[cacheKey]aws.Config
	registry Registry
}

// Registry says whether a role may be assumed with an External ID: only
// credentials registered in this deployment may (internal/credential).
// It returns nil when they are registered.
type Registry func(ctx context.Context, c Credentials) error

// ErrNoRegistry fails every AssumeRole of a factory without a registry.
var ErrNoRegistry = errors.New("no credentials registry: ceforge assumes only registered roles")

// UseRegistry sets the check ForRole's credentials make before every
// AssumeRole (and every refresh). Without one, no role is assumed.
func (f *Factory) UseRegistry(r Registry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registry = r
}

type cacheKey struct{ region, role, externalID string }

// New builds the base configuration and returns a Factory.
//
// Credentials are the static ones given, else those of the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN): that is how
// Lambda hands a function its execution role, and it keeps them valid for
// the life of the execution environment. The SDK's config package would
// find them too, but it also links the SSO, IMDS, process and shared-file
// providers no ceforge function uses: about 1.3 MB per bootstrap and their
// package init on every cold start. Against the local emulator (Endpoint
// set) missing keys default to a fixed fake pair, which it accepts.
func New(_ context.Context, opts Options) (*Factory, error) {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Region == "" {
		return nil, errors.New("aws config: no region (AWS_REGION)")
	}
	creds, err := credentialsFor(opts, os.Getenv)
	if err != nil {
		return nil, err
	}
	f := &Factory{opts: opts, cache: map[cacheKey]aws.Config{}}
	f.base = f.decorate(aws.Config{Region: opts.Region, Credentials: aws.NewCredentialsCache(creds)})
	return f, nil
}

// credentialsFor picks the credentials New uses (see New).
func credentialsFor(opts Options, getenv func(string) string) (aws.CredentialsProvider, error) {
	if c := opts.StaticCredentials; c != nil {
		return credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken), nil
	}
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret != "":
		return credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN")), nil
	case opts.Endpoint != "":
		return credentials.NewStaticCredentialsProvider("local", "local", ""), nil
	default:
		return nil, errors.New("aws config: no credentials in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, set by Lambda from the execution role)")
	}
}

// decorate applies endpoint, retry policy and call counting to cfg.
func (f *Factory) decorate(cfg aws.Config) aws.Config {
	if f.opts.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(f.opts.Endpoint)
	}
	cfg.Retryer = NewRetryer(f.opts.MaxAttempts)
	if f.opts.ConnectionRetryOnly {
		cfg.Retryer = connectionRetryer
	}
	if f.opts.Counter != nil {
		cfg.APIOptions = append(cfg.APIOptions, f.opts.Counter.Middleware())
	}
	cfg.APIOptions = append(cfg.APIOptions, f.opts.Middleware...)
	if f.opts.HTTPClient != nil {
		cfg.HTTPClient = f.opts.HTTPClient
	}
	return cfg
}

// NewRetryer returns a retryer factory. The SDK calls it once per client, so
// each client gets its own retryer; ratelimit.None removes the client-side
// retry quota that otherwise fails bulk work with "retry quota exceeded".
func NewRetryer(maxAttempts int) func() aws.Retryer {
	return func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = maxAttempts
			o.RateLimiter = ratelimit.None
			o.MaxBackoff = 20 * time.Second
		})
	}
}

// connectionRetryer retries a connection error once, and nothing else
// (Options.ConnectionRetryOnly).
func connectionRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 2
		o.RateLimiter = ratelimit.None
		o.MaxBackoff = 100 * time.Millisecond
		o.Retryables = []retry.IsErrorRetryable{retry.RetryableConnectionError{}}
	})
}

// ParameterReader reads SSM parameter values (the public AMI ids).
// awsclient/ssmparam implements it, in its own package because the SSM
// client is heavy: only functions that resolve AMIs link it.
type ParameterReader interface {
	Parameter(ctx context.Context, name string) (string, error)
}

// FileSystemReader answers, read-only, what validating a compute
// environment asks about the EFS and FSx file systems it names.
// awsclient/fsread implements it, in its own package so only the functions
// that validate compute environments link the EFS and FSx clients.
type FileSystemReader interface {
	// EFS returns an EFS file system and its mount targets (nil when no
	// such file system exists).
	EFS(ctx context.Context, id string) (*EFSFileSystem, error)
	// FSxByDNSName returns the FSx file system with that DNS name (nil
	// when none).
	FSxByDNSName(ctx context.Context, dns string) (*FSxFileSystem, error)
}

// EFSFileSystem is what validation needs of an EFS file system.
type EFSFileSystem struct {
	ID           string
	State        string
	MountTargets []EFSMountTarget
}

// EFSMountTarget is one mount target of an EFS file system.
type EFSMountTarget struct {
	SubnetID, AvailabilityZone, VpcID, State string
}

// FSxFileSystem is what validation needs of an FSx file system.
type FSxFileSystem struct {
	ID, Type, Lifecycle, VpcID string
}

// Endpoint returns the configured endpoint override ("" for real AWS).
func (f *Factory) Endpoint() string { return f.opts.Endpoint }

// Config returns the control plane's own configuration for a region ("" means
// the default region).
func (f *Factory) Config(region string) aws.Config {
	cfg := f.base.Copy()
	if region != "" {
		cfg.Region = region
	}
	return cfg
}

// ForRole returns a configuration that acts in a member account through
// the given role, cached per region, role and external ID. With an empty
// role ARN it returns Config(region): the control plane's own identity.
// The role is assumed only if the factory's Registry holds it (checked when
// credentials are first retrieved and at each refresh): a role and
// External ID that no registered credentials name are never assumed,
// whatever a record or a request says.
func (f *Factory) ForRole(region string, creds Credentials) aws.Config {
	if creds.RoleARN == "" {
		return f.Config(region)
	}
	key := cacheKey{region, creds.RoleARN, creds.ExternalID}
	f.mu.Lock()
	defer f.mu.Unlock()
	if cfg, ok := f.cache[key]; ok {
		return cfg
	}
	cfg := f.Config(region)
	stsClient := sts.NewFromConfig(cfg)
	provider := stscreds.NewAssumeRoleProvider(stsClient, creds.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		if creds.ExternalID != "" {
			o.ExternalID = aws.String(creds.ExternalID)
		}
		o.RoleSessionName = "ceforge"
		// The shortest session STS grants: deleted credentials stop
		// working in warm functions within this time (new sessions are
		// refused at once by the registry).
		o.Duration = SessionDuration
	})
	cfg.Credentials = aws.NewCredentialsCache(registered{f: f, creds: creds, assume: provider})
	cfg.APIOptions = append(cfg.APIOptions[:len(cfg.APIOptions):len(cfg.APIOptions)], actingAs(creds.RoleARN))
	if f.opts.HTTPClient != nil {
		cfg.HTTPClient = actingAsHTTP{inner: f.opts.HTTPClient, roleARN: creds.RoleARN}
	}
	f.cache[key] = cfg
	return cfg
}

type actingAsKey struct{}

// actingAs marks the calls of a ForRole configuration with the role they
// act through, so middleware can tell them from the control plane's own
// (ActingAs).
func actingAs(roleARN string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ceforgeActingAs",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				return next.HandleInitialize(middleware.WithStackValue(ctx, actingAsKey{}, roleARN), in)
			}), middleware.Before)
	}
}

// actingAsHTTP marks the requests a ForRole configuration sends through
// Options.HTTPClient (the hand-signed ones no middleware sees) the same way.
type actingAsHTTP struct {
	inner   aws.HTTPClient
	roleARN string
}

func (c actingAsHTTP) Do(req *http.Request) (*http.Response, error) {
	return c.inner.Do(req.WithContext(context.WithValue(req.Context(), actingAsKey{}, c.roleARN)))
}

// ActingAs returns the role ARN a call acts through (a ForRole
// configuration), or "" for the control plane's own identity. For
// middleware placed after the Initialize step's start, and for the
// context of a request reaching Options.HTTPClient.
func ActingAs(ctx context.Context) string {
	if s, ok := middleware.GetStackValue(ctx, actingAsKey{}).(string); ok {
		return s
	}
	s, _ := ctx.Value(actingAsKey{}).(string)
	return s
}

// registered asks the factory's registry before it lets the AssumeRole
// provider run.
type registered struct {
	f      *Factory
	creds  Credentials
	assume aws.CredentialsProvider
}

func (r registered) Retrieve(ctx context.Context) (aws.Credentials, error) {
	r.f.mu.Lock()
	check := r.f.registry
	r.f.mu.Unlock()
	if check == nil {
		return aws.Credentials{}, ErrNoRegistry
	}
	if err := check(ctx, r.creds); err != nil {
		return aws.Credentials{}, fmt.Errorf("assume %s: %w", r.creds.RoleARN, err)
	}
	return r.assume.Retrieve(ctx)
}
