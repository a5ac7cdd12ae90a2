package node

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/transport"
)

// A node that listens and dials only over WebSocket (as behind a proxy or
// a firewall that lets only HTTP-looking traffic through) joins through a
// WebSocket bootstrap address and syncs what was published before it came.
func TestWebSocketOnlyNodeJoinsAndSyncs(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	wsOnly := transport.Config{WebSocket: true, MaxMemory: 256 << 20, MaxFD: 1024}

	cfgA := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfgA.Listen = []string{"/ip4/127.0.0.1/tcp/0/ws"}
	cfgA.Transport = wsOnly
	a := startNode(t, cfgA)
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo WS"), entryRec(t, nw, org, "refugio", 1))

	var wsAddr string
	for _, m := range a.Addrs() {
		if strings.Contains(m.String(), "/ws/") {
			wsAddr = m.String()
		}
	}
	if wsAddr == "" {
		t.Fatalf("node A has no WebSocket address: %v", a.Addrs())
	}

	cfgB := testConfig(t, nw, org, t.TempDir())
	cfgB.Listen = []string{"/ip4/127.0.0.1/tcp/0/ws"}
	cfgB.Transport = wsOnly
	cfgB.Bootstrap = []string{wsAddr}
	b := startNode(t, cfgB)
	for _, m := range b.Addrs() {
		if !strings.Contains(m.String(), "/ws/") {
			t.Fatalf("WebSocket-only node listens on %s", m)
		}
	}
	want := ref.digest()
	start := time.Now()
	waitFor(t, 20*time.Second, "the WebSocket-only node to sync", func() bool {
		return sameDigest([]*Node{a, b}, want)
	})
	for _, c := range b.Host().Network().Conns() {
		if !strings.Contains(c.RemoteMultiaddr().String(), "/ws") {
			t.Fatalf("connection over %s, not WebSocket", c.RemoteMultiaddr())
		}
	}
	t.Logf("WebSocket-only node in sync %s after start", time.Since(start).Round(time.Millisecond))
}

// A node that listens and dials only over WebTransport (what a browser
// node could speak, and traffic that looks like HTTP/3) joins through a
// WebTransport bootstrap address and syncs what was published before it
// came. The bootstrap address must carry the listener's /certhash: it is
// how the dialer checks the self-signed certificate.
func TestWebTransportOnlyNodeJoinsAndSyncs(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	wtOnly := transport.Config{WebTransport: true, MaxMemory: 256 << 20, MaxFD: 1024}
	listen := []string{"/ip4/127.0.0.1/udp/0/quic-v1/webtransport"}

	cfgA := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfgA.Listen = listen
	cfgA.Transport = wtOnly
	a := startNode(t, cfgA)
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo WT"), entryRec(t, nw, org, "refugio", 1))

	var wtAddr string
	for _, m := range a.Addrs() {
		if strings.Contains(m.String(), "/webtransport/") && strings.Contains(m.String(), "/certhash/") {
			wtAddr = m.String()
		}
	}
	if wtAddr == "" {
		t.Fatalf("node A has no WebTransport address with a certificate hash: %v", a.Addrs())
	}

	cfgB := testConfig(t, nw, org, t.TempDir())
	cfgB.Listen = listen
	cfgB.Transport = wtOnly
	cfgB.Bootstrap = []string{wtAddr}
	b := startNode(t, cfgB)
	for _, m := range b.Addrs() {
		if !strings.Contains(m.String(), "/webtransport/") {
			t.Fatalf("WebTransport-only node listens on %s", m)
		}
	}
	want := ref.digest()
	start := time.Now()
	waitFor(t, 20*time.Second, "the WebTransport-only node to sync", func() bool {
		return sameDigest([]*Node{a, b}, want)
	})
	conns := b.Host().Network().Conns()
	if len(conns) == 0 {
		t.Fatal("the WebTransport-only node synced without a connection")
	}
	for _, c := range conns {
		if !strings.Contains(c.RemoteMultiaddr().String(), "/quic-v1/webtransport") {
			t.Fatalf("connection over %s, not WebTransport", c.RemoteMultiaddr())
		}
	}
	t.Logf("WebTransport-only node in sync %s after start", time.Since(start).Round(time.Millisecond))
}

