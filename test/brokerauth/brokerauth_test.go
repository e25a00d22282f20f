// Package brokerauth proves, on a real nats-server started from the
// rendered nats.conf, that every service's broker user can do exactly what
// its catalog row says and nothing else.
//
// Nothing here is assumed from render: the server reads the ConfigMap as a
// pod would mount it, with the environment the StatefulSet declares
// (secretKeyRefs resolved from the rendered Secrets); each service connects
// with the credentials its own Deployment refers to, through kit.ConnectBus
// with its real catalog row, exactly as `switchboard serve` does.
//
// What a service may do is stated here a second time, apart from render,
// in allowed: the catalog row read as a specification. The refusals are
// generated from it: every other service's subjects, buckets, durables and
// inbox; every stream's destructive calls; and the neighbourhood of each
// allowed subject (each token replaced, dropped or one added), which is
// where a widened permission — a literal turned into a wildcard, a "."
// turned into ".>" — would let something through. TestRefusalsCatchEveryWidening
// checks that claim for every rendered permission without a server.
//
// Two things subject permissions alone cannot see are pinned by who sends
// what: only a stream's or bucket's owner may create or update it (owner),
// and a durable is created with its one filter in the call's subject,
// which the broker holds the request to (filter).
// TestACompromisedPodCannotChangeWhatItDoesNotOwn tries both through the
// JetStream API, as a compromised pod would.
package brokerauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// owner is the one service that may create and update a stream (a bucket's
// being KV_<bucket>) on a platform running every service: the service whose
// events it holds, or that writes the bucket. The dead letters of all and
// the revocations both issuers write belong to user, the first service
// with consumers and the first issuer. Every other service using one only
// reads its info: a consumer cannot shorten the stream it reads, a second
// issuer or a verifier cannot change the revocations' bucket.
func owner(t testing.TB, stream string) string {
	switch stream {
	case catalog.DeadLetterStream, "KV_" + catalog.TokenRevocations:
		return "user"
	}
	var writers []string
	for _, s := range catalog.All() {
		for _, subj := range s.Publishes {
			if st, _ := catalog.StreamFor(subj); st.Name == stream && !slices.Contains(writers, s.Name) {
				writers = append(writers, s.Name)
			}
		}
		if slices.Contains(s.Buckets, strings.TrimPrefix(stream, "KV_")) && strings.HasPrefix(stream, "KV_") {
			writers = append(writers, s.Name)
		}
	}
	if len(writers) != 1 {
		t.Fatalf("%s is written by %v: say here which one owns it", stream, writers)
	}
	return writers[0]
}

// filter is the one subject a durable reads, which the broker checks in
// the subject of its create call: its subject, or all of its stream's
// (analytics reads every playback event).
func filter(c catalog.Consumer) string {
	if len(c.Subjects) == 1 {
		return c.Subjects[0]
	}
	st, _ := catalog.StreamFor(c.Subjects[0])
	return st.Subjects[0]
}

// allowed is what a service's broker user may publish and subscribe to,
// read from its catalog row: the specification the rendered permissions
// are held to.
func allowed(t testing.TB, s catalog.Service) (pub, sub []string) {
	if !s.UsesBroker() {
		return nil, nil
	}
	var streams []string
	for _, subj := range s.Publishes {
		st, _ := catalog.StreamFor(subj)
		if !slices.Contains(streams, st.Name) {
			streams = append(streams, st.Name)
		}
	}
	for _, c := range s.Consumers {
		st, _ := catalog.StreamFor(c.Subjects[0])
		if !slices.Contains(streams, st.Name) {
			streams = append(streams, st.Name)
		}
	}
	// A service with consumers dead-letters what they give up on.
	if len(s.Consumers) > 0 {
		streams = append(streams, "DLQ")
	}
	buckets := slices.Concat(s.Buckets, s.Reads)
	// nats.go asks the account's JetStream info before it creates a bucket.
	if slices.ContainsFunc(buckets, func(b string) bool { return owner(t, "KV_"+b) == s.Name }) {
		pub = append(pub, "$JS.API.INFO")
	}
	for _, st := range streams {
		if owner(t, st) == s.Name {
			pub = append(pub, "$JS.API.STREAM.CREATE."+st, "$JS.API.STREAM.UPDATE."+st)
		}
		pub = append(pub, "$JS.API.STREAM.INFO."+st)
	}
	pub = append(pub, s.Publishes...)
	for _, c := range s.Consumers {
		pub = append(pub, "dlq."+s.Name+"."+c.Durable)
	}
	for _, c := range s.Consumers {
		st, _ := catalog.StreamFor(c.Subjects[0])
		pub = append(pub,
			"$JS.API.CONSUMER.CREATE."+st.Name+"."+c.Durable+"."+filter(c),
			"$JS.API.CONSUMER.INFO."+st.Name+"."+c.Durable,
			"$JS.API.CONSUMER.MSG.NEXT."+st.Name+"."+c.Durable,
			"$JS.ACK."+st.Name+"."+c.Durable+".>")
		// The durable it took over from, to find where to start and to
		// delete it once taken over.
		if c.Replaces != "" {
			pub = append(pub, "$JS.API.CONSUMER.INFO."+st.Name+"."+c.Replaces, "$JS.API.CONSUMER.DELETE."+st.Name+"."+c.Replaces)
		}
	}
	for _, b := range buckets {
		if owner(t, "KV_"+b) == s.Name {
			pub = append(pub, "$JS.API.STREAM.CREATE.KV_"+b, "$JS.API.STREAM.UPDATE.KV_"+b)
		}
		pub = append(pub,
			"$JS.API.STREAM.INFO.KV_"+b,
			"$JS.API.STREAM.MSG.GET.KV_"+b,
			"$JS.API.DIRECT.GET.KV_"+b+".$KV."+b+".>",
			"$JS.API.CONSUMER.CREATE.KV_"+b,
			"$JS.API.CONSUMER.CREATE.KV_"+b+".*",
			"$JS.API.CONSUMER.CREATE.KV_"+b+".*.$KV."+b+".>",
			"$JS.API.CONSUMER.DELETE.KV_"+b+".*",
			"$JS.FC.KV_"+b+".>")
	}
	for _, b := range s.Buckets {
		pub = append(pub, "$KV."+b+".>")
	}
	return pub, []string{catalog.InboxPrefix(s.Name) + ".>"}
}

