package stack

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/constructs-go/constructs/v10"
)

// Config is everything a deployment can choose. Every field comes from CDK
// context (cdk.json, or `-c key=value` on the command line); the context key
// is in the field's comment, DefaultConfig holds the defaults. infra/README.md
// documents the same table for operators.
type Config struct {
	// StackName is the CloudFormation stack name. Context "stackName",
	// default "ceforge".
	StackName string
	// Prefix names every AWS resource ceforge creates and scopes the IAM
	// policies to it (CEFORGE_PREFIX). Context "prefix", default "ceforge-";
	// 1-20 characters of a-z, 0-9 and '-'.
	Prefix string
	// AllowedRegions limits where compute environments may be created
	// (CEFORGE_ALLOWED_REGIONS) and, when set, adds an aws:RequestedRegion
	// condition to the compute-environment permissions. Context
	// "allowedRegions": a comma list or a JSON array; default empty (the
	// platform's supported list, no region condition).
	AllowedRegions []string
	// AllowedBuckets are the S3 buckets compute environments may use for
	// work directories and allowBuckets, and the only ones a forged role
	// (head job, task, instance) can reach: the permissions boundary and
	// the functions' bucket-level S3 grants name exactly these, and the API
	// refuses any other (CEFORGE_ALLOWED_BUCKETS). Context "allowedBuckets":
	// bucket names, '*' allowed as a wildcard (e.g. "genomics-*"); default
	// empty: buckets named with the prefix (<prefix>*).
	AllowedBuckets []string
	// SweeperDryRun makes scheduled sweeps report without deleting
	// (CEFORGE_SWEEP_DRY_RUN). Context "sweeperDryRun", default false.
	SweeperDryRun bool
	// SweeperSchedule is the EventBridge schedule expression of the sweeper.
	// Context "sweeperSchedule", default "rate(15 minutes)"; any rate(...) or
	// cron(...) expression.
	SweeperSchedule string
	// SweeperGrace is how long an orphan must stay orphaned before the sweeper
	// deletes it (CEFORGE_SWEEP_GRACE, Go duration). Context "sweeperGrace",
	// default "30m".
	SweeperGrace string
	// LogRetentionDays is the retention of every log group the stack creates
	// (functions, API access log). Context "logRetentionDays", default 30; a
	// value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...).
	LogRetentionDays int
	// LogLevel of the functions (CEFORGE_LOG_LEVEL). Context "logLevel",
	// default "info".
	LogLevel string
	// RunLogGroup receives head-instance console logs (CEFORGE_RUN_LOG_GROUP).
	// Context "runLogGroup", default "/ceforge/runs".
	RunLogGroup string
	// JwtIssuer and JwtAudience, when both set, put a JWT authorizer instead
	// of IAM on every API route (API Gateway allows one authorizer per
	// route). Context "jwtIssuer" (https URL) and "jwtAudience" (comma list or
	// JSON array); default empty: IAM (SigV4) authorization.
	JwtIssuer   string
	JwtAudience []string
	// AlarmEmail, when set, creates an SNS topic subscribed by this address
	// and sends every alarm to it. Context "alarmEmail", default empty.
	AlarmEmail string
	// AssetDir holds the function binaries, one <name>/bootstrap each, as
	// `make build` writes them. Context "assetDir", default "build"
	// (relative to the directory `cdk` runs in: the repository root).
	AssetDir string
	// APIRateLimit and APIBurstLimit throttle the API stage (requests per
	// second, burst). Context "apiRateLimit" (default 50) and "apiBurstLimit"
	// (default 100).
	APIRateLimit  float64
	APIBurstLimit int
	// TraceRateLimit and TraceBurstLimit throttle each Nextflow trace route
	// (every reporting run calls about once a second). Context
	// "traceRateLimit" (default 500) and "traceBurstLimit" (default 1000).
	TraceRateLimit  float64
	TraceBurstLimit int
	// MemberAccounts may put their Batch and EC2 events on the control
	// plane's member event bus (<prefix>events), which the member stack
	// deployed in each account forwards them to. Context "memberAccounts":
	// 12-digit account ids, comma list or JSON array; default empty.
	MemberAccounts []string
	// MemberOrganization, an AWS Organizations id (o-...), lets every
	// account of the organization put events on that bus instead of a
	// list. Context "memberOrganization"; default empty.
	MemberOrganization string
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		StackName:        "ceforge",
		Prefix:           "ceforge-",
		SweeperDryRun:    false,
		SweeperSchedule:  "rate(15 minutes)",
		SweeperGrace:     "30m",
		LogRetentionDays: 30,
		LogLevel:         "info",
		RunLogGroup:      "/ceforge/runs",
		AssetDir:         "build",
		APIRateLimit:     50,
		APIBurstLimit:    100,
		TraceRateLimit:   500,
		TraceBurstLimit:  1000,
	}
}

