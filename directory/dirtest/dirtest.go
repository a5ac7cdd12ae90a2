// Package dirtest builds small, valid Ceiba networks for tests and
// benchmarks: stewards, a genesis charter, members, readers, entries. It is
// imported only from tests and benchmarks, never from production code.
package dirtest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// Epoch is 2026-01-01, a fixed "now" so tests do not depend on the clock.
var Epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// Network is a test network: its stewards, charter and first read key.
type Network struct {
	ID       directory.NetworkID
	Stewards []*directory.Identity
	Charter  *directory.Charter
	Genesis  *directory.Record
	// FirstEpoch seals Key to the stewards, approved by the threshold:
	// tests that rotate publish it with the genesis, since epoch 2 takes
	// effect only after epoch 1.
	FirstEpoch *directory.Record
	// FirstPages carry epoch 1's key packages, signed by the first steward.
	FirstPages []*directory.Record
	Threshold  int
	Key        directory.ReadKey
	Now        time.Time
}

// New creates a network with n stewards and threshold k.
func New(tb testing.TB, n, k int) *Network {
	tb.Helper()
	return NewWithPolicy(tb, n, k, directory.Policy{})
}

// NewWithPolicy is New with the genesis charter's policy.
func NewWithPolicy(tb testing.TB, n, k int, policy directory.Policy) *Network {
	tb.Helper()
	nw := &Network{Threshold: k, Key: directory.NewReadKey(), Now: Epoch}
	var stewards []directory.Steward
	for i := 0; i < n; i++ {
		id := MustIdentity(tb)
		nw.Stewards = append(nw.Stewards, id)
		stewards = append(stewards, directory.Steward{Key: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(), Name: fmt.Sprintf("steward %d", i+1)})
	}
	c, err := directory.NewGenesis("Red de prueba", stewards, k, policy, nw.Now)
	if err != nil {
		tb.Fatal(err)
	}
	nw.Charter = c
	nw.ID = directory.GenesisIDOf(c)
	nw.Genesis = nw.Sign(tb, c, nw.Stewards...)
	var recipients []directory.Recipient
	for _, st := range stewards {
		recipients = append(recipients, directory.Recipient{Key: st.Key, KEM: st.KEM})
	}
	nw.FirstEpoch, nw.FirstPages = nw.Rotation(tb, 1, 1, directory.Hash{}, nw.Key, recipients, nw.Stewards[:k]...)
	return nw
}

// Rotation builds epoch number sealing key to recipients: the epoch
// record signed by signers, and its pages signed by the first of them.
func (nw *Network) Rotation(tb testing.TB, number, charter uint64, after directory.Hash, key directory.ReadKey, recipients []directory.Recipient, signers ...*directory.Identity) (*directory.Record, []*directory.Record) {
	tb.Helper()
	e, pages, err := directory.NewEpoch(nw.ID, number, charter, after, key, recipients, nw.Now, directory.DefaultMaxRecordBytes)
	if err != nil {
		tb.Fatal(err)
	}
	var prs []*directory.Record
	for _, p := range pages {
		prs = append(prs, nw.Sign(tb, p, signers[0]))
	}
	return nw.Sign(tb, e, signers...), prs
}

