package transport_test

// Real hosts in network namespaces: two peers behind separate NAT-like
// routers (nftables masquerade) reach each other through a relay in a
// "public" namespace, then try a direct connection by hole punching
// (DCUtR). Each namespace runs its own process (this test binary again,
// as TestNetnsHelper), because a Go process cannot pin its goroutines to
// one namespace.
//
//	 a (192.168.1.2) ── ra (NAT) 7.0.1.2 ─┐
//	                                      pub: relay 7.0.0.1, observers 7.0.0.2-5
//	 b (192.168.2.2) ── rb (NAT) 7.0.2.2 ─┘
//
// The 7.0.0.0/8 addresses are public-looking on purpose (libp2p only hole
// punches between public addresses); no namespace has a route out, so no
// packet leaves the test's namespaces.

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/transport"
)

const echoProto = "/ceiba/test/echo/1.0.0"

func TestRelayAndHolePunchAcrossNAT(t *testing.T) {
	if os.Getenv("CEIBA_NETNS_ROLE") != "" {
		t.Skip("inside a helper")
	}
	if testing.Short() {
		t.Skip("network namespaces: skipped in -short")
	}
	ns := newNetns(t)
	pub, ra, a, rb, b := ns.add("pub"), ns.add("ra"), ns.add("a"), ns.add("rb"), ns.add("b")
	ns.link(pub, "wa", "7.0.1.1/24", ra, "wan", "7.0.1.2/24")
	ns.link(pub, "wb", "7.0.2.1/24", rb, "wan", "7.0.2.2/24")
	ns.link(ra, "lan", "192.168.1.1/24", a, "eth0", "192.168.1.2/24")
	ns.link(rb, "lan", "192.168.2.1/24", b, "eth0", "192.168.2.2/24")
	for i := 1; i <= 5; i++ {
		ns.run(pub, "ip", "addr", "add", fmt.Sprintf("7.0.0.%d/32", i), "dev", "lo")
	}
	for _, r := range []string{pub, ra, rb} {
		ns.run(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	ns.run(ra, "ip", "route", "add", "default", "via", "7.0.1.1")
	ns.run(rb, "ip", "route", "add", "default", "via", "7.0.2.1")
	ns.run(a, "ip", "route", "add", "default", "via", "192.168.1.1")
	ns.run(b, "ip", "route", "add", "default", "via", "192.168.2.1")
	ns.masquerade(ra)
	ns.masquerade(rb)

	relay := ns.helper(pub, map[string]string{"CEIBA_NETNS_ROLE": "pub"})
	relayAddr := relay.expect("RELAY", 20*time.Second)
	observers := relay.expect("OBSERVERS", 5*time.Second)

	peerEnv := map[string]string{"CEIBA_NETNS_ROLE": "peer", "CEIBA_RELAY": relayAddr, "CEIBA_OBSERVERS": observers}
	hb := ns.helper(b, peerEnv)
	bCircuit := hb.expect("CIRCUIT", 30*time.Second)
	t.Logf("b is reachable through the relay at %s", bCircuit)
	peerEnv["CEIBA_TARGET"] = bCircuit
	ha := ns.helper(a, peerEnv)
	ha.expect("CIRCUIT", 30*time.Second)
	start := time.Now()
	if res := ha.expect("RELAYED", 30*time.Second); !strings.HasPrefix(res, "ok") {
		t.Fatalf("a could not reach b through the relay: %s", res)
	}
	t.Logf("a reached b through the relay (%s after a got its circuit address; a first waits for its observed public address)", time.Since(start).Round(time.Millisecond))
	res := ha.expect("DIRECT", 60*time.Second)
	if !strings.HasPrefix(res, "ok") {
		t.Fatalf("no direct connection after hole punching: %s\nb observed: %s\na observed: %s\nb's hole punching log:\n%s\na's hole punching log:\n%s",
			res, hb.last("OBSERVED"), ha.last("OBSERVED"), hb.logTail(os.Getenv("CEIBA_NETNS_GREP"), 60), ha.logTail(os.Getenv("CEIBA_NETNS_GREP"), 60))
	}
	t.Logf("a and b connected directly after hole punching (%s after the relayed connection): %s", time.Since(start).Round(time.Millisecond), res)
}

// TestNetnsHelper is not a test: it is the process TestRelayAndHolePunch
// starts inside each namespace.
func TestNetnsHelper(t *testing.T) {
	switch os.Getenv("CEIBA_NETNS_ROLE") {
	case "pub":
		helperPub(t)
	case "peer":
		helperPeer(t)
	default:
		t.Skip("only run by TestRelayAndHolePunchAcrossNAT inside a namespace")
	}
}

func say(key, format string, args ...any) {
	fmt.Printf("CEIBA %s %s\n", key, fmt.Sprintf(format, args...))
}

func helperHost(t *testing.T, cfg transport.Config) host.Host {
	b, err := transport.Options(cfg)
	if err != nil {
		say("FATAL", "%v", err)
		t.Fatal(err)
	}
	sk, _, _ := crypto.GenerateEd25519Key(nil)
	h, err := libp2p.New(append(b.Options, libp2p.Identity(sk))...)
	if err != nil {
		say("FATAL", "%v", err)
		t.Fatal(err)
	}
	return h
}

func p2pAddr(h host.Host, a ma.Multiaddr) string {
	return a.Encapsulate(ma.StringCast("/p2p/" + h.ID().String())).String()
}

// helperPub runs the relay (a vps node) and four observers: libp2p trusts
// an observed address only once four distinct IPs have reported it, and
// hole punching needs the peers to know their public addresses.
func helperPub(t *testing.T) {
	relay := helperHost(t, transport.Config{Profile: transport.ProfileVPS, ForceReachability: "public",
		Listen: []string{"/ip4/7.0.0.1/tcp/4001", "/ip4/7.0.0.1/udp/4001/quic-v1"}, TCP: true, QUIC: true})
	defer relay.Close()
	var obs []string
	for i := 2; i <= 5; i++ {
		h := helperHost(t, transport.Config{TCP: true, QUIC: true, Listen: []string{
			fmt.Sprintf("/ip4/7.0.0.%d/tcp/4001", i), fmt.Sprintf("/ip4/7.0.0.%d/udp/4001/quic-v1", i)}})
		defer h.Close()
		for _, a := range h.Addrs() {
			obs = append(obs, p2pAddr(h, a))
		}
	}
	var ra []string
	for _, a := range relay.Addrs() {
		ra = append(ra, p2pAddr(relay, a))
	}
	say("RELAY", "%s", strings.Join(ra, ","))
	say("OBSERVERS", "%s", strings.Join(obs, ","))
	io.Copy(io.Discard, os.Stdin) // until the parent goes away
}

func helperPeer(t *testing.T) {
	relays := strings.Split(os.Getenv("CEIBA_RELAY"), ",")
	h := helperHost(t, transport.Config{Profile: transport.ProfileLaptop, ForceReachability: "private",
		Listen: []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}, TCP: true, QUIC: true,
		Relays: relays})
	defer h.Close()
	h.SetStreamHandler(echoProto, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, io.LimitReader(s, 64))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, s := range strings.Split(os.Getenv("CEIBA_OBSERVERS"), ",") {
		ai, err := peer.AddrInfoFromString(s)
		if err == nil {
			h.Connect(ctx, *ai)
		}
	}
	var circuit string
	for circuit == "" && ctx.Err() == nil {
		for _, a := range h.Addrs() {
			if strings.Contains(a.String(), "/p2p-circuit") {
				circuit = p2pAddr(h, a)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	say("CIRCUIT", "%s", circuit)
	go func() {
		for ctx.Err() == nil {
			var pub []string
			for _, a := range h.Addrs() {
				if !strings.Contains(a.String(), "p2p-circuit") {
					pub = append(pub, a.String())
				}
			}
			say("OBSERVED", "%v", pub)
			time.Sleep(2 * time.Second)
		}
	}()
	target := os.Getenv("CEIBA_TARGET")
	if target == "" {
		io.Copy(io.Discard, os.Stdin)
		return
	}
	// Hole punching starts on b's side the moment a's relayed connection
	// arrives, and a answers only once its hole-punching service has seen
	// a public address (it polls every few hundred milliseconds). Dialing
	// before that loses the one attempt b makes.
	for ctx.Err() == nil && !hasPublicDirectAddr(h) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	ai, err := peer.AddrInfoFromString(target)
	if err != nil {
		say("RELAYED", "fail: %v", err)
		return
	}
	if err := h.Connect(ctx, *ai); err != nil {
		say("RELAYED", "fail: connect: %v", err)
		return
	}
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "test"), ai.ID, echoProto)
	if err != nil {
		say("RELAYED", "fail: stream: %v", err)
		return
	}
	s.Write([]byte("hola"))
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hola" {
		say("RELAYED", "fail: echo %q %v", got, err)
		return
	}
	say("RELAYED", "ok over %s", s.Conn().RemoteMultiaddr())
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range h.Network().ConnsToPeer(ai.ID) {
			if !strings.Contains(c.RemoteMultiaddr().String(), "p2p-circuit") {
				say("DIRECT", "ok %s", c.RemoteMultiaddr())
				io.Copy(io.Discard, os.Stdin)
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	var conns []string
	for _, c := range h.Network().ConnsToPeer(ai.ID) {
		conns = append(conns, c.RemoteMultiaddr().String())
	}
	say("DIRECT", "fail: after 45s only %v; own addrs %v", conns, h.Addrs())
	io.Copy(io.Discard, os.Stdin)
}

func hasPublicDirectAddr(h host.Host) bool {
	for _, a := range h.Addrs() {
		if !strings.Contains(a.String(), "p2p-circuit") && !transport.IsPrivateAddr(a) {
			return true
		}
	}
	return false
}

// netns creates namespaces and links for one test and removes them when
// it ends. Names carry a random suffix so parallel runs do not collide.
type netns struct {
	t      *testing.T
	prefix string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces: the ip command is missing")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		if _, err := exec.LookPath("iptables"); err != nil {
			t.Skip("network namespaces: neither nft nor iptables is installed, so there is no NAT")
		}
	}
	b := make([]byte, 3)
	rand.Read(b)
	n := &netns{t: t, prefix: "cb" + hex.EncodeToString(b)}
	probe := n.prefix + "probe"
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("network namespaces unavailable (ip netns add: %v: %s)", err, out)
	}
	exec.Command("ip", "netns", "del", probe).Run()
	return n
}