// ContextKeys lists every context key the app reads (for documentation
// and to warn about typos).
var ContextKeys = []string{
	"stackName", "prefix", "allowedRegions", "allowedBuckets", "sweeperDryRun", "sweeperSchedule",
	"sweeperGrace", "logRetentionDays", "logLevel", "runLogGroup", "jwtIssuer",
	"jwtAudience", "alarmEmail", "assetDir", "apiRateLimit", "apiBurstLimit",
	"traceRateLimit", "traceBurstLimit", "memberAccounts", "memberOrganization",
}

// MaxAllowedBuckets bounds allowedBuckets: each one is named twice in the
// permissions boundary, which must fit IAM's 6,144 characters.
const MaxAllowedBuckets = 4

// Buckets returns the bucket patterns compute environments may use:
// AllowedBuckets, or every bucket named with the prefix.
func (c Config) Buckets() []string {
	if len(c.AllowedBuckets) > 0 {
		return c.AllowedBuckets
	}
	return []string{c.Prefix + "*"}
}

// ConfigFromContext reads the configuration from CDK context on top of the
// defaults and validates it.
func ConfigFromContext(node constructs.Node) (Config, error) {
	get := func(key string) (any, bool) {
		v := node.TryGetContext(&key)
		if v == nil {
			return nil, false
		}
		return v, true
	}
	return ConfigFromMap(get)
}

// ConfigFromMap reads the configuration through lookup (context values are
// strings on the command line and JSON values in cdk.json; both work).
func ConfigFromMap(lookup func(key string) (any, bool)) (Config, error) {
	c := DefaultConfig()
	var errs []string
	str := func(key string, dst *string) {
		if v, ok := lookup(key); ok {
			*dst = strings.TrimSpace(fmt.Sprint(v))
		}
	}
	list := func(key string, dst *[]string) {
		v, ok := lookup(key)
		if !ok {
			return
		}
		l, err := toList(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("context %q: %v", key, err))
			return
		}
		*dst = l
	}
	boolean := func(key string, dst *bool) {
		v, ok := lookup(key)
		if !ok {
			return
		}
		switch b := v.(type) {
		case bool:
			*dst = b
		default:
			p, err := strconv.ParseBool(strings.TrimSpace(fmt.Sprint(v)))
			if err != nil {
				errs = append(errs, fmt.Sprintf("context %q: %q is not a boolean", key, fmt.Sprint(v)))
				return
			}
			*dst = p
		}
	}
	number := func(key string) (float64, bool) {
		v, ok := lookup(key)
		if !ok {
			return 0, false
		}
		switch n := v.(type) {
		case float64:
			return n, true
		case int:
			return float64(n), true
		default:
			p, err := strconv.ParseFloat(strings.TrimSpace(fmt.Sprint(v)), 64)
			if err != nil {
				errs = append(errs, fmt.Sprintf("context %q: %q is not a number", key, fmt.Sprint(v)))
				return 0, false
			}
			return p, true
		}
	}

	str("stackName", &c.StackName)
	str("prefix", &c.Prefix)
	list("allowedRegions", &c.AllowedRegions)
	list("allowedBuckets", &c.AllowedBuckets)
	boolean("sweeperDryRun", &c.SweeperDryRun)
	str("sweeperSchedule", &c.SweeperSchedule)
	str("sweeperGrace", &c.SweeperGrace)
	if n, ok := number("logRetentionDays"); ok {
		c.LogRetentionDays = int(n)
	}
	str("logLevel", &c.LogLevel)
	str("runLogGroup", &c.RunLogGroup)
	str("jwtIssuer", &c.JwtIssuer)
	list("jwtAudience", &c.JwtAudience)
	str("alarmEmail", &c.AlarmEmail)
	str("assetDir", &c.AssetDir)
	if n, ok := number("apiRateLimit"); ok {
		c.APIRateLimit = n
	}
	if n, ok := number("apiBurstLimit"); ok {
		c.APIBurstLimit = int(n)
	}
	if n, ok := number("traceRateLimit"); ok {
		c.TraceRateLimit = n
	}
	if n, ok := number("traceBurstLimit"); ok {
		c.TraceBurstLimit = int(n)
	}
	list("memberAccounts", &c.MemberAccounts)
	str("memberOrganization", &c.MemberOrganization)
	if len(errs) > 0 {
		return c, fmt.Errorf("ceforge configuration: %s", strings.Join(errs, "; "))
	}
	return c, c.Validate()
}