// covers reports whether permission pattern admits everything subject
// names: nats-server's rule for a publish subject (a literal) and for a
// subscription (which may itself hold wildcards).
func covers(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, pt := range p {
		switch {
		case pt == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case pt == "*":
			if s[i] == ">" {
				return false
			}
		case pt != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

func coveredBy(patterns []string, subject string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return covers(p, subject) })
}

// neighbours are subjects next to pattern: each token replaced by another,
// with or without the tokens after it, each shorter prefix, and one token
// more. Wildcards of pattern stand for a token.
func neighbours(pattern string) []string {
	toks := strings.Split(pattern, ".")
	concrete := make([]string, len(toks))
	for i, t := range toks {
		concrete[i] = t
		if t == "*" || t == ">" {
			concrete[i] = "k"
		}
	}
	var out []string
	for i := range concrete {
		x := slices.Clone(concrete)
		x[i] = "zz"
		out = append(out, strings.Join(x, "."), strings.Join(x[:i+1], "."))
		if i > 0 {
			out = append(out, strings.Join(concrete[:i], "."))
		}
	}
	return append(out, strings.Join(concrete, ".")+".zz")
}

// probes are the subjects s must be refused: published, then subscribed.
func probes(t testing.TB, s catalog.Service) (pub, sub []string) {
	okPub, okSub := allowed(t, s)
	add := func(dst *[]string, ok []string, subjects ...string) {
		for _, subj := range subjects {
			if !coveredBy(ok, subj) && !slices.Contains(*dst, subj) {
				*dst = append(*dst, subj)
			}
		}
	}
	for _, p := range okPub {
		add(&pub, okPub, neighbours(p)...)
	}
	for _, p := range okSub {
		add(&sub, okSub, neighbours(p)...)
	}

	// Every other service's events, dead letters, durables and inbox.
	// Its own durables with any other filter, or none (then the filter
	// travels in the request body, where no permission reaches it), and
	// through the older create call, which never carries one.
	for _, c := range s.Consumers {
		st, _ := catalog.StreamFor(c.Subjects[0])
		on := st.Name + "." + c.Durable
		add(&pub, okPub, "$JS.API.CONSUMER.CREATE."+on, "$JS.API.CONSUMER.CREATE."+on+"."+st.Subjects[0],
			"$JS.API.CONSUMER.CREATE."+on+".>", "$JS.API.CONSUMER.DURABLE.CREATE."+on)
		for _, o := range catalog.All() {
			for _, subj := range o.Publishes {
				if ost, _ := catalog.StreamFor(subj); ost.Name == st.Name {
					add(&pub, okPub, "$JS.API.CONSUMER.CREATE."+on+"."+subj)
				}
			}
		}
		// A durable of a name not in its row, on a stream it reads.
		add(&pub, okPub, "$JS.API.CONSUMER.CREATE."+st.Name+"."+s.Name+"-intruder."+filter(c))
	}
	for _, o := range catalog.All() {
		add(&pub, okPub, o.Publishes...)
		for _, c := range o.Consumers {
			add(&pub, okPub, "dlq."+o.Name+"."+c.Durable)
		}
		add(&pub, okPub, "dlq."+o.Name+".k")
		add(&sub, okSub, catalog.InboxPrefix(o.Name)+".>", catalog.InboxPrefix(o.Name)+".k")
		for _, c := range o.Consumers {
			st, _ := catalog.StreamFor(c.Subjects[0])
			on := st.Name + "." + c.Durable
			add(&pub, okPub, "$JS.API.CONSUMER.CREATE."+on, "$JS.API.CONSUMER.CREATE."+on+"."+filter(c),
				"$JS.API.CONSUMER.DURABLE.CREATE."+on, "$JS.API.CONSUMER.MSG.NEXT."+on, "$JS.API.CONSUMER.INFO."+on,
				"$JS.API.CONSUMER.DELETE."+on, "$JS.API.CONSUMER.PAUSE."+on, "$JS.API.CONSUMER.RESET."+on, "$JS.API.CONSUMER.UNPIN."+on,
				"$JS.ACK."+on+".1.1.1.1.0")
		}
		add(&sub, okSub, o.Publishes...)
	}
	// Every stream and bucket: the calls that destroy or list, and the
	// data of buckets the service does not use.
	var streams []string
	for _, st := range catalog.Streams {
		streams = append(streams, st.Name)
	}
	for _, b := range catalog.KVBuckets {
		streams = append(streams, "KV_"+b.Name)
		add(&pub, okPub, "$KV."+b.Name+".k", "$JS.API.DIRECT.GET.KV_"+b.Name+".$KV."+b.Name+".k", "$JS.API.DIRECT.GET.KV_"+b.Name,
			"$JS.API.CONSUMER.CREATE.KV_"+b.Name+".w.$KV."+b.Name+".>")
		add(&sub, okSub, "$KV."+b.Name+".>")
	}
	for _, st := range streams {
		add(&pub, okPub, "$JS.API.STREAM.DELETE."+st, "$JS.API.STREAM.PURGE."+st, "$JS.API.STREAM.MSG.DELETE."+st,
			"$JS.API.STREAM.MSG.GET."+st, "$JS.API.STREAM.SNAPSHOT."+st, "$JS.API.STREAM.RESTORE."+st,
			"$JS.API.STREAM.CREATE."+st, "$JS.API.STREAM.UPDATE."+st, "$JS.API.STREAM.INFO."+st,
			"$JS.API.CONSUMER.CREATE."+st, "$JS.API.CONSUMER.CREATE."+st+".intruder", "$JS.API.CONSUMER.LIST."+st, "$JS.API.CONSUMER.NAMES."+st,
			"$JS.API.STREAM.LEADER.STEPDOWN."+st)
	}
	// Dead letters are read and replayed by people, as the administrative
	// user: no service reads them.
	add(&pub, okPub, "$JS.API.CONSUMER.CREATE.DLQ", "$JS.API.CONSUMER.CREATE.DLQ.k.dlq.>", "$JS.API.DIRECT.GET.DLQ")
	add(&sub, okSub, "dlq.>")
	add(&pub, okPub, "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.META.LEADER.STEPDOWN", "$JS.API.SERVER.REMOVE",
		"$JS.API.ACCOUNT.PURGE.$G", "$SYS.REQ.SERVER.PING", "_INBOX.k", "zz")
	add(&sub, okSub, ">", "_INBOX.>", "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$JS.EVENT.>", "$SYS.>", "$KV.>", "zz")
	return pub, sub
}

// brokerServices are the services with a broker user.
func brokerServices() []catalog.Service {
	var out []catalog.Service
	for _, s := range catalog.All() {
		if s.UsesBroker() {
			out = append(out, s)
		}
	}
	return out
}

// rendered is one render of a Platform running every service.
type rendered struct {
	p    *v1alpha1.Platform
	objs []client.Object
}

func renderPlatform(t *testing.T) rendered {
	t.Helper()
	p := testgen.Platform("shop", testgen.WithNamespace("demo"), testgen.WithImage("example.test/switchboard:brokerauth"))
	opts, err := render.KeepSecrets(p, nil, &render.BrokerUserKeeper{Cost: bcrypt.MinCost}, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	objs, err := render.Platform(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rendered{p: p, objs: objs}
}

func find[T client.Object](t *testing.T, r rendered, name string) T {
	t.Helper()
	for _, o := range r.objs {
		if typed, ok := o.(T); ok && o.GetName() == name {
			return typed
		}
	}
	var zero T
	t.Fatalf("no %T %s rendered", zero, name)
	return zero
}

func secretValue(t *testing.T, r rendered, ref *corev1.SecretKeySelector) string {
	t.Helper()
	v, ok := find[*corev1.Secret](t, r, ref.Name).Data[ref.Key]
	if !ok {
		t.Fatalf("Secret %s has no key %s", ref.Name, ref.Key)
	}
	return string(v)
}

// startBroker runs nats-server from the rendered ConfigMap and the
// environment the StatefulSet gives it. Only where it listens and stores
// changes.
func startBroker(t *testing.T, r rendered) (string, *server.Options) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(find[*corev1.ConfigMap](t, r, render.BrokerConfigName(r.p)).Data["nats.conf"]), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, e := range find[*appsv1.StatefulSet](t, r, render.BrokerName(r.p)).Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			t.Setenv(e.Name, secretValue(t, r, e.ValueFrom.SecretKeyRef))
		}
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("the rendered nats.conf does not parse: %v", err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", server.RANDOM_PORT, 0
	opts.StoreDir = t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return ns.ClientURL(), opts
}

func routeCredentials(t *testing.T, r rendered) render.Credentials {
	t.Helper()
	c, ok := render.CredentialsFromSecret(find[*corev1.Secret](t, r, render.AuthSecretName(r.p)))
	if !ok {
		t.Fatalf("%s is incomplete", render.AuthSecretName(r.p))
	}
	return c
}

// credentials are what a service's Deployment hands its container.
func credentials(t *testing.T, r rendered, svc string) (user, password string) {
	t.Helper()
	d := find[*appsv1.Deployment](t, r, render.ObjectName(r.p, svc))
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		switch {
		case e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil:
		case e.Name == catalog.EnvNATSUser:
			user = secretValue(t, r, e.ValueFrom.SecretKeyRef)
		case e.Name == catalog.EnvNATSPassword:
			password = secretValue(t, r, e.ValueFrom.SecretKeyRef)
		}
	}
	if user == "" || password == "" {
		t.Fatalf("Deployment %s hands its container no broker credentials", d.Name)
	}
	return user, password
}

// logBuffer collects a service's log, where kit reports the broker's
// asynchronous errors (a refused publish or subscription among them).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type connected struct {
	svc catalog.Service
	bus *kit.Bus
	log *logBuffer
}

