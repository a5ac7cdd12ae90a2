package node

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/transport"
)

// heavyEntry is version seq of entry id with every free-text field full of
// three-byte characters: about 57 KB, near the default record limit.
func heavyEntry(t testing.TB, nw *dirtest.Network, org *directory.Identity, id string, seq uint64) *directory.Record {
	t.Helper()
	var areas []directory.Area
	for i := range 32 {
		areas = append(areas, directory.Area{Text: fmt.Sprintf("%02d %s", i, strings.Repeat("€", 190))})
	}
	var contacts []directory.Contact
	for i := range 16 {
		contacts = append(contacts, directory.Contact{Kind: "web", Value: fmt.Sprintf("%02d %s", i, strings.Repeat("€", 290))})
	}
	e := dirtest.SampleEntry(id, seq, nw.Now)
	e.Service.Description = strings.Repeat("€", 4000)
	e.Service.Eligibility = strings.Repeat("€", 2000)
	e.Service.ApplicationProcess = strings.Repeat("€", 2000)
	e.Service.Areas, e.Service.Contacts = areas, contacts
	r := nw.Sign(t, e, org)
	if n := len(r.Encode()); n < 40<<10 || n > directory.DefaultMaxRecordBytes {
		t.Fatalf("heavy entry is %d bytes", n)
	}
	return r
}