// toList accepts a JSON array, a comma-separated string, or a string
// holding a JSON array.
func toList(v any) ([]string, error) {
	var out []string
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("list element %v is not a string", e)
			}
			add(s)
		}
	case []string:
		for _, s := range x {
			add(s)
		}
	case string:
		s := strings.TrimSpace(x)
		if strings.HasPrefix(s, "[") {
			var l []string
			if err := json.Unmarshal([]byte(s), &l); err != nil {
				return nil, fmt.Errorf("%q is not a JSON list of strings", s)
			}
			for _, e := range l {
				add(e)
			}
			break
		}
		for _, e := range strings.Split(s, ",") {
			add(e)
		}
	default:
		return nil, fmt.Errorf("%v is neither a list nor a comma-separated string", v)
	}
	return out, nil
}

var (
	prefixRe        = regexp.MustCompile(`^[a-z0-9-]{1,20}$`)
	regionRe        = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	scheduleRe      = regexp.MustCompile(`^(rate|cron)\(.+\)$`)
	logGroupRe      = regexp.MustCompile(`^[\.\-_/#A-Za-z0-9]{1,512}$`)
	stackNameRe     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,127}$`)
	bucketPatternRe = regexp.MustCompile(`^[a-z0-9*][a-z0-9.*-]{1,61}[a-z0-9*]$`)
	emailRe         = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	accountRe       = regexp.MustCompile(`^[0-9]{12}$`)
	orgRe           = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
)

// retentionDays are the values CloudWatch Logs accepts.
var retentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !stackNameRe.MatchString(c.StackName) {
		bad("stackName %q: use a letter then letters, digits and '-'", c.StackName)
	}
	if !prefixRe.MatchString(c.Prefix) {
		bad("prefix %q: use 1-20 characters of a-z, 0-9 and '-'", c.Prefix)
	}
	for _, name := range FunctionNames {
		if strings.HasPrefix(roleName(c.Prefix, name), c.Prefix) {
			bad("prefix %q: the control plane's own role %q would match it and could be modified by the functions; choose another prefix", c.Prefix, roleName(c.Prefix, name))
			break
		}
	}
	for _, r := range c.AllowedRegions {
		if !regionRe.MatchString(r) {
			bad("allowedRegions: %q is not a region name", r)
		}
	}
	if len(c.AllowedBuckets) > MaxAllowedBuckets {
		bad("allowedBuckets: at most %d buckets or patterns (the permissions boundary must fit one managed policy); use a wildcard such as \"genomics-*\"", MaxAllowedBuckets)
	}
	for _, b := range c.AllowedBuckets {
		if !bucketPatternRe.MatchString(b) || b == "*" {
			bad("allowedBuckets: %q is not a bucket name or pattern (3-63 of a-z, 0-9, '.', '-', and '*' as a wildcard; not '*' alone)", b)
		}
	}
	if !scheduleRe.MatchString(c.SweeperSchedule) {
		bad("sweeperSchedule %q: use rate(...) or cron(...)", c.SweeperSchedule)
	}
	if d, err := time.ParseDuration(c.SweeperGrace); err != nil || d < 0 {
		bad("sweeperGrace %q: use a Go duration such as 30m", c.SweeperGrace)
	}
	if !slices.Contains(retentionDays, c.LogRetentionDays) {
		bad("logRetentionDays %d: use one of %v", c.LogRetentionDays, retentionDays)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("logLevel %q: use debug, info, warn or error", c.LogLevel)
	}
	if !logGroupRe.MatchString(c.RunLogGroup) {
		bad("runLogGroup %q is not a log group name", c.RunLogGroup)
	}
	if (c.JwtIssuer == "") != (len(c.JwtAudience) == 0) {
		bad("jwtIssuer and jwtAudience go together: set both or neither")
	}
	if c.JwtIssuer != "" && !strings.HasPrefix(c.JwtIssuer, "https://") {
		bad("jwtIssuer %q: use an https:// URL", c.JwtIssuer)
	}
	if c.AlarmEmail != "" && !emailRe.MatchString(c.AlarmEmail) {
		bad("alarmEmail %q is not an e-mail address", c.AlarmEmail)
	}
	if strings.TrimSpace(c.AssetDir) == "" {
		bad("assetDir is empty")
	}
	if c.TraceRateLimit <= 0 || c.TraceBurstLimit <= 0 {
		bad("traceRateLimit and traceBurstLimit must be positive")
	}
	if c.APIRateLimit <= 0 || c.APIBurstLimit <= 0 {
		bad("apiRateLimit and apiBurstLimit must be positive")
	}
	for _, a := range c.MemberAccounts {
		if !accountRe.MatchString(a) {
			bad("memberAccounts: %q is not a 12-digit account id", a)
		}
	}
	if c.MemberOrganization != "" && !orgRe.MatchString(c.MemberOrganization) {
		bad("memberOrganization %q is not an AWS Organizations id (o-...)", c.MemberOrganization)
	}
	if len(errs) > 0 {
		return fmt.Errorf("ceforge configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}
