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
	"time"
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

// GRPCPort is the container port of a service's internal gRPC API (env
// GRPC_ADDR), served with mutual TLS to the services that call it (see
// Callers) by every service whose row names GRPC services.
const GRPCPort = 9090

// Env vars every service reads (services/kit) and the operator renders
// (internal/render). Upstream URLs follow EnvURL.
const (
	EnvHTTPAddr = "HTTP_ADDR"
	// EnvGRPCAddr is the listen address of the internal gRPC API, ":9090"
	// by default; only services that serve gRPC read it.
	EnvGRPCAddr = "GRPC_ADDR"
	// EnvTLSDir names the directory holding the service's identity: its
	// certificate and key (tls.crt, tls.key) and the Platform's CA bundle
	// (ca.crt), as a kubernetes.io/tls Secret mounts them. The files are
	// replaced in place when the operator renews the certificate.
	EnvTLSDir  = "TLS_DIR"
	EnvNATSURL = "NATS_URL"
	// EnvNATSUser and EnvNATSPassword are the service's own broker user,
	// whose permissions the operator derives from its row.
	EnvNATSUser     = "NATS_USER"
	EnvNATSPassword = "NATS_PASSWORD"

	// EnvTokenKeys holds the PEM public keys (one or two, during a
	// rotation) that verify user tokens; every service that verifies
	// tokens reads it. Public keys are not secret.
	EnvTokenKeys = "TOKEN_KEYS"
	// EnvTokenSigningKey holds the PEM Ed25519 private key that signs user
	// tokens. Only the services that issue tokens read it.
	EnvTokenSigningKey = "TOKEN_SIGNING_KEY"
	// EnvTokenTTL is how long an issued token lasts (optional,
	// DefaultTokenTTL; at most MaxTokenTTL).
	EnvTokenTTL = "TOKEN_TTL"
	// EnvAdminEmail and EnvAdminPassword name the first admin, whom the
	// issuing services ensure at start-up (both optional, set together).
	EnvAdminEmail    = "ADMIN_EMAIL"
	EnvAdminPassword = "ADMIN_PASSWORD"
	// EnvLoginLockAfter (failed logins in a row, default 10) and
	// EnvLoginLockFor (a duration, default 15m) tune login throttling.
	EnvLoginLockAfter = "LOGIN_LOCK_AFTER"
	EnvLoginLockFor   = "LOGIN_LOCK_FOR"
)

// Token lifetimes. The revocation bucket keeps an entry for MaxTokenTTL, so
// a revoked token stays revoked for the rest of its life.
const (
	DefaultTokenTTL = time.Hour
	MaxTokenTTL     = 24 * time.Hour
)

// TokenUse is what a service does with user tokens.
type TokenUse int

const (
	// NoTokens: the service never sees a token.
	NoTokens TokenUse = iota
	// VerifyTokens: it checks tokens with the public keys (EnvTokenKeys).
	VerifyTokens
	// IssueTokens: it also signs them (EnvTokenSigningKey) and revokes
	// them on sign-out.
	IssueTokens
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
	// Buckets are the JetStream KeyValue buckets it writes (see KVBuckets
	// for their settings).
	Buckets []string
	// Reads are the buckets it reads and watches but never writes.
	Reads []string
	// Tokens says whether it verifies or issues user tokens. One that
	// verifies them and talks to the broker reads TokenRevocations.
	Tokens TokenUse
	// Replicas is the default replica count when not autoscaled.
	Replicas int32
	// Autoscaling is the default HPA; nil means a fixed replica count.
	Autoscaling *Autoscaling
	// LagScaling turns queue-lag autoscaling on by default; nil leaves it off.
	LagScaling *LagScaling
	// Public services accept traffic from outside the platform (NetworkPolicy, Service type).
	Public bool
	// GRPC names the gRPC services (full protobuf names, from proto/) it
	// serves on GRPCPort to its Callers.
	GRPC []string
}

// ServesGRPC reports whether s serves an internal gRPC API on GRPCPort.
func (s Service) ServesGRPC() bool { return len(s.GRPC) > 0 }

