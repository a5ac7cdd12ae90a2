// Package netnstest is for tests only: it builds small networks of Linux
// network namespaces joined by veth links, with home routers that NAT
// (nftables masquerade), and runs helper processes inside them. Nothing in
// Ceiba itself may import it.
//
// The usual topology is TwoNATs:
//
//	a (192.168.1.2) ── ra (NAT) 7.0.1.2 ─┐
//	                                     pub: relay 7.0.0.1, observers 7.0.0.2-5
//	b (192.168.2.2) ── rb (NAT) 7.0.2.2 ─┘
//
// The 7.0.0.0/8 addresses are public-looking on purpose (libp2p only hole
// punches between public addresses, and drops relay addresses that are
// not public); no namespace has a route out, so no packet leaves the
// test's namespaces.
//
// A Go process cannot pin its goroutines to one namespace, so whatever
// runs inside one is its own process: a command under "ip netns exec", or
// the test binary itself re-run as one test function (Net.Helper) that
// reports back with "CEIBA key value" lines on stdout (Say).
package netnstest

import (
	"bufio"
	"cmp"
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
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/transport"
)

// RoleEnv names the environment variable that tells a re-run test binary
// which helper to be. Tests choose the values.
const RoleEnv = "CEIBA_NETNS_ROLE"

// InHelper reports whether this process is a helper started by Net.Helper;
// the test that starts the helpers should skip itself there.
func InHelper() bool { return os.Getenv(RoleEnv) != "" }

// Net is one test's namespaces. They are removed when the test ends.
type Net struct {
	t      testing.TB
	prefix string
}

// New skips the test unless it runs as root on a machine with network
// namespaces and nftables (NAT needs it).
func New(t testing.TB) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	for _, c := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("network namespaces: the %s command is missing", c)
		}
	}
	b := make([]byte, 3)
	rand.Read(b)
	// A random prefix, so parallel runs (and test packages) do not collide.
	n := &Net{t: t, prefix: "cb" + hex.EncodeToString(b)}
	probe := n.prefix + "probe"
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("network namespaces unavailable (ip netns add: %v: %s)", err, out)
	}
	defer exec.Command("ip", "netns", "del", probe).Run()
	c := exec.Command("ip", "netns", "exec", probe, "nft", "-f", "-")
	c.Stdin = strings.NewReader(natRuleset(Symmetric))
	if out, err := c.CombinedOutput(); err != nil {
		t.Skipf("nftables cannot masquerade here (%v: %s)", err, out)
	}
	return n
}

// Add creates a namespace with loopback up and returns its full name.
func (n *Net) Add(name string) string {
	full := n.prefix + name
	n.cmd("ip", "netns", "add", full)
	n.t.Cleanup(func() { exec.Command("ip", "netns", "del", full).Run() })
	n.Run(full, "ip", "link", "set", "lo", "up")
	return full
}

// Link joins two namespaces with a veth pair created directly inside
// them, so nothing appears in the host's namespace even briefly.
func (n *Net) Link(ns1, if1, addr1, ns2, if2, addr2 string) {
	n.t.Helper()
	n.cmd("ip", "link", "add", "name", if1, "netns", ns1, "type", "veth", "peer", "name", if2, "netns", ns2)
	n.Run(ns1, "ip", "addr", "add", addr1, "dev", if1)
	n.Run(ns2, "ip", "addr", "add", addr2, "dev", if2)
	n.Run(ns1, "ip", "link", "set", if1, "up")
	n.Run(ns2, "ip", "link", "set", if2, "up")
}

// NAT is how a router maps its inside hosts' connections to its outside
// address.
type NAT int

const (
	// Cone: plain masquerade. A flow keeps its source port when it is
	// free, so every peer outside sees the same address and port for one
	// inside socket (endpoint-independent mapping), and hole punching
	// works.
	Cone NAT = iota
	// Symmetric: masquerade with fully random ports. Each new flow (a
	// new destination) leaves from a fresh random port, so what one
	// outside peer observes says nothing about the port another will
	// see, and hole punching has nothing to aim at: the NAT of most
	// mobile carriers and many corporate firewalls.
	Symmetric
)

func (k NAT) String() string {
	if k == Symmetric {
		return "symmetric"
	}
	return "cone"
}

