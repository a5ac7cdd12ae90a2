package main

// Two organizations, each behind its own symmetric NAT, join one network
// and exchange records with nothing between them but a third party's
// circuit relay. The NATs are real (nftables in network namespaces, see
// internal/netnstest; transport's TestHolePunchFailsAcrossSymmetricNAT
// shows hole punching fails through them), the nodes are real `ceiba
// daemon` processes driven through the CLI, as a person would.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/internal/lockedbuf"
	"github.com/ceiba-network/ceiba/internal/netnstest"
	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/node/daemon"
)

// A steward's node (a) and an organization's (b), each behind a symmetric
// NAT, with a relay and four ordinary public peers outside:
//
//   - b redeems a's invite through the relay (a has no other address b
//     can reach);
//   - what a published before b joined (the charter and the first read
//     key) reaches b by sync over the circuit;
//   - what each publishes afterwards reaches the other by gossip over
//     the circuit: an entry b publishes (only members publish entries) is
//     found by a's `ceiba search`, and a new read key a starts opens on b;
//   - no connection between them, in either direction and at any time
//     the test looks, is anything but a relay circuit, also after hole
//     punching has had its chance (punchWindow).
//
// Both nodes' periodic sync is an hour away, so once they are connected
// (which starts one session each way) a record can only travel by gossip.
func TestOrgsBehindSymmetricNATsThroughRelay(t *testing.T) {
	start := time.Now()
	r := orgsThroughRelay(t, netnstest.Symmetric, false)
	// Hole punching (DCUtR) starts when b's node reaches a through the
	// relay and makes up to three attempts of about 5 s each; through
	// cone NATs it succeeds within about 12 s (transport's
	// TestRelayAndHolePunchAcrossNAT). Watching until then is what makes
	// "every connection was relayed" mean something.
	time.Sleep(time.Until(r.joined.Add(punchWindow)))
	conns := r.watch.stop()
	for _, err := range r.watch.errs {
		t.Logf("a poll of the connections failed: %v", err)
	}
	if conns["a"] == 0 || conns["b"] == 0 {
		t.Fatalf("the watch never saw a and b connected (polls that did: %v)", conns)
	}
	if len(r.watch.direct) > 0 {
		t.Fatalf("connections that are not relay circuits, through symmetric NATs: %v", r.watch.direct)
	}
	for _, p := range r.b.peers() {
		if p.ID == r.aID {
			t.Logf("b's connections with a at the end: %v", p.Addrs)
		}
	}
	t.Logf("every connection between a and b seen (in %d polls on a's side, %d on b's, until %s after b joined) was relayed; whole test %s",
		conns["a"], conns["b"], punchWindow, time.Since(start).Round(time.Millisecond))
}

// The control for the test above: the same story, but a's router
// forwards a's port (cone NAT) and b's bootstrap list holds that
// forwarded address, so b's node reaches a directly as it starts, and the
// watch must see that connection. Without this, a
// watch that could not see a direct connection would pass the test above
// as well. (Hole punching through cone NATs would be the closer control,
// but it is not reliable here: b's node dials a the moment it starts,
// before its hole-punching service has a public address to answer with,
// and libp2p makes no second attempt on that connection.)
func TestOrgsWithForwardedPortConnectDirectly(t *testing.T) {
	r := orgsThroughRelay(t, netnstest.Cone, true)
	waitUntil(t, time.Until(r.joined.Add(punchWindow)), "a and b to connect directly", func() bool {
		r.watch.mu.Lock()
		defer r.watch.mu.Unlock()
		return len(r.watch.direct) > 0
	})
	r.watch.stop()
	t.Logf("direct connections seen through the forwarded port: %v", r.watch.direct)
}

// punchWindow is how long after b joins the tests above watch the
// connections: long enough for hole punching to have succeeded if it
// could.
const punchWindow = 25 * time.Second

