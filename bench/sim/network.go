package sim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
)

// Topology says how densely nodes are connected.
type Topology string

const (
	// Sparse: a ring plus two random chords per node, about six
	// connections each: what a network of small organizations that each
	// know a few others looks like.
	Sparse Topology = "sparse"
	// Dense: a ring plus nine random chords per node, about twenty
	// connections each, beyond GossipSub's mesh degree (6 to 12).
	Dense Topology = "dense"
	// Readers: Config.Members member nodes (stewards and organizations
	// first) in the sparse ring-and-chords among themselves, and every
	// other node a reader linked to ReaderLinks random members and to no
	// other reader, as a reader's node connects: to the members it was
	// invited by or found, never to other readers (PROTOCOL.md §7).
	Readers Topology = "readers"
)

// ReaderLinks is how many members each reader connects to in the Readers
// topology.
const ReaderLinks = 3

func (t Topology) chords() int {
	if t == Dense {
		return 9
	}
	return 2
}

// Config describes a simulated network.
type Config struct {
	N        int           // nodes
	Latency  time.Duration // one-way delay of every link
	Loss     float64       // emulated loss probability per packet (see lossy.go); 0 is none
	Topology Topology      // Sparse if empty
	Seed     uint64        // topology and loss draws
	// Members is how many of the N nodes are members in the Readers
	// topology; the rest are readers. Unused by the other topologies.
	Members int

	// Orgs is how many member organizations the network admits at start.
	// Nodes 0 to 2 hold the three stewards' identities (threshold 2) and
	// nodes 3 to 3+Orgs-1 the organizations', so that what they publish
	// is their own, as the DHT manifests require.
	Orgs int
	// Bare starts the bare GossipSub baseline on every host.
	Bare bool
	// DHT runs the DHT on every node; it is off unless measured.
	DHT bool
	// SyncInterval and FetchInterval override the node defaults.
	SyncInterval  time.Duration
	FetchInterval time.Duration
	// Policy is the genesis charter's policy; the zero value takes the
	// defaults. Benchmarks that publish in bulk from few organizations
	// raise the per-author limits (BulkPolicy).
	Policy directory.Policy
	// Logger gets the nodes' logs; nil discards them.
	Logger *slog.Logger
	// Disk, if set, is a directory under which every node keeps its own
	// store on disk (pebble, each write made durable), as a daemon does,
	// instead of in memory: what a durable write on a hop's path costs
	// shows only there.
	Disk string
}

const stewards = 3

// Network is N Ceiba nodes in one process on a libp2p mock network.
type Network struct {
	Cfg   Config
	Fix   *Fixture
	Orgs  []*directory.Identity
	Nodes []*Peer

	mn    mocknet.Mocknet
	edges [][2]int
	tr    *tracker
	ctx   context.Context
	stop  context.CancelFunc
	rng   *mrand.Rand
	log   *slog.Logger
}

// Peer is one simulated node.
type Peer struct {
	Index int
	Node  *node.Node
	Host  host.Host // as the node sees it: lossy when the network is, counting bytes
	ID    *directory.Identity
	DS    datastore.Batching
	Links []int

	bare      *bareRouter
	dht       dhtProgress
	published int // records this node published, for DHT put pacing
	stopWatch func()
	watchDone chan struct{}
}

