package local

import (
	"context"
	"net"
	"strings"
	"testing"
)

// A start that fails half-way (here: the gateway's address is taken) returns
// the error and stops what it had started, instead of panicking.
func TestStartFailureCleansUp(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	p, err := Start(context.Background(), Options{Addr: taken.Addr().String()})
	if err == nil {
		p.Close()
		t.Fatal("Start succeeded on an address already in use")
	}
	if p != nil {
		t.Errorf("Start returned a platform with its error %v", err)
	}
	if !strings.Contains(err.Error(), "gateway") {
		t.Errorf("error %q does not name the gateway", err)
	}
}
