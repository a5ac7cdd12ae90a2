package node

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Two nodes with mDNS on and no bootstrap peers find each other on the
// LAN. The test runs itself again inside a network namespace of its own
// (with a veth pair as its LAN), so its announcements never
// reach the machine's real network.
func TestMDNSFindsLANPeers(t *testing.T) {
	if os.Getenv("CEIBA_TEST_NETNS") == "" {
		runInOwnNetns(t, "TestMDNSFindsLANPeers")
		return
	}
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	ca := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	ca.Transport.MDNS = true
	cb := testConfig(t, nw, org, t.TempDir())
	cb.Transport.MDNS = true
	a := startNode(t, ca)
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Centro comunitario"))
	b := startNode(t, cb)
	want := ref.digest()
	waitFor(t, 20*time.Second, "the LAN peers to find each other and sync", func() bool {
		return sameDigest([]*Node{a, b}, want)
	})
}

// runInOwnNetns re-runs test in a fresh network namespace, removed when
// the test ends, and fails if it fails there.
func runInOwnNetns(t *testing.T, test string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	b := make([]byte, 3)
	rand.Read(b)
	ns := "cbnode" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("network namespaces unavailable (ip netns add: %v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1"},
		{"ip", "addr", "add", "10.77.0.1/24", "dev", "lan0"},
		{"ip", "link", "set", "lan0", "up"},
		{"ip", "link", "set", "lan1", "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^"+test+"$", "-test.v", "-test.timeout=30m")
	c.Env = append(os.Environ(), "CEIBA_TEST_NETNS="+ns)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("inside namespace %s: %v\n%s", ns, err, out)
	}
	t.Logf("inside namespace %s:\n%s", ns, out)
}
