package chaos

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-dev/switchboard/internal/loopback"
)

func TestRewriter(t *testing.T) {
	c := &cluster{r: &rendered{services: []*corev1.Service{{}}}, routes: map[string]string{
		"chaos-product.chaos.svc.cluster.local:80":   "127.0.0.1:20001",
		"chaos-product.chaos.svc:9090":               "127.0.0.1:20002",
		"chaos-nats.chaos.svc.cluster.local:4222":    "127.0.0.1:20003",
		"chaos-payment.chaos.svc.cluster.local:8081": "127.0.0.1:20004",
	}}
	c.r.services[0].Name = "chaos-product"
	p := &pod{name: "chaos-order-0", ports: map[string]int{"http": 21000, "grpc": 21001}}
	ct := corev1.Container{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "grpc", ContainerPort: 9090}}}
	rw := rewriter{c: c, pod: p, container: ct, mounts: map[string]string{"/var/run/switchboard/tls": "/tmp/pod/tls", "/data": "/tmp/pod/data"}}
	for _, tc := range []struct{ in, want string }{
		{":8080", "127.0.0.1:21000"},
		{"0.0.0.0:9090", "127.0.0.1:21001"},
		{":7777", ":7777"}, // no such container port: left alone
		{"http://chaos-product.chaos.svc.cluster.local", "http://127.0.0.1:20001"},
		{"http://chaos-payment.chaos.svc.cluster.local:8081/x", "http://127.0.0.1:20004/x"},
		{"dns:///chaos-product.chaos.svc:9090", "dns:///127.0.0.1:20002"},
		{"nats://chaos-nats.chaos.svc.cluster.local:4222,nats://chaos-nats.chaos.svc.cluster.local:4222", "nats://127.0.0.1:20003,nats://127.0.0.1:20003"},
		{"/var/run/switchboard/tls", "/tmp/pod/tls"},
		{"/data/jetstream", "/tmp/pod/data/jetstream"},
		{"2s", "2s"},
	} {
		got, err := rw.value(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q → %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if got, err := rw.value("http://chaos-user.chaos.svc.cluster.local"); err == nil {
		t.Errorf("a Service nothing routes became %q", got)
	}
	conf := "listen: \"0.0.0.0:8080\"\njetstream { store_dir: \"/data/jetstream\" }\nother: \"/database\"\n"
	want := "listen: \"127.0.0.1:21000\"\njetstream { store_dir: \"/tmp/pod/data/jetstream\" }\nother: \"/database\"\n"
	if got := rw.text(conf); got != want {
		t.Errorf("config rewritten as\n%s\nwant\n%s", got, want)
	}
}

// The proxy sends each connection to a ready pod, skips pods that are not
// ready and fails over from a pod that refuses.
func TestProxyFailsOver(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	deadPort, _ := loopback.FreePort() // nothing listens there: a killed pod
	live, dead := &pod{name: "live"}, &pod{name: "dead"}
	live.ready.Store(true)
	dead.ready.Store(true) // its probe has not noticed yet
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	px, err := newProxy("test", port, []*backend{
		{pod: dead, addr: net.JoinHostPort("127.0.0.1", itoa(deadPort))},
		{pod: live, addr: echo.Addr().String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	roundTrip := func() error {
		c, err := net.DialTimeout("tcp", px.Addr(), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) != "ping" {
			t.Errorf("echoed %q", line)
		}
		return nil
	}
	for i := range 4 {
		if err := roundTrip(); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	live.ready.Store(false)
	if err := roundTrip(); err == nil {
		t.Error("a connection got through with no ready pod")
	}
}
