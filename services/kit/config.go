package kit

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// MinAuthKeyBytes is the shortest token-signing key accepted: HS256 with
// less than 128 bits of key is guessable.
const MinAuthKeyBytes = 16

// Getenv looks up one variable; os.Getenv in production, a map in dev mode
// and tests.
type Getenv func(string) string

// MapEnv adapts a map to Getenv.
func MapEnv(m map[string]string) Getenv { return func(k string) string { return m[k] } }

// OSEnv is the process environment.
var OSEnv Getenv = os.Getenv

// Config is everything a service reads from its environment. LoadConfig is
// the one loader for `switchboard serve` and `switchboard dev`.
type Config struct {
	Service  catalog.Service
	HTTPAddr string
	// OpsAddr serves /healthz, /readyz, /metrics and the service's ops
	// routes, never its API.
	OpsAddr string
	// NATS is empty for services with no streams and no buckets (the gateway).
	NATSURL, NATSUser, NATSPassword string
	// AuthKey signs and verifies tokens; nil for services that never see one.
	AuthKey []byte
	// Upstreams maps upstream name → base URL. Every catalog upstream is
	// required, except for the gateway, which routes to those that are set.
	Upstreams map[string]*url.URL
	// Env gives access to service-specific optional settings (see Duration,
	// Int).
	Env Getenv
}

// Needs says which optional parts of Config a service requires.
type Needs struct {
	// Auth means AUTH_KEY or AUTH_KEY_FILE must be set.
	Auth bool
}

// NeedsNATS reports whether the service keeps state or exchanges events.
func NeedsNATS(s catalog.Service) bool {
	return len(s.Buckets)+len(s.Publishes)+len(s.Consumers) > 0
}

// LoadConfig reads and validates the configuration of service name. Every
// error names the variable at fault.
func LoadConfig(name string, needs Needs, env Getenv) (Config, error) {
	svc, ok := catalog.Lookup(name)
	if !ok {
		return Config{}, fmt.Errorf("unknown service %q", name)
	}
	c := Config{Service: svc, Env: env, Upstreams: map[string]*url.URL{}}

	var err error
	if c.HTTPAddr, err = listenAddr(env, catalog.EnvHTTPAddr, catalog.HTTPPort); err != nil {
		return Config{}, err
	}
	if c.OpsAddr, err = listenAddr(env, catalog.EnvOpsAddr, catalog.OpsPort); err != nil {
		return Config{}, err
	}

	if NeedsNATS(svc) {
		c.NATSURL = strings.TrimSpace(env(catalog.EnvNATSURL))
		if c.NATSURL == "" {
			return Config{}, fmt.Errorf("%s is required", catalog.EnvNATSURL)
		}
		for _, u := range strings.Split(c.NATSURL, ",") {
			pu, err := url.Parse(strings.TrimSpace(u))
			if err != nil || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme) || pu.Host == "" {
				return Config{}, fmt.Errorf("%s=%q: want nats://host:port[,…]", catalog.EnvNATSURL, c.NATSURL)
			}
		}
		c.NATSUser, c.NATSPassword = env(catalog.EnvNATSUser), env(catalog.EnvNATSPassword)
		if (c.NATSUser == "") != (c.NATSPassword == "") {
			return Config{}, fmt.Errorf("%s and %s must be set together", catalog.EnvNATSUser, catalog.EnvNATSPassword)
		}
	}

	if needs.Auth {
		key, err := loadAuthKey(env)
		if err != nil {
			return Config{}, err
		}
		c.AuthKey = key
	}

	for _, up := range svc.Upstreams {
		v := strings.TrimSpace(env(catalog.EnvURL(up)))
		if v == "" {
			if svc.Name == catalog.Gateway {
				continue // the gateway routes only to enabled services
			}
			return Config{}, fmt.Errorf("%s is required", catalog.EnvURL(up))
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, fmt.Errorf("%s=%q: want an absolute http(s) URL", catalog.EnvURL(up), v)
		}
		c.Upstreams[up] = u
	}
	return c, nil
}

// listenAddr reads a host:port to listen on, ":<port>" when unset.
func listenAddr(env Getenv, name string, port int) (string, error) {
	addr := strings.TrimSpace(env(name))
	if addr == "" {
		return fmt.Sprintf(":%d", port), nil
	}
	if _, p, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("%s=%q is not host:port: %v", name, addr, err)
	} else if _, err := strconv.ParseUint(p, 10, 16); err != nil {
		return "", fmt.Errorf("%s=%q has a bad port", name, addr)
	}
	return addr, nil
}

func loadAuthKey(env Getenv) ([]byte, error) {
	name, key := catalog.EnvAuthKey, env(catalog.EnvAuthKey)
	if f := strings.TrimSpace(env(catalog.EnvAuthKeyFile)); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", catalog.EnvAuthKeyFile, err)
		}
		name, key = catalog.EnvAuthKeyFile, string(b)
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, fmt.Errorf("%s or %s is required", catalog.EnvAuthKey, catalog.EnvAuthKeyFile)
	}
	if len(key) < MinAuthKeyBytes {
		return nil, fmt.Errorf("%s is too short: want at least %d bytes", name, MinAuthKeyBytes)
	}
	return []byte(key), nil
}

// Duration reads an optional duration setting, def when unset.
func (c Config) Duration(name string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(c.env(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration like 2s", name, v)
	}
	return d, nil
}

// Int reads an optional positive integer setting, def when unset.
func (c Config) Int(name string, def int) (int, error) {
	v := strings.TrimSpace(c.env(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive integer", name, v)
	}
	return n, nil
}

// String reads an optional setting.
func (c Config) String(name string) string { return strings.TrimSpace(c.env(name)) }

func (c Config) env(name string) string {
	if c.Env == nil {
		return ""
	}
	return c.Env(name)
}
