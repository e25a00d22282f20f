package render

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// kvRead is what reading a bucket takes: its stream's calls, direct gets
// of its keys, ordered consumers on its keys and their flow control.
func kvRead(b string) []string {
	return []string{
		"$JS.API.STREAM.CREATE.KV_" + b, "$JS.API.STREAM.UPDATE.KV_" + b, "$JS.API.STREAM.INFO.KV_" + b,
		"$JS.API.DIRECT.GET.KV_" + b + ".$KV." + b + ".>",
		"$JS.API.CONSUMER.CREATE.KV_" + b + ".*", "$JS.API.CONSUMER.CREATE.KV_" + b + ".*.$KV." + b + ".>",
		"$JS.API.CONSUMER.DELETE.KV_" + b + ".*",
		"$JS.FC.KV_" + b + ".>",
	}
}

func streamCalls(st string) []string {
	return []string{"$JS.API.STREAM.CREATE." + st, "$JS.API.STREAM.UPDATE." + st, "$JS.API.STREAM.INFO." + st}
}

func durable(st, d string) []string {
	on := st + "." + d
	return []string{"$JS.API.CONSUMER.CREATE." + on, "$JS.API.CONSUMER.INFO." + on, "$JS.API.CONSUMER.MSG.NEXT." + on, "$JS.ACK." + on + ".>"}
}

func TestPermissionsFor(t *testing.T) {
	tests := []struct {
		name    string
		service string
		want    BrokerPermissions
	}{
		{
			name:    "the gateway has no broker user, so no permissions",
			service: catalog.Gateway,
		},
		{
			name:    "product writes its buckets and only reads the revocations",
			service: "product",
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, kvRead("products"), kvRead("stock"), kvRead("token-revocations"),
					[]string{"$KV.products.>", "$KV.stock.>"}),
				Subscribe: []string{"_INBOX_product.>"},
			},
		},
		{
			name:    "order publishes its four events, exactly",
			service: "order",
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, streamCalls("ORDERS"),
					[]string{"order.created", "order.confirmed", "order.cancelled", "order.refunded"},
					kvRead("orders"), kvRead("token-revocations"), []string{"$KV.orders.>"}),
				Subscribe: []string{"_INBOX_order.>"},
			},
		},
		{
			name:    "notification publishes no event, reads through its two durables and dead-letters what they give up on",
			service: "notification",
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, streamCalls("ORDERS"), streamCalls("PAYMENTS"), streamCalls("DLQ"),
					[]string{"dlq.notification.notification-orders", "dlq.notification.notification-payments"},
					durable("ORDERS", "notification-orders"), durable("PAYMENTS", "notification-payments"),
					kvRead("notifications"), kvRead("token-revocations"), []string{"$KV.notifications.>"}),
				Subscribe: []string{"_INBOX_notification.>"},
			},
		},
		{
			name:    "an issuer writes the revocations it reads",
			service: "account",
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, streamCalls("ACCOUNTS"), []string{"account.created", "account.plan_changed"},
					kvRead("accounts"), kvRead("account-emails"), kvRead("account-logins"), kvRead("token-revocations"),
					[]string{"$KV.accounts.>", "$KV.account-emails.>", "$KV.account-logins.>", "$KV.token-revocations.>"}),
				Subscribe: []string{"_INBOX_account.>"},
			},
		},
		{
			name:    "content consumes a subject of the stream it publishes to, which it names once",
			service: "content",
			want: BrokerPermissions{
				Publish: slices.Concat([]string{"$JS.API.INFO"}, streamCalls("CONTENT"), streamCalls("DLQ"),
					[]string{"content.created", "content.encode.requested", "content.encoded", "dlq.content.content-encoder"},
					durable("CONTENT", "content-encoder"), kvRead("videos"), kvRead("token-revocations"), []string{"$KV.videos.>"}),
				Subscribe: []string{"_INBOX_content.>"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PermissionsFor(catalogService(t, tt.service))
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

// What no service may ever be allowed, whatever its row: a wildcard that
// reaches past its own names, and the JetStream calls that destroy or
// list. Deleting a consumer is allowed on KV streams only, for the watches'
// own ordered consumers.
func TestPermissionsNeverReachFurther(t *testing.T) {
	forbidden := []string{"STREAM.DELETE.", ".PURGE.", "STREAM.NAMES", "STREAM.LIST", "CONSUMER.LIST", "CONSUMER.NAMES", "MSG.DELETE", "SNAPSHOT", "RESTORE",
		"$JS.API.META", "$JS.API.SERVER", "$JS.API.ACCOUNT", "$SYS", "_INBOX."}
	for _, s := range catalog.All() {
		t.Run(s.Name, func(t *testing.T) {
			perms, err := PermissionsFor(s)
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
