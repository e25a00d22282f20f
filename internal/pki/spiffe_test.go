package pki

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
)

func TestParseSPIFFEID(t *testing.T) {
	want := SPIFFEID{TrustDomain: "switchboard.local", Namespace: "demo", Platform: "shop", Service: "payment"}
	for name, tc := range map[string]struct {
		in      string
		wantErr string
	}{
		"a service of a platform parses":            {in: "spiffe://switchboard.local/ns/demo/platform/shop/service/payment"},
		"another scheme is refused":                 {in: "https://switchboard.local/ns/demo/platform/shop/service/payment", wantErr: "scheme"},
		"an upper-case scheme is refused":           {in: "SPIFFE://switchboard.local/ns/demo/platform/shop/service/payment", wantErr: "scheme"},
		"a trust domain alone is refused":           {in: "spiffe://switchboard.local", wantErr: "no path"},
		"an empty trust domain is refused":          {in: "spiffe:///ns/demo/platform/shop/service/payment", wantErr: "trust domain"},
		"a port is refused":                         {in: "spiffe://switchboard.local:443/ns/demo/platform/shop/service/payment", wantErr: "trust domain"},
		"user info is refused":                      {in: "spiffe://u@switchboard.local/ns/demo/platform/shop/service/payment", wantErr: "trust domain"},
		"an upper-case trust domain is refused":     {in: "spiffe://Switchboard.local/ns/demo/platform/shop/service/payment", wantErr: "trust domain"},
		"a trailing slash is refused":               {in: "spiffe://switchboard.local/ns/demo/platform/shop/service/payment/", wantErr: "want the path"},
		"a doubled slash is refused":                {in: "spiffe://switchboard.local//ns/demo/platform/shop/service/payment", wantErr: "want the path"},
		"segments out of order are refused":         {in: "spiffe://switchboard.local/platform/shop/ns/demo/service/payment", wantErr: "want the path"},
		"a query is refused":                        {in: "spiffe://switchboard.local/ns/demo/platform/shop/service/payment?x=1", wantErr: "service"},
		"a fragment is refused":                     {in: "spiffe://switchboard.local/ns/demo/platform/shop/service/payment#x", wantErr: "service"},
		"percent-encoding is refused":               {in: "spiffe://switchboard.local/ns/demo/platform/shop/service/pay%6dent", wantErr: "service"},
		"a dot segment is refused":                  {in: "spiffe://switchboard.local/ns/../platform/shop/service/payment", wantErr: "namespace"},
		"an upper-case service is refused":          {in: "spiffe://switchboard.local/ns/demo/platform/shop/service/Payment", wantErr: "service"},
		"a name starting with a dash is refused":    {in: "spiffe://switchboard.local/ns/-demo/platform/shop/service/payment", wantErr: "namespace"},
		"a name ending with a dash is refused":      {in: "spiffe://switchboard.local/ns/demo/platform/shop-/service/payment", wantErr: "platform"},
		"a 64-character service is refused":         {in: "spiffe://switchboard.local/ns/demo/platform/shop/service/" + strings.Repeat("a", 64), wantErr: "service"},
		"an empty service is refused":               {in: "spiffe://switchboard.local/ns/demo/platform/shop/service/", wantErr: "service"},
		"a 256-character trust domain is refused":   {in: "spiffe://" + strings.Repeat("a", 256) + "/ns/demo/platform/shop/service/payment", wantErr: "trust domain"},
		"a 255-character trust domain is accepted":  {in: "spiffe://" + strings.Repeat("a", 255) + "/ns/demo/platform/shop/service/payment"},
		"a trust domain with an underscore is kept": {in: "spiffe://sw_board.local/ns/demo/platform/shop/service/payment"},
	} {
		t.Run(name, func(t *testing.T) {
			id, err := ParseSPIFFEID(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseSPIFFEID(%q) = %v, %v; want an error about %q", tc.in, id, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSPIFFEID(%q): %v", tc.in, err)
			}
			if id.String() != tc.in {
				t.Errorf("String() = %q, want %q", id.String(), tc.in)
			}
			if strings.Contains(name, "platform parses") && id != want {
				t.Errorf("got %+v, want %+v", id, want)
			}
		})
	}
}

