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
	recs := []*directory.Record{nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo")}
	for i := range crashRecords {
		recs = append(recs, entryRec(t, nw, org, fmt.Sprintf("servicio-%d", i), 1))
	}
	dir := childDir(t, nw, recs)
	// Killed mid-stream: the child is publishing the next record then.
	acked, killed := runChild(t, "TestCrashChild", []string{crashChildEnv + "=" + dir}, nw.Now, crashKillAt, 60*time.Second)
	if !killed {
		t.Fatalf("child stopped after %d acknowledgements without being killed", len(acked))
	}

	// Reopen the same data directory and keystore in this process.
	n := reopenChildNode(t, nw, dir)
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

// childDir writes what a crash test's child reads into a new directory:
// the keystore of nw's first steward, and recs, one hex line each.
func childDir(t *testing.T, nw *dirtest.Network, recs []*directory.Record) string {
	t.Helper()
	dir := t.TempDir()
	ks := &directory.Keystore{Identity: nw.Stewards[0], Keys: directory.Keyring{1: nw.Key}}
	if err := directory.SaveKeystore(filepath.Join(dir, "keys.age"), ks, crashPass, 10); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range recs {
		lines = append(lines, hex.EncodeToString(r.Encode()))
	}
	if err := os.WriteFile(filepath.Join(dir, "records"), []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runChild runs this test binary's child test on env and kills it with
// SIGKILL once it has printed killAt acknowledgements (a child that
// re-acknowledges what it finds stored counts those too). It also ends a
// child that prints DONE or outlives timeout. It returns the acknowledged
// hashes and whether the kill at killAt happened.
func runChild(t *testing.T, child string, env []string, now time.Time, killAt int, timeout time.Duration) (map[directory.Hash]bool, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.v")
	cmd.Env = append(append(os.Environ(), "CEIBA_CRASH_NOW="+strconv.FormatInt(now.Unix(), 10)), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	defer stop.Stop()
	acked := map[directory.Hash]bool{}
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "DONE" {
			break
		}
		h, ok := strings.CutPrefix(sc.Text(), "ACK ")
		if !ok {
			continue
		}
		var hash directory.Hash
		if b, err := hex.DecodeString(h); err != nil || len(b) != len(hash) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child printed a bad hash: %q", h)
		} else {
			copy(hash[:], b)
		}
		acked[hash] = true
		if len(acked) >= killAt {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	cmd.Process.Kill() // a child that printed DONE, or stopped printing
	cmd.Wait()
	return acked, killed
}

// reopenChildNode opens, in the test's own process, the data directory
// and keystore a killed child left in dir.
func reopenChildNode(t *testing.T, nw *dirtest.Network, dir string) *Node {
	t.Helper()
	ks, err := directory.LoadKeystore(filepath.Join(dir, "keys.age"), crashPass)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, nw, ks.Identity, filepath.Join(dir, "data"))
	cfg.Keystore = ks
	return startNode(t, cfg)
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
