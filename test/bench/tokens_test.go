package bench

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// BenchmarkTokens measures what every authenticated call costs the gateway
// and the service behind it: verifying a user token (JWT EdDSA, Ed25519),
// and, once per login, issuing one.
func BenchmarkTokens(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := kit.NewSigner(priv, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := kit.NewKeySet(pub)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("issue", func(b *testing.B) {
		cpu0 := processCPU()
		for b.Loop() {
			if _, err := signer.Issue(time.Now(), "bench-user", "bench@example.com", nil); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, processCPU()-cpu0)
	})
	b.Run("verify", func(b *testing.B) {
		tok, err := signer.Issue(time.Now(), "bench-user", "bench@example.com", nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		cpu0 := processCPU()
		for b.Loop() {
			if _, err := keys.Verify(ctx, tok.Token); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, processCPU()-cpu0)
	})
}

// reportCPU reports the CPU time per operation, which a busy machine
// inflates far less than the wall time ns/op is.
func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric(us(cpu)/float64(b.N), "cpu-µs/op")
}
