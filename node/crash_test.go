package node

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// The crash test runs a node in a child process (this test binary, told by
// the environment to be the child), lets it acknowledge publications, kills
// it with SIGKILL mid-stream (no Close, no flush, nothing), then opens its
// data directory again: every record it acknowledged must be there.
const (
	crashChildEnv = "CEIBA_CRASH_CHILD"
	crashPass     = "contraseña de prueba"
	crashRecords  = 60
	crashKillAt   = 25
)

func TestKilledNodeLosesNothingAcknowledged(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("this is the child's own run")
	}
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	ks := &directory.Keystore{Identity: nw.Stewards[0], Keys: directory.Keyring{1: nw.Key}}
	if err := directory.SaveKeystore(filepath.Join(dir, "keys.age"), ks, crashPass, 10); err != nil {
		t.Fatal(err)
	}
	recs := []*directory.Record{nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo")}
	for i := range crashRecords {
		recs = append(recs, entryRec(t, nw, org, fmt.Sprintf("servicio-%d", i), 1))
	}
	var lines []string
	for _, r := range recs {
		lines = append(lines, hex.EncodeToString(r.Encode()))
	}
	if err := os.WriteFile(filepath.Join(dir, "records"), []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "CEIBA_CRASH_NOW="+strconv.FormatInt(nw.Now.Unix(), 10))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	acked := map[directory.Hash]bool{}
	sc := bufio.NewScanner(out)
	timeout := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timeout.Stop()
	for sc.Scan() {
		line := sc.Text()
		h, ok := strings.CutPrefix(line, "ACK ")
		if !ok {
			continue
		}
		var hash directory.Hash
		if b, err := hex.DecodeString(h); err != nil || len(b) != len(hash) {
			t.Fatalf("child printed a bad hash: %q", line)
		} else {
			copy(hash[:], b)
		}
		acked[hash] = true
		if len(acked) == crashKillAt {
			// Mid-stream: the child is publishing the next record now.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("child stopped after %d acknowledgements without being killed", len(acked))
	}

	// Reopen the same data directory and keystore in this process.
	ks, err = directory.LoadKeystore(filepath.Join(dir, "keys.age"), crashPass)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, nw, ks.Identity, dataDir)
	cfg.Keystore = ks
	n := startNode(t, cfg)
	for h := range acked {
		if !n.State().Has(h) {
			t.Errorf("acknowledged record %s lost in the crash", h.Short())
		}
	}
	found := len(n.State().Search(directory.Query{Text: "asesoria"}))
	t.Logf("child acknowledged %d records before SIGKILL; after restart %d entries are searchable and %d records stored",
		len(acked), found, n.Status().Records)
	if found < crashKillAt-2 {
		t.Errorf("only %d entries searchable after restart, want at least the %d acknowledged", found, crashKillAt-2)
	}
}

// startChildNode opens, in a crash test's child process, the node whose
// keystore and records the parent wrote to dir, with the parent's clock.
func startChildNode(t *testing.T, dir string) (*Node, []*directory.Record) {
	t.Helper()
	now, _ := strconv.ParseInt(os.Getenv("CEIBA_CRASH_NOW"), 10, 64)
	ks, err := directory.LoadKeystore(filepath.Join(dir, "keys.age"), crashPass)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "records"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*directory.Record
	for _, line := range strings.Split(string(raw), "\n") {
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		r, err := directory.DecodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	n, err := New(context.Background(), Config{
		DataDir:   filepath.Join(dir, "data"),
		Listen:    []string{"/ip4/127.0.0.1/tcp/0"},
		Network:   recs[0].Network,
		Keystore:  ks,
		Now:       func() time.Time { return time.Unix(now, 0) },
		Logger:    testLogger(t),
		Transport: testTransport,
		DHT:       DHTConfig{Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, recs
}

// TestCrashChild is the child process of the crash test: it publishes the
// records it is given and prints each acknowledgement, until killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("runs only as the crash test's child process")
	}
	n, recs := startChildNode(t, dir)
	for _, r := range recs {
		a, err := n.Publish(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		// Publish returned: the record is acknowledged.
		fmt.Fprintf(os.Stdout, "ACK %x\n", a.Hash[:])
	}
	select {} // wait for the kill
}
