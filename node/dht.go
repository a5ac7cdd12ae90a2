package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/dhtstore"
)

// The DHT is the node's third way to find records, after gossip (now) and
// sync (from connected peers): it needs no peer of the network to be
// online, only the DHT. The node keeps its own records there (dhtstore
// republishes them), lists their slots in its manifest, and walks the
// manifests of the network's stewards and members when sync has not
// worked for a while, or on a fresh node that holds only an invite.

// manifestHeadsEvery is how often at most the manifest is put again when
// only the records in its slots changed (manifestLoop). A variable for
// tests.
var manifestHeadsEvery = 10 * time.Minute

const (
	dhtPutWorkers  = 4
	dhtPutTimeout  = 2 * time.Minute
	manifestDelay  = 2 * time.Second // gathers a burst of publications into one manifest
	rendezvousWant = 3               // fewer topic peers than this: look for more
)

// advertiseInterval is dhtstore's: negative (never) for a hidden node.
func advertiseInterval(c DHTConfig) time.Duration {
	if c.Hidden {
		return -1
	}
	return 0
}

func (n *Node) startDHT() error {
	if n.cfg.DHT.Disabled {
		return nil
	}
	d, err := dhtstore.New(n.host, n.root, dhtstore.Options{
		Network:           n.cfg.Network,
		Keyring:           n.keyringSnapshot,
		Bootstrap:         n.bootstrap,
		Now:               n.cfg.Now,
		Records:           n.ownRecords,
		RepublishInterval: n.cfg.DHT.RepublishInterval,
		AllowPrivateAddrs: n.cfg.DHT.AllowPrivateAddrs,
		ClientMode:        n.cfg.DHT.ClientMode,
		AdvertiseInterval: advertiseInterval(n.cfg.DHT),
		Authority:         dhtstore.StateAuthority{State: n.state},
		ChargeServed:      n.chargeDHTAnswer,
		Self:              n.id.Public(),
		Logger:            n.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.dht = d
	for range dhtPutWorkers {
		n.wg.Go(n.dhtPutLoop)
	}
	n.wg.Go(n.manifestLoop)
	n.wg.Go(n.dhtFetchLoop)
	n.signalManifest()
	return nil
}

// chargeDHTAnswer draws a GET_VALUE answer of size bytes from the sync
// byte budgets of p and of the key p was admitted with: the DHT serves the
// same sealed records sync does, and with sync alone charged, a reader had
// a node send some 500 times what it asked for through the DHT (found in
// review, session 39). On a host the node did not build nobody is
// admitted (awaitAdmitted), and nothing is charged.
func (n *Node) chargeDHTAnswer(p peer.ID, size int) bool {
	if !n.adm.on.Load() {
		return true
	}
	st := n.admitted(p)
	if st == nil {
		return false
	}
	ok := n.sync.budgets.take(st.key, p, size, false)
	if !ok && n.sync.budgets.shouldLog("dht/"+p.String()) {
		n.log.Warn("DHT answers withheld: the peer drew its byte budget", "peer", p, "key", directory.Fingerprint(st.key))
	}
	return ok
}

// ownRecords are the pooled records this node's identity signed: what it
// keeps alive in the DHT.
func (n *Node) ownRecords() []*directory.Record { return n.state.SignedBy(n.id.Public()) }

// ownSlots are the slots of the pooled records this node's identity
// signed, each with the head of the record held there, sorted by slot,
// each slot once: what it lists in its manifest, after each of its
// publications. The state knows the entries' slots without decoding them
// (at 100,000 entries of one publisher, decoding them was half a second
// of CPU and 130 MB of garbage each time) and the slots of the pages of
// past rotations without reading them back from disk.
func (n *Node) ownSlots() []directory.SlotHead {
	slots := append(n.state.HeldEntrySlots(n.id.Public()), n.state.SignedSlots(n.id.Public())...)
	slices.SortFunc(slots, func(a, b directory.SlotHead) int { return bytes.Compare(a.Slot[:], b.Slot[:]) })
	return slices.CompactFunc(slots, func(a, b directory.SlotHead) bool { return a.Slot == b.Slot })
}

func (n *Node) queueDHTPut(r *directory.Record) {
	if n.dht == nil {
		return
	}
	select {
	case n.dhtPuts <- r:
	default:
		// A burst beyond the queue: the republish pass stores it later.
		n.log.Warn("DHT put queue full; the record reaches the DHT at the next republish", "record", r.Hash().Short())
	}
	if slices.ContainsFunc(r.Sigs, func(s directory.Signature) bool { return s.Key == n.id.Public() }) {
		n.signalManifest()
	}
}

func (n *Node) dhtPutLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case r := <-n.dhtPuts:
			ctx, cancel := context.WithTimeout(n.ctx, dhtPutTimeout)
			err := n.dht.Put(ctx, r)
			cancel()
			if errors.Is(err, dhtstore.ErrSuperseded) {
				err = nil // a newer version is there: the slot is in good hands
			}
			if err != nil && n.ctx.Err() == nil {
				n.log.Debug("DHT put failed; republish retries", "record", r.Hash().Short(), "err", err)
			}
			n.events.publish(Event{Kind: EventDHT, Via: ViaDHT, Hash: r.Hash(), Type: r.Type, Err: err})
		}
	}
}

