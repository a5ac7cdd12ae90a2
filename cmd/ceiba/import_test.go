package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/ceiba-network/ceiba/node/api"
)

// ownNetwork starts a daemon for a new home, creates a one-steward network
// and admits the home's own organization, so it can publish.
func ownNetwork(t *testing.T) (home, apiPort string, run func(args ...string) string, stop func()) {
	t.Helper()
	home, apiPort = initHome(t)
	stop = startDaemon(t, home, apiPort)
	run = func(args ...string) string {
		t.Helper()
		r := ceiba(t, testEnv, append([]string{"--home", home}, args...)...)
		if r.code != 0 {
			t.Fatalf("ceiba %s: %s", strings.Join(args, " "), r.stderr)
		}
		return r.stdout
	}
	run("network", "create", "--name", "Red de prueba")
	pub := filepath.Join(t.TempDir(), "me.pub")
	run("key", "export", "--out", pub)
	run("steward", "propose", "admit", "--keyfile", pub, "--name", "Prueba")
	return home, apiPort, run, stop
}

// An entry file that leaves out status publishes an active entry; "ceiba
// import" of a bundle with one tampered record imports the others, says
// how many were refused and exits non-zero (issue 18).
func TestImportOfATamperedBundle(t *testing.T) {
	home, apiPort, run, stop := ownNetwork(t)
	dir := t.TempDir()
	for _, id := range []string{"uno", "dos"} {
		entry := filepath.Join(dir, id+".yaml")
		os.WriteFile(entry, []byte("id: "+id+"\nexpires_in_days: 30\nservice:\n  name: Servicio "+id+
			"\n  categories: [legal]\n  languages: [es]\n  contacts: [{kind: email, value: a@example.org}]\n"), 0o600)
		run("entry", "publish", entry)
	}
	var shown api.Entry
	if err := json.Unmarshal([]byte(run("--json", "show", "uno")), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.Service.Status != "active" {
		t.Fatalf("an entry file without status published status %q, want active", shown.Service.Status)
	}

	bundlePath := filepath.Join(dir, "bundle.cbor")
	run("export", bundlePath)
	var b struct {
		Network cbor.RawMessage `cbor:"1,keyasint"`
		Created int64           `cbor:"2,keyasint"`
		Records [][]byte        `cbor:"3,keyasint"`
	}
	raw, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := cbor.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	// A tampered copy of one record joins the good ones: its ciphertext
	// changed, so it no longer opens.
	bad := slices.Clone(b.Records[0])
	bad[len(bad)-1] ^= 0x01
	b.Records = append(b.Records, bad)
	total := len(b.Records)
	if raw, err = cbor.Marshal(b); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bundlePath, raw, 0o600)

	// The copy is lost (the keys and config stay), then the bundle
	// brings it back: every record but the tampered one.
	stop()
	if err := os.RemoveAll(filepath.Join(home, "data")); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, home, apiPort)

	r := ceiba(t, testEnv, "--home", home, "import", bundlePath)
	if r.code == 0 {
		t.Fatalf("import of a bundle with a tampered record exited 0: %s", r.stdout)
	}
	if want := "1 of the bundle's " + strconv.Itoa(total) + " records were refused"; !strings.Contains(r.stderr, want) {
		t.Fatalf("import's error %q does not say %q", r.stderr, want)
	}
	// Some of the bundle's records may be known by the time they are
	// applied (the restarted steward's node makes records of its own at
	// start): new and already known together are every record but the
	// tampered one.
	m := regexp.MustCompile(`Imported (\d+) new records(?: \((\d+) already known)?`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("import printed %q, want a count of new records", r.stdout)
	}
	imported, _ := strconv.Atoi(m[1])
	known, _ := strconv.Atoi(m[2])
	if imported+known != total-1 {
		t.Fatalf("import printed %q: %d new and %d already known, want %d in all", r.stdout, imported, known, total-1)
	}
	if !strings.Contains(r.stdout, "undecodable record rejected") || strings.Contains(r.stdout, "type(0)") {
		t.Fatalf("import does not name the record that did not open as undecodable: %q", r.stdout)
	}
	out := run("--json", "search")
	for _, id := range []string{"uno", "dos"} {
		if !strings.Contains(out, `"`+id+`"`) {
			t.Errorf("entry %s is not back after the import: %s", id, out)
		}
	}
}
