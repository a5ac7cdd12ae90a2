package node

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/ceiba-network/ceiba/directory"
)

// The start-up checkpoint lists the hashes of the stored records whose
// signatures this node has checked, so the next start need not check them
// again: at 100,000 entries the signatures were most of the 11.5 s a start
// took. It is only that list. The state is still rebuilt from the store by
// the same rules (State.Apply, every record opened and decoded), so a stale
// checkpoint, one that lists records the store no longer holds or misses
// records stored after it (a crash), changes nothing the node shows: a
// record it does not list is verified in full, one it lists but the store
// lacks is simply absent. A hash covers the record's every byte, signatures
// included, so a listed hash can only vouch for the very record that was
// verified.
//
// The file is authenticated with a key derived from the node's identity
// secret (Identity.LocalMACKey): whoever can write the store but does not
// hold the keystore's passphrase cannot list a record of their own. A
// checkpoint that is damaged, of another version, another network or
// another identity is not used: every record is verified, the node logs
// why once, and writes a new checkpoint.
//
// Version 2 lists the entries apart from the other records: a start
// applies every other record first (directory.ApplyRank), and knowing
// which records are entries before opening them lets it apply entries
// while it still opens the rest, instead of opening all and then applying
// all. Version 1 checkpoints are still read, as listing no entries.
//
// Version 3 adds the directory.RecordRules of the build that wrote it. A
// checkpoint of a build with the same rules vouches for the entries'
// field checks too (directory.VouchedAll): their bodies are not even
// decoded at start, which with the index snapshot (indexsnap.go) was
// most of what a start still did. After an upgrade that changed a check,
// the checkpoint vouches for signatures only, and every field is checked
// again by the new rules.
//
// Version 4 lists every record the state holds when it is written, and
// adds the time the digest it carries was computed at and when the first
// entry it counts expires (directory.DigestStamp). A start that applies
// exactly the records it lists, by the same rules, keeps that digest
// (directory.State.AdoptDigest) instead of computing it again for the
// first status request or sync hello.
//
// It is written at a clean shutdown, after a start that had to verify
// records, every checkpointEvery while records change, and as soon as
// checkpointAfter records were stored since the last one, so a crash after
// a large ingest costs at most that many verifications at the next start.

var checkpointKey = datastore.NewKey("/checkpoint")

const (
	checkpointMagic   = "ceiba start-up checkpoint\x00"
	checkpointVersion = 4
	// checkpointPurpose keys the MAC; it is that of version 1 too, so the
	// first start after an upgrade still trusts the checkpoint it finds.
	checkpointPurpose = "start-up checkpoint v1"
	checkpointEvery   = 5 * time.Minute
	checkpointAfter   = 10_000
	// checkpointHeader is magic, version, network ID, state digest and the
	// count of hashes (version 2: then the count of entries among them;
	// version 3: the RecordRules; version 4: when the digest was computed
	// and until when it holds); the hashes and the MAC follow, version
	// 2's entries last.
	checkpointHeader = len(checkpointMagic) + 1 + 32 + 32 + 8
)

// vouchedSet is what a checkpoint vouches for: each listed hash, with true
// for an entry (applied after every other record).
type vouchedSet map[directory.Hash]bool

// entries is how many of the listed records are entries.
func (v vouchedSet) entries() int {
	n := 0
	for _, entry := range v {
		if entry {
			n++
		}
	}
	return n
}

// checkpointState is what the node knows of its last checkpoint.
type checkpointState struct {
	at    time.Time
	ver   uint64 // storedVer when it was taken
	count int    // hashes it listed
	// vouched is how many records the start took on the checkpoint's word
	// (their signatures not checked again).
	vouched int
}

func (n *Node) checkpointMAC(body []byte) []byte {
	k := n.id.LocalMACKey(checkpointPurpose)
	m := hmac.New(sha256.New, k[:])
	m.Write(body)
	return m.Sum(nil)
}

// encodeCheckpoint lays out the checkpoint: header, the sorted hashes of
// the records that are not entries, then of the entries, MAC.
func (n *Node) encodeCheckpoint(stamp directory.DigestStamp, others, entries []directory.Hash) []byte {
	byBytes := func(a, b directory.Hash) int { return bytes.Compare(a[:], b[:]) }
	slices.SortFunc(others, byBytes)
	slices.SortFunc(entries, byBytes)
	count := len(others) + len(entries)
	buf := make([]byte, 0, checkpointHeader+8+4+16+32*count+sha256.Size)
	buf = append(buf, checkpointMagic...)
	buf = append(buf, checkpointVersion)
	buf = append(buf, n.cfg.Network[:]...)
	buf = append(buf, stamp.Digest[:]...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(count))
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(entries)))
	buf = binary.BigEndian.AppendUint32(buf, directory.RecordRules)
	buf = binary.BigEndian.AppendUint64(buf, uint64(stamp.At))
	buf = binary.BigEndian.AppendUint64(buf, uint64(stamp.Until))
	for _, h := range others {
		buf = append(buf, h[:]...)
	}
	for _, h := range entries {
		buf = append(buf, h[:]...)
	}
	return append(buf, n.checkpointMAC(buf)...)
}

// decodedCheckpoint is what a checkpoint says.
type decodedCheckpoint struct {
	listed vouchedSet
	// fieldsChecked says it vouches for the entries' field checks too.
	fieldsChecked bool
	version       byte
	// stamp is the digest of the state holding the listed records; before
	// version 4, only its digest (stamped says which).
	stamp directory.DigestStamp
}

// stamped says the checkpoint carries the digest's time and expiry.
func (c decodedCheckpoint) stamped() bool { return c.version >= 4 }