func (n *Node) signalManifest() {
	select {
	case n.dhtMan <- struct{}{}:
	default:
	}
}

// manifestLoop publishes this identity's manifest when its records change:
// at once (after manifestDelay) when its set of slots changes, and at most
// every manifestHeadsEvery when only the records in them do (updates of
// entries). A page of a large publisher is 64 KB put on about twenty DHT
// peers: re-putting it for every update would cost a publisher of 60
// updates an hour about 80 MB of upload an hour, for nodes that walk the
// DHT no more often than that anyway (FetchInterval); until then a walk
// that holds the older version skips the slot, as sync, when it works,
// has the newer one.
func (n *Node) manifestLoop() {
	var lastSlots, lastAll directory.Hash
	var lastAt time.Time
	later := time.AfterFunc(time.Hour, n.signalManifest)
	later.Stop()
	defer later.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.dhtMan:
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(manifestDelay):
		}
		slots := n.ownSlots()
		if len(slots) == 0 {
			continue
		}
		setSum, allSum := sha256.New(), sha256.New()
		for _, s := range slots {
			setSum.Write(s.Slot[:])
			allSum.Write(s.Slot[:])
			allSum.Write(s.Head[:])
		}
		var set, all directory.Hash
		setSum.Sum(set[:0])
		allSum.Sum(all[:0])
		if all == lastAll {
			continue
		}
		if wait := manifestHeadsEvery - time.Since(lastAt); set == lastSlots && wait > 0 {
			later.Reset(wait)
			continue
		}
		for n.dht.RoutingTableSize() == 0 {
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		ctx, cancel := context.WithTimeout(n.ctx, dhtPutTimeout)
		err := n.dht.PublishManifest(ctx, n.id, slots)
		cancel()
		if n.ctx.Err() == nil {
			n.events.publish(Event{Kind: EventDHT, Via: ViaDHT, Type: directory.TypeManifest, Pulled: len(slots), Err: err})
		}
		if err != nil {
			if n.ctx.Err() != nil {
				return
			}
			n.log.Warn("publishing the manifest failed; will retry", "slots", len(slots), "err", err)
			time.AfterFunc(time.Minute, n.signalManifest)
			continue
		}
		lastSlots, lastAll, lastAt = set, all, time.Now()
	}
}

