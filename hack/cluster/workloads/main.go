// Command workloads prints the workloads whose every service the switchboard
// binary can serve (services/registry), comma-separated: what cluster-e2e
// puts in the Platform's spec.workloads.
package main

import (
	"fmt"
	"strings"

	"github.com/switchboard-dev/switchboard/services/registry"
)

func main() {
	var names []string
	for _, w := range registry.Available() {
		names = append(names, string(w))
	}
	fmt.Println(strings.Join(names, ", "))
}