// brokerServicesEnv is BROKER_SERVICES as a service's Deployment sets it:
// the platform's services that use the broker, from which it learns which
// streams and buckets it owns.
func brokerServicesEnv(t *testing.T, r rendered, svc string) []string {
	t.Helper()
	d := find[*appsv1.Deployment](t, r, render.ObjectName(r.p, svc))
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == catalog.EnvBrokerServices {
			return strings.Split(e.Value, ",")
		}
	}
	t.Fatalf("Deployment %s sets no %s", d.Name, catalog.EnvBrokerServices)
	return nil
}

// connectAll connects every service with a broker user, all at once as
// their pods start: each creates what it owns and waits for the rest, so
// one at a time would wait for owners not started yet.
func connectAll(t *testing.T, r rendered, url string) []connected {
	t.Helper()
	svcs := brokerServices()
	out := make([]connected, len(svcs))
	errs := make([]error, len(svcs))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, svc := range svcs {
		user, password := credentials(t, r, svc.Name)
		cfg := kit.Config{Service: svc, NATSURL: url, NATSUser: user, NATSPassword: password,
			BrokerServices: brokerServicesEnv(t, r, svc.Name)}
		lb := &logBuffer{}
		out[i] = connected{svc: svc, log: lb}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].bus, errs[i] = kit.ConnectBus(ctx, cfg, slog.New(slog.NewTextHandler(lb, nil)), kit.NewMetrics(svc.Name))
		}()
	}
	wg.Wait()
	for i, c := range out {
		if errs[i] != nil {
			t.Fatalf("%s: ConnectBus: %v\n%s", c.svc.Name, errs[i], c.log)
		}
		t.Cleanup(c.bus.Close)
	}
	return out
}

