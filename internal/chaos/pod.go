package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// pod is one replica of a rendered workload run as an OS process, the way
// a kubelet runs a container: the same binary, args, env and files every
// time it is (re)started, on the same loopback ports, its readiness probed
// with the rendered probe so the proxies route only to ready pods.
type pod struct {
	name    string // e.g. chaos-order-1, or chaos-nats-0
	service string // catalog service name, or brokerService
	bin     string
	args    []string
	env     []string
	logPath string
	ports   map[string]int // container port name → loopback port
	probe   *probe

	mu      sync.Mutex
	cmd     *exec.Cmd
	gen     int // incremented by every start
	exited  chan struct{}
	paused  bool
	ready   atomic.Bool
	kick    chan struct{}
	stopped chan struct{}
	probing bool
}

// probe is a rendered HTTP readiness probe, resolved to a loopback URL.
type probe struct {
	url                 string
	period, timeout     time.Duration
	failures, successes int
}

// Ready reports whether the pod's readiness probe passes, as the
// endpoints of a Service see it.
func (p *pod) Ready() bool { return p.ready.Load() }

// Start runs a new process of the pod. The previous one must have exited.
func (p *pod) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return fmt.Errorf("%s is still running", p.name)
		}
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.gen++
	fmt.Fprintf(logf, "=== chaos: %s start %d at %s\n", p.name, p.gen, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env // exactly what the container would get, nothing inherited
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		// The kubelet sees a dead container at once: the pod leaves the
		// Service's endpoints.
		p.ready.Store(false)
		close(exited)
	}()
	p.cmd, p.exited, p.paused = cmd, exited, false
	if !p.probing && p.probe != nil {
		p.probing = true
		p.kick, p.stopped = make(chan struct{}, 1), make(chan struct{})
		go p.probeLoop()
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return nil
}

// Kill sends SIGKILL to the running process and waits for it to exit.
func (p *pod) Kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Pause stops the running process (SIGSTOP) and returns its generation,
// for Resume.
func (p *pod) Pause() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.paused {
		return 0, fmt.Errorf("%s is not running or already paused", p.name)
	}
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return 0, err
	}
	p.paused = true
	return p.gen, nil
}

// Resume continues the process paused as generation gen (SIGCONT); a
// process killed and restarted meanwhile is left alone.
func (p *pod) Resume(gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen || !p.paused || p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	p.paused = false
}

// Exited reports whether the current process has exited, and how.
func (p *pod) Exited() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return true, "never started"
	}
	select {
	case <-p.exited:
		return true, p.cmd.ProcessState.String()
	default:
		return false, ""
	}
}

// Gen is the number of times the pod was started.
func (p *pod) Gen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// Destroy kills the process for good and stops probing.
func (p *pod) Destroy() {
	p.mu.Lock()
	if p.cmd != nil && p.paused {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	p.mu.Unlock()
	p.Kill()
	p.mu.Lock()
	if p.probing {
		close(p.stopped)
		p.probing = false
	}
	p.mu.Unlock()
}

// probeLoop runs the readiness probe every period, as the kubelet does. A
// pod that is not ready is probed every 100ms instead, as the rendered
// startup probe would, so a restarted replica rejoins its Service promptly.
func (p *pod) probeLoop() {
	client := &http.Client{Timeout: p.probe.timeout}
	fails, oks := 0, 0
	for {
		wait := p.probe.period
		if !p.ready.Load() {
			wait = 100 * time.Millisecond
		}
		select {
		case <-p.stopped:
			return
		case <-p.kick: // a new process: its history does not count
			fails, oks = 0, 0
		case <-time.After(wait):
		}
		if dead, _ := p.Exited(); dead {
			p.ready.Store(false)
			continue
		}
		if probeOnce(client, p.probe.url) {
			fails, oks = 0, oks+1
			if oks >= p.probe.successes {
				p.ready.Store(true)
			}
		} else {
			oks, fails = 0, fails+1
			if fails >= p.probe.failures {
				p.ready.Store(false)
			}
		}
	}
}

func probeOnce(client *http.Client, url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), client.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	res, err := client.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode >= 200 && res.StatusCode < 400
}
