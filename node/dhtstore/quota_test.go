package dhtstore

import (
	"fmt"
	"strings"
	"testing"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// roles is an Authority from a fixed table, as a node's directory would
// answer it.
type roles struct {
	m   map[directory.PublicKey]Role
	max int
}

func (r roles) Role(k directory.PublicKey) Role { return r.m[k] }
func (r roles) MaxRecordBytes() int             { return r.max }

// Each quota of the storage policy holds on a DHT server, against puts
// sent straight to it over the DHT protocol: signers it does not admit
// share a small pool (and one peer gets only its part of it), a reader
// may have it hold only its revocation, an admitted signer, a peer and
// the whole store each stop at their bound, a value above the charter's
// size is refused whoever signed it, and a newer version of a record
// already held still replaces it at the signer's bound.
func TestStoragePolicyQuotas(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	m1, m2, m3, reader, stranger := dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	auth := roles{m: map[directory.PublicKey]Role{m1.Public(): RolePublisher, m2.Public(): RolePublisher, m3.Public(): RolePublisher, reader.Public(): RoleReader}, max: 8192}
	small := quotaLimits{
		totalN: 10, totalB: 1 << 30,
		signerN: 4, signerB: 1 << 30,
		peerN: 6, peerB: 1 << 30,
		pendingN: 3, pendingB: 1 << 30,
		pendingPeerN: 2, pendingPeerB: 1 << 30,
		readerN: 2,
	}
	server := func(t *testing.T) *testNode {
		o := testOptions(nw, newKeyring(1, nw.Key))
		o.Authority = auth
		n := newNode(t, nil, o)
		n.s.qs.mu.Lock()
		n.s.qs.lim = small
		n.s.qs.mu.Unlock()
		return n
	}
	peerOf := func(t *testing.T, srv *testNode) *testNode {
		p := newNode(t, nil, testOptions(nw, newKeyring(1, nw.Key)))
		if err := p.h.Connect(ctxFor(t, 10e9), peer.AddrInfo{ID: srv.h.ID(), Addrs: srv.h.Addrs()}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// put sends r to srv from p and reports whether srv holds it after.
	put := func(t *testing.T, p, srv *testNode, r *directory.Record) bool {
		t.Helper()
		key := blindKey(t, nw.Key, r)
		p.s.pm.PutValue(ctxFor(t, 10e9), srv.h.ID(), record.MakePutRecord(key, directory.Seal(r, nw.Key)))
		got, err := heldBy(ctxFor(t, 10e9), p.s, srv.h.ID(), key)
		return err == nil && got != nil && got.Hash() == r.Hash()
	}
	putMany := func(t *testing.T, p, srv *testNode, recs []*directory.Record) int {
		t.Helper()
		n := 0
		for _, r := range recs {
			if put(t, p, srv, r) {
				n++
			}
		}
		return n
	}
	entries := func(org *directory.Identity, prefix string, n int) []*directory.Record {
		var out []*directory.Record
		for i := range n {
			out = append(out, nw.Entry(t, org, fmt.Sprintf("%s-%d", prefix, i), 1))
		}
		return out
	}
	check := func(t *testing.T, what string, got, want int) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: %d held, want %d", what, got, want)
		}
	}

	t.Run("signers not admitted share a small pool", func(t *testing.T) {
		srv := server(t)
		a, b := peerOf(t, srv), peerOf(t, srv)
		var unknown []*directory.Record
		for i := range 5 {
			unknown = append(unknown, nw.Entry(t, dirtest.MustIdentity(t), fmt.Sprintf("x-%d", i), 1))
		}
		check(t, "from one peer", putMany(t, a, srv, unknown), small.pendingPeerN)
		check(t, "from a second peer", putMany(t, b, srv, unknown[2:]), small.pendingN-small.pendingPeerN)
		if u := srv.s.Usage(); u.Pending != small.pendingN || u.Records != small.pendingN || u.Refused == 0 {
			t.Fatalf("usage %+v", u)
		}
	})
	t.Run("a reader may have only its revocation held", func(t *testing.T) {
		srv := server(t)
		a := peerOf(t, srv)
		check(t, "entries signed by a reader", putMany(t, a, srv, entries(reader, "r", 5)), 0)
		check(t, "the reader's revocation", putMany(t, a, srv, []*directory.Record{nw.Sign(t, &directory.Revocation{Key: reader.Public(), Issued: nw.Now.Unix()}, reader)}), 1)
		check(t, "entries signed by a key nobody admitted", putMany(t, a, srv, entries(stranger, "s", 1)), 1) // the pool
	})
	t.Run("per signer", func(t *testing.T) {
		srv := server(t)
		a, b := peerOf(t, srv), peerOf(t, srv)
		recs := entries(m1, "m1", 6)
		check(t, "one signer through one peer", putMany(t, a, srv, recs[:3]), 3)
		check(t, "the same signer through another", putMany(t, b, srv, recs[3:]), small.signerN-3)
		// At its bound, a newer version of a record held replaces it.
		if !put(t, a, srv, nw.Entry(t, m1, "m1-0", 2)) {
			t.Fatal("a newer version was refused at the signer's bound")
		}
		check(t, "another signer", putMany(t, a, srv, entries(m2, "m2", 1)), 1)
	})
	t.Run("per peer and in total", func(t *testing.T) {
		srv := server(t)
		a, b, c := peerOf(t, srv), peerOf(t, srv), peerOf(t, srv)
		check(t, "one peer, two signers", putMany(t, a, srv, append(entries(m1, "m1", 4), entries(m2, "m2", 4)...)), small.peerN)
		check(t, "a second peer", putMany(t, b, srv, entries(m2, "m2b", 2)), 2) // m2 had 2, now at 4
		check(t, "a third peer, at the total", putMany(t, c, srv, entries(m3, "m3", 4)), small.totalN-small.peerN-2)
		if u := srv.s.Usage(); u.Records != small.totalN {
			t.Fatalf("usage %+v, want %d records", u, small.totalN)
		}
	})
	t.Run("larger than the charter allows", func(t *testing.T) {
		srv := server(t)
		a := peerOf(t, srv)
		e := dirtest.SampleEntry("grande", 1, nw.Now)
		e.Service.Description = strings.Repeat("€", 4000) // 12 KB, over the 8 KiB charter
		big := nw.Sign(t, e, m1)
		if n := len(big.Encode()); n <= auth.max {
			t.Fatalf("setup: the big entry is only %d bytes", n)
		}
		check(t, "an admitted member's oversized entry", putMany(t, a, srv, []*directory.Record{big}), 0)
		check(t, "its normal entry", putMany(t, a, srv, entries(m1, "ok", 1)), 1)
	})
	t.Run("the node's own records are always kept", func(t *testing.T) {
		own := dirtest.MustIdentity(t)
		o := testOptions(nw, newKeyring(1, nw.Key))
		o.Authority, o.Self = roles{m: map[directory.PublicKey]Role{}, max: 8192}, own.Public()
		srv := newNode(t, nil, o)
		srv.s.qs.mu.Lock()
		srv.s.qs.lim = quotaLimits{} // nothing for anyone else
		srv.s.qs.mu.Unlock()
		a := peerOf(t, srv)
		check(t, "someone else's", putMany(t, a, srv, entries(m1, "m1", 1)), 0)
		check(t, "its own, even put by a peer", putMany(t, a, srv, entries(own, "own", 2)), 2)
	})
}