type relayRun struct {
	a, b   *natNode
	aID    string
	joined time.Time // b's invite accepted: its node runs and reaches a
	watch  *connWatch
}

// orgsThroughRelay runs the story of TestOrgsBehindSymmetricNATsThroughRelay
// behind NATs of kind k (a's router forwarding a's port if forwardA), up
// to the checks on connections, and returns with the watch still running.
func orgsThroughRelay(t *testing.T, k netnstest.NAT, forwardA bool) *relayRun {
	if netnstest.InHelper() {
		t.Skip("inside a helper")
	}
	if testing.Short() {
		t.Skip("network namespaces: skipped in -short")
	}
	tp := netnstest.TwoNATs(t, k)
	if forwardA {
		tp.ForwardPort(tp.RA, natP2PPort, "192.168.1.2")
	}
	pub := tp.Helper(tp.Pub, "TestNetnsHelper", map[string]string{netnstest.RoleEnv: "pub"})
	relay := strings.Split(pub.Expect("RELAY", 20*time.Second), ",")
	observers := strings.Split(pub.Expect("OBSERVERS", 5*time.Second), ",")

	dir := t.TempDir()
	noSync := []string{"CEIBA_SYNC_INTERVAL=1h"}
	a := &natNode{t: t, net: tp.Net, name: "a", ns: tp.A, home: filepath.Join(dir, "steward"), env: noSync}
	b := &natNode{t: t, net: tp.Net, name: "b", ns: tp.B, home: filepath.Join(dir, "org"), env: noSync}
	// The observers are ordinary public peers: connected to them, each
	// node learns how its NAT maps it (differently for each of them, the
	// NAT being symmetric), as a node on the Internet would, and hole
	// punching has observed addresses to try.
	a.init("Red de Defensoras", relay, observers)
	bBootstrap := observers
	if forwardA {
		// b is told a's forwarded address (as an operator would put it in
		// [node] bootstrap), so its node connects directly at start: the
		// control must not hang on hole punching's timing.
		aID := a.presetHostKey()
		bBootstrap = append(slices.Clone(observers), fmt.Sprintf("/ip4/7.0.1.2/tcp/%d/p2p/%s", natP2PPort, aID))
	}
	b.init("Colectivo Refugio", relay, bBootstrap)
	a.start()
	b.start()

	a.must("network", "create", "--name", "Red tras NAT")
	created := time.Now()
	var aStatus api.Status
	waitUntil(t, 30*time.Second, "a to hold an address through the relay", func() bool {
		aStatus = a.status()
		return slices.ContainsFunc(aStatus.Addrs, isCircuit)
	})
	// The premise, behind a symmetric NAT: apart from its circuit
	// addresses, a has none b could reach (its LAN and loopback), so an
	// invite b redeems goes through the relay.
	for _, addr := range aStatus.Addrs {
		if !forwardA && k == netnstest.Symmetric && !isCircuit(addr) && !strings.HasPrefix(addr, "/ip4/127.") && !strings.HasPrefix(addr, "/ip4/192.168.1.") {
			t.Fatalf("a has an address b might reach without the relay: %s (all: %v)", addr, aStatus.Addrs)
		}
	}
	t.Logf("a's addresses: %v", aStatus.Addrs)
	watch := watchConns(t, a, b)

	var inv api.Invite
	a.json(&inv, "invite", "create", "--role", "member", "--expires", "1h")
	// a's GossipSub offers recent messages (IHAVE) to new topic peers for
	// HistoryGossip heartbeats; once that is over, the charter and first
	// read key can reach b by sync alone.
	time.Sleep(time.Until(created.Add(time.Duration(pubsub.GossipSubHistoryGossip+1) * pubsub.GossipSubHeartbeatInterval)))

	joinStart := time.Now()
	b.must("invite", "accept", inv.Code, "--name", "Colectivo Refugio")
	joined := time.Now()
	t.Logf("b redeemed the invite in %s", joined.Sub(joinStart).Round(time.Millisecond))
	waitUntil(t, 30*time.Second, "b to hold its admission and the read key", func() bool {
		s := b.status()
		return s.Role == "member" && s.KeyEpoch == 1
	})
	t.Logf("b is an admitted member %s after accepting the invite", time.Since(joinStart).Round(time.Millisecond))
	// b's node starts only once the invite is redeemed. The welcome
	// brings the genesis, b's admission and the epoch record, but not the
	// epoch's pages nor anything else a holds: those come by sync, which
	// here can only run over the relay circuit.
	waitUntil(t, 30*time.Second, "b to finish a sync session with a over the circuit", func() bool {
		s := b.status()
		return !s.LastSync.IsZero() && s.LastSyncPeers > 0
	})

	// Before either publishes, both must be on the other's GossipSub
	// topic (taken up over the circuit), or a publish would find no one.
	bBefore := b.metrics()
	waitUntil(t, 20*time.Second, "a and b to see each other on the network's topic", func() bool {
		return a.metrics()["topic_peers"] == 1 && b.metrics()["topic_peers"] == 1
	})
	aBefore := a.metrics()
	entry := filepath.Join(dir, "legal.yaml")
	os.WriteFile(entry, []byte(natLegalEntry), 0o600)
	b.must("entry", "publish", entry)
	gossipStart := time.Now()
	waitUntil(t, 30*time.Second, "a to find the entry b published", func() bool {
		return a.finds("asesoria", "asesoria-juridica")
	})
	t.Logf("a found b's entry %s after b published it", time.Since(gossipStart).Round(time.Millisecond))
	gossiped(t, "a", "b's entry", aBefore, a, 1, 1)

	a.must("rotate")
	gossipStart = time.Now()
	waitUntil(t, 30*time.Second, "b to open the read key a started after it joined", func() bool {
		s := b.status()
		return s.Epoch == 2 && s.KeyEpoch == 2
	})
	t.Logf("b holds the new read key %s after a started it", time.Since(gossipStart).Round(time.Millisecond))
	// The rotation is the epoch record and its two pages: two recipients,
	// padded to 64 packages, 52 to a page (PROTOCOL.md §5). The epoch
	// record and the page with b's package give b the key, and come by
	// gossip; the moment b holds the key it asks its peers for what the
	// key opens (adoptKeys), and that session may take the other page
	// just before gossip brings it (seen once in CI, session 29).
	gossiped(t, "b", "the new read key", bBefore, b, 3, 2)

	return &relayRun{a: a, b: b, aID: aStatus.PeerID, joined: joined, watch: watch}
}

