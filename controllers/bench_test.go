package controllers_test

import (
	"fmt"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// BenchmarkCreateToAllChildren measures, against envtest and the real
// manager, the time from creating a full commerce+streaming Platform to every
// child it renders existing in the API server.
func BenchmarkCreateToAllChildren(b *testing.B) {
	var total time.Duration
	n := 0
	for b.Loop() {
		name := fmt.Sprintf("bench%d", time.Now().UnixNano()%1000000)
		p := testgen.Platform(name, testgen.WithNamespace(liveNamespace))
		start := time.Now()
		if err := k8s.Create(testCtx, p); err != nil {
			b.Fatal(err)
		}
		waitForAllChildren(b, p)
		total += time.Since(start)
		n++

		b.StopTimer()
		// envtest has no garbage collector: delete the Platform, then its children by hand.
		_ = k8s.Delete(testCtx, p, client.PropagationPolicy("Background"))
		for _, obj := range desiredFor(b, p) {
			_ = k8s.Delete(testCtx, obj)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(n), "ms/platform")
	b.ReportMetric(float64(len(desiredFor(b, testgen.Platform("x", testgen.WithNamespace(liveNamespace))))), "objects")
}
