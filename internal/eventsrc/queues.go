package eventsrc

// Queue names (after the resource prefix): the CDK app creates the same.
const (
	BatchQueue = "batch-events"
	EC2Queue   = "ec2-events"
	// MaxReceiveCount is how often a message is tried before the dead-letter queue.
	MaxReceiveCount = 5
)

// Rule is what one consumer's EventBridge rule matches. The CDK app builds
// its rules from Rules, and tests deliver events through an emulated rule
// with the same pattern, so both match the same events.
type Rule struct {
	Name        string // rule name after the resource prefix
	Queue       string // the consumer queue it targets (after the prefix)
	Source      string
	DetailTypes []string
}

// Rules of the two consumers. The Batch rule matches every job of the
// account (in the allowed regions), not only jobs on ceforge's forged
// queues: runs of manual-mode compute environments run on the user's own
// queues, whatever their names. The consumer drops the jobs that are not
// ceforge's from the event alone (no run tag, not named like a head job),
// and confirms a tagless head job with one read of the reverse index.
var Rules = []Rule{
	{Name: "batch-job-state-change", Queue: BatchQueue, Source: "aws.batch", DetailTypes: []string{"Batch Job State Change"}},
	{Name: "ec2-instance-events", Queue: EC2Queue, Source: "aws.ec2",
		DetailTypes: []string{"EC2 Instance State-change Notification", "EC2 Spot Instance Interruption Warning"}},
}

// Pattern is the rule's EventBridge event pattern; regions, when given,
// limit it to events of those regions (the allowed regions: events
// forwarded from elsewhere are not ceforge's).
func (r Rule) Pattern(regions []string) map[string]any {
	p := map[string]any{"source": []string{r.Source}, "detail-type": r.DetailTypes}
	if len(regions) > 0 {
		p["region"] = regions
	}
	return p
}