// gossiped fails the test unless n accepted exactly records records (what)
// since before, by gossip or sync, and at least byGossip of them by gossip.
func gossiped(t *testing.T, name, what string, before map[string]int, n *natNode, records, byGossip int) {
	t.Helper()
	var after map[string]int
	waitUntil(t, 10*time.Second, name+" to count "+what, func() bool {
		after = n.metrics()
		return after["sync"]+after["gossip"] >= before["sync"]+before["gossip"]+records
	})
	if after["sync"]+after["gossip"] != before["sync"]+before["gossip"]+records || after["gossip"] < before["gossip"]+byGossip {
		t.Fatalf("%s accepted %v before %s and %v after, want %d records, at least %d of them by gossip", name, before, what, after, records, byGossip)
	}
}

// TestNetnsHelper is not a test: it is the process the netns tests start
// inside a namespace.
func TestNetnsHelper(t *testing.T) {
	switch os.Getenv(netnstest.RoleEnv) {
	case "pub":
		netnstest.ServePublic(t)
	case "metrics":
		helperMetrics()
	default:
		t.Skip("only run by the netns tests inside a namespace")
	}
}

// helperMetrics fetches a daemon's metrics from inside its namespace (its
// API listens on that namespace's loopback) and says METRICS: the records
// it accepted by path ("sync", "gossip", "local") and "topic_peers", as
// JSON.
func helperMetrics() {
	resp, err := http.Get(os.Getenv("CEIBA_METRICS_URL"))
	if err != nil {
		netnstest.Say("FATAL", "%v", err)
		return
	}
	defer resp.Body.Close()
	m := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, num, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, _ := strconv.ParseFloat(num, 64)
		switch {
		case name == "ceiba_topic_peers":
			m["topic_peers"] = int(v)
		case strings.HasPrefix(name, `ceiba_records_accepted_total{via="`):
			// ceiba_records_accepted_total{via="sync"} 5
			via := strings.TrimSuffix(strings.TrimPrefix(name, `ceiba_records_accepted_total{via="`), `"}`)
			m[via] = int(v)
		}
	}
	b, _ := json.Marshal(m)
	netnstest.Say("METRICS", "%s", b)
}

