package eventsrc

// Queue names (after the resource prefix): the CDK app creates the same.
const (
	BatchQueue = "batch-events"
	EC2Queue   = "ec2-events"
	// MaxReceiveCount is how often a message is tried before the dead-letter queue.
	MaxReceiveCount = 5
)
