package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/internal/pki"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/local"
)

// The gateway against the proxy people already use: GET /products/{id}
// direct to product's API port (mutual TLS, as the gateway), through the
// gateway, and through Debian's nginx configured the same way: plain HTTP
// in front, a keep-alive pool of HTTP/1.1 connections behind, TLS 1.3 with
// the gateway's client certificate to the service.
//
// Throughput is wrk's, at 16 connections: wrk speaks plain HTTP to both
// proxies, and cannot present a client certificate, so the direct leg and
// the added latency come from this package's own client, the same for all
// three legs.

// proxyConns is the number of connections (wrk's -c, and the Go client's
// concurrent callers).
const proxyConns = 16

// wrkDuration is each wrk leg's length; wrkRounds alternates the two
// proxies that many times and keeps each one's median round.
const (
	wrkDuration = 5 * time.Second
	wrkRounds   = 3
)

// startNginx runs nginx in front of product as the gateway is, and returns
// the URL of the product read through it and the master's process id. The
// process ends with the test.
func startNginx(b *testing.B, p *local.Platform) (string, int, error) {
	dir := b.TempDir()
	// The gateway's identity, as files: nginx reads its client certificate
	// from disk.
	leaf, err := pki.Issue(p.CA, p.Base.Sibling(catalog.Gateway), nil, time.Hour, time.Now(), nil)
	if err != nil {
		return "", 0, err
	}
	for name, data := range map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return "", 0, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	upstream := strings.TrimPrefix(p.URLs[svcProduct], "https://")
	conf := fmt.Sprintf(nginxConf, dir, upstream, addr)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		return "", 0, err
	}
	var out bytes.Buffer
	cmd := exec.Command("nginx", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	b.Cleanup(func() {
		// SIGQUIT: the master stops its workers and exits.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		_ = cmd.Wait()
	})
	url := "http://" + addr + "/api/product/products/keyboard"
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := call("GET", url, "", nil)
		if err == nil && st == http.StatusOK {
			return url, cmd.Process.Pid, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return "", 0, fmt.Errorf("nginx did not answer 200 (status %d, %v): %s%s", st, err, out.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nginxConf is nginx as the gateway for the product route: 2 workers (the
// gateway is one process on the same 2 cores), no access log (the gateway
// logs no successful request either), HTTP/1.1 keep-alive to the upstream
// with the gateway's certificate, and the same forwarded headers.
//
// nginx checks a server certificate's host name, and the services' carry
// their SPIFFE ID only, so it does not verify the service's certificate;
// the gateway does, once per connection, which keep-alive makes rare.
const nginxConf = `daemon off;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
user root;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream product {
		server %[2]s;
		keepalive 64;
	}
	server {
		listen %[3]s;
		location /api/product/ {
			proxy_pass https://product/;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $proxy_host;
			proxy_set_header X-Forwarded-For $remote_addr;
			proxy_set_header X-Request-ID $request_id;
			proxy_ssl_certificate %[1]s/tls.crt;
			proxy_ssl_certificate_key %[1]s/tls.key;
			proxy_ssl_protocols TLSv1.3;
			proxy_ssl_session_reuse on;
			proxy_buffering off;
		}
	}
}
`

// wrkResult is one wrk run, with the CPU the servers used for it.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	// goCPU and nginxCPU are the CPU time per request of this process
	// (gateway, product, NATS) and of nginx's processes; goRW and nginxRW
	// their read and write system calls per request.
	goCPU, nginxCPU time.Duration
	goRW, nginxRW   float64
}

// processCPU is the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// usage is CPU time and the count of read and write system calls
// (read(2), write(2), recvfrom(2), sendto(2) and the like) from /proc.
type usage struct {
	cpu time.Duration
	rw  int64
}

func (u usage) sub(v usage) usage { return usage{cpu: u.cpu - v.cpu, rw: u.rw - v.rw} }

// ioCalls is the read and write system calls a process has made (syscr
// and syscw of /proc/<pid>/io); pid "self" is this one.
func ioCalls(pid string) int64 {
	data, _ := os.ReadFile(filepath.Join("/proc", pid, "io"))
	var n int64
	for _, l := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		if k == "syscr" || k == "syscw" {
			c, _ := strconv.ParseInt(v, 10, 64)
			n += c
		}
	}
	return n
}

// self is this process's usage: the gateway, product and NATS.
func self() usage { return usage{cpu: processCPU(), rw: ioCalls("self")} }

// nginxUsage is the usage of nginx's master (pid) and its workers, from
// /proc; zero for no pid.
func nginxUsage(pid int) usage {
	if pid == 0 {
		return usage{}
	}
	dirs, _ := os.ReadDir("/proc")
	var ticks, rw int64
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// After "pid (comm) ": state, ppid, …; utime and stime are the
		// 14th and 15th fields of the line.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 {
			continue
		}
		if d.Name() != strconv.Itoa(pid) && f[1] != strconv.Itoa(pid) {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
		rw += ioCalls(d.Name())
	}
	// USER_HZ is 100 on Linux.
	return usage{cpu: time.Duration(ticks) * 10 * time.Millisecond, rw: rw}
}

var wrkLatency = regexp.MustCompile(`^\s*(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)

// runWrk loads url with wrk at proxyConns connections for wrkDuration.
// nginxPid, when not 0, is nginx's master, whose CPU is counted.
func runWrk(url string, nginxPid int) (wrkResult, error) {
	go0, ng0 := self(), nginxUsage(nginxPid)
	out, err := exec.Command("wrk", "-t", "2", "-c", strconv.Itoa(proxyConns), "-d", wrkDuration.String(), "--latency", url).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	var r wrkResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "Non-2xx") || strings.Contains(line, "Socket errors") {
			return wrkResult{}, fmt.Errorf("wrk saw failures: %s", out)
		}
		if v, ok := strings.CutPrefix(line, "Requests/sec:"); ok {
			r.rps, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
		if m := wrkLatency.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			d := time.Duration(v * float64(map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]))
			if m[1] == "50" {
				r.p50 = d
			} else {
				r.p99 = d
			}
		}
	}
	if r.rps == 0 || r.p50 == 0 {
		return wrkResult{}, fmt.Errorf("wrk: no figures in %s", out)
	}
	n := r.rps * wrkDuration.Seconds()
	g, ng := self().sub(go0), nginxUsage(nginxPid).sub(ng0)
	r.goCPU, r.nginxCPU = time.Duration(float64(g.cpu)/n), time.Duration(float64(ng.cpu)/n)
	r.goRW, r.nginxRW = float64(g.rw)/n, float64(ng.rw)/n
	return r, nil
}

// median is the run with the median throughput.
func median(rs []wrkResult) wrkResult {
	slices.SortFunc(rs, func(a, b wrkResult) int {
		switch {
		case a.rps < b.rps:
			return -1
		case a.rps > b.rps:
			return 1
		}
		return 0
	})
	return rs[len(rs)/2]
}

// BenchmarkProxy compares the gateway with nginx on the product read. It
// runs once whatever b.N (make bench gives it -benchtime 1x): wrk's legs
// last wrkDuration each. Without nginx installed it says so and measures
// direct and the gateway; without wrk, the Go client's figures only.
func BenchmarkProxy(b *testing.B) {
	p := start(b)
	legs := []struct{ name, url string }{
		{"direct", p.URLs[svcProduct] + "/products/keyboard"},
		{"gateway", p.GatewayURL + "/api/product/products/keyboard"},
	}
	nginxPid := 0
	if _, err := exec.LookPath("nginx"); err != nil {
		b.Log("nginx is not installed: the nginx leg is skipped (Debian: apt-get install nginx-light)")
	} else {
		u, pid, err := startNginx(b, p)
		nginxPid = pid
		if err != nil {
			b.Fatal(err)
		}
		legs = append(legs, struct{ name, url string }{"nginx", u})
	}
	for _, l := range legs {
		if st, err := call("GET", l.url, "", nil); err != nil || st != http.StatusOK {
			b.Fatalf("%s: %d %v", l.name, st, err)
		}
	}

	// Added latency: one request at a time, the legs interleaved so that
	// each sees the same machine load.
	const rounds = 3000
	one := make([][]time.Duration, len(legs))
	for range rounds {
		for i, l := range legs {
			t0 := time.Now()
			if _, err := call("GET", l.url, "", nil); err != nil {
				b.Fatal(err)
			}
			one[i] = append(one[i], time.Since(t0))
		}
	}
	direct50 := percentile(one[0], .5)
	for i, l := range legs {
		p50 := percentile(one[i], .5)
		b.ReportMetric(us(p50), l.name+"-1conn-p50-µs")
		if i > 0 {
			b.ReportMetric(us(p50-direct50), l.name+"-added-p50-µs")
		}
		b.Logf("1 connection    %-8s p50 %7.0f µs  p99 %7.0f µs  added p50 %5.0f µs", l.name, us(p50), us(percentile(one[i], .99)), us(p50-direct50))
	}

	// The same client at 16 connections, every leg for the same time.
	for _, l := range legs {
		lat, rate := loadFor(b, l.url, wrkDuration)
		b.ReportMetric(rate, l.name+"-go-req/s")
		b.Logf("%d connections  %-8s %7.0f req/s  p50 %7.0f µs  p99 %7.0f µs  (Go client)", proxyConns, l.name, rate, us(percentile(lat, .5)), us(percentile(lat, .99)))
	}

	if _, err := exec.LookPath("wrk"); err != nil {
		b.Log("wrk is not installed: no wrk figures (Debian: apt-get install wrk)")
		return
	}
	results := map[string][]wrkResult{}
	for range wrkRounds {
		for _, l := range legs[1:] {
			pid := 0
			if l.name == "nginx" {
				pid = nginxPid
			}
			r, err := runWrk(l.url, pid)
			if err != nil {
				b.Fatal(err)
			}
			results[l.name] = append(results[l.name], r)
		}
	}
	for _, l := range legs[1:] {
		r := median(results[l.name])
		b.ReportMetric(r.rps, l.name+"-wrk-req/s")
		b.ReportMetric(us(r.p50), l.name+"-wrk-p50-µs")
		// testing keeps 10 lines of a benchmark's log: one line a leg.
		b.Logf("%d connections  %-8s %7.0f req/s  p50 %7.0f µs  p99 %7.0f µs  (wrk, median of %d); per request: this process %4.0f µs CPU, %4.1f reads+writes, nginx %4.0f µs, %4.1f",
			proxyConns, l.name, r.rps, us(r.p50), us(r.p99), wrkRounds, us(r.goCPU), r.goRW, us(r.nginxCPU), r.nginxRW)
	}
	if n := results["nginx"]; len(n) > 0 {
		gw, ng := median(results["gateway"]), median(n)
		ratio := gw.rps / ng.rps
		b.ReportMetric(ratio, "gateway/nginx-req/s")
		// The proxy's own CPU: nginx's processes, and for the gateway its
		// leg's process CPU less the nginx leg's (product and NATS alone).
		own, ownRW := gw.goCPU-ng.goCPU, gw.goRW-ng.goRW
		b.ReportMetric(us(own), "gateway-cpu-µs/req")
		b.ReportMetric(us(ng.nginxCPU), "nginx-cpu-µs/req")
		b.ReportMetric(ownRW, "gateway-rw/req")
		b.ReportMetric(ng.nginxRW, "nginx-rw/req")
		b.Logf("gateway / nginx throughput %.2f×; the proxy's own, per request: gateway %.0f µs CPU and %.1f reads+writes, nginx %.0f µs CPU and %.1f reads+writes",
			ratio, us(own), ownRW, us(ng.nginxCPU), ng.nginxRW)
	}
}

// loadFor runs proxyConns callers of GET url for d and returns each call's
// latency and the calls per second.
func loadFor(b *testing.B, url string, d time.Duration) ([]time.Duration, float64) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	lats := make([][]time.Duration, proxyConns)
	errs := make(chan error, proxyConns)
	start := time.Now()
	for w := range proxyConns {
		go func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				st, err := call("GET", url, "", nil)
				if err == nil && st != http.StatusOK {
					err = fmt.Errorf("status %d", st)
				}
				if err != nil {
					errs <- err
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
			errs <- nil
		}()
	}
	var failed error
	for range proxyConns {
		failed = errors.Join(failed, <-errs)
	}
	elapsed := time.Since(start)
	if failed != nil {
		b.Fatal(failed)
	}
	all := slices.Concat(lats...)
	return all, float64(len(all)) / elapsed.Seconds()
}
