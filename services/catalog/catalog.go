// Package catalog is the single source of truth for Switchboard's service
// topology: which services exist, which workload each belongs to, whom it
// calls synchronously, which events it publishes, which durable consumers
// read the events it consumes, where it keeps state, which env vars carry
// its configuration and how it scales by default.
//
// The operator reads it to render Deployments and wire env vars; the services
// read it to know their streams, buckets and subjects. Change the topology here
// and both sides follow.
package catalog

import (
	"fmt"
	"slices"
	"strings"
)

// Workload is a group of services that is enabled or disabled as a whole.
type Workload string

const (
	Commerce  Workload = "commerce"
	Streaming Workload = "streaming"
)

// Workloads lists every workload, in a stable order.
var Workloads = []Workload{Commerce, Streaming}

// HTTPPort is the container port every service listens on (env HTTP_ADDR).
const HTTPPort = 8080

// Env vars every service reads (services/kit) and the operator renders
// (internal/render). Upstream URLs follow EnvURL.
const (
	EnvHTTPAddr     = "HTTP_ADDR"
	EnvNATSURL      = "NATS_URL"
	EnvNATSUser     = "NATS_USER"
	EnvNATSPassword = "NATS_PASSWORD"
	EnvAuthKey      = "AUTH_KEY"
	// EnvAuthKeyFile is the alternative to EnvAuthKey for a key mounted as
	// a file; the operator uses EnvAuthKey.
	EnvAuthKeyFile = "AUTH_KEY_FILE"
)

// Autoscaling is a service's default HorizontalPodAutoscaler shape.
type Autoscaling struct {
	MinReplicas                    int32
	MaxReplicas                    int32
	TargetCPUUtilizationPercentage int32
	// TargetMemoryUtilizationPercentage is 0 for no memory target.
	TargetMemoryUtilizationPercentage int32
}

// LagScaling is a service's default queue-lag autoscaling: where KEDA is
// installed, the operator scales the service on the backlog of these
// durable consumers as well as on CPU.
type LagScaling struct {
	// Durables name the consumers (of Consumers) whose backlog counts.
	Durables []string
	// LagThreshold is the backlog per replica to aim for.
	LagThreshold int64
}

// Service describes one microservice.
type Service struct {
	// Name is the DNS-safe service name, also the argument of `switchboard serve`.
	Name string
	// Workloads that include this service. The gateway belongs to every workload.
	Workloads []Workload
	// Port is the HTTP container port.
	Port int32
	// Upstreams are the services this one calls over REST. Each becomes an
	// env var <UPSTREAM>_URL (see EnvURL).
	Upstreams []string
	// Publishes are the NATS subjects of the events it produces; the bus
	// refuses any other.
	Publishes []string
	// Consumers are its durable consumers: the only way it reads events.
	Consumers []Consumer
	// Buckets are the JetStream KeyValue buckets it owns.
	Buckets []string
	// Replicas is the default replica count when not autoscaled.
	Replicas int32
	// Autoscaling is the default HPA; nil means a fixed replica count.
	Autoscaling *Autoscaling
	// LagScaling turns queue-lag autoscaling on by default; nil leaves it off.
	LagScaling *LagScaling
	// Public services accept traffic from outside the platform (NetworkPolicy, Service type).
	Public bool
}

// Consumer is a durable JetStream consumer. The replicas of a service share
// it, so each event is handled by one of them. Its subjects lie in one
// stream, and its name is the service's, or starts with it and a dash, so no
// two services ever share one.
type Consumer struct {
	Durable  string
	Subjects []string
}

// Consumes lists the subjects s reads, over all its consumers.
func (s Service) Consumes() []string {
	var out []string
	for _, c := range s.Consumers {
		out = append(out, c.Subjects...)
	}
	return out
}