func TestSPIFFEIDRelations(t *testing.T) {
	id, err := NewSPIFFEID("switchboard.local", "demo", "shop", "order")
	if err != nil {
		t.Fatal(err)
	}
	pay := id.Sibling("payment")
	if pay.String() != "spiffe://switchboard.local/ns/demo/platform/shop/service/payment" {
		t.Errorf("Sibling = %s", pay)
	}
	for name, tc := range map[string]struct {
		other SPIFFEID
		same  bool
	}{
		"a sibling is of the same platform":          {other: pay, same: true},
		"another platform is not":                    {other: SPIFFEID{"switchboard.local", "demo", "blog", "order"}},
		"the same platform in another namespace not": {other: SPIFFEID{"switchboard.local", "prod", "shop", "order"}},
		"another trust domain is not":                {other: SPIFFEID{"other.local", "demo", "shop", "order"}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := id.SamePlatform(tc.other); got != tc.same {
				t.Errorf("SamePlatform(%s) = %v, want %v", tc.other, got, tc.same)
			}
		})
	}
	if (SPIFFEID{}).String() != "" || !(SPIFFEID{}).IsZero() || id.IsZero() {
		t.Error("the zero ID must render empty and report IsZero")
	}
	if _, err := NewSPIFFEID("switchboard.local", "demo", "shop", "Order"); err == nil {
		t.Error("NewSPIFFEID accepted an upper-case service")
	}
}

func TestSPIFFEIDFromCert(t *testing.T) {
	good := SPIFFEID{"switchboard.local", "demo", "shop", "product"}
	parse := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for name, tc := range map[string]struct {
		uris    []*url.URL
		wantErr string
	}{
		"one SPIFFE URI SAN names the identity": {uris: []*url.URL{good.URL()}},
		"no URI SAN names nothing":              {wantErr: "0 URI SANs"},
		"two URI SANs name nothing":             {uris: []*url.URL{good.URL(), good.Sibling("order").URL()}, wantErr: "2 URI SANs"},
		"an https URI SAN names nothing":        {uris: []*url.URL{parse("https://shop-product.demo.svc")}, wantErr: "scheme"},
		"a URI SAN with a query names nothing":  {uris: []*url.URL{parse(good.String() + "?a=b")}, wantErr: "not a SPIFFE ID"},
		"an escaped path names nothing":         {uris: []*url.URL{parse("spiffe://switchboard.local/ns/demo/platform/shop/service/pr%6Fduct")}, wantErr: "not a SPIFFE ID"},
	} {
		t.Run(name, func(t *testing.T) {
			id, err := SPIFFEIDFromCert(&x509.Certificate{URIs: tc.uris})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want an error about %q", id, err, tc.wantErr)
				}
				return
			}
			if err != nil || id != good {
				t.Fatalf("got %v, %v; want %v", id, err, good)
			}
		})
	}
	if _, err := SPIFFEIDFromCert(nil); err == nil {
		t.Error("a nil certificate named an identity")
	}
}

// FuzzParseSPIFFEID: whatever parses renders back to the same string, and
// the parts it yields are valid on their own.
func FuzzParseSPIFFEID(f *testing.F) {
	for _, s := range []string{
		"spiffe://switchboard.local/ns/demo/platform/shop/service/payment",
		"spiffe://a/ns/b/platform/c/service/d",
		"spiffe://switchboard.local/ns/demo/platform/shop/service/",
		"spiffe://x//ns/a/platform/b/service/c",
		"spiffe://td/ns/a/platform/b/service/c/extra",
		"spiffe://td:1/ns/a/platform/b/service/c",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseSPIFFEID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseSPIFFEID(%q).String() = %q", s, id.String())
		}
		if again, err := NewSPIFFEID(id.TrustDomain, id.Namespace, id.Platform, id.Service); err != nil || again != id {
			t.Fatalf("NewSPIFFEID of the parts of %q = %v, %v", s, again, err)
		}
		if u := id.URL(); u.String() != s {
			t.Fatalf("URL() = %q, want %q", u.String(), s)
		}
	})
}
