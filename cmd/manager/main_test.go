package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseNamespaces(t *testing.T) {
	for _, tc := range []struct {
		name, flag string
		want       []string
		err        string
	}{
		{name: "empty means every namespace", flag: "", want: nil},
		{name: "one namespace", flag: "shop", want: []string{"shop"}},
		{name: "a list, blanks and empty items ignored", flag: " shop, stream ,,", want: []string{"shop", "stream"}},
		{name: "an invalid name is refused", flag: "shop,Stream", err: `"Stream" is not a namespace name`},
		{name: "a name listed twice is refused", flag: "shop,shop", err: `"shop" is listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseNamespaces(tc.flag)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseNamespaces(%q) = %v, %v; want an error containing %q", tc.flag, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("parseNamespaces(%q) = %v, %v; want %v", tc.flag, got, err, tc.want)
			}
		})
	}
}