// The verdict follows libp2p's: forced private with no relay is
// unreachable with a fix naming relays; forced public is public. Each
// verdict carries the reason code the web UI translates.
func TestReachabilityVerdicts(t *testing.T) {
	nw := dirtest.New(t, 1, 1)

	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.Transport = testTransport
	n := startNode(t, cfg)
	if r := n.Reachability(); r.State != ReachUnknown || !strings.Contains(r.Fix, "profile") || r.Reason != ReasonChecksOff {
		t.Fatalf("without a profile: %v (reason %q)", r, r.Reason)
	}

	cfg = testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.Transport = testTransport
	cfg.Transport.Profile = transport.ProfileLaptop
	cfg.Transport.ForceReachability = "private"
	n = startNode(t, cfg)
	waitFor(t, 10*time.Second, "an unreachable verdict", func() bool { return n.Reachability().State == ReachUnreachable })
	if r := n.Reachability(); !strings.Contains(r.Fix, "[node] relays") {
		t.Fatalf("the fix does not say to add a relay: %v", r)
	}
	if r := n.Reachability(); r.Reason != ReasonNoRelay || r.N != 0 {
		t.Fatalf("forced private with no relay: reason %q, n %d; want %q, 0", r.Reason, r.N, ReasonNoRelay)
	}

	cfg = testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.Transport = testTransport
	cfg.Transport.Profile = transport.ProfileLaptop
	cfg.Transport.ForceReachability = "public"
	n = startNode(t, cfg)
	waitFor(t, 10*time.Second, "a public verdict", func() bool { return n.Reachability().State == ReachPublic })
	if r := n.Reachability(); r.Reason != ReasonAutoNATPublic {
		t.Fatalf("forced public: reason %q, want %q", r.Reason, ReasonAutoNATPublic)
	}
	t.Logf("public verdict: %v", n.Reachability())
}

// Every reason is listed once, so a translation table can be checked
// against the list.
func TestReachReasonsListed(t *testing.T) {
	seen := map[ReachReason]bool{}
	for _, r := range ReachReasons {
		if r == "" || seen[r] {
			t.Errorf("reason %q is empty or listed twice", r)
		}
		seen[r] = true
	}
	if len(seen) != 9 {
		t.Errorf("%d reasons listed, want the 9 cases of the verdict", len(seen))
	}
}

