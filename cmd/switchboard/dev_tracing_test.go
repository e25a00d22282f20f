package main

import (
	"maps"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// dev hands its own tracing settings to every service, and nothing else of
// its environment.
func TestDevPassesTracingSettingsOn(t *testing.T) {
	own := map[string]string{
		catalog.EnvOTLPEndpoint: "http://localhost:4317", catalog.EnvTracesSamplerArg: "0.5",
		catalog.EnvNATSPassword: "not for the services", "HOME": "/root",
	}
	got := tracingEnv(func(k string) string { return own[k] })
	want := map[string]string{catalog.EnvOTLPEndpoint: "http://localhost:4317", catalog.EnvTracesSamplerArg: "0.5"}
	if !maps.Equal(got, want) {
		t.Errorf("services get %v, want %v", got, want)
	}
	if got := tracingEnv(func(string) string { return "" }); len(got) != 0 {
		t.Errorf("with nothing set, services get %v", got)
	}
}