// Issue 21, finding 4: a member churns one ~57 KB entry at one version a
// second from its own host over TCP, into both peers of a node with the
// lowdata profile's caps (64 KiB/s in, 32 KiB/s out). The lowdata node is
// in the governance topic only: the churn reaches it by no gossip at all,
// so every revocation the stewards publish meanwhile arrives at once,
// the first included (before the topic split: 3.1 s, 23 ms, 23 ms, the
// first queued behind the allowed burst of versions from both peers;
// before the per-author rate: 1.4, 6.4, 11.4 s). Entries come by sync:
// the newest version only, each record once however many peers offer it.
func TestLowDataRevocationUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("about 30 s of churn")
	}
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	doomed := []*directory.Identity{dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)}
	s := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	cfgA := testConfig(t, nw, nw.Stewards[1], t.TempDir())
	cfgA.Bootstrap = []string{addr(s)}
	a := startNode(t, cfgA)
	cfgL := testConfig(t, nw, nw.Stewards[2], t.TempDir())
	cfgL.Bootstrap = []string{addr(s), addr(a)}
	cfgL.Transport.Profile = transport.ProfileLowData
	cfgL.Transport.RecvRate, cfgL.Transport.SendRate = transport.LowDataRecvRate, transport.LowDataSendRate
	cfgL.SyncInterval = LowDataSyncInterval // as the daemon sets it: no sync during the churn
	l := startNode(t, cfgL)
	nodes := []*Node{s, a, l}
	// The lowdata node syncs only every 5 minutes: what is published
	// before it is in the governance topic's mesh would reach it only then.
	topicUp(t, 2, l)
	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"))
	for i, d := range doomed {
		ref.publish(s, nw.Admit(t, d, fmt.Sprintf("Colectivo %d", i)))
	}
	waitFor(t, 60*time.Second, "the governance on every node", func() bool { return sameDigest(nodes, ref.digest()) })
	// The lowdata node does not take the first version by gossip either.
	first := heavyEntry(t, nw, org, "churn", 1)
	ref.publish(s, first)
	waitFor(t, 15*time.Second, "the first version on the full nodes", func() bool { return a.State().Has(first.Hash()) })
	if l.State().Has(first.Hash()) {
		t.Fatal("the lowdata node got an entry by gossip")
	}
	inSync := l.Bandwidth().TotalIn
	if pulled, _, err := l.sync.session(s.Host().ID()); err != nil || pulled != 1 {
		t.Fatalf("sync with a full node: %d pulled, %v", pulled, err)
	}
	waitFor(t, 30*time.Second, "the first version on the lowdata node by sync", func() bool { return sameDigest(nodes, ref.digest()) })
	// libp2p's bandwidth meters count what arrived at their next sweep, once
	// a second: read before that, the sync's 57 KB were counted as the
	// churn's below (the test failed on 115 to 127 KB against a bound of
	// 123 KB, and passed on 13 KB when the sweep came first).
	waitFor(t, 10*time.Second, "the sync's bytes counted by the bandwidth meter", func() bool {
		return l.Bandwidth().TotalIn-inSync >= int64(len(directory.Seal(first, nw.Key)))
	})

	events := record(l)
	_, topic := gossipAttacker(t, nw, s)
	_, topicA := gossipAttacker(t, nw, a)
	inBefore := l.Bandwidth().TotalIn
	churnStart := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for seq := uint64(2); ; seq++ {
			r := heavyEntry(t, nw, org, "churn", seq)
			sealed := directory.Seal(r, nw.Key)
			topic.publishRecord(t.Context(), r, sealed)
			topicA.publishRecord(t.Context(), r, sealed)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	var delays []time.Duration
	for i, d := range doomed {
		time.Sleep(time.Duration(3+2*i) * time.Second)
		rv := nw.RevokeBy(t, d.Public())
		start := time.Now()
		mustPublish(t, s, rv)
		waitFor(t, 60*time.Second, "the revocation on the lowdata node", func() bool { return l.State().IsRevoked(d.Public()) })
		delays = append(delays, time.Since(start))
	}
	close(stop)
	wg.Wait()
	churned := time.Since(churnStart)
	in := l.Bandwidth().TotalIn - inBefore
	t.Logf("revocation delays to the lowdata node under churn: %v; it received %d bytes in %s (throttled %s)",
		delays, in, churned.Round(time.Millisecond), l.Throttled().Recv)
	// Measured 20-60 ms each on an idle machine; the bound leaves room for
	// a loaded one and is still a third of the first delay before.
	for i, dl := range delays {
		if dl > time.Second {
			t.Errorf("revocation %d took %s to reach the lowdata node under churn; want under 1 s", i+1, dl)
		}
	}
	if n := events.count(func(ev Event) bool { return ev.Via == ViaGossip && ev.Type == directory.TypeEntry }); n > 0 {
		t.Errorf("the lowdata node took %d entry versions by gossip; want none", n)
	}
	// Every churned version is ~57 KB and both full nodes hold each one:
	// by gossip the lowdata node would have been sent about 2 × 57 KB a
	// second, its whole cap. Without entries, a few KB a second is gossip
	// control, revocations and libp2p upkeep.
	if limit := int64(churned.Seconds() * 8192); in > limit {
		t.Errorf("the lowdata node received %d bytes during %s of churn; want under %d (8 KiB/s)", in, churned.Round(time.Millisecond), limit)
	}

	// After the churn: two sync sessions at once, with both full nodes,
	// once they hold the same newest version (the per-author rate let
	// only a few of the versions through). It crosses the link once, and
	// no older version does.
	waitFor(t, 30*time.Second, "the full nodes to agree", func() bool { return s.State().Digest() == a.State().Digest() })
	newest, ok := s.State().Lookup("entry/" + org.Public().Hex() + "/churn")
	if !ok || newest.Entry.Seq < 2 {
		t.Fatalf("the full nodes hold no churned version: %+v", newest)
	}
	dupBefore := l.Status().Duplicates[ViaSync]
	acceptedBefore := l.Status().Accepted[ViaSync]
	var sessions sync.WaitGroup
	for _, p := range []*Node{s, a} {
		sessions.Go(func() {
			if _, _, err := l.sync.session(p.Host().ID()); err != nil {
				t.Errorf("sync with %s: %v", p.Host().ID(), err)
			}
		})
	}
	sessions.Wait()
	if got, _ := l.State().Lookup("entry/" + org.Public().Hex() + "/churn"); got.Entry.Seq != newest.Entry.Seq {
		t.Fatalf("the lowdata node holds version %d after syncing with both full nodes, which hold %d", got.Entry.Seq, newest.Entry.Seq)
	}
	if dup := l.Status().Duplicates[ViaSync] - dupBefore; dup != 0 {
		t.Errorf("%d records reached the lowdata node twice in two concurrent sync sessions", dup)
	}
	if got := l.Status().Accepted[ViaSync] - acceptedBefore; got != 1 {
		t.Errorf("the lowdata node took %d records by sync; want 1, the newest version only", got)
	}
}

// A record gossiped on the other topic than its type belongs on is
// refused before the state sees it, and the sender is scored down for it:
// otherwise a member could push its churn to lowdata nodes through the
// governance topic.
func TestEntryOnGovernanceTopicRefused(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	events := record(a)
	m, topic := gossipAttacker(t, nw, a)
	e := entryRec(t, nw, org, "por-gobierno", 1)
	sealed := directory.Seal(e, nw.Key)
	waitFor(t, 15*time.Second, "the entry refused for its topic", func() bool {
		topic.Publish(t.Context(), sealed) // governance: the wrong one
		time.Sleep(50 * time.Millisecond)
		return events.count(func(ev Event) bool { return ev.Kind == EventRejected && errors.Is(ev.Err, ErrWrongTopic) }) > 0
	})
	if a.State().Has(e.Hash()) {
		t.Fatal("an entry gossiped on the governance topic was applied")
	}
	waitFor(t, 5*time.Second, "the sender scored down", func() bool {
		s, ok := a.PeerScore(m.ID())
		return ok && s < 0
	})
	// On its own topic the same record is taken.
	waitFor(t, 15*time.Second, "the entry on the entries topic", func() bool {
		topic.publishRecord(t.Context(), e, directory.Seal(e, nw.Key))
		time.Sleep(50 * time.Millisecond)
		return a.State().Has(e.Hash())
	})
}