func (n *netns) add(name string) string {
	full := n.prefix + name
	n.cmd("ip", "netns", "add", full)
	n.t.Cleanup(func() { exec.Command("ip", "netns", "del", full).Run() })
	n.run(full, "ip", "link", "set", "lo", "up")
	return full
}

// link joins two namespaces with a veth pair created directly inside
// them, so nothing appears in the host's namespace even briefly.
func (n *netns) link(ns1, if1, addr1, ns2, if2, addr2 string) {
	n.cmd("ip", "link", "add", "name", if1, "netns", ns1, "type", "veth", "peer", "name", if2, "netns", ns2)
	n.run(ns1, "ip", "addr", "add", addr1, "dev", if1)
	n.run(ns2, "ip", "addr", "add", addr2, "dev", if2)
	n.run(ns1, "ip", "link", "set", if1, "up")
	n.run(ns2, "ip", "link", "set", if2, "up")
}

func (n *netns) masquerade(ns string) {
	if _, err := exec.LookPath("nft"); err == nil {
		c := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
		c.Stdin = strings.NewReader(natRuleset)
		if out, err := c.CombinedOutput(); err != nil {
			n.t.Fatalf("nft in %s: %v: %s", ns, err, out)
		}
		return
	}
	n.run(ns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE")
	n.run(ns, "iptables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	n.run(ns, "iptables", "-A", "INPUT", "-i", "wan", "-j", "DROP")
}

// natRuleset makes a namespace a home router: masquerade out of "wan",
// and drop (rather than refuse) what arrives unsolicited on it, as home
// routers do. Without the drop, the router's own kernel answers a hole
// punch that arrives a moment before ours left with a TCP reset or an
// ICMP "port unreachable", and the punch fails.
const natRuleset = `table ip nat {
	chain post {
		type nat hook postrouting priority 100;
		oifname "wan" masquerade
	}
}
table ip filter {
	chain in {
		type filter hook input priority 0;
		iifname "wan" ct state established,related accept
		iifname "wan" drop
	}
}
`

func (n *netns) cmd(args ...string) {
	n.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		n.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (n *netns) run(ns string, args ...string) {
	n.t.Helper()
	n.cmd(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// helper starts this test binary as TestNetnsHelper inside ns.
func (n *netns) helper(ns string, env map[string]string) *helperProc {
	n.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		n.t.Fatal(err)
	}
	c := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestNetnsHelper$", "-test.timeout=5m")
	c.Env = append(os.Environ(), "GOLOG_LOG_LEVEL="+helperLogLevel)
	for k, v := range env {
		c.Env = append(c.Env, k+"="+v)
	}
	stdin, _ := c.StdinPipe()
	stdout, _ := c.StdoutPipe()
	c.Stderr = c.Stdout
	if err := c.Start(); err != nil {
		n.t.Fatal(err)
	}
	p := &helperProc{t: n.t, name: ns, lines: make(chan string, 1024), seen: map[string]string{}}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if k, v, ok := strings.Cut(strings.TrimPrefix(line, "CEIBA "), " "); ok && strings.HasPrefix(line, "CEIBA ") {
				p.mu.Lock()
				p.seen[k] = v
				p.mu.Unlock()
			}
			p.mu.Lock()
			p.log = append(p.log, line)
			p.mu.Unlock()
			select {
			case p.lines <- line:
			default:
			}
		}
		close(p.lines)
	}()
	n.t.Cleanup(func() {
		stdin.Close()
		if c.Process != nil {
			c.Process.Kill()
		}
		c.Wait()
	})
	return p
}

type helperProc struct {
	t     *testing.T
	name  string
	lines chan string
	mu    sync.Mutex
	seen  map[string]string
	log   []string
}

// logTail is the helper's output lines containing substr, at most n of the last.
func (p *helperProc) logTail(substr string, n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.log {
		if strings.Contains(strings.ToLower(l), substr) {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}

// expect waits for the helper's next "CEIBA key value" line with key.
func (p *helperProc) expect(key string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s exited before saying %s", p.name, key)
			}
			if strings.HasPrefix(line, "CEIBA FATAL") {
				p.t.Fatalf("%s: %s", p.name, line)
			}
			if v, ok := strings.CutPrefix(line, "CEIBA "+key+" "); ok {
				return v
			}
		case <-deadline:
			p.t.Fatalf("%s did not say %s within %s", p.name, key, timeout)
		}
	}
}

func (p *helperProc) last(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[key]
}

// helperLogLevel is the helpers' libp2p log level: hole punching at debug,
// so a failure says how far it got.
var helperLogLevel = cmp.Or(os.Getenv("CEIBA_NETNS_LOG"), "error,p2p-holepunch=debug")