// Consumer returns the consumer of s named durable.
func (s Service) Consumer(durable string) (Consumer, bool) {
	i := slices.IndexFunc(s.Consumers, func(c Consumer) bool { return c.Durable == durable })
	if i < 0 {
		return Consumer{}, false
	}
	return s.Consumers[i], true
}

// Stream is a JetStream stream holding the events of one domain.
type Stream struct {
	Name     string
	Subjects []string
}

// Event subjects. Services publish and consume these exact strings.
const (
	OrderCreated   = "order.created"
	OrderConfirmed = "order.confirmed"
	OrderCancelled = "order.cancelled"
	OrderRefunded  = "order.refunded"

	PaymentCompleted = "payment.completed"
	PaymentFailed    = "payment.failed"
	PaymentRefunded  = "payment.refunded"

	UserRegistered = "user.registered"

	AccountCreated     = "account.created"
	AccountPlanChanged = "account.plan_changed"

	ContentCreated         = "content.created"
	ContentEncodeRequested = "content.encode.requested"
	ContentEncoded         = "content.encoded"

	PlaybackStarted   = "playback.started"
	PlaybackHeartbeat = "playback.heartbeat"
	PlaybackStopped   = "playback.stopped"
)

// Streams are created idempotently by every service that publishes or
// consumes one of their subjects, so start-up order does not matter.
var Streams = []Stream{
	{Name: "USERS", Subjects: []string{"user.>"}},
	{Name: "ORDERS", Subjects: []string{"order.>"}},
	{Name: "PAYMENTS", Subjects: []string{"payment.>"}},
	{Name: "ACCOUNTS", Subjects: []string{"account.>"}},
	{Name: "CONTENT", Subjects: []string{"content.>"}},
	{Name: "PLAYBACK", Subjects: []string{"playback.>"}},
}

// Gateway is the name of the API gateway service.
const Gateway = "gateway"