// A lowdata node back from a day offline pulls the day's records in a
// long sync session at its cap. The responder sends governance first and
// the node applies it as soon as the first entry follows, so a
// revocation among them takes effect in the session's first second, not
// after every entry has crossed the link (before: all at the end).
func TestCatchUpSyncAppliesGovernanceFirst(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, doomed := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	base := []*directory.Record{nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Admit(t, doomed, "Colectivo Condenado")}
	s, l, cfgS, ref := lowdataPair(t, nw, base, nil, func(cfg *Config) {
		cfg.SyncInterval = LowDataSyncInterval
		// One session for the whole catch-up: the responder orders
		// what one request asks for.
		cfg.SyncMaxRecords = 200
	})
	// What the lowdata node missed: 120 entries (about 10 s at the cap),
	// then a revocation.
	const entries = 120
	for i := range entries {
		ref.publish(s, entryRec(t, nw, org, fmt.Sprintf("servicio-%02d", i), 1))
	}
	ref.publish(s, nw.RevokeBy(t, doomed.Public()))
	// A day offline: the peer's GossipSub message cache no longer holds
	// what was published (a restart empties it). Without this, gossip
	// offered the records just published to the node as it joined the
	// mesh, and under load every entry could arrive by gossip while the
	// session was still sending them: none was applied by sync, and the
	// test said nothing about the session's order.
	s.Close()
	s = startNode(t, cfgS)

	events := record(l)
	start := time.Now()
	if err := l.Connect(t.Context(), addr(s)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the lowdata node to catch up", func() bool { return sameDigest([]*Node{s, l}, ref.digest()) })
	waitAcknowledged(t, l, len(base)+entries+1)
	// A record is counted before its event reaches subscribers: wait for
	// the recorder to have the session's events (a check right after the
	// count found none of the entries' under load).
	bySync := func(typ directory.RecordType) func(Event) bool {
		return func(ev Event) bool { return ev.Kind == EventRecord && ev.Via == ViaSync && ev.Type == typ }
	}
	waitFor(t, 10*time.Second, "the sync session's events", func() bool {
		return events.count(bySync(directory.TypeEntry)) == entries && events.count(bySync(directory.TypeRevocation)) == 1
	})
	var revoked, lastEntry time.Time
	for _, ev := range events.snapshot() {
		if ev.Kind != EventRecord || ev.Via != ViaSync {
			continue
		}
		switch ev.Type {
		case directory.TypeRevocation:
			revoked = ev.Time
		case directory.TypeEntry:
			lastEntry = ev.Time
		}
	}
	t.Logf("revocation applied %s after connecting, the last entry %s after (throttled %s)",
		revoked.Sub(start).Round(time.Millisecond), lastEntry.Sub(start).Round(time.Millisecond), l.Throttled().Recv.Round(time.Millisecond))
	if acc := l.Status().Accepted; revoked.IsZero() || lastEntry.IsZero() || acc[ViaSync] != entries+1 {
		t.Fatalf("the revocation or the entries did not come by sync (accepted by route: %v)", acc)
	}
	// The entries take seconds at 16 KiB/s; the revocation must not wait
	// for them.
	if gap := lastEntry.Sub(revoked); gap < time.Second {
		t.Errorf("the revocation was applied only %s before the last entry: it waited for the session's entries", gap)
	}
}

// A catch-up split over many sessions asks for every governance record
// the peer lists before any entry, whatever their hashes: the lists say
// each record's kind. Here a node that missed 60 entries and three
// revocations takes ten records a session; the revocations are applied
// before the first entry, not in whichever session their hashes fall.
func TestCatchUpAcrossSessionsAsksGovernanceFirst(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	doomed := []*directory.Identity{dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)}
	s := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	cfgL := testConfig(t, nw, nw.Stewards[2], t.TempDir())
	cfgL.SyncMaxRecords = 10
	l := startNode(t, cfgL)
	base := []*directory.Record{nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo")}
	for i, d := range doomed {
		base = append(base, nw.Admit(t, d, fmt.Sprintf("Colectivo Condenado %d", i)))
	}
	ref := &reference{t: t, nw: nw}
	ref.publish(s, base...)
	for _, r := range base {
		if err := l.Import(t.Context(), directory.Seal(r, nw.Key)); err != nil {
			t.Fatal(err)
		}
	}
	const entries = 60
	for i := range entries {
		ref.publish(s, entryRec(t, nw, org, fmt.Sprintf("servicio-%02d", i), 1))
	}
	for _, d := range doomed {
		ref.publish(s, nw.RevokeBy(t, d.Public()))
	}
	// Past GossipSub's message cache: what l lacks comes by sync only.
	time.Sleep(5 * time.Second)

	events := record(l)
	if err := l.Connect(t.Context(), addr(s)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the node to catch up", func() bool { return sameDigest([]*Node{s, l}, ref.digest()) })
	waitAcknowledged(t, l, len(base)+entries+len(doomed))
	revocations, entriesSeen := 0, 0
	for _, ev := range events.snapshot() {
		if ev.Kind != EventRecord {
			continue
		}
		switch ev.Type {
		case directory.TypeRevocation:
			if entriesSeen > 0 {
				t.Fatalf("a revocation was applied after %d of the %d entries: the catch-up asked for entries before governance it had listed", entriesSeen, entries)
			}
			revocations++
		case directory.TypeEntry:
			entriesSeen++
		}
	}
	if revocations != len(doomed) || entriesSeen != entries {
		t.Fatalf("applied %d revocations and %d entries, want %d and %d", revocations, entriesSeen, len(doomed), entries)
	}
	if acc := l.Status().Accepted; acc[ViaSync] < entries {
		t.Fatalf("accepted %v: the entries did not come by sync over several sessions", acc)
	}
}

// A session the peer cuts (here its session deadline passes while a slow
// link still carries the records) keeps what it brought, and the next
// session follows at once: a new reader's node on a slow link pulls a
// directory larger than one session carries in a run of sessions, not one
// per sync round. Before, the cut counted as a failure and the node waited
// for its next round (an hour here; minutes by default) with the
// directory half pulled.
func TestCutSessionIsFollowedAtOnce(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	base := []*directory.Record{nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo")}
	s, l, cfgS, ref := lowdataPair(t, nw, base,
		func(cfg *Config) { cfg.SyncTimeout = 2 * time.Second }, // the deadline it serves a session under
		func(cfg *Config) { cfg.SyncInterval = time.Hour })
	// About 10 s at the cap: five sessions' worth.
	const entries = 120
	for i := range entries {
		ref.publish(s, entryRec(t, nw, org, fmt.Sprintf("servicio-%02d", i), 1))
	}
	// Only sync brings them: a restart empties the GossipSub cache.
	s.Close()
	s = startNode(t, cfgS)

	events := record(l)
	if err := l.Connect(t.Context(), addr(s)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 45*time.Second, "the node to pull the directory over cut sessions", func() bool { return sameDigest([]*Node{s, l}, ref.digest()) })
	cut := events.count(func(ev Event) bool { return ev.Kind == EventSync && ev.Err != nil && ev.Pulled > 0 })
	t.Logf("%d sessions were cut after bringing records", cut)
	if cut == 0 {
		t.Fatal("no session was cut: the test shows nothing")
	}
}

// lowdataPair starts a node s and a lowdata node l (16 KiB/s in, sessions
// of up to a minute), both holding base, each config adjusted by its
// func (nil: none). It returns s's config, to restart it with, and the
// reference that knows base.
func lowdataPair(t *testing.T, nw *dirtest.Network, base []*directory.Record, adjustS, adjustL func(*Config)) (s, l *Node, cfgS Config, ref *reference) {
	t.Helper()
	cfgS = testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfgL := testConfig(t, nw, nw.Stewards[2], t.TempDir())
	cfgL.Transport.Profile = transport.ProfileLowData
	cfgL.Transport.RecvRate, cfgL.Transport.SendRate = 16<<10, transport.LowDataSendRate
	cfgL.SyncTimeout = time.Minute
	for _, a := range []struct {
		cfg    *Config
		adjust func(*Config)
	}{{&cfgS, adjustS}, {&cfgL, adjustL}} {
		if a.adjust != nil {
			a.adjust(a.cfg)
		}
	}
	s, l = startNode(t, cfgS), startNode(t, cfgL)
	ref = &reference{t: t, nw: nw}
	ref.publish(s, base...)
	for _, r := range base {
		if err := l.Import(t.Context(), directory.Seal(r, nw.Key)); err != nil {
			t.Fatal(err)
		}
	}
	return s, l, cfgS, ref
}

// waitAcknowledged waits until n has counted want accepted records. A
// batch is in the state before its durable write ends, and is counted and
// announced only after: a test that reads events once the digest matches
// must wait for this too.
func waitAcknowledged(t *testing.T, n *Node, want int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d records stored and counted", want), func() bool {
		stored := 0
		for _, c := range n.Status().Accepted {
			stored += c
		}
		return stored >= want
	})
}
