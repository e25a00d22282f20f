package catalog

import "strings"

// OpsPort is the plain-HTTP port of every service's /healthz, /readyz and
// /metrics (env OPS_ADDR), apart from its API on HTTPPort, so that probes
// and scrapers never need the API's port and the API port serves the API
// only. A service may add operator-only routes there, such as the
// gateway's /health/detail; nothing routes the ops port publicly.
const OpsPort = 8081

// EnvOpsAddr is the listen address of the ops port, ":8081" by default.
const EnvOpsAddr = "OPS_ADDR"

// EnvOpsURL is the env var that carries an upstream's ops base URL, which
// the gateway asks for readiness: "product" → "PRODUCT_OPS_URL".
func EnvOpsURL(upstream string) string {
	return strings.TrimSuffix(EnvURL(upstream), "_URL") + "_OPS_URL"
}

// EnvBrokerMonitorURL is the broker's HTTP monitor (/jsz) as the gateway
// reaches it: the console reads streams and consumers there, which needs
// no broker credentials, and the gateway has none.
const EnvBrokerMonitorURL = "BROKER_MONITOR_URL"