// services is the table. Keep it sorted by workload, then by call depth.
var services = []Service{
	{
		Name:      Gateway,
		Workloads: []Workload{Commerce, Streaming},
		Port:      HTTPPort,
		Upstreams: []string{"user", "product", "order", "payment", "notification", "account", "content", "playback", "analytics", "recommendation"},
		Replicas:  2,
		Public:    true,
	},
	// Commerce.
	{
		Name:      "user",
		Workloads: []Workload{Commerce},
		Port:      HTTPPort,
		Publishes: []string{UserRegistered},
		Consumers: []Consumer{{Durable: "user-points", Subjects: []string{OrderConfirmed}}},
		Buckets:   []string{"users", "user-emails", "user-points"},
		Replicas:  1,
	},
	{
		Name:      "product",
		Workloads: []Workload{Commerce},
		Port:      HTTPPort,
		Buckets:   []string{"products", "stock"},
		Replicas:  1,
	},
	{
		Name:      "order",
		Workloads: []Workload{Commerce},
		Port:      HTTPPort,
		Upstreams: []string{"product", "payment"},
		Publishes: []string{OrderCreated, OrderConfirmed, OrderCancelled, OrderRefunded},
		Buckets:   []string{"orders"},
		Replicas:  1,
	},
	{
		Name:      "payment",
		Workloads: []Workload{Commerce},
		Port:      HTTPPort,
		Publishes: []string{PaymentCompleted, PaymentFailed, PaymentRefunded},
		Buckets:   []string{"payments"},
		Replicas:  1,
	},
	{
		Name:      "notification",
		Workloads: []Workload{Commerce},
		Port:      HTTPPort,
		Consumers: []Consumer{
			{Durable: "notification-orders", Subjects: []string{OrderConfirmed, OrderCancelled, OrderRefunded}},
			{Durable: "notification-payments", Subjects: []string{PaymentCompleted, PaymentFailed}},
		},
		Buckets:  []string{"notifications"},
		Replicas: 1,
		// Sending is slow (a provider call per message): a small backlog
		// already deserves another replica.
		LagScaling: &LagScaling{Durables: []string{"notification-orders", "notification-payments"}, LagThreshold: 20},
	},
	// Streaming.
	{
		Name:      "account",
		Workloads: []Workload{Streaming},
		Port:      HTTPPort,
		Publishes: []string{AccountCreated, AccountPlanChanged},
		Buckets:   []string{"accounts", "account-emails"},
		Replicas:  1,
	},
	{
		Name:      "content",
		Workloads: []Workload{Streaming},
		Port:      HTTPPort,
		Upstreams: []string{"account"},
		Publishes: []string{ContentCreated, ContentEncodeRequested, ContentEncoded},
		// One shared durable: each encode job is done once, by any replica.
		Consumers: []Consumer{{Durable: "content-encoder", Subjects: []string{ContentEncodeRequested}}},
		Buckets:   []string{"videos"},
		Replicas:  1,
	},
	{
		Name:        "playback",
		Workloads:   []Workload{Streaming},
		Port:        HTTPPort,
		Upstreams:   []string{"account", "content"},
		Publishes:   []string{PlaybackStarted, PlaybackHeartbeat, PlaybackStopped},
		Buckets:     []string{"sessions", "watch-history"},
		Autoscaling: &Autoscaling{MinReplicas: 2, MaxReplicas: 10, TargetCPUUtilizationPercentage: 70},
	},
	{
		Name:        "analytics",
		Workloads:   []Workload{Streaming},
		Port:        HTTPPort,
		Consumers:   []Consumer{{Durable: "analytics", Subjects: []string{PlaybackStarted, PlaybackHeartbeat, PlaybackStopped}}},
		Buckets:     []string{"analytics"},
		Autoscaling: &Autoscaling{MinReplicas: 2, MaxReplicas: 6, TargetCPUUtilizationPercentage: 70},
		// Heartbeats arrive at a high rate and each is cheap to count.
		LagScaling: &LagScaling{Durables: []string{"analytics"}, LagThreshold: 100},
	},
	{
		Name:      "recommendation",
		Workloads: []Workload{Streaming},
		Port:      HTTPPort,
		Consumers: []Consumer{
			{Durable: "recommendation-playback", Subjects: []string{PlaybackStarted, PlaybackHeartbeat, PlaybackStopped}},
			{Durable: "recommendation-content", Subjects: []string{ContentEncoded}},
		},
		Buckets:  []string{"recommendations"},
		Replicas: 1,
	},
}

// All returns every service, gateway first. The slice is a copy.
func All() []Service { return slices.Clone(services) }

// Lookup returns the named service.
func Lookup(name string) (Service, bool) {
	for _, s := range services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// ForWorkloads returns the services that belong to any of the given
// workloads, each once, in table order.
func ForWorkloads(ws ...Workload) []Service {
	var out []Service
	for _, s := range services {
		if slices.ContainsFunc(s.Workloads, func(w Workload) bool { return slices.Contains(ws, w) }) {
			out = append(out, s)
		}
	}
	return out
}

// Names returns the names of the given services.
func Names(ss []Service) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

// ValidWorkload reports whether w names a known workload.
func ValidWorkload(w Workload) bool { return slices.Contains(Workloads, w) }

// EnvURL is the env var that carries an upstream's base URL: "product" →
// "PRODUCT_URL".
func EnvURL(upstream string) string {
	return strings.ToUpper(strings.ReplaceAll(upstream, "-", "_")) + "_URL"
}

// StreamFor returns the stream that stores a subject.
func StreamFor(subject string) (Stream, error) {
	for _, st := range Streams {
		for _, pattern := range st.Subjects {
			if prefix, ok := strings.CutSuffix(pattern, ">"); ok && strings.HasPrefix(subject, prefix) {
				return st, nil
			}
			if pattern == subject {
				return st, nil
			}
		}
	}
	return Stream{}, fmt.Errorf("catalog: no stream holds subject %q", subject)
}
