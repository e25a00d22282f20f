package imagespec

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// dockerfile is what the final stage of the Dockerfile sets.
type dockerfile struct {
	base       string
	copied     []string // destinations of COPY --from=builder, as /name
	user       string
	entrypoint []string
	labels     map[string]string
}

// parseDockerfile reads the last stage of a Dockerfile: FROM, LABEL, COPY,
// USER and ENTRYPOINT, with line continuations joined.
func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var cur strings.Builder
	for _, l := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(l)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	var d dockerfile
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			d = dockerfile{labels: map[string]string{}} // a new stage starts over
			d.base = strings.Fields(rest)[0]
		case "LABEL":
			for _, kv := range splitLabelArgs(t, rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("LABEL %q: no '='", kv)
				}
				d.labels[k] = strings.Trim(v, `"`)
			}
		case "COPY":
			f := strings.Fields(rest)
			if !slices.ContainsFunc(f, func(s string) bool { return strings.HasPrefix(s, "--from=") }) {
				continue
			}
			var args []string
			for _, s := range f {
				if !strings.HasPrefix(s, "--") {
					args = append(args, s)
				}
			}
			dst := args[len(args)-1]
			for _, src := range args[:len(args)-1] {
				if strings.HasSuffix(dst, "/") {
					d.copied = append(d.copied, dst+filepath.Base(src))
				} else {
					d.copied = append(d.copied, dst)
				}
			}
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &d.entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT %q is not in exec form: %v", rest, err)
			}
		}
	}
	return d
}

// splitLabelArgs splits `k="v w" k2="v"` on the spaces outside quotes.
func splitLabelArgs(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		t.Fatalf("LABEL %q: unbalanced quotes", s)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// compare lists every difference between the Dockerfile's final stage and the image spec.
func compare(d dockerfile, want Image) []string {
	var diffs []string
	if !strings.HasPrefix(d.base, "gcr.io/distroless/static") || !strings.HasSuffix(d.base, ":nonroot") {
		diffs = append(diffs, fmt.Sprintf("Dockerfile base is %q; the builder's base layer imitates distroless static:nonroot, update Base()", d.base))
	}
	var binaries []string
	for _, b := range want.Binaries {
		binaries = append(binaries, "/"+b)
	}
	slices.Sort(binaries)
	copied := slices.Sorted(slices.Values(d.copied))
	if !slices.Equal(copied, binaries) {
		diffs = append(diffs, fmt.Sprintf("files: Dockerfile copies %v, the builder puts %v", copied, binaries))
	}
	if d.user != want.User {
		diffs = append(diffs, fmt.Sprintf("user: Dockerfile %q, builder %q", d.user, want.User))
	}
	if !slices.Equal(d.entrypoint, want.Entrypoint) {
		diffs = append(diffs, fmt.Sprintf("entrypoint: Dockerfile %q, builder %q", d.entrypoint, want.Entrypoint))
	}
	if !reflect.DeepEqual(d.labels, want.Labels) {
		diffs = append(diffs, fmt.Sprintf("labels: Dockerfile %v, builder %v", d.labels, want.Labels))
	}
	return diffs
}

func TestSwitchboardImageMatchesDockerfile(t *testing.T) {
	d := parseDockerfile(t, filepath.Join("..", "..", "..", "Dockerfile"))
	for _, diff := range compare(d, Switchboard()) {
		t.Error(diff)
	}
	if Switchboard().User != "65532:65532" || NonrootUID != 65532 {
		t.Errorf("the pod security contexts expect UID 65532")
	}
}

// A Dockerfile that drifts (another user, an extra binary, a changed label)
// is reported, so the comparison above cannot pass vacuously.
func TestCompareReportsDrift(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	drifted := strings.Replace(string(raw), "USER 65532:65532", "USER 0:0", 1)
	drifted = strings.Replace(drifted, "/out/switchboard /", "/out/switchboard /out/extra /", 1)
	drifted = strings.Replace(drifted, "org.opencontainers.image.source=", "org.opencontainers.image.url=", 1)
	p := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(p, []byte(drifted), 0o644); err != nil {
		t.Fatal(err)
	}
	diffs := compare(parseDockerfile(t, p), Switchboard())
	if len(diffs) != 3 {
		t.Errorf("want 3 differences (user, files, labels), got %d: %q", len(diffs), diffs)
	}
}

func TestBaseHasNonrootUser(t *testing.T) {
	var passwd string
	for _, f := range Base() {
		if f.Path == "etc/passwd" {
			passwd = f.Body
		}
	}
	if !strings.Contains(passwd, "nonroot:x:65532:65532:") {
		t.Errorf("base /etc/passwd lacks nonroot 65532: %q", passwd)
	}
}

func TestParseDockerfile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(p, []byte("FROM golang AS b\nUSER 1\nFROM x/static:nonroot\nLABEL a=\"b c\" \\\n  d=e\nCOPY --from=b /out/m /out/s /\nUSER 2:2\nENTRYPOINT [\"/m\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := parseDockerfile(t, p)
	if d.user != "2:2" || !slices.Equal(d.entrypoint, []string{"/m"}) || d.labels["a"] != "b c" || d.labels["d"] != "e" ||
		!slices.Equal(d.copied, []string{"/m", "/s"}) {
		t.Errorf("parsed %+v", d)
	}
}