func isCircuit(addr string) bool { return strings.Contains(addr, "/p2p-circuit") }

// natNode is one ceiba home and daemon inside a namespace. Every namespace
// has its own loopback, so all use the same API and p2p ports.
type natNode struct {
	t    *testing.T
	name string
	ns   string
	home string
	env  []string
	net  *netnstest.Net
}

const (
	natAPIPort = "7447"
	natP2PPort = 4001
)

func (n *natNode) command(args ...string) *exec.Cmd {
	c := netnstest.Command(n.ns, binary, append([]string{"--home", n.home}, args...)...)
	c.Env = append(append(os.Environ(), testEnv...), n.env...)
	return c
}

// run runs the CLI without failing the test, for the watcher's goroutine.
func (n *natNode) run(args ...string) (string, error) {
	var out, errb bytes.Buffer
	c := n.command(args...)
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("%s: ceiba %s: %v: %s", n.name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (n *natNode) must(args ...string) string {
	n.t.Helper()
	out, err := n.run(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

func (n *natNode) json(v any, args ...string) {
	n.t.Helper()
	if err := json.Unmarshal([]byte(n.must(append(args, "--json")...)), v); err != nil {
		n.t.Fatalf("%s: ceiba %s: %v", n.name, strings.Join(args, " "), err)
	}
}

// init writes a laptop home that uses the relay, stays off AutoNAT
// (reachability private: it knows it is behind NAT, and the observers
// are not AutoNAT servers) and serves metrics (natNode.metrics).
func (n *natNode) init(name string, relays, bootstrap []string) {
	n.t.Helper()
	n.must("init", "--profile", "laptop", "--name", name, "--api-port", natAPIPort, "--p2p-port", strconv.Itoa(natP2PPort))
	h := daemon.Home{Dir: n.home}
	c, err := h.LoadConfig()
	if err != nil {
		n.t.Fatal(err)
	}
	c.Node.Relays = relays
	c.Node.Reachability = "private"
	c.Node.Bootstrap = bootstrap
	c.API.Metrics = true
	if err := h.SaveConfig(c); err != nil {
		n.t.Fatal(err)
	}
}

// presetHostKey writes the node's libp2p host key before its daemon first
// starts (the node would create one), so the test knows its peer ID.
func (n *natNode) presetHostKey() peer.ID {
	n.t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		n.t.Fatal(err)
	}
	raw, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		n.t.Fatal(err)
	}
	dir := daemon.Home{Dir: n.home}.DataDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "host.key"), raw, 0o600); err != nil {
		n.t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		n.t.Fatal(err)
	}
	return id
}

func (n *natNode) start() {
	n.t.Helper()
	c := n.command("daemon")
	var logs lockedbuf.Buffer
	c.Stdout, c.Stderr = &logs, &logs
	if err := c.Start(); err != nil {
		n.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	n.t.Cleanup(func() {
		// ip netns exec execs the daemon, so the signal reaches it.
		c.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-done
		}
		if n.t.Failed() || os.Getenv("CEIBA_NETNS_DAEMON_LOGS") != "" {
			n.t.Logf("%s's daemon log:\n%s", n.name, logs.String())
		}
	})
	waitUntil(n.t, 20*time.Second, n.name+"'s daemon to answer", func() bool {
		select {
		case <-done:
			n.t.Fatalf("%s's daemon exited: %s", n.name, logs.String())
		default:
		}
		_, err := n.run("status")
		return err == nil
	})
}

