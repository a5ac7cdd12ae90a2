package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// "ceiba version --json" says what a binary was built from: its version,
// the Go release and every module with its checksum, as in go.sum.
func TestVersionJSON(t *testing.T) {
	r := ceiba(t, nil, "version", "--json")
	if r.code != 0 {
		t.Fatalf("version --json: %s", r.stderr)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, r.stdout)
	}
	if v.Version == "" || v.Go != runtime.Version() || v.Protocol == 0 {
		t.Fatalf("version --json: %+v", v)
	}
	found := false
	for _, m := range v.Modules {
		if m.Path == "github.com/libp2p/go-libp2p" {
			found = true
			if m.Version == "" || !strings.HasPrefix(m.Sum, "h1:") {
				t.Fatalf("go-libp2p without its version or sum: %+v", m)
			}
		}
	}
	if !found {
		t.Fatalf("version --json lists no go-libp2p among %d modules", len(v.Modules))
	}
}
