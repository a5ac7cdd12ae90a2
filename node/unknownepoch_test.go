package node

import (
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A peer on the topic, over real TCP, floods gossip that copies a real
// record's seal version and size and carries a key tag nobody's key has.
// Every record travels on the topics of its own key (topics.go), so no
// honest peer sends such a message on a topic the node is on: it is
// refused at the topic's validator, before opening, as sent on another
// key's topic, and prompts no sync (before topics were named from the
// key, it was answered "ignore" and prompted a sync to find out whether
// the sender was ahead). The sender is graylisted after a few. The sync
// answers below (a wrong proof, a session without the epoch record) are
// what such a peer would give if it were asked. The flooder passed
// admission at the connection (an insider: a keyless peer is cut before
// it can publish, admit_test.go).
func TestUnknownEpochFlooderIsGraylisted(t *testing.T) {
	for _, tc := range []struct {
		name string
		// ack is the flooder's answer to the node's sync hello.
		ack func(nw *dirtest.Network, a *Node, m peer.ID) []byte
	}{
		{"wrong-sync-proof", func(*dirtest.Network, *Node, peer.ID) []byte {
			junk := make([]byte, 32+4+32) // the right size, a made-up proof
			rand.Read(junk)
			return frame(msgHelloAck, junk)
		}},
		{"no-epoch", func(nw *dirtest.Network, a *Node, m peer.ID) []byte {
			// A valid proof, offering exactly what the node holds: the
			// session ends at once, cleanly, with no epoch record.
			return insiderAck(nw.ID, a.Host().ID(), m, uint32(len(a.State().Hashes())), a.sync.ownDigest().Root)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nw := dirtest.New(t, 3, 2)
			org := dirtest.MustIdentity(t)
			cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
			// No periodic sync: every session is one the connection or
			// the flood prompted.
			cfg.SyncInterval = time.Hour
			a := startNode(t, cfg)
			ref := &reference{t: t, nw: nw}
			real := entryRec(t, nw, org, "asesoria", 1)
			ref.publish(a, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"), real)
			want := ref.digest()
			recA := record(a)

			var syncStreams atomic.Int32
			m, topic := gossipAttackerWith(t, nw, a, func(m host.Host) {
				m.SetStreamHandler(SyncProtocol, func(st network.Stream) {
					defer st.Close()
					syncStreams.Add(1)
					st.SetDeadline(time.Now().Add(5 * time.Second))
					st.Write(tc.ack(nw, a, m.ID()))
					io.Copy(io.Discard, st)
				})
			})

			// What it copies off the wire: a real sealed record's seal
			// version and size (a size bucket). The key tag names a key
			// nobody has (a made-up epoch's); the rest is noise.
			wire := directory.Seal(real, nw.Key)
			var madeUp directory.KeyTag
			rand.Read(madeUp[:])
			forged := func() []byte {
				msg := slices.Clone(wire)
				copy(msg[1:], madeUp[:])
				rand.Read(msg[1+directory.KeyTagLen:])
				return msg
			}
			if tag, _ := directory.SealedTag(forged()); tag != madeUp {
				t.Fatalf("the forged header carries tag %s, want %s", tag, madeUp)
			}
			fromM := func() int {
				return recA.count(func(ev Event) bool { return ev.Kind == EventRejected && ev.From == m.ID() })
			}
			graylisted := func() bool {
				s, ok := a.PeerScore(m.ID())
				return ok && s < GraylistThreshold || !slices.Contains(a.govTopic().ListPeers(), m.ID())
			}
			start := time.Now()
			waitFor(t, 30*time.Second, "the unknown-epoch flooder to be graylisted", func() bool {
				if graylisted() {
					return true
				}
				if err := topic.Publish(t.Context(), forged()); err != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
				return false
			})
			s, _ := a.PeerScore(m.ID())
			t.Logf("graylisted %s after %d messages; score %.0f; %d sync streams to it", time.Since(start).Round(time.Millisecond), fromM(), s, syncStreams.Load())

			// It stays so, and prompts no more sync while it keeps on.
			before, streams := fromM(), syncStreams.Load()
			for range 20 {
				topic.Publish(t.Context(), forged())
			}
			time.Sleep(time.Second)
			if after := fromM(); after != before {
				t.Fatalf("a graylisted flooder's messages still reach the validator (%d → %d)", before, after)
			}
			// At most two: the session the connection starts and the one
			// admission starts once the peer is admitted (the first may
			// have been held by it); none for the flood.
			if got := syncStreams.Load(); got != streams || got > 2 {
				t.Fatalf("the flooder prompted %d sync streams (%d when graylisted), want at most 2 and none after", got, streams)
			}
			if n := recA.count(func(ev Event) bool {
				return ev.Kind == EventRejected && ev.From == m.ID() && !errors.Is(ev.Err, ErrWrongKeyTopic)
			}); n != 0 {
				t.Fatalf("%d of the flood's messages were refused for another reason than their topic", n)
			}
			if !sameDigest([]*Node{a}, want) {
				t.Fatal("the flood changed the node's state")
			}
		})
	}
}

// A peer that really is ahead (it rotated while this node was away) is not
// penalized for the records it seals under the new epoch: the sync they
// prompt brings the epoch record and the key.
func TestPeerAheadOnEpochIsNotPenalized(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, late := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	s := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo"), nw.Admit(t, late, "Tardía"))
	rotateApproved(t, nw, s)
	waitFor(t, 15*time.Second, "the steward's node to seal under epoch 2", func() bool { return s.sealEpoch() == 2 })
	later := entryRec(t, nw, org, "nuevo", 1)
	mustPublish(t, s, later)
	sealed := directory.Seal(later, s.Keyring()[2])

	// The late node, holding epoch 1's key only, gets that record from
	// the steward's node by gossip before it has synced with it (here
	// handed in directly, before they are connected: the order gossip
	// and sync race for).
	cfgL := testConfig(t, nw, late, t.TempDir())
	l := startNode(t, cfgL)
	if _, v, _, _ := l.ingestSealed(sealed, s.Host().ID(), ViaGossip); v != ignored {
		t.Fatalf("a record under an epoch the node has no key for: verdict %d, want ignored", v)
	}
	if err := l.Host().Connect(t.Context(), peer.AddrInfo{ID: s.Host().ID(), Addrs: s.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the late node to adopt epoch 2 and get the entry", func() bool {
		return l.Status().KeyEpoch == 2 && l.State().Has(later.Hash())
	})
	// Gossip from the steward's node, under epoch 2, is taken from now on.
	topicUp(t, 1, s, l)
	next := entryRec(t, nw, org, "otro", 1)
	mustPublish(t, s, next)
	waitFor(t, 15*time.Second, "the next entry on the late node", func() bool { return l.State().Has(next.Hash()) })
	if p := l.sync.appScore(s.Host().ID()); p != 0 {
		t.Fatalf("the late node penalized the honest peer ahead of it: application score %.0f", p)
	}
	l.sync.mu.Lock()
	ps := l.sync.peers[s.Host().ID()]
	distrusted := ps != nil && time.Now().Before(ps.distrusted)
	l.sync.mu.Unlock()
	if distrusted {
		t.Fatal("the late node distrusts the honest peer ahead of it")
	}
	if sc, ok := l.PeerScore(s.Host().ID()); ok && sc < 0 {
		t.Fatalf("the honest peer's gossip score on the late node is %.1f", sc)
	}
}