// New builds and starts a network: hosts, links, nodes, connections, the
// founding records on every node and, with Bare, the baseline router. It
// returns once every node holds the charter and the memberships and both
// routers have had time to build their meshes.
func New(ctx context.Context, cfg Config) (*Network, error) {
	if cfg.N < 2 {
		return nil, errors.New("sim: a network needs at least two nodes")
	}
	if cfg.Topology == "" {
		cfg.Topology = Sparse
	}
	if cfg.Topology == Readers && (cfg.Members < stewards+cfg.Orgs || cfg.Members < ReaderLinks || cfg.Members >= cfg.N) {
		return nil, fmt.Errorf("sim: the readers topology needs at least %d members (stewards, organizations, and %d per reader) and fewer than the %d nodes, not %d", max(stewards+cfg.Orgs, ReaderLinks), ReaderLinks, cfg.N, cfg.Members)
	}
	if stewards+cfg.Orgs > cfg.N {
		return nil, fmt.Errorf("sim: %d stewards and %d organizations need %d nodes", stewards, cfg.Orgs, stewards+cfg.Orgs)
	}
	fix, err := NewFixture(stewards, 2, cfg.Policy)
	if err != nil {
		return nil, err
	}
	nw := &Network{Cfg: cfg, Fix: fix, mn: mocknet.New(), tr: newTracker(cfg.N), rng: newRand(cfg.Seed), log: cfg.Logger}
	if nw.log == nil {
		nw.log = slog.New(slog.DiscardHandler)
	}
	nw.ctx, nw.stop = context.WithCancel(context.Background())
	nw.mn.SetLinkDefaults(mocknet.LinkOptions{Latency: cfg.Latency})
	ok := false
	defer func() {
		if !ok {
			nw.Close()
		}
	}()
	for range cfg.Orgs {
		id, err := directory.NewIdentity()
		if err != nil {
			return nil, err
		}
		nw.Orgs = append(nw.Orgs, id)
	}
	nw.Nodes = make([]*Peer, cfg.N)
	for i := range nw.Nodes {
		id, err := nw.identity(i)
		if err != nil {
			return nil, err
		}
		h, err := nw.addHost(i)
		if err != nil {
			return nil, err
		}
		nw.Nodes[i] = &Peer{Index: i, Host: h, ID: id, DS: dssync.MutexWrap(datastore.NewMapDatastore())}
	}
	// Starting a node is mostly CPU (GossipSub, sync, state): one per core.
	if err := parallel(cfg.N, func(i int) error { return nw.start(ctx, nw.Nodes[i], nw.nodeConfig(nw.Nodes[i])) }); err != nil {
		return nil, err
	}
	if cfg.Bare {
		for _, p := range nw.Nodes {
			if p.bare, err = startBare(nw.ctx, p.Host, p.Index, nw.tr); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Topology == Readers {
		nw.edges = readerTopology(cfg.N, cfg.Members, nw.rng)
	} else {
		nw.edges = topology(cfg.N, cfg.Topology.chords(), nw.rng)
	}
	if cfg.DHT {
		// A DHT node dials whichever peer a lookup names, as it could on
		// the internet; mocknet dials only along links, so link every pair.
		// The connections made below are still the topology's; the DHT adds
		// its own as it goes.
		if err := nw.mn.LinkAll(); err != nil {
			return nil, err
		}
	}
	for _, e := range nw.edges {
		nw.Nodes[e[0]].Links = append(nw.Nodes[e[0]].Links, e[1])
		nw.Nodes[e[1]].Links = append(nw.Nodes[e[1]].Links, e[0])
		if err := nw.connect(e[0], e[1]); err != nil {
			return nil, err
		}
	}
	if err := nw.waitTopics(ctx); err != nil {
		return nil, err
	}
	// GossipSub grafts its mesh at heartbeats (every second); until then a
	// relay forwards only by gossip, which would measure mesh formation
	// rather than delivery.
	if err := sleep(ctx, 3*time.Second); err != nil {
		return nil, err
	}
	founding := []*directory.Record{fix.Genesis}
	for i, org := range nw.Orgs {
		m, err := fix.Admit(org, fmt.Sprintf("Colectivo %d", i+1))
		if err != nil {
			return nil, err
		}
		founding = append(founding, m)
	}
	for _, r := range founding {
		if _, err := nw.Publish(ctx, 0, r, time.Minute); err != nil {
			return nil, fmt.Errorf("sim: founding records: %w", err)
		}
	}
	ok = true
	return nw, nil
}

func (nw *Network) identity(i int) (*directory.Identity, error) {
	switch {
	case i < stewards:
		return nw.Fix.Stewards[i], nil
	case i < stewards+len(nw.Orgs):
		return nw.Orgs[i-stewards], nil
	}
	return directory.NewIdentity()
}

func (nw *Network) addHost(i int) (host.Host, error) {
	// Ed25519 host keys, as real nodes have (mocknet's GenPeer makes ECDSA
	// ones, which sign and verify GossipSub messages more slowly).
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	addr := ma.StringCast(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", (i>>16)&0xff, (i>>8)&0xff, i&0xff))
	h, err := nw.mn.AddPeer(sk, addr)
	if err != nil {
		return nil, err
	}
	if nw.Cfg.Loss > 0 {
		return newCountingHost(newLossyHost(h, nw.Cfg.Loss, nw.Cfg.Seed+uint64(i)+1), i), nil
	}
	return newCountingHost(h, i), nil
}

func (nw *Network) nodeConfig(p *Peer) node.Config {
	cfg := node.Config{
		Network:      nw.Fix.Net,
		Keystore:     &directory.Keystore{Identity: p.ID, Keys: nw.Fix.Keyring()},
		Host:         p.Host,
		Datastore:    p.DS,
		Logger:       nw.log,
		SyncInterval: nw.Cfg.SyncInterval,
		DHT:          node.DHTConfig{Disabled: !nw.Cfg.DHT, AllowPrivateAddrs: true, FetchInterval: nw.Cfg.FetchInterval},
	}
	if nw.Cfg.Disk != "" {
		cfg.Datastore = nil
		cfg.DataDir = filepath.Join(nw.Cfg.Disk, fmt.Sprintf("node-%d", p.Index))
	}
	return cfg
}

// nodeLabel is the profiler label of node i's goroutines.
func nodeLabel(i int) pprof.LabelSet { return pprof.Labels("node", strconv.Itoa(i)) }

// start starts p's node with cfg and the watcher that timestamps its
// events.
func (nw *Network) start(ctx context.Context, p *Peer, cfg node.Config) error {
	// Every goroutine the node starts carries its index as a profiler
	// label (they inherit it), so a CPU profile tells the nodes apart
	// though one process runs them all: BenchmarkChurn's windows split
	// the churner's own node from the others this way.
	var n *node.Node
	var err error
	pprof.Do(ctx, nodeLabel(p.Index), func(ctx context.Context) { n, err = node.New(ctx, cfg) })
	if err != nil {
		return fmt.Errorf("sim: node %d: %w", p.Index, err)
	}
	p.Node = n
	ch, stop := n.Subscribe()
	p.stopWatch, p.watchDone = stop, make(chan struct{})
	go func() {
		defer close(p.watchDone)
		for ev := range ch {
			// The broker stamps an event when the node publishes it, right
			// after the state applied the record (and the index took it).
			switch {
			case ev.Kind == node.EventRecord:
				nw.tr.mark(ev.Hash, p.Index, ev.Time)
			case ev.Kind == node.EventDHT && ev.Type == directory.TypeManifest:
				p.dht.manifest(ev.Pulled, ev.Err)
			case ev.Kind == node.EventDHT && ev.Hash != (directory.Hash{}):
				p.dht.put(ev.Err)
			}
		}
	}()
	return nil
}

// topology returns the edges of a ring with chords random chords per node,
// without duplicates.
func topology(n, chords int, rng *mrand.Rand) [][2]int {
	seen := map[[2]int]bool{}
	var edges [][2]int
	add := func(a, b int) {
		if a == b {
			return
		}
		e := [2]int{min(a, b), max(a, b)}
		if !seen[e] {
			seen[e] = true
			edges = append(edges, e)
		}
	}
	for i := range n {
		add(i, (i+1)%n)
	}
	for i := range n {
		for range chords {
			add(i, rng.IntN(n))
		}
	}
	return edges
}

// readerTopology returns the edges of the Readers topology: the sparse
// topology among the first members nodes, and each of the others linked to
// ReaderLinks distinct random members.
func readerTopology(n, members int, rng *mrand.Rand) [][2]int {
	edges := topology(members, Sparse.chords(), rng)
	for r := members; r < n; r++ {
		for _, m := range rng.Perm(members)[:ReaderLinks] {
			edges = append(edges, [2]int{m, r})
		}
	}
	return edges
}

// RandomMember is a random node that publishes in the topology: any node,
// except in the Readers topology, where only members publish.
func (nw *Network) RandomMember() int {
	if nw.Cfg.Topology == Readers {
		return nw.rng.IntN(nw.Cfg.Members)
	}
	return nw.RandomNode()
}

func (nw *Network) connect(a, b int) error {
	pa, pb := nw.Nodes[a].Host.ID(), nw.Nodes[b].Host.ID()
	if len(nw.mn.LinksBetweenPeers(pa, pb)) == 0 {
		if _, err := nw.mn.LinkPeers(pa, pb); err != nil {
			return err
		}
	}
	_, err := nw.mn.ConnectPeers(pa, pb)
	return err
}

// waitTopics waits until every node sees each of its neighbours on the
// network's topic (and on the bare topic), the precondition for a mesh.
func (nw *Network) waitTopics(ctx context.Context) error {
	deadline := time.Now().Add(2*time.Minute + time.Duration(nw.Cfg.N)*20*time.Millisecond)
	for {
		lacking := 0
		for _, p := range nw.Nodes {
			if p.Node.Status().TopicPeers < len(p.Links) {
				lacking++
			} else if p.bare != nil && len(p.bare.topic.ListPeers()) < len(p.Links) {
				lacking++
			}
		}
		if lacking == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sim: %d nodes still miss topic peers", lacking)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops every node and the mock network.
func (nw *Network) Close() error {
	parallel(len(nw.Nodes), func(i int) error {
		if p := nw.Nodes[i]; p != nil && p.Node != nil {
			p.Node.Close()
			p.stopWatch()
			<-p.watchDone
		}
		return nil
	})
	nw.stop()
	return nw.mn.Close()
}

// RandomNode picks a node uniformly, from the network's own seeded source.
func (nw *Network) RandomNode() int { return nw.rng.IntN(len(nw.Nodes)) }

// Publish publishes r on node origin and waits until every node has
// applied it, or timeout. The sample holds each node's delay from just
// before Publish; missing counts nodes that did not get it in time.
func (nw *Network) Publish(ctx context.Context, origin int, r *directory.Record, timeout time.Duration) (Sample, error) {
	return nw.PublishSkipping(ctx, origin, r, timeout)
}

// PublishSkipping is Publish that waits for, and samples, every node but
// those in skip: BenchmarkChurn leaves out the churner's own node, which
// its neighbours graylist (node/forwardrate.go) and which then gets
// records by sync only.
func (nw *Network) PublishSkipping(ctx context.Context, origin int, r *directory.Record, timeout time.Duration, skip ...int) (Sample, error) {
	h := r.Hash()
	a := nw.tr.expect(h, skip...)
	defer nw.tr.forget(h)
	start := time.Now()
	if _, err := nw.Nodes[origin].Node.Publish(ctx, r); err != nil {
		return nil, fmt.Errorf("sim: publish on node %d: %w", origin, err)
	}
	return nw.wait(ctx, a, start, timeout)
}

// flushIndexes makes every node's search index take the records it has
// applied (each node also does on its own, 50 ms after gossip brought one).
func (nw *Network) flushIndexes() {
	for _, p := range nw.Nodes {
		p.Node.State().FlushIndex()
	}
}

// PublishBare publishes data on the bare topic from origin and waits until
// every node's subscription delivered it.
func (nw *Network) PublishBare(ctx context.Context, origin int, data []byte, timeout time.Duration) (Sample, error) {
	p := nw.Nodes[origin]
	if p.bare == nil {
		return nil, errors.New("sim: the network runs no bare router")
	}
	h := directory.Hash(sha256.Sum256(data))
	a := nw.tr.expect(h)
	defer nw.tr.forget(h)
	start := time.Now()
	if err := p.bare.topic.Publish(ctx, data); err != nil {
		return nil, err
	}
	return nw.wait(ctx, a, start, timeout)
}

func (nw *Network) wait(ctx context.Context, a *arrivals, start time.Time, timeout time.Duration) (Sample, error) {
	select {
	case <-a.done:
	case <-time.After(timeout):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s, missing := a.since(start)
	if missing > 0 {
		return s, &MissingError{Missing: missing, N: len(nw.Nodes), After: timeout}
	}
	return s, nil
}

// MissingError says some nodes never got a message within the timeout.
type MissingError struct {
	Missing, N int
	After      time.Duration
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("sim: %d of %d nodes did not get the message within %s", e.Missing, e.N, e.After)
}

// RandomBytes returns n random bytes: a bare message the size of a sealed
// record, as incompressible as one.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// SealedSize is the size of r as it travels: sealed under the current key.
func (nw *Network) SealedSize(r *directory.Record) int {
	return len(directory.Seal(r, nw.Fix.Key))
}

// parallel runs f(0..n-1) on GOMAXPROCS workers and returns the first error.
func parallel(n int, f func(i int) error) error {
	workers := min(n, runtime.GOMAXPROCS(0))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}

// BytesIn returns, per node, the bytes its streams have read so far.
func (nw *Network) BytesIn() []int64 {
	out := make([]int64, len(nw.Nodes))
	for i, p := range nw.Nodes {
		if c, ok := p.Host.(*countingHost); ok {
			out[i] = c.in.Load()
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newRand(seed uint64) *mrand.Rand { return mrand.New(mrand.NewPCG(seed, 7)) }

// dhtProgress counts a node's finished DHT puts and remembers its last
// manifest, so a scenario can wait until what it published is in the DHT.
type dhtProgress struct {
	mu            sync.Mutex
	puts, failed  int
	manifestSlots int
	lastErr       error
}

func (d *dhtProgress) put(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.puts++
	if err != nil {
		d.failed++
		d.lastErr = err
	}
}

func (d *dhtProgress) manifest(slots int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		d.manifestSlots = slots
	} else {
		d.lastErr = err
	}
}

func (d *dhtProgress) snapshot() (puts, failed, manifestSlots int, lastErr error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.puts, d.failed, d.manifestSlots, d.lastErr
}