// The collector reports the node's gauges and counts rejections by a
// bounded reason label.
func TestMetricsCollector(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	n := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	m := NewMetrics(n)
	defer m.Close()
	mustPublish(t, n, nw.Genesis, nw.Admit(t, org, "Org"))
	// A record of another network is refused.
	bad := dirtest.New(t, 1, 1).Genesis
	if _, err := n.Publish(t.Context(), bad); err == nil {
		t.Fatal("a record of another network was accepted")
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	waitFor(t, 5*time.Second, "the rejection to be counted", func() bool {
		return counterValue(m.rejected.WithLabelValues(RejectReason(directory.ErrWrongNetwork))) == 1
	})
	if got := counterValue(m.accepted.WithLabelValues(string(ViaLocal))); got != 2 {
		t.Fatalf("accepted local = %v, want 2", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{"ceiba_peers", "ceiba_records", "ceiba_fresh_age_seconds", "ceiba_reachability", "ceiba_records_rejected_total", "ceiba_p2p_sent_bytes_total"} {
		if !contains(names, want) {
			t.Errorf("metric %s missing; have %v", want, names)
		}
	}
}

// wireBytes returns the bytes of IP packets from or to port 4747 so far,
// installing the counters on the first call. Each packet is counted once,
// at the output hook of the side that sends it.
func wireBytes(t *testing.T, install bool) int64 {
	t.Helper()
	if install {
		c := exec.Command("nft", "-f", "-")
		c.Stdin = strings.NewReader(`table inet ceibameter {
	chain out {
		type filter hook output priority 0;
		tcp sport 4747 counter
		tcp dport 4747 counter
		udp sport 4747 counter
		udp dport 4747 counter
	}
}
`)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v: %s", err, out)
		}
	}
	out, err := exec.Command("nft", "list", "table", "inet", "ceibameter").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	var total int64
	for _, f := range strings.Split(string(out), "counter")[1:] {
		var pk, by int64
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "packets %d bytes %d", &pk, &by); err == nil {
			total += by
		}
	}
	return total
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestLowDataIdleBandwidth measures what a lowdata node sends and receives
// while nothing is published, configured as the daemon configures it
// (5-minute sync, DHT client, rate caps). It runs only when CEIBA_IDLE_MEASURE is a duration (for
// docs/OPERATIONS.md: CEIBA_IDLE_MEASURE=10m).
func TestLowDataIdleBandwidth(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("CEIBA_IDLE_MEASURE"))
	if err != nil || d <= 0 {
		t.Skip("set CEIBA_IDLE_MEASURE=10m to measure the lowdata profile's idle traffic")
	}
	// With CEIBA_IDLE_WIRE=1 the test runs in a network namespace of its
	// own, where nftables counts the lowdata node's packets (IP headers,
	// encryption, multiplexing, keep-alives and all) besides libp2p's
	// count of stream bytes.
	wire := os.Getenv("CEIBA_IDLE_WIRE") != ""
	if wire && os.Getenv("CEIBA_TEST_NETNS") == "" {
		runInOwnNetns(t, "TestLowDataIdleBandwidth")
		return
	}
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	const peers = 4
	nodes := make([]*Node, peers+1)
	for i := range nodes {
		id := dirtest.MustIdentity(t)
		if i == 0 {
			id = nw.Stewards[0]
		}
		cfg := testConfig(t, nw, id, t.TempDir())
		cfg.SyncInterval = 0 // the default, as deployed
		cfg.DHT = DHTConfig{AllowPrivateAddrs: true}
		cfg.Transport = transport.Config{Profile: transport.ProfileLaptop}
		if i == peers {
			cfg.Transport.Profile = transport.ProfileLowData
			cfg.SyncInterval = LowDataSyncInterval // as the daemon sets it
			cfg.DHT.ClientMode = true
			if wire {
				cfg.Listen = []string{"/ip4/127.0.0.1/tcp/4747", "/ip4/127.0.0.1/udp/4747/quic-v1"}
			}
		}
		for j := range i {
			cfg.Bootstrap = append(cfg.Bootstrap, addr(nodes[j]))
		}
		nodes[i] = startNode(t, cfg)
	}
	ref := &reference{t: t, nw: nw}
	ref.publish(nodes[0], nw.Genesis, nw.Admit(t, org, "Org"))
	for i := range 20 {
		ref.publish(nodes[0], entryRec(t, nw, org, fmt.Sprintf("servicio-%d", i), 1))
	}
	want := ref.digest()
	waitFor(t, 2*time.Minute, "convergence before the idle period", func() bool { return sameDigest(nodes, want) })
	// Let the start-up traffic (DHT bootstrap, republish) settle.
	time.Sleep(30 * time.Second)

	low := nodes[peers]
	bw := low.reach.bw
	var wireBefore int64
	if wire {
		wireBefore = wireBytes(t, true)
	}
	before := bw.GetBandwidthTotals()
	beforeP := bw.GetBandwidthByProtocol()
	time.Sleep(d)
	after := bw.GetBandwidthTotals()
	afterP := bw.GetBandwidthByProtocol()
	if wire {
		w := wireBytes(t, false) - wireBefore
		t.Logf("on the wire (IP packets to and from the lowdata node's port): %d B in %s; per hour %.1f KiB, per day %.2f MiB",
			w, d, float64(w)*float64(time.Hour)/float64(d)/1024, float64(w)*float64(24*time.Hour)/float64(d)/(1<<20))
	}
	in, out := after.TotalIn-before.TotalIn, after.TotalOut-before.TotalOut
	perHour := float64(time.Hour) / float64(d)
	t.Logf("lowdata node idle for %s with %d peers: in %d B, out %d B (total %.1f KiB); per hour %.1f KiB, per day %.2f MiB",
		d, len(low.Host().Network().Peers()), in, out, float64(in+out)/1024,
		float64(in+out)*perHour/1024, float64(in+out)*perHour*24/(1<<20))
	var protos []string
	for p, s := range afterP {
		b := beforeP[p]
		if dd := (s.TotalIn - b.TotalIn) + (s.TotalOut - b.TotalOut); dd > 0 {
			protos = append(protos, fmt.Sprintf("%-40s in %8d out %8d", p, s.TotalIn-b.TotalIn, s.TotalOut-b.TotalOut))
		}
	}
	sort.Strings(protos)
	for _, p := range protos {
		t.Log(p)
	}
}
