package render

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// kv is what using a bucket takes: its stream's info (and, for its owner,
// its create and update calls), direct gets of its keys, ordered consumers
// on its keys and their flow control.
func kv(b string, owner bool) []string {
	var own []string
	if owner {
		own = []string{"$JS.API.STREAM.CREATE.KV_" + b, "$JS.API.STREAM.UPDATE.KV_" + b}
	}
	return append(own,
		"$JS.API.STREAM.INFO.KV_"+b,
		"$JS.API.STREAM.MSG.GET.KV_"+b,
		"$JS.API.DIRECT.GET.KV_"+b+".$KV."+b+".>",
		"$JS.API.CONSUMER.CREATE.KV_"+b, "$JS.API.CONSUMER.CREATE.KV_"+b+".*", "$JS.API.CONSUMER.CREATE.KV_"+b+".*.$KV."+b+".>",
		"$JS.API.CONSUMER.DELETE.KV_"+b+".*",
		"$JS.FC.KV_"+b+".>",
	)
}

func ownStream(st string) []string {
	return []string{"$JS.API.STREAM.CREATE." + st, "$JS.API.STREAM.UPDATE." + st, "$JS.API.STREAM.INFO." + st}
}

func useStream(st string) []string { return []string{"$JS.API.STREAM.INFO." + st} }

func durable(st, d, filter string) []string {
	on := st + "." + d
	return []string{"$JS.API.CONSUMER.CREATE." + on + "." + filter, "$JS.API.CONSUMER.INFO." + on, "$JS.API.CONSUMER.MSG.NEXT." + on, "$JS.ACK." + on + ".>"}
}

func formerDurable(st, d string) []string {
	return []string{"$JS.API.CONSUMER.INFO." + st + "." + d, "$JS.API.CONSUMER.DELETE." + st + "." + d}
}

func TestPermissionsFor(t *testing.T) {
	whole := catalog.BrokerServices(catalog.All())
	streaming := catalog.BrokerServices(catalog.ForWorkloads(catalog.Streaming))
	tests := []struct {
		name    string
		service string
		running []string
		want    BrokerPermissions
	}{
		{
			name:    "the gateway has no broker user, so no permissions",
			service: catalog.Gateway,
			running: whole,
		},
		{
			name:    "product owns its buckets and only reads the revocations, which it may not change",
			service: "product",
			running: whole,
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, kv("products", true), kv("stock", true), kv("token-revocations", false),
					[]string{"$KV.products.>", "$KV.stock.>"}),
				Subscribe: []string{"_INBOX_product.>"},
			},
		},
		{
			name:    "order owns the stream of its four events, which it publishes exactly",
			service: "order",
			running: whole,
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, ownStream("ORDERS"),
					[]string{"order.created", "order.confirmed", "order.cancelled", "order.refunded"},
					kv("orders", true), kv("token-revocations", false), []string{"$KV.orders.>"}),
				Subscribe: []string{"_INBOX_order.>"},
			},
		},
		{
			name: "notification reads through one durable per subject, each filter pinned, may retire its former durables, " +
				"dead-letters what they give up on and changes no stream it reads",
			service: "notification",
			running: whole,
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, useStream("ORDERS"), useStream("PAYMENTS"), useStream("DLQ"),
					[]string{"dlq.notification.notification-order-confirmed", "dlq.notification.notification-order-cancelled",
						"dlq.notification.notification-order-refunded", "dlq.notification.notification-payment-completed",
						"dlq.notification.notification-payment-failed"},
					durable("ORDERS", "notification-order-confirmed", "order.confirmed"), formerDurable("ORDERS", "notification-orders"),
					durable("ORDERS", "notification-order-cancelled", "order.cancelled"),
					durable("ORDERS", "notification-order-refunded", "order.refunded"),
					durable("PAYMENTS", "notification-payment-completed", "payment.completed"), formerDurable("PAYMENTS", "notification-payments"),
					durable("PAYMENTS", "notification-payment-failed", "payment.failed"),
					kv("notifications", true), kv("token-revocations", false), []string{"$KV.notifications.>"}),
				Subscribe: []string{"_INBOX_notification.>"},
			},
		},
		{
			name:    "user owns the dead letters and the revocations of a whole platform",
			service: "user",
			running: whole,
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, ownStream("USERS"), useStream("ORDERS"), ownStream("DLQ"),
					[]string{"user.registered", "dlq.user.user-points"}, durable("ORDERS", "user-points", "order.confirmed"),
					kv("users", true), kv("user-emails", true), kv("user-points", true), kv("user-logins", true), kv("token-revocations", true),
					[]string{"$KV.users.>", "$KV.user-emails.>", "$KV.user-points.>", "$KV.user-logins.>", "$KV.token-revocations.>"}),
				Subscribe: []string{"_INBOX_user.>"},
			},
		},
		{
			name:    "account writes revocations on a whole platform, but may not change their bucket",
			service: "account",
			running: whole,
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, ownStream("ACCOUNTS"), []string{"account.created", "account.plan_changed"},
					kv("accounts", true), kv("account-emails", true), kv("account-logins", true), kv("token-revocations", false),
					[]string{"$KV.accounts.>", "$KV.account-emails.>", "$KV.account-logins.>", "$KV.token-revocations.>"}),
				Subscribe: []string{"_INBOX_account.>"},
			},
		},
		{
			name:    "account owns the revocations of a streaming platform",
			service: "account",
			running: streaming,
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, ownStream("ACCOUNTS"), []string{"account.created", "account.plan_changed"},
					kv("accounts", true), kv("account-emails", true), kv("account-logins", true), kv("token-revocations", true),
					[]string{"$KV.accounts.>", "$KV.account-emails.>", "$KV.account-logins.>", "$KV.token-revocations.>"}),
				Subscribe: []string{"_INBOX_account.>"},
			},
		},
		{
			name:    "content owns the stream it publishes to and consumes from, names it once, and owns the dead letters of a streaming platform",
			service: "content",
			running: streaming,
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, ownStream("CONTENT"), ownStream("DLQ"),
					[]string{"content.created", "content.encode.requested", "content.encoded", "dlq.content.content-encoder"},
					durable("CONTENT", "content-encoder", "content.encode.requested"), kv("videos", true), kv("token-revocations", false),
					[]string{"$KV.videos.>"}),
				Subscribe: []string{"_INBOX_content.>"},
			},
		},
		{
			name:    "analytics reads every playback event through its stream's wildcard, the only subjects published there",
			service: "analytics",
			running: whole,
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, useStream("PLAYBACK"), useStream("DLQ"), []string{"dlq.analytics.analytics"},
					durable("PLAYBACK", "analytics", "playback.>"), kv("analytics", true), kv("token-revocations", false),
					[]string{"$KV.analytics.>"}),
				Subscribe: []string{"_INBOX_analytics.>"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PermissionsFor(catalogService(t, tt.service), tt.running)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffStrings(got.Publish, tt.want.Publish); d != "" {
				t.Errorf("publish:\n%s", d)
			}
			if d := diffStrings(got.Subscribe, tt.want.Subscribe); d != "" {
				t.Errorf("subscribe:\n%s", d)
			}
		})
	}
}