// UsesBroker reports whether s talks to NATS at all: it keeps state,
// watches a bucket or exchanges events. Only those get a broker user.
func (s Service) UsesBroker() bool {
	return len(s.Buckets)+len(s.Reads)+len(s.Publishes)+len(s.Consumers) > 0
}

// InboxPrefix is the prefix of the reply subjects of service's broker
// connection (nats.CustomInboxPrefix). Each service has its own, and its
// broker user may subscribe below its own only, so no service reads the
// replies (JetStream acks, API answers, consumed messages) of another.
func InboxPrefix(service string) string { return "_INBOX_" + service }

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

// Bucket is a JetStream KeyValue bucket and its settings.
type Bucket struct {
	Name string
	// TTL removes an entry this long after its last write; 0 keeps it.
	TTL time.Duration
}

// TokenRevocations holds the ids (jti) of signed-out tokens until they
// would have expired anyway. The issuing services write it; every other
// service that verifies tokens and talks to the broker watches it.
const TokenRevocations = "token-revocations"

// KVBuckets lists every bucket a service writes or reads, with its
// settings. Every service that uses one asks for the same config, so
// CreateOrUpdate never flip-flops.
var KVBuckets = []Bucket{
	{Name: "users"}, {Name: "user-emails"}, {Name: "user-points"},
	// Failed-login counters are forgotten a while after the last failure.
	{Name: "user-logins", TTL: time.Hour},
	{Name: "products"}, {Name: "stock"},
	{Name: "orders"},
	{Name: "payments"},
	{Name: "notifications"},
	{Name: "accounts"}, {Name: "account-emails"},
	{Name: "account-logins", TTL: time.Hour},
	{Name: "videos"},
	{Name: "sessions"}, {Name: "watch-history"},
	{Name: "analytics"},
	{Name: "recommendations"},
	// An entry outlives the token it revokes: written at most MaxTokenTTL
	// before the token expires, plus the verifiers' clock leeway.
	{Name: TokenRevocations, TTL: MaxTokenTTL + time.Minute},
}