// decodeCheckpoint returns what a checkpoint says, or an error that says
// why it cannot be used.
func (n *Node) decodeCheckpoint(b []byte) (decodedCheckpoint, error) {
	var c decodedCheckpoint
	if len(b) < checkpointHeader+sha256.Size {
		return decodedCheckpoint{}, fmt.Errorf("%d bytes, shorter than a checkpoint", len(b))
	}
	if string(b[:len(checkpointMagic)]) != checkpointMagic {
		return decodedCheckpoint{}, errors.New("not a checkpoint")
	}
	p := len(checkpointMagic)
	ver := b[p]
	c.version = ver
	if ver < 1 || ver > checkpointVersion {
		return decodedCheckpoint{}, fmt.Errorf("version %d, this ceiba writes %d", ver, checkpointVersion)
	}
	body, mac := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if !hmac.Equal(mac, n.checkpointMAC(body)) {
		return decodedCheckpoint{}, errors.New("its MAC does not match this node's identity (damaged, or written by another identity)")
	}
	p++
	if !bytes.Equal(b[p:p+32], n.cfg.Network[:]) {
		return decodedCheckpoint{}, errors.New("written for another network")
	}
	p += 32
	copy(c.stamp.Digest[:], b[p:p+32])
	p += 32
	count := binary.BigEndian.Uint64(b[p:])
	p += 8
	var entries uint64
	if ver >= 2 {
		if len(body) < p+8 {
			return decodedCheckpoint{}, errors.New("shorter than its header")
		}
		entries = binary.BigEndian.Uint64(b[p:])
		p += 8
	}
	if ver >= 3 {
		if len(body) < p+4 {
			return decodedCheckpoint{}, errors.New("shorter than its header")
		}
		c.fieldsChecked = binary.BigEndian.Uint32(b[p:]) == directory.RecordRules
		p += 4
	}
	if ver >= 4 {
		if len(body) < p+16 {
			return decodedCheckpoint{}, errors.New("shorter than its header")
		}
		c.stamp.At, c.stamp.Until = int64(binary.BigEndian.Uint64(b[p:])), int64(binary.BigEndian.Uint64(b[p+8:]))
		p += 16
	}
	if count != uint64(len(body)-p)/32 || uint64(len(body)-p)%32 != 0 || entries > count {
		return decodedCheckpoint{}, fmt.Errorf("lists %d hashes (%d entries) in %d bytes", count, entries, len(body)-p)
	}
	set := make(vouchedSet, count)
	firstEntry := p + 32*int(count-entries)
	for ; p < len(body); p += 32 {
		set[directory.Hash(body[p:p+32])] = p >= firstEntry
	}
	c.listed = set
	return c, nil
}

// noCheckpoint is readCheckpoint's reason for a store that has none yet: a
// first start, or one after a crash before the first checkpoint.
const noCheckpoint = "there is none"

// readCheckpoint returns what the stored checkpoint says, and whether it
// is of an earlier version or rules (to be written again); its listed set
// is nil, and why says why, when there is none or it cannot be used.
func (n *Node) readCheckpoint(ctx context.Context) (c decodedCheckpoint, outdated bool, why string) {
	b, err := n.root.Get(ctx, checkpointKey)
	if errors.Is(err, datastore.ErrNotFound) {
		return decodedCheckpoint{}, false, noCheckpoint
	}
	if err != nil {
		return decodedCheckpoint{}, false, "reading it: " + err.Error()
	}
	if c, err = n.decodeCheckpoint(b); err != nil {
		return decodedCheckpoint{}, false, err.Error()
	}
	return c, c.version < checkpointVersion || !c.fieldsChecked, ""
}

// saveCheckpoint writes the hashes of the records the state holds, and
// its digest as of the same moment: every one of them was verified before
// Apply took it (one the store does not hold yet, stored just after, or
// never if the node stops first, is simply absent at the next start);
// with withIndex, the index snapshot too (indexsnap.go). The caller makes
// sure the store is open (enter, or Close before closing it).
func (n *Node) saveCheckpoint(ctx context.Context, withIndex bool) error {
	if !n.loaded.Load() {
		return nil // a half-loaded state vouches for nothing
	}
	n.mu.Lock()
	ver := n.storedVer
	n.mu.Unlock()
	others, entries, stamp := n.state.HeldRecords()
	count := len(others) + len(entries)
	b := n.encodeCheckpoint(stamp, others, entries)
	if err := n.root.Put(ctx, checkpointKey, b); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := n.root.Sync(ctx, checkpointKey); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if withIndex {
		if err := n.saveIndexSnapshot(); err != nil {
			return err
		}
	}
	n.mu.Lock()
	n.ckpt = checkpointState{at: time.Now(), ver: ver, count: count, vouched: n.ckpt.vouched}
	n.mu.Unlock()
	return nil
}

// maybeCheckpoint writes a checkpoint when records changed since the last
// one and either checkpointEvery has passed or checkpointAfter records
// more are stored.
func (n *Node) maybeCheckpoint() {
	n.mu.Lock()
	c, ver, stored := n.ckpt, n.storedVer, len(n.stored)
	n.mu.Unlock()
	if ver == c.ver || (time.Since(c.at) < checkpointEvery && stored-c.count < checkpointAfter) {
		return
	}
	if !n.enter() {
		return
	}
	defer n.leave()
	n.mu.Lock()
	withIndex := time.Since(n.indexSavedAt) >= indexSnapshotEvery
	n.mu.Unlock()
	if err := n.saveCheckpoint(n.ctx, withIndex); err != nil {
		n.log.Warn("writing the start-up checkpoint; the next start verifies more", "err", err)
	}
}