// dhtFetchLoop walks the DHT when sync has not brought anything for a
// FetchInterval (no peer of the network reachable, or a fresh node), and
// looks for more peers of the network when it has few.
func (n *Node) dhtFetchLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastFetch, lastFind time.Time
	if n.state.Charter() != nil {
		// A node that already holds the directory gives sync one
		// interval to work before walking the DHT.
		lastFetch = time.Now()
	}
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if n.dht.RoutingTableSize() == 0 {
			continue
		}
		every := n.cfg.DHT.FetchInterval
		if n.topicPeers() < rendezvousWant && time.Since(lastFind) > min(every, time.Minute) {
			lastFind = time.Now()
			n.findPeers()
		}
		lastSync, _ := n.sync.recent(0)
		if time.Since(lastFetch) < every || (n.state.Charter() != nil && time.Since(lastSync) < every) {
			continue
		}
		lastFetch = time.Now()
		pulled, read, err := n.fetchFromDHT()
		if n.ctx.Err() != nil {
			return
		}
		if err == nil {
			n.mu.Lock()
			n.lastDHTFetch = time.Now()
			n.mu.Unlock()
		} else {
			n.log.Info("DHT fetch incomplete", "pulled", pulled, "err", err)
		}
		n.events.publish(Event{Kind: EventDHT, Via: ViaDHT, Pulled: pulled, Read: read, Err: err})
	}
}

// findPeers connects to nodes that advertise the network's rendezvous.
func (n *Node) findPeers() {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	found, err := n.dht.FindPeers(ctx)
	if err != nil {
		return
	}
	dialed := 0
	for ai := range found {
		if dialed >= 8 || ai.ID == n.host.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		dialed++
		n.wg.Go(func() {
			// Not ctx: the search may end before the dial does.
			dctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
			defer cancel()
			if err := n.host.Connect(dctx, ai); err == nil {
				n.log.Debug("connected to a rendezvous peer", "peer", ai.ID)
			}
		})
	}
}

// fetchFromDHT fills the state from the DHT: the charter chain first, then
// the manifests of the stewards and members the state knows, round after
// round while new signers appear, all through the same accept path as
// gossip and sync. It reads only the slots whose listed records the node
// lacks, and returns how many records it accepted and how many slots (the
// charter versions probed included) it read.
func (n *Node) fetchFromDHT() (total, read int, err error) {
	apply := func(recs []*directory.Record) error {
		if len(recs) == 0 {
			return nil
		}
		if !n.enter() {
			return ErrClosed
		}
		defer n.leave()
		k, err := n.acceptBatch(recs, "", ViaDHT)
		total += k
		return err
	}
	version := func() uint64 {
		if c := n.state.Charter(); c != nil {
			return c.Version
		}
		return 0
	}
	charters := func() error {
		for {
			v := version() + 1
			read++
			ctx, cancel := context.WithTimeout(n.ctx, dhtstore.DefaultRequestTimeout)
			r, err := n.dht.Get(ctx, directory.SlotIDOf(dhtstore.CharterSlot(v)))
			cancel()
			if errors.Is(err, dhtstore.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := apply([]*directory.Record{r}); err != nil {
				return err
			}
			if version() < v {
				return nil // there but not effective (yet)
			}
		}
	}
	if err := charters(); err != nil {
		return total, read, err
	}
	if version() == 0 {
		return total, read, dhtstore.ErrNoCharter
	}
	epoch, _, _ := n.keyringSnapshot().Current()
	done := map[directory.PublicKey]bool{}
	for {
		if e, _, _ := n.keyringSnapshot().Current(); e != epoch {
			// A fetched epoch gave us a new key: slots are blinded per
			// epoch, so everything is findable anew.
			epoch = e
			clear(done)
			if err := charters(); err != nil {
				return total, read, err
			}
		}
		var signers []directory.PublicKey
		candidates := []directory.PublicKey{n.id.Public()}
		if c := n.state.Charter(); c != nil {
			candidates = append(candidates, c.StewardKeys()...)
		}
		for _, m := range n.state.Members() {
			candidates = append(candidates, m.Key)
		}
		for _, k := range candidates {
			if !done[k] {
				done[k] = true
				signers = append(signers, k)
			}
		}
		if len(signers) == 0 {
			return total, read, nil
		}
		v := version()
		recs, stats, err := n.dht.Fetch(n.ctx, signers, dhtstore.HeldIn(n.state))
		read += stats.Listed - stats.Skipped
		if aerr := apply(recs); aerr != nil {
			return total, read, aerr
		}
		if err != nil {
			return total, read, err
		}
		if version() != v {
			if err := charters(); err != nil {
				return total, read, err
			}
		}
	}
}