// BucketFor returns the settings of a bucket.
func BucketFor(name string) (Bucket, error) {
	i := slices.IndexFunc(KVBuckets, func(b Bucket) bool { return b.Name == name })
	if i < 0 {
		return Bucket{}, fmt.Errorf("catalog: no bucket %q in KVBuckets", name)
	}
	return KVBuckets[i], nil
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
		// The gateway checks signature, expiry and roles only: it has no
		// broker access, so the services behind it enforce revocation.
		Tokens: VerifyTokens,
	},
	// Commerce.
	{
		Name:      "user",
		Workloads: []Workload{Commerce},
		Port:      HTTPPort,
		Publishes: []string{UserRegistered},
		Consumers: []Consumer{{Durable: "user-points", Subjects: []string{OrderConfirmed}}},
		Buckets:   []string{"users", "user-emails", "user-points", "user-logins", TokenRevocations},
		Replicas:  1,
		Tokens:    IssueTokens,
	},
	{
		Name:      "product",
		Workloads: []Workload{Commerce},
		GRPC:      []string{"switchboard.product.v1.Stock"},
		Port:      HTTPPort,
		Buckets:   []string{"products", "stock"},
		Reads:     []string{TokenRevocations},
		Replicas:  1,
		Tokens:    VerifyTokens,
	},
	{
		Name:      "order",
		Workloads: []Workload{Commerce},
		Port:      HTTPPort,
		Upstreams: []string{"product", "payment"},
		Publishes: []string{OrderCreated, OrderConfirmed, OrderCancelled, OrderRefunded},
		Buckets:   []string{"orders"},
		Reads:     []string{TokenRevocations},
		Replicas:  1,
		Tokens:    VerifyTokens,
	},
	{
		Name:      "payment",
		Workloads: []Workload{Commerce},
		GRPC:      []string{"switchboard.payment.v1.Payments"},
		Port:      HTTPPort,
		Publishes: []string{PaymentCompleted, PaymentFailed, PaymentRefunded},
		Buckets:   []string{"payments"},
		Reads:     []string{TokenRevocations},
		Replicas:  1,
		Tokens:    VerifyTokens,
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
		Reads:    []string{TokenRevocations},
		Replicas: 1,
		// Sending is slow (a provider call per message): a small backlog
		// already deserves another replica.
		LagScaling: &LagScaling{Durables: []string{"notification-orders", "notification-payments"}, LagThreshold: 20},
		Tokens:     VerifyTokens,
	},
	// Streaming.
	{
		Name:      "account",
		Workloads: []Workload{Streaming},
		GRPC:      []string{"switchboard.account.v1.Accounts"},
		Port:      HTTPPort,
		Publishes: []string{AccountCreated, AccountPlanChanged},
		Buckets:   []string{"accounts", "account-emails", "account-logins", TokenRevocations},
		Replicas:  1,
		Tokens:    IssueTokens,
	},
	{
		Name:      "content",
		Workloads: []Workload{Streaming},
		GRPC:      []string{"switchboard.content.v1.Library"},
		Port:      HTTPPort,
		Upstreams: []string{"account"},
		Publishes: []string{ContentCreated, ContentEncodeRequested, ContentEncoded},
		// One shared durable: each encode job is done once, by any replica.
		Consumers: []Consumer{{Durable: "content-encoder", Subjects: []string{ContentEncodeRequested}}},
		Buckets:   []string{"videos"},
		Reads:     []string{TokenRevocations},
		Replicas:  1,
		Tokens:    VerifyTokens,
	},
	{
		Name:        "playback",
		Workloads:   []Workload{Streaming},
		Port:        HTTPPort,
		Upstreams:   []string{"account", "content"},
		Publishes:   []string{PlaybackStarted, PlaybackHeartbeat, PlaybackStopped},
		Buckets:     []string{"sessions", "watch-history"},
		Reads:       []string{TokenRevocations},
		Autoscaling: &Autoscaling{MinReplicas: 2, MaxReplicas: 10, TargetCPUUtilizationPercentage: 70},
		Tokens:      VerifyTokens,
	},
	{
		Name:        "analytics",
		Workloads:   []Workload{Streaming},
		Port:        HTTPPort,
		Consumers:   []Consumer{{Durable: "analytics", Subjects: []string{PlaybackStarted, PlaybackHeartbeat, PlaybackStopped}}},
		Buckets:     []string{"analytics"},
		Reads:       []string{TokenRevocations},
		Autoscaling: &Autoscaling{MinReplicas: 2, MaxReplicas: 6, TargetCPUUtilizationPercentage: 70},
		// Heartbeats arrive at a high rate and each is cheap to count.
		LagScaling: &LagScaling{Durables: []string{"analytics"}, LagThreshold: 100},
		Tokens:     VerifyTokens,
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
		Reads:    []string{TokenRevocations},
		Replicas: 1,
		Tokens:   VerifyTokens,
	},
}

// All returns every service, gateway first. The slice is a copy.
func All() []Service { return slices.Clone(services) }

// Callers are the services that list name among their Upstreams, in table
// order: the only services that may call it. The gateway, which forwards
// the public API, is a caller of every service it routes to.
func Callers(name string) []string {
	var out []string
	for _, s := range services {
		if slices.Contains(s.Upstreams, name) {
			out = append(out, s.Name)
		}
	}
	return out
}

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

// VerifiesTokens reports whether s checks user tokens (issuers do too).
func (s Service) VerifiesTokens() bool { return s.Tokens != NoTokens }

// IssuesTokens reports whether s signs user tokens and so holds the private
// key.
func (s Service) IssuesTokens() bool { return s.Tokens == IssueTokens }

// UsesBucket reports whether s writes or reads the named bucket.
func (s Service) UsesBucket(name string) bool {
	return slices.Contains(s.Buckets, name) || slices.Contains(s.Reads, name)
}