func event(subject, id string) []byte {
	b, _ := json.Marshal(kit.Event{ID: id, Type: subject, Source: "brokerauth", Time: time.Now().UTC(), Data: json.RawMessage(`{}`)})
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEveryServiceCanDoExactlyItsCatalogRow(t *testing.T) {
	r := renderPlatform(t)
	url, opts := startBroker(t, r)

	t.Run("the rendered permissions stay within the catalog row", func(t *testing.T) {
		users := map[string]*server.User{}
		for _, u := range opts.Users {
			users[u.Username] = u
		}
		for _, s := range brokerServices() {
			u := users[s.Name]
			if u == nil || u.Permissions == nil || u.Permissions.Publish == nil || u.Permissions.Subscribe == nil {
				t.Errorf("%s: no user with publish and subscribe permissions", s.Name)
				continue
			}
			pub, sub := allowed(t, s)
			for dir, lists := range map[string][2][]string{
				"publish": {u.Permissions.Publish.Allow, pub}, "subscribe": {u.Permissions.Subscribe.Allow, sub},
			} {
				for _, p := range lists[0] {
					if !coveredBy(lists[1], p) {
						t.Errorf("%s may %s %s, which its catalog row does not ask for", s.Name, dir, p)
					}
				}
			}
			if len(u.Permissions.Publish.Deny)+len(u.Permissions.Subscribe.Deny) != 0 || u.Permissions.Response != nil {
				t.Errorf("%s: deny lists or response permissions: %+v", s.Name, u.Permissions)
			}
			delete(users, s.Name)
		}
		// What is left is the administrative user: the broker's route
		// credentials, which no service's pod may read.
		admin := routeCredentials(t, r)
		if u := users[admin.NATSUser]; u == nil || u.Permissions != nil {
			t.Errorf("the administrative user %+v, want the route credentials' user without limits", u)
		}
		delete(users, admin.NATSUser)
		for name := range users {
			t.Errorf("user %s is no service of the catalog", name)
		}
		for _, o := range r.objs {
			d, ok := o.(*appsv1.Deployment)
			if !ok {
				continue
			}
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == render.AuthSecretName(r.p) {
					t.Errorf("%s reads the administrative user's %s", d.Name, e.Name)
				}
			}
		}
	})

	conns := connectAll(t, r, url)

	// Publish every event and write every bucket first, so each consumer
	// and reader below finds something of its producers.
	for _, c := range conns {
		t.Run(c.svc.Name+" publishes its events and writes its buckets", func(t *testing.T) {
			ctx := ctxT(t)
			for _, subj := range c.svc.Publishes {
				if _, err := c.bus.JS.Publish(ctx, subj, event(subj, c.svc.Name+":"+subj), jetstream.WithMsgID(c.svc.Name+":"+subj)); err != nil {
					t.Errorf("publish %s: %v", subj, err)
				}
			}
			for _, b := range c.svc.Buckets {
				kv := c.bus.Bucket(b)
				key := "from-" + c.svc.Name
				rev, err := kv.Put(ctx, key, []byte("v1"))
				if err != nil {
					t.Fatalf("%s: put: %v", b, err)
				}
				if _, err := kv.Update(ctx, key, []byte("v2"), rev); err != nil {
					t.Errorf("%s: update: %v", b, err)
				}
				if _, err := kv.Create(ctx, "scratch-"+c.svc.Name, []byte("x")); err != nil {
					t.Errorf("%s: create: %v", b, err)
				}
				if err := kv.Delete(ctx, "scratch-"+c.svc.Name); err != nil {
					t.Errorf("%s: delete: %v", b, err)
				}
				if e, err := kv.Get(ctx, key); err != nil || string(e.Value()) != "v2" {
					t.Errorf("%s: get: %v", b, err)
				}
			}
		})
	}
	for _, c := range conns {
		t.Run(c.svc.Name+" consumes its durables and reads its buckets", func(t *testing.T) {
			ctx := ctxT(t)
			for _, d := range c.svc.Consumers {
				cons, err := c.bus.CreateConsumer(ctx, d.Durable, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
				if err != nil {
					t.Fatalf("create %s: %v", d.Durable, err)
				}
				if _, err := cons.Info(ctx); err != nil {
					t.Errorf("%s: info: %v", d.Durable, err)
				}
				var got []string
				for len(got) < len(d.Subjects) {
					batch, err := cons.Fetch(len(d.Subjects)-len(got), jetstream.FetchMaxWait(5*time.Second))
					if err != nil {
						t.Fatalf("%s: fetch: %v", d.Durable, err)
					}
					n := 0
					for m := range batch.Messages() {
						n++
						got = append(got, m.Subject())
						if err := m.DoubleAck(ctx); err != nil {
							t.Errorf("%s: ack %s: %v", d.Durable, m.Subject(), err)
						}
					}
					if n == 0 {
						t.Fatalf("%s: got %v of %v: %v", d.Durable, got, d.Subjects, batch.Error())
					}
				}
				slices.Sort(got)
				want := slices.Sorted(slices.Values(d.Subjects))
				if !slices.Equal(got, want) {
					t.Errorf("%s read %v, want one event of each of %v", d.Durable, got, want)
				}
				// What the consumer gives up on goes to its dead-letter
				// subject, as kit's Bus.DeadLetter publishes it.
				subj := catalog.DeadLetterSubject(c.svc.Name, d.Durable)
				if _, err := c.bus.JS.Publish(ctx, subj, []byte("{}"), jetstream.WithMsgID("dlq:"+d.Durable)); err != nil {
					t.Errorf("%s: dead-letter to %s: %v", d.Durable, subj, err)
				}
			}
			for _, b := range slices.Concat(c.svc.Buckets, c.svc.Reads) {
				kv := c.bus.Bucket(b)
				var writers []string
				for _, o := range catalog.All() {
					if slices.Contains(o.Buckets, b) {
						writers = append(writers, "from-"+o.Name)
					}
				}
				for _, key := range writers {
					if _, err := kv.Get(ctx, key); err != nil {
						t.Errorf("%s: get %s: %v", b, key, err)
					}
				}
				keys, err := kv.Keys(ctx)
				if err != nil {
					t.Errorf("%s: keys: %v", b, err)
				}
				slices.Sort(keys)
				slices.Sort(writers)
				if !slices.Equal(keys, writers) {
					t.Errorf("%s: keys %v, want %v", b, keys, writers)
				}
				w, err := kv.WatchAll(ctx)
				if err != nil {
					t.Fatalf("%s: watch: %v", b, err)
				}
				var seen []string
				for e := range w.Updates() {
					if e == nil {
						break // the initial values are all in
					}
					seen = append(seen, e.Key())
				}
				if err := w.Stop(); err != nil {
					t.Errorf("%s: stop watching: %v", b, err)
				}
				if len(seen) < len(writers) {
					t.Errorf("%s: the watch saw %v, want %v", b, seen, writers)
				}
				if _, err := kv.Status(ctx); err != nil {
					t.Errorf("%s: status: %v", b, err)
				}
			}
			if err := c.bus.Ready(ctx); err != nil {
				t.Errorf("readiness: %v", err)
			}
		})
	}
	for _, c := range conns {
		c.bus.Close()
		if l := c.log.String(); strings.Contains(l, "Permissions Violation") || strings.Contains(l, "level=ERROR") {
			t.Errorf("%s: the broker refused something it needs:\n%s", c.svc.Name, l)
		}
	}
}

// refused publishes subj (or subscribes to it) and reports whether the
// broker refused it. The broker answers a refusal with an -ERR before the
// PONG of the flush that follows, so no waiting is involved.
func refused(t *testing.T, nc *nats.Conn, subscribe bool, subj string) bool {
	t.Helper()
	what := "Publish to"
	if subscribe {
		what = "Subscription to"
		sub, err := nc.SubscribeSync(subj)
		if err != nil {
			t.Fatalf("subscribe %s: %v", subj, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	} else if err := nc.Publish(subj, []byte("{}")); err != nil {
		t.Fatalf("publish %s: %v", subj, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	err := nc.LastError()
	return err != nil && strings.Contains(err.Error(), fmt.Sprintf("Permissions Violation for %s %q", what, subj))
}

func TestEveryServiceIsRefusedEverythingElse(t *testing.T) {
	r := renderPlatform(t)
	url, _ := startBroker(t, r)
	conns := map[string]connected{}
	for _, c := range connectAll(t, r, url) {
		conns[c.svc.Name] = c
	}
	ctx := ctxT(t)
	// Something in every stream and bucket, to see that nothing is lost.
	for _, c := range conns {
		for _, subj := range c.svc.Publishes {
			if _, err := c.bus.JS.Publish(ctx, subj, event(subj, subj), jetstream.WithMsgID(subj)); err != nil {
				t.Fatal(err)
			}
		}
		for _, b := range c.svc.Buckets {
			if _, err := c.bus.Bucket(b).Put(ctx, "kept-"+c.svc.Name, []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, s := range brokerServices() {
		t.Run(s.Name, func(t *testing.T) {
			user, password := credentials(t, r, s.Name)
			nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.CustomInboxPrefix(catalog.InboxPrefix(s.Name)),
				nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			pub, sub := probes(t, s)
			for _, subj := range pub {
				if !refused(t, nc, false, subj) {
					t.Errorf("%s may publish %s", s.Name, subj)
				}
			}
			for _, subj := range sub {
				if !refused(t, nc, true, subj) {
					t.Errorf("%s may subscribe to %s", s.Name, subj)
				}
			}
			if !nc.IsConnected() {
				t.Fatal("the probes cost the connection")
			}
			t.Logf("%s: %d publish and %d subscribe refusals", s.Name, len(pub), len(sub))
		})
	}

	t.Run("nothing the refusals tried took effect", func(t *testing.T) {
		// A context of its own: the probes before may take a while on a
		// loaded machine.
		ctx := ctxT(t)
		for _, c := range conns {
			for _, subj := range c.svc.Publishes {
				st, _ := catalog.StreamFor(subj)
				stream, err := c.bus.JS.Stream(ctx, st.Name)
				if err != nil {
					t.Errorf("stream %s: %v", st.Name, err)
					continue
				}
				info, err := stream.Info(ctx)
				if err != nil || info.State.Msgs == 0 {
					t.Errorf("stream %s lost its events: %v", st.Name, err)
				}
			}
			for _, b := range c.svc.Buckets {
				keys, err := c.bus.Bucket(b).Keys(ctx)
				if err != nil {
					t.Errorf("%s: %v", b, err)
					continue
				}
				for _, k := range keys {
					if !strings.HasPrefix(k, "kept-") {
						t.Errorf("bucket %s holds %q, written by a refused publish", b, k)
					}
				}
			}
		}
	})
}

// What a compromised pod would try first, through the JetStream API as a
// client would call it: change a stream or bucket it does not own, read
// more of a stream than its durables' filters, take another service's
// durable. Each is refused, and the streams, bucket and durables keep the
// settings their owners gave them.
func TestACompromisedPodCannotChangeWhatItDoesNotOwn(t *testing.T) {
	r := renderPlatform(t)
	url, _ := startBroker(t, r)
	conns := map[string]connected{}
	for _, c := range connectAll(t, r, url) {
		conns[c.svc.Name] = c
	}
	// Long enough for the refused calls below, which wait out their own.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, svc := range []string{"notification", "user"} {
		for _, d := range conns[svc].svc.Consumers {
			if _, err := conns[svc].bus.CreateConsumer(ctx, d.Durable, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
				t.Fatalf("%s: %v", d.Durable, err)
			}
		}
	}
	admin := routeCredentials(t, r)
	anc, err := nats.Connect(url, nats.UserInfo(admin.NATSUser, admin.NATSPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	ajs, err := jetstream.New(anc)
	if err != nil {
		t.Fatal(err)
	}
	streamConfig := func(t *testing.T, name string) jetstream.StreamConfig {
		st, err := ajs.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		return st.CachedInfo().Config
	}
	consumerConfig := func(t *testing.T, stream, durable string) jetstream.ConsumerConfig {
		c, err := ajs.Consumer(ctx, stream, durable)
		if err != nil {
			t.Fatalf("consumer %s: %v", durable, err)
		}
		return c.CachedInfo().Config
	}
	before := map[string]jetstream.StreamConfig{}
	for _, st := range []string{"ORDERS", "PLAYBACK", "DLQ", "KV_" + catalog.TokenRevocations} {
		before[st] = streamConfig(t, st)
	}
	durables := map[string]jetstream.ConsumerConfig{
		"notification-order-confirmed": consumerConfig(t, "ORDERS", "notification-order-confirmed"),
		"user-points":                  consumerConfig(t, "ORDERS", "user-points"),
	}
	shorter := func(st string) jetstream.StreamConfig {
		c := before[st]
		c.MaxAge = time.Second
		return c
	}
	consumer := func(durable string, filters ...string) jetstream.ConsumerConfig {
		c := jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: filters}
		if len(filters) == 1 {
			c.FilterSubject, c.FilterSubjects = filters[0], nil
		}
		return c
	}
	// createCall sends a consumer create request by hand, to subject with
	// config in the body, and returns the error the JetStream API answers.
	createCall := func(stream, subject string, config map[string]any) func(context.Context, jetstream.JetStream, *nats.Conn) error {
		return func(ctx context.Context, _ jetstream.JetStream, nc *nats.Conn) error {
			body, _ := json.Marshal(map[string]any{"stream_name": stream, "config": config})
			msg, err := nc.RequestWithContext(ctx, subject, body)
			if err != nil {
				return err
			}
			var resp struct {
				Error *struct{ Description string } `json:"error"`
			}
			if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.Error == nil {
				return nil
			}
			return errors.New(resp.Error.Description)
		}
	}
	// A forged create call: the allowed subject, with another filter in
	// the body. The broker holds the body to the subject.
	forged := createCall("ORDERS", "$JS.API.CONSUMER.CREATE.ORDERS.notification-order-confirmed.order.confirmed",
		map[string]any{"durable_name": "notification-order-confirmed", "ack_policy": "explicit", "filter_subject": "order.created"})
	type attack struct {
		name, service string
		try           func(ctx context.Context, js jetstream.JetStream, nc *nats.Conn) error
		// permission: the broker refuses the call's subject; otherwise it
		// answers the call with an error.
		permission bool
	}
	var attacks []attack
	for _, tt := range []attack{
		{"notification shortens ORDERS, which it reads", "notification", func(ctx context.Context, js jetstream.JetStream, _ *nats.Conn) error {
			_, err := js.UpdateStream(ctx, shorter("ORDERS"))
			return err
		}, true},
		{"notification shortens the dead letters it writes", "notification", func(ctx context.Context, js jetstream.JetStream, _ *nats.Conn) error {
			_, err := js.UpdateStream(ctx, shorter("DLQ"))
			return err
		}, true},
		{"analytics shortens PLAYBACK, which it reads", "analytics", func(ctx context.Context, js jetstream.JetStream, _ *nats.Conn) error {
			_, err := js.UpdateStream(ctx, shorter("PLAYBACK"))
			return err
		}, true},
		{"product, a verifier, forgets revocations after a second", "product", func(ctx context.Context, js jetstream.JetStream, _ *nats.Conn) error {
			_, err := js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: catalog.TokenRevocations, TTL: time.Second})
			return err
		}, true},
		{"account, the second issuer, forgets revocations after a second", "account", func(ctx context.Context, js jetstream.JetStream, _ *nats.Conn) error {
			_, err := js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: catalog.TokenRevocations, TTL: time.Second})
			return err
		}, true},
		{"notification re-creates its durable reading order.created", "notification", func(ctx context.Context, js jetstream.JetStream, _ *nats.Conn) error {
			_, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", consumer("notification-order-confirmed", "order.created"))
			return err
		}, true},
		{"notification re-creates its durable reading all of ORDERS", "notification", func(ctx context.Context, js jetstream.JetStream, _ *nats.Conn) error {
			_, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", consumer("notification-order-confirmed", "order.>"))
			return err
		}, true},
		{"notification re-creates its durable with a second filter", "notification", func(ctx context.Context, js jetstream.JetStream, _ *nats.Conn) error {
			_, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", consumer("notification-order-confirmed", "order.confirmed", "order.created"))
			return err
		}, true},
		{"notification forges its durable's create call with another filter", "notification", forged, false},
		{"order makes a durable on its bucket's stream through the legacy ephemeral endpoint it may use", "order",
			createCall("KV_orders", "$JS.API.CONSUMER.CREATE.KV_orders", map[string]any{"durable_name": "order-spy", "ack_policy": "explicit", "deliver_policy": "all"}), false},
		{"notification takes user's durable", "notification", func(ctx context.Context, js jetstream.JetStream, _ *nats.Conn) error {
			_, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", consumer("user-points", "order.confirmed"))
			return err
		}, true},
		{"notification makes a durable of a name of its own but not in its row", "notification", func(ctx context.Context, js jetstream.JetStream, _ *nats.Conn) error {
			_, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", consumer("notification-spy", "order.created"))
			return err
		}, true},
	} {
		attacks = append(attacks, tt)
	}
	// All at once, as each refused call waits out its context (the
	// broker never answers it), then judged one by one.
	type outcome struct{ err, last error }
	outcomes := make([]outcome, len(attacks))
	var wg sync.WaitGroup
	for i, tt := range attacks {
		user, password := credentials(t, r, tt.service)
		nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.CustomInboxPrefix(catalog.InboxPrefix(tt.service)),
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			actx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			err := tt.try(actx, js, nc)
			outcomes[i] = outcome{err: err, last: nc.LastError()}
		}()
	}
	wg.Wait()
	for i, tt := range attacks {
		t.Run(tt.name, func(t *testing.T) {
			o := outcomes[i]
			if o.err == nil {
				t.Fatal("the call succeeded")
			}
			if violated := o.last != nil && strings.Contains(o.last.Error(), "Permissions Violation"); violated != tt.permission {
				t.Errorf("%v; the broker's last word: %v", o.err, o.last)
			}
		})
	}
	t.Run("the streams, the bucket and the durables are as their owners made them", func(t *testing.T) {
		for st, want := range before {
			if got := streamConfig(t, st); got.MaxAge != want.MaxAge || got.MaxBytes != want.MaxBytes {
				t.Errorf("%s: max age %v, max bytes %d; was %v, %d", st, got.MaxAge, got.MaxBytes, want.MaxAge, want.MaxBytes)
			}
		}
		for d, want := range durables {
			if got := consumerConfig(t, "ORDERS", d); got.FilterSubject != want.FilterSubject || !slices.Equal(got.FilterSubjects, want.FilterSubjects) {
				t.Errorf("%s: filters %q %v, was %q %v", d, got.FilterSubject, got.FilterSubjects, want.FilterSubject, want.FilterSubjects)
			}
		}
		if _, err := ajs.Consumer(ctx, "ORDERS", "notification-spy"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("notification-spy: %v, want not found", err)
		}
	})
}

// The gateway has no broker user: no Secret, no env, and no way in.
func TestTheGatewayCannotConnect(t *testing.T) {
	r := renderPlatform(t)
	url, _ := startBroker(t, r)
	d := find[*appsv1.Deployment](t, r, render.ObjectName(r.p, catalog.Gateway))
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if strings.HasPrefix(e.Name, "NATS_") {
			t.Errorf("the gateway's container has %s", e.Name)
		}
	}
	for _, o := range r.objs {
		if o.GetName() == render.BrokerUserSecretName(r.p, catalog.Gateway) {
			t.Errorf("%s is rendered", o.GetName())
		}
	}
	tries := map[string][]nats.Option{"no credentials": nil, "as gateway": {nats.UserInfo(catalog.Gateway, "")}}
	for _, s := range brokerServices() {
		_, pw := credentials(t, r, s.Name)
		tries["as gateway with "+s.Name+"'s password"] = []nats.Option{nats.UserInfo(catalog.Gateway, pw)}
	}
	for name, opts := range tries {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			nc.Close()
			t.Errorf("connected %s", name)
		} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(err.Error(), "Authorization Violation") {
			t.Errorf("%s: %v, want an authorization violation", name, err)
		}
	}
}

// Widening any rendered permission must make the refusals fail: for every
// permission, each of its literal tokens turned into "*", the permission
// cut short into "…>" at each token, and ">" added to its list, some probe
// of the service must be admitted by the widened permission. (Widenings
// the catalog row already grants are none.)
func TestRefusalsCatchEveryWidening(t *testing.T) {
	for _, s := range brokerServices() {
		t.Run(s.Name, func(t *testing.T) {
			perms, err := render.PermissionsFor(s, catalog.BrokerServices(catalog.All()))
			if err != nil {
				t.Fatal(err)
			}
			okPub, okSub := allowed(t, s)
			pub, sub := probes(t, s)
			for _, dir := range []struct {
				name            string
				rendered, ok, p []string
			}{{"publish", perms.Publish, okPub, pub}, {"subscribe", perms.Subscribe, okSub, sub}} {
				widenings := []string{">"}
				for _, perm := range dir.rendered {
					toks := strings.Split(perm, ".")
					for i, tok := range toks {
						if tok == "*" || tok == ">" {
							continue
						}
						star := slices.Clone(toks)
						star[i] = "*"
						widenings = append(widenings, strings.Join(star, "."), strings.Join(append(slices.Clone(toks[:i]), ">"), "."))
					}
				}
				for _, w := range widenings {
					if coveredBy(dir.ok, w) {
						continue // granted already: no widening
					}
					if !slices.ContainsFunc(dir.p, func(q string) bool { return covers(w, q) }) {
						t.Errorf("%s %s: no refusal would notice the permission %s", s.Name, dir.name, w)
					}
				}
			}
		})
	}
}

func TestCovers(t *testing.T) {
	for _, tt := range []struct {
		pattern, subject string
		want             bool
	}{
		{"a.b", "a.b", true}, {"a.b", "a.c", false}, {"a.b", "a.b.c", false}, {"a.b.c", "a.b", false},
		{"a.*", "a.b", true}, {"a.*", "a.b.c", false}, {"a.*", "a.*", true}, {"a.*", "a.>", false},
		{"a.>", "a.b", true}, {"a.>", "a.b.c", true}, {"a.>", "a", false}, {"a.>", "a.>", true}, {"a.>", "a.*.c", true},
		{">", "a", true}, {"*", "a.b", false}, {"a.b.>", "a.>", false},
	} {
		if got := covers(tt.pattern, tt.subject); got != tt.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tt.pattern, tt.subject, got, tt.want)
		}
	}
}