func (n *natNode) status() api.Status {
	n.t.Helper()
	var s api.Status
	n.json(&s, "status")
	return s
}

func (n *natNode) peers() []api.Peer {
	n.t.Helper()
	var ps []api.Peer
	n.json(&ps, "peers")
	return ps
}

func (n *natNode) finds(query, id string) bool {
	n.t.Helper()
	var es []api.Entry
	n.json(&es, "search", query)
	return slices.ContainsFunc(es, func(e api.Entry) bool { return e.ID == id })
}

// metrics is the node's records accepted by path (sync, gossip, local)
// and its GossipSub topic peers ("topic_peers"). The daemon starts
// counting records at the first scrape, so only differences between two
// calls say anything.
func (n *natNode) metrics() map[string]int {
	n.t.Helper()
	p := n.net.Helper(n.ns, "TestNetnsHelper", map[string]string{
		netnstest.RoleEnv: "metrics", "CEIBA_METRICS_URL": "http://127.0.0.1:" + natAPIPort + "/metrics"})
	m := map[string]int{}
	if err := json.Unmarshal([]byte(p.Expect("METRICS", 10*time.Second)), &m); err != nil {
		n.t.Fatal(err)
	}
	return m
}

// connWatch polls both nodes' connections until stopped. It keeps every
// connection that is neither a relay circuit nor one to the public
// namespace (the relay and observers, 7.0.0.x): whoever is at the other
// end, b's node or the short-lived host that redeems the invite, it could
// only have come through the other side's NAT.
type connWatch struct {
	mu     sync.Mutex
	direct []string
	conns  map[string]int // per node: polls that saw it connected to the other
	errs   []error
	quit   chan struct{}
	done   chan struct{}
}

func watchConns(t *testing.T, a, b *natNode) *connWatch {
	t.Helper()
	w := &connWatch{conns: map[string]int{}, quit: make(chan struct{}), done: make(chan struct{})}
	ids := map[*natNode]string{}
	// b has a peer ID only once it has joined and its node runs.
	peerID := func(n *natNode) string {
		if ids[n] == "" {
			var s api.Status
			if out, err := n.run("status", "--json"); err == nil && json.Unmarshal([]byte(out), &s) == nil {
				ids[n] = s.PeerID
			}
		}
		return ids[n]
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			for me, other := range map[*natNode]*natNode{a: b, b: a} {
				out, err := me.run("peers", "--json")
				var ps []api.Peer
				if err == nil {
					err = json.Unmarshal([]byte(out), &ps)
				}
				otherID := peerID(other)
				w.mu.Lock()
				if err != nil && !strings.Contains(err.Error(), "has not joined") {
					w.errs = append(w.errs, err)
				}
				for _, p := range ps {
					if p.ID == otherID {
						w.conns[me.name]++
					}
					for _, addr := range p.Addrs {
						c := fmt.Sprintf("%s with %s at %s", me.name, p.ID, addr)
						if !isCircuit(addr) && !strings.HasPrefix(addr, "/ip4/7.0.0.") && !slices.Contains(w.direct, c) {
							w.direct = append(w.direct, c)
						}
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *connWatch) stop() map[string]int {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conns
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const natLegalEntry = `id: asesoria-juridica
service:
  name: Asesoría jurídica para personas defensoras
  description: Acompañamiento legal en solicitudes de asilo y medidas de protección.
  status: active
  categories: [legal, migration]
  languages: [es, en]
  areas:
    - city: Ciudad de México
      country: MX
  contacts:
    - kind: signal
      value: "+52 55 0000 0001"
      preferred: true
`