// MustIdentity generates an identity or fails the test.
func MustIdentity(tb testing.TB) *directory.Identity {
	tb.Helper()
	id, err := directory.NewIdentity()
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// Sign builds a record of body in this network, signed by signers.
func (nw *Network) Sign(tb testing.TB, body directory.Body, signers ...*directory.Identity) *directory.Record {
	tb.Helper()
	r, err := directory.NewRecord(nw.ID, body, signers...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// State returns a fresh state for the network with its clock at nw.Now.
func (nw *Network) State() *directory.State {
	return directory.NewState(nw.ID, func() time.Time { return nw.Now })
}

// Recipients are what a rotation seals to: ids, the network's stewards,
// and made keys more, made up (with a hundred or so a rotation takes
// several pages).
func (nw *Network) Recipients(tb testing.TB, made int, ids ...*directory.Identity) []directory.Recipient {
	tb.Helper()
	var rs []directory.Recipient
	for _, id := range append(slices.Clone(ids), nw.Stewards...) {
		rs = append(rs, directory.Recipient{Key: id.Public(), KEM: id.KEMPublic()})
	}
	for range made {
		id := MustIdentity(tb)
		rs = append(rs, directory.Recipient{Key: id.Public(), KEM: id.KEMPublic()})
	}
	return rs
}

// Admit returns a membership for org approved by the first k stewards.
func (nw *Network) Admit(tb testing.TB, org *directory.Identity, name string) *directory.Record {
	tb.Helper()
	m := &directory.Membership{Charter: 1, Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(), Name: name, Issued: nw.Now.Unix()}
	return nw.Sign(tb, m, nw.Stewards[:nw.Threshold]...)
}

// Fork is a 2-of-3 network whose version 2 forks into two linked sides
// that list different stewards: WithD names the genesis stewards and D,
// and every genesis steward signs it, so it outweighs WithE, which names
// them and E and carries the threshold only. A node holds both as linked
// charters of version 2 and follows WithD. ByD is Org's admission citing
// version 2, signed by D alone: one more signature of a steward of both
// sides makes it effective.
type Fork struct {
	*Network
	D, E, Org         *directory.Identity
	WithD, WithE, ByD *directory.Record
}

// NewFork returns a new Fork.
func NewFork(tb testing.TB) *Fork {
	tb.Helper()
	nw := New(tb, 3, 2)
	f := &Fork{Network: nw, D: MustIdentity(tb), E: MustIdentity(tb), Org: MustIdentity(tb)}
	side := func(extra *directory.Identity, issued time.Time) *directory.Charter {
		stewards := append(slices.Clone(nw.Charter.Stewards), directory.Steward{Key: extra.Public(), KEM: extra.KEMPublic(), KEMSig: extra.KEMBinding()})
		c, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), stewards, nw.Threshold, directory.Policy{}, issued)
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	f.WithD = nw.Sign(tb, side(f.D, nw.Now), nw.Stewards...)
	f.WithE = nw.Sign(tb, side(f.E, nw.Now.Add(-time.Minute)), nw.Stewards[:nw.Threshold]...)
	f.ByD = nw.AdmitAt(tb, 2, f.Org, "Colectivo", f.D)
	return f
}

// AdmitAt returns a membership for org citing charter version v, signed
// by signers.
func (nw *Network) AdmitAt(tb testing.TB, v uint64, org *directory.Identity, name string, signers ...*directory.Identity) *directory.Record {
	tb.Helper()
	m := &directory.Membership{Charter: v, Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(), Name: name, Issued: nw.Now.Unix()}
	return nw.Sign(tb, m, signers...)
}

// Beat returns a heartbeat of by citing charter version v, issued now and
// valid an hour.
func (nw *Network) Beat(tb testing.TB, v uint64, by *directory.Identity) *directory.Record {
	tb.Helper()
	return nw.Sign(tb, &directory.Heartbeat{Charter: v, Epoch: 1, Digest: directory.Hash{1},
		Issued: nw.Now.Unix(), Expires: nw.Now.Add(time.Hour).Unix()}, by)
}

// Vouch returns a reader grant for reader signed by the member org.
func (nw *Network) Vouch(tb testing.TB, org, reader *directory.Identity) *directory.Record {
	tb.Helper()
	return nw.Sign(tb, &directory.Reader{Key: reader.Public(), KEM: reader.KEMPublic(), KEMSig: reader.KEMBinding(), Issued: nw.Now.Unix()}, org)
}

// RevokeBy returns a revocation of key approved by the first k stewards.
func (nw *Network) RevokeBy(tb testing.TB, key directory.PublicKey) *directory.Record {
	tb.Helper()
	return nw.Sign(tb, &directory.Revocation{Key: key, Charter: 1, Reason: "compromised", Issued: nw.Now.Unix()}, nw.Stewards[:nw.Threshold]...)
}

// Entry returns entry id at seq, published by org, with a typical service.
func (nw *Network) Entry(tb testing.TB, org *directory.Identity, id string, seq uint64) *directory.Record {
	tb.Helper()
	return nw.Sign(tb, SampleEntry(id, seq, nw.Now), org)
}

// SampleEntry is a legal-aid service in Mexico City, in Spanish.
func SampleEntry(id string, seq uint64, now time.Time) *directory.Entry {
	return &directory.Entry{
		ID: id, Seq: seq, Issued: now.Unix(), Expires: now.Add(90 * 24 * time.Hour).Unix(),
		Service: &directory.Service{
			Name:        "Asesoría jurídica para personas defensoras",
			Description: "Acompañamiento legal en trámites de asilo y protección.",
			Status:      "active",
			Categories:  []string{"legal", "migration"},
			Languages:   []string{"es"},
			Areas:       []directory.Area{{City: "Ciudad de México", Country: "MX"}},
			Contacts:    []directory.Contact{{Kind: "signal", Value: "+52 55 0000 0000", Preferred: true}},
		},
	}
}

// JunkRecord is the i-th of the records a key holder without standing can
// sign for network net (a reader's device, or a revoked one): entries and
// self-revocations under fresh keys, entries under its own key (own),
// reader grants vouched by fresh keys, and memberships, epochs and
// approvals citing a charter not linked yet. fresh changes every 64
// records, as the flood tests' attacker rotates keys; *fresh carries it
// from one call to the next.
func JunkRecord(tb testing.TB, net directory.NetworkID, i int, own *directory.Identity, fresh **directory.Identity, now time.Time) *directory.Record {
	tb.Helper()
	if *fresh == nil || i%64 == 0 {
		*fresh = MustIdentity(tb)
	}
	f := *fresh
	sign := func(b directory.Body, by ...*directory.Identity) *directory.Record {
		r, err := directory.NewRecord(net, b, by...)
		if err != nil {
			tb.Fatal(err)
		}
		return r
	}
	other := func() *directory.Identity { return MustIdentity(tb) }
	switch i % 8 {
	case 0, 1:
		return sign(SampleEntry(fmt.Sprintf("basura-%d", i), 1, now), f)
	case 2:
		return sign(SampleEntry(fmt.Sprintf("mia-%d", i), 1, now), own)
	case 3:
		return sign(&directory.Revocation{Key: f.Public(), Issued: now.Unix() + int64(i%600)}, f)
	case 4:
		o := other()
		return sign(&directory.Reader{Key: o.Public(), KEM: o.KEMPublic(), KEMSig: o.KEMBinding(), Issued: now.Unix()}, f)
	case 5:
		o := other()
		return sign(&directory.Membership{Charter: 2, Org: o.Public(), KEM: o.KEMPublic(), KEMSig: o.KEMBinding(), Name: "Fachada", Issued: now.Unix()}, f)
	case 6:
		e, _, err := directory.NewEpoch(net, 2, 2, directory.Hash{}, directory.NewReadKey(), []directory.Recipient{{Key: own.Public(), KEM: own.KEMPublic()}}, now, directory.DefaultMaxRecordBytes)
		if err != nil {
			tb.Fatal(err)
		}
		return sign(e, f)
	}
	m := &directory.Membership{Charter: 2, Org: f.Public(), KEM: f.KEMPublic(), KEMSig: f.KEMBinding(), Name: "Otra", Issued: now.Unix() + int64(i%600)}
	ap, err := directory.NewApproval(sign(m, f), own)
	if err != nil {
		tb.Fatal(err)
	}
	return ap
}
