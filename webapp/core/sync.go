package core

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// Sync session limits, as the node's (PROTOCOL.md §7, sync frames).
const (
	syncMaxRecords     = 1024
	maxHelloKeys       = 256
	maxHashesPerBucket = 16384
	listItem           = 32 + 1
	maxListRank        = 4
)

// ErrSyncBreach is a responder that broke the sync protocol: its session
// ends and nothing more is taken from it.
var ErrSyncBreach = errors.New("the peer broke the sync protocol")

// SyncSession is this reader's side of one sync session as initiator: the
// JavaScript side moves the frames, the session says what to send and
// takes what arrives. Its methods follow the session's order.
type SyncSession struct {
	r         *Reader
	initiator []byte
	responder []byte
	own       *directory.SyncDigest
	want      []byte // buckets asked for, in order
	asked     map[directory.Hash]byte
	Pulled    int // records applied, or kept for later
}

// StartSync begins a session from this reader (peer ID initiator) with
// responder, and returns the hello body to send.
func (r *Reader) StartSync(initiator, responder []byte, now time.Time) (*SyncSession, []byte) {
	r.mu.Lock()
	var hs []directory.Hash
	for _, rec := range r.state.Records() {
		hs = append(hs, rec.Hash())
	}
	epochs := slices.Sorted(maps.Keys(r.keys))
	r.mu.Unlock()
	if len(epochs) > maxHelloKeys {
		epochs = epochs[len(epochs)-maxHelloKeys:]
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	proofKey := directory.SyncProofKey(r.net)
	hello := append(directory.SyncProof(proofKey, 'I', initiator, responder),
		directory.SyncHello(r.id, r.net, initiator, responder, now, nonce, epochs)...)
	return &SyncSession{r: r, initiator: initiator, responder: responder, own: directory.NewSyncDigest(hs), asked: map[directory.Hash]byte{}}, hello
}

// Ack takes the responder's helloAck and reports whether the session is
// done (the responder offers exactly what this reader holds).
func (s *SyncSession) Ack(body []byte) (done bool, err error) {
	if len(body) != 32+4+32 {
		return false, fmt.Errorf("%w: helloAck of %d bytes", ErrSyncBreach, len(body))
	}
	if !hmac.Equal(body[:32], directory.SyncProof(directory.SyncProofKey(s.r.net), 'R', s.initiator, s.responder)) {
		return false, errors.New("the peer's sync proof is wrong: it is of another network")
	}
	return bytes.Equal(body[36:], s.own.Root[:]), nil
}

// Buckets takes the responder's bucket table and returns the wantLists
// body: the buckets whose hash differs from this reader's (empty: done).
func (s *SyncSession) Buckets(body []byte) ([]byte, error) {
	if len(body) != 256*36 {
		return nil, fmt.Errorf("%w: bucket table of %d bytes", ErrSyncBreach, len(body))
	}
	s.want = nil
	for b := range 256 {
		count := binary.BigEndian.Uint32(body[b*36:])
		if count > 0 && !bytes.Equal(body[b*36+4:b*36+36], s.own.Buckets[b][:]) {
			s.want = append(s.want, byte(b))
		}
	}
	return s.want, nil
}

// Lists takes one list per bucket asked, in order, and returns the
// wantRecords body and how many records to expect: the hashes this reader
// lacks, in rank order (what others depend on first), at most
// syncMaxRecords. Zero records means the session is done.
func (s *SyncSession) Lists(lists [][]byte) ([]byte, int, error) {
	if len(lists) != len(s.want) {
		return nil, 0, fmt.Errorf("%w: %d lists for %d buckets", ErrSyncBreach, len(lists), len(s.want))
	}
	type item struct {
		h    directory.Hash
		rank byte
	}
	var lacking []item
	for i, body := range lists {
		b := s.want[i]
		if len(body) < 5 || body[0] != b {
			return nil, 0, fmt.Errorf("%w: a list for a bucket not asked for", ErrSyncBreach)
		}
		cnt := int(binary.BigEndian.Uint32(body[1:]))
		if cnt > maxHashesPerBucket || len(body) != 5+listItem*cnt {
			return nil, 0, fmt.Errorf("%w: a malformed hash list", ErrSyncBreach)
		}
		var prev directory.Hash
		for j := range cnt {
			var h directory.Hash
			it := body[5+listItem*j:]
			copy(h[:], it)
			if h[0] != b || (j > 0 && bytes.Compare(prev[:], h[:]) >= 0) || it[32] > maxListRank {
				return nil, 0, fmt.Errorf("%w: a hash list out of order, in the wrong bucket or of an unknown rank", ErrSyncBreach)
			}
			prev = h
			if s.r.has(h) {
				continue
			}
			lacking = append(lacking, item{h, it[32]})
		}
	}
	slices.SortStableFunc(lacking, func(a, b item) int { return int(a.rank) - int(b.rank) })
	lacking = lacking[:min(len(lacking), syncMaxRecords)]
	req := binary.BigEndian.AppendUint32(nil, uint32(len(lacking)))
	for _, it := range lacking {
		req = append(req, it.h[:]...)
		s.asked[it.h] = it.rank
	}
	return req, len(lacking), nil
}

// Record takes one record frame: a hash asked for, then the sealed record
// or nothing (the responder no longer holds it). The record is opened,
// checked against the hash and rank it was listed with, and applied (or
// kept for later, as Receive does).
func (s *SyncSession) Record(body []byte) error {
	if len(body) < 32 {
		return fmt.Errorf("%w: a record frame of %d bytes", ErrSyncBreach, len(body))
	}
	h := directory.Hash(body[:32])
	rank, ok := s.asked[h]
	if !ok {
		return fmt.Errorf("%w: a record not asked for", ErrSyncBreach)
	}
	delete(s.asked, h)
	if len(body) == 32 {
		return nil
	}
	rec, err := directory.Open(body[32:], s.r.net, s.r.Keys())
	if err != nil || rec.Hash() != h {
		return fmt.Errorf("%w: a record that does not open or match what was asked (%v)", ErrSyncBreach, err)
	}
	if syncRank(rec) != rank {
		return fmt.Errorf("%w: a record listed with another rank", ErrSyncBreach)
	}
	if _, err := s.r.take(body[32:], rec); err == nil || waits(err) {
		s.Pulled++
	}
	return nil
}

// syncRank is the node's: the order a state applies a record's type in.
func syncRank(r *directory.Record) byte {
	if r.Type == directory.TypeEntry {
		return 4
	}
	return byte(directory.ApplyRank(r.Type))
}

// has reports whether the view holds the record with hash h.
func (r *Reader) has(h directory.Hash) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.Has(h)
}
