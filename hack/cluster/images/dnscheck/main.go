// Command dnscheck asks one DNS server (the cluster's, 10.96.0.10) for a name
// and exits 0 when it answers with an address: cluster-up's "CoreDNS answers".
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	server := flag.String("server", "10.96.0.10:53", "DNS server address")
	flag.Parse()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, *server)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, name := range flag.Args() {
		addrs, err := r.LookupHost(ctx, name)
		if err != nil || len(addrs) == 0 {
			fmt.Fprintf(os.Stderr, "dnscheck: %s: %v\n", name, err)
			os.Exit(1)
		}
		fmt.Println(name, addrs)
	}
}