// On every platform each stream and bucket in use has exactly one user
// allowed to create and update it: its owner.
func TestOneUserMayChangeEachStream(t *testing.T) {
	for _, ws := range [][]catalog.Workload{{catalog.Commerce}, {catalog.Streaming}, catalog.Workloads} {
		running := catalog.BrokerServices(catalog.ForWorkloads(ws...))
		changers := map[string][]string{}
		for _, name := range running {
			perms, err := PermissionsFor(catalogService(t, name), running)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range perms.Publish {
				if st, ok := strings.CutPrefix(p, jsStreamUpdate); ok {
					changers[st] = append(changers[st], name)
				}
				if st, ok := strings.CutPrefix(p, jsStreamCreate); ok && !slices.Contains(perms.Publish, jsStreamUpdate+st) {
					t.Errorf("%v: %s may create %s but not update it", ws, name, st)
				}
			}
		}
		for _, name := range running {
			s := catalogService(t, name)
			streams, _ := s.Streams()
			for _, st := range streams {
				if len(changers[st.Name]) != 1 {
					t.Errorf("%v: %s may be changed by %v, want one owner", ws, st.Name, changers[st.Name])
				}
			}
			for _, b := range slices.Concat(s.Buckets, s.Reads) {
				if len(changers[kvStreamPrefix+b]) != 1 {
					t.Errorf("%v: %s may be changed by %v, want one owner", ws, kvStreamPrefix+b, changers[kvStreamPrefix+b])
				}
			}
		}
	}
}

// What no service may ever be allowed, whatever its row: a wildcard that
// reaches past its own names, and the JetStream calls that destroy or
// list. Deleting a consumer is allowed on KV streams only, for the watches'
// own ordered consumers.
func TestPermissionsNeverReachFurther(t *testing.T) {
	forbidden := []string{"STREAM.DELETE.", ".PURGE.", "STREAM.NAMES", "STREAM.LIST", "CONSUMER.LIST", "CONSUMER.NAMES", "MSG.DELETE", "SNAPSHOT", "RESTORE",
		"$JS.API.META", "$JS.API.SERVER", "$JS.API.ACCOUNT", "$SYS", "_INBOX."}
	for _, s := range catalog.All() {
		t.Run(s.Name, func(t *testing.T) {
			perms, err := PermissionsFor(s, catalog.BrokerServices(catalog.All()))
			if err != nil {
				t.Fatal(err)
			}
			for _, subj := range slices.Concat(perms.Publish, perms.Subscribe) {
				for _, f := range forbidden {
					if strings.Contains(subj, f) {
						t.Errorf("%s is allowed, which contains %s", subj, f)
					}
				}
				toks := strings.Split(subj, ".")
				for i, tok := range toks {
					switch {
					case tok == ">" && i == 1 && toks[0] == catalog.InboxPrefix(s.Name):
						// its own inbox
					case tok == ">" && i < 2, tok == "*" && i < 4:
						t.Errorf("%s: wildcard at token %d reaches past the service's own names", subj, i+1)
					case tok == "*" && !strings.HasPrefix(subj, jsConsumerMake+kvStreamPrefix) && !strings.HasPrefix(subj, jsConsumerDrop+kvStreamPrefix):
						t.Errorf("%s: only KV consumer names may be any name", subj)
					}
				}
			}
		})
	}
}

// The NetworkPolicies let a service reach the broker exactly when it has a
// broker user.
func TestBrokerUsersAndBrokerEgressAgree(t *testing.T) {
	for _, s := range catalog.All() {
		if usesBroker(s) != s.UsesBroker() {
			t.Errorf("%s: broker egress %v, broker user %v", s.Name, usesBroker(s), s.UsesBroker())
		}
	}
}