// natRuleset makes a namespace a home router: masquerade out of "wan",
// and drop (rather than refuse) what arrives unsolicited on it, as home
// routers do. Without the drop, the router's own kernel answers a hole
// punch that arrives a moment before ours left with a TCP reset or an
// ICMP "port unreachable", and the punch fails.
func natRuleset(k NAT) string {
	masq := "masquerade"
	if k == Symmetric {
		// "random" picks the port at random instead of keeping the
		// source port; "fully-random" makes it a fresh random port for
		// every mapping (the kernel's NF_NAT_RANGE_PROTO_RANDOM_FULLY).
		masq = "masquerade random,fully-random"
	}
	return `table ip nat {
	chain post {
		type nat hook postrouting priority 100;
		oifname "wan" ` + masq + `
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
}

// Masquerade makes ns a NAT router of kind k towards its "wan" link.
func (n *Net) Masquerade(ns string, k NAT) {
	n.t.Helper()
	c := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	c.Stdin = strings.NewReader(natRuleset(k))
	if out, err := c.CombinedOutput(); err != nil {
		n.t.Fatalf("nft in %s: %v: %s", ns, err, out)
	}
}

// ForwardPort makes router ns forward TCP and UDP port arriving on "wan"
// to the same port of the inside host to, as a home router with a port
// forwarding rule (or UPnP) does: that host becomes reachable from
// outside without hole punching.
func (n *Net) ForwardPort(ns string, port int, to string) {
	n.t.Helper()
	c := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	c.Stdin = strings.NewReader(fmt.Sprintf(`table ip nat {
	chain pre {
		type nat hook prerouting priority -100;
		iifname "wan" tcp dport %[1]d dnat to %[2]s
		iifname "wan" udp dport %[1]d dnat to %[2]s
	}
}
`, port, to))
	if out, err := c.CombinedOutput(); err != nil {
		n.t.Fatalf("nft in %s: %v: %s", ns, err, out)
	}
}

func (n *Net) cmd(args ...string) {
	n.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		n.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Run runs a command inside ns and fails the test if it fails.
func (n *Net) Run(ns string, args ...string) {
	n.t.Helper()
	n.cmd(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// Command is a command to run inside ns, not yet started.
func Command(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Topology is the namespaces of TwoNATs.
type Topology struct {
	*Net
	Pub, RA, A, RB, B string
}

// Public addresses in the pub namespace of TwoNATs.
const (
	RelayIP = "7.0.0.1"
	// Observers are 7.0.0.2 to 7.0.0.5.
	firstObserver, lastObserver = 2, 5
)

// TwoNATs builds two hosts, a and b, each behind its own NAT router of
// kind k, both routers on a "public" namespace that has addresses for a
// relay and observers (ServePublic).
func TwoNATs(t testing.TB, k NAT) *Topology {
	t.Helper()
	n := New(t)
	tp := &Topology{Net: n, Pub: n.Add("pub"), RA: n.Add("ra"), A: n.Add("a"), RB: n.Add("rb"), B: n.Add("b")}
	n.Link(tp.Pub, "wa", "7.0.1.1/24", tp.RA, "wan", "7.0.1.2/24")
	n.Link(tp.Pub, "wb", "7.0.2.1/24", tp.RB, "wan", "7.0.2.2/24")
	n.Link(tp.RA, "lan", "192.168.1.1/24", tp.A, "eth0", "192.168.1.2/24")
	n.Link(tp.RB, "lan", "192.168.2.1/24", tp.B, "eth0", "192.168.2.2/24")
	for i := 1; i <= lastObserver; i++ {
		n.Run(tp.Pub, "ip", "addr", "add", fmt.Sprintf("7.0.0.%d/32", i), "dev", "lo")
	}
	for _, r := range []string{tp.Pub, tp.RA, tp.RB} {
		n.Run(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	n.Run(tp.RA, "ip", "route", "add", "default", "via", "7.0.1.1")
	n.Run(tp.RB, "ip", "route", "add", "default", "via", "7.0.2.1")
	n.Run(tp.A, "ip", "route", "add", "default", "via", "192.168.1.1")
	n.Run(tp.B, "ip", "route", "add", "default", "via", "192.168.2.1")
	n.Masquerade(tp.RA, k)
	n.Masquerade(tp.RB, k)
	return tp
}

// Say reports "CEIBA key value" to the test that started this helper.
func Say(key, format string, args ...any) {
	fmt.Printf("CEIBA %s %s\n", key, fmt.Sprintf(format, args...))
}

// Host is a libp2p host built from the transport package's options, as a
// node builds its own, with a fresh identity. It says FATAL and fails t if
// it cannot.
func Host(t testing.TB, cfg transport.Config) host.Host {
	t.Helper()
	b, err := transport.Options(cfg)
	if err != nil {
		Say("FATAL", "%v", err)
		t.Fatal(err)
	}
	sk, _, _ := crypto.GenerateEd25519Key(nil)
	h, err := libp2p.New(append(b.Options, libp2p.Identity(sk))...)
	if err != nil {
		Say("FATAL", "%v", err)
		t.Fatal(err)
	}
	return h
}

// P2PAddr is a with h's /p2p/ID appended.
func P2PAddr(h host.Host, a ma.Multiaddr) string {
	return a.Encapsulate(ma.StringCast("/p2p/" + h.ID().String())).String()
}

// ServePublic is the helper for TwoNATs' pub namespace: a relay (a vps
// node, as Ceiba's own relays are) and four observers. libp2p trusts an
// observed address only once four distinct IPs have reported it, and hole
// punching needs the peers to know their public addresses. It says
// RELAY and OBSERVERS (comma-separated /p2p/ addresses) and serves until
// the test closes its stdin.
func ServePublic(t testing.TB) {
	relay := Host(t, transport.Config{Profile: transport.ProfileVPS, ForceReachability: "public",
		Listen: []string{"/ip4/" + RelayIP + "/tcp/4001", "/ip4/" + RelayIP + "/udp/4001/quic-v1"}, TCP: true, QUIC: true})
	defer relay.Close()
	var obs []string
	for i := firstObserver; i <= lastObserver; i++ {
		h := Host(t, transport.Config{TCP: true, QUIC: true, Listen: []string{
			fmt.Sprintf("/ip4/7.0.0.%d/tcp/4001", i), fmt.Sprintf("/ip4/7.0.0.%d/udp/4001/quic-v1", i)}})
		defer h.Close()
		for _, a := range h.Addrs() {
			obs = append(obs, P2PAddr(h, a))
		}
	}
	var ra []string
	for _, a := range relay.Addrs() {
		ra = append(ra, P2PAddr(relay, a))
	}
	Say("RELAY", "%s", strings.Join(ra, ","))
	Say("OBSERVERS", "%s", strings.Join(obs, ","))
	io.Copy(io.Discard, os.Stdin) // until the parent goes away
}

// Helper starts this test binary inside ns, running only the test
// function named test, with env added (RoleEnv among it, so the function
// knows what to be). The helper ends when the test does: its stdin closes
// and it is killed.
func (n *Net) Helper(ns, test string, env map[string]string) *Proc {
	n.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		n.t.Fatal(err)
	}
	c := Command(ns, exe, "-test.run=^"+test+"$", "-test.timeout=5m")
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
	p := &Proc{t: n.t, name: ns, lines: make(chan string, 1024), seen: map[string]string{}}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if k, v, ok := strings.Cut(strings.TrimPrefix(line, "CEIBA "), " "); ok && strings.HasPrefix(line, "CEIBA ") {
				p.seen[k] = v
			}
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
		c.Process.Kill()
		c.Wait()
	})
	return p
}

// Proc is a running helper.
type Proc struct {
	t     testing.TB
	name  string
	lines chan string
	mu    sync.Mutex
	seen  map[string]string
	log   []string
}

// LogTail is the helper's output lines containing substr (lower case),
// at most n of the last.
func (p *Proc) LogTail(substr string, n int) string {
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

// Expect waits for the helper's next "CEIBA key value" line with key and
// returns the value. It fails the test if the helper says FATAL, exits or
// stays silent for timeout.
func (p *Proc) Expect(key string, timeout time.Duration) string {
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

// Last is the value of the helper's latest line with key, or "".
func (p *Proc) Last(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[key]
}

// helperLogLevel is the helpers' libp2p log level: hole punching at debug,
// so a failure (or a success that should not be) says how far it got.
var helperLogLevel = cmp.Or(os.Getenv("CEIBA_NETNS_LOG"), "error,p2p-holepunch=debug")
