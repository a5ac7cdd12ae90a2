package daemon

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/v1compat"
	"github.com/ceiba-network/ceiba/node"
)

// The upgrade from a protocol-version-1 home (PROTOCOL.md §10, "Upgrading
// a home"). Version-2 nodes refuse version-1 records, so a network moves as
// a whole: each home keeps its identity and its own entries, and joins the
// version-2 network its stewards create. `ceiba upgrade` does the home's
// part with the daemon stopped:
//
//   - reads the version-1 store read-only with the read keys the keystore
//     holds, and checks every record with version 1's rules;
//   - keeps this home's own live entries (signed by its own key, newest
//     version of each ID, not deleted or expired), and for a steward's home
//     the member, reader and revocation lists, in upgrade.age (encrypted
//     with the passphrase, like the keystore);
//   - moves the version-1 keystore to keys.v1.age and writes keys.age with
//     the same identity and no read keys: version-1 read keys are numbered
//     by version-1 epochs, and left in the keyring they would stand for the
//     new network's epochs of the same number;
//   - moves data/store to data/store.v1 and revocation.cert to
//     revocation.v1.cert, and forgets the version-1 network in config.toml.
//
// Nothing of version 1 is deleted. Once the home is admitted to the
// version-2 network as a member, its daemon re-publishes the kept entries
// (same IDs, the version-1 seq + 1) by itself (republishCarried).

// UpgradePath, KeysV1Path, ... name the files the upgrade writes or keeps.
func (h Home) UpgradePath() string      { return h.path("upgrade.age") }
func (h Home) KeysV1Path() string       { return h.path("keys.v1.age") }
func (h Home) RevocationV1Path() string { return h.path("revocation.v1.cert") }
func (h Home) StoreV1Dir() string       { return filepath.Join(h.DataDir(), "store.v1") }

// Carried is what a version-1 home carries into version 2: upgrade.age.
type Carried struct {
	// V1Network is the version-1 network's ID, for the person's records.
	V1Network string    `json:"v1_network"`
	Upgraded  time.Time `json:"upgraded"`
	// Entries are this organization's live version-1 entries, not yet
	// re-published under version 2.
	Entries []directory.Entry `json:"entries"`
	// Republished are the IDs published under version 2 so far.
	Republished []string `json:"republished,omitempty"`
	// For a steward's home: whom the version-1 network admitted and
	// revoked, to re-invite and re-revoke (README, "Upgrading from
	// version 1").
	Members []ListedKey `json:"members,omitempty"`
	Readers []ListedKey `json:"readers,omitempty"`
	Revoked []ListedKey `json:"revoked,omitempty"`
}

// ListedKey is one key of a steward's lists.
type ListedKey struct {
	Fingerprint string `json:"fingerprint"`
	Key         string `json:"key"`
	Name        string `json:"name,omitempty"` // an organization's name, a reader's label, a revocation's reason
	VouchedBy   string `json:"vouched_by,omitempty"`
}

// UpgradeReport says what Upgrade did, or found done.
type UpgradeReport struct {
	AlreadyDone bool     `json:"already_done"`
	Fingerprint string   `json:"fingerprint"`
	Carried     *Carried `json:"carried"`
	// Skipped names each version-1 record that was not read, and why (a
	// damaged or tampered record, or one under a key this home never held).
	Skipped []string `json:"skipped,omitempty"`
	// Others counts valid records that are not this home's to carry
	// (governance, other organizations' entries); they stay in
	// data/store.v1. Deleted and Expired count this home's entries that
	// were not live.
	Others  int `json:"others"`
	Deleted int `json:"deleted"`
	Expired int `json:"expired"`
}

// ErrNothingToUpgrade is returned for a home whose store holds no
// version-1 record.
var ErrNothingToUpgrade = errors.New("this home holds no version-1 data: nothing to upgrade")

// Upgrade moves a version-1 home to version 2, keeping its identity and its
// own entries. It must run with the daemon stopped. A second run finds it
// done and reports what is still waiting. On any error before the store is
// moved aside, the home is as it was.
func Upgrade(h Home, passphrase string, workFactor int, now time.Time) (*UpgradeReport, error) {
	cfg, err := h.LoadConfig()
	if err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("tcp", cfg.API.Listen, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("something answers on %s, this home's API: stop \"ceiba daemon\" first", cfg.API.Listen)
	}
	if _, err := os.Stat(h.StoreV1Dir()); err == nil {
		return finishUpgrade(h, cfg, passphrase, workFactor, nil)
	}
	// The version-1 keystore: keys.v1.age once an interrupted run has
	// copied it there, keys.age before.
	ksPath := h.KeysPath()
	if _, err := os.Stat(h.KeysV1Path()); err == nil {
		ksPath = h.KeysV1Path()
	}
	ks, err := loadKeys(ksPath, passphrase)
	if err != nil {
		return nil, err
	}
	stored, err := node.StoredRecords(h.DataDir())
	if err != nil {
		return nil, fmt.Errorf("the version-1 store cannot be read, and nothing was changed: %w", err)
	}
	v1 := 0
	for _, s := range stored {
		if v1compat.IsVersion1(s) {
			v1++
		}
	}
	if v1 == 0 {
		return nil, ErrNothingToUpgrade
	}
	netID, joined, err := cfg.NetworkID()
	if err != nil || !joined {
		return nil, errors.Join(err, errors.New("config.toml names no version-1 network: the store cannot be opened, and nothing was changed"))
	}
	rep := carryOver(stored, netID, ks.Keys, ks.Identity.Public(), now)
	rep.Fingerprint = ks.Identity.Fingerprint()
	// Written in an order that a second run after a crash at any step
	// finishes: the carried data and the version-1 keys first, then the
	// store moved aside (which marks the upgrade done), then the rest.
	if err := writeCarried(h, rep.Carried, passphrase, workFactor); err != nil {
		return nil, err
	}
	if ksPath == h.KeysPath() {
		raw, err := os.ReadFile(h.KeysPath())
		if err != nil {
			return nil, err
		}
		if err := directory.WriteFileAtomic(h.KeysV1Path(), raw, 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(filepath.Join(h.DataDir(), "store"), h.StoreV1Dir()); err != nil {
		return nil, fmt.Errorf("moving the version-1 store aside: %w", err)
	}
	// The keystore at keys.age holds the identity read above (the same
	// file, or a copy of it after an interrupted run): reading it again
	// would cost another scrypt.
	if _, err := finishUpgrade(h, cfg, passphrase, workFactor, ks); err != nil {
		return nil, err
	}
	return rep, nil
}

// finishUpgrade does the steps after the store is moved aside, each of
// which may run again: the keystore without version-1 read keys, the
// version-1 revocation certificate moved aside, and the version-1 network
// forgotten in config.toml. ks is keys.age if the caller has read it.
func finishUpgrade(h Home, cfg *Config, passphrase string, workFactor int, ks *directory.Keystore) (*UpgradeReport, error) {
	c, err := readCarried(h, passphrase)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("%s exists but %s, the list of what the upgrade kept, does not: move %s back to %s to upgrade again",
			h.StoreV1Dir(), h.UpgradePath(), h.StoreV1Dir(), filepath.Join(h.DataDir(), "store"))
	}
	if ks == nil {
		if ks, err = loadKeys(h.KeysPath(), passphrase); err != nil {
			return nil, err
		}
	}
	if c.V1Network != "" && cfg.Network.ID == c.V1Network {
		if len(ks.Keys) > 0 {
			ks = &directory.Keystore{Identity: ks.Identity, Keys: directory.Keyring{}}
			if err := directory.SaveKeystore(h.KeysPath(), ks, passphrase, workFactor); err != nil {
				return nil, err
			}
		}
		if _, err := os.Stat(h.RevocationPath()); err == nil {
			if err := os.Rename(h.RevocationPath(), h.RevocationV1Path()); err != nil {
				return nil, err
			}
		}
		next := *cfg
		next.Network = NetworkConfig{}
		// The version-1 network's peers speak version 1 only; the
		// version-2 invite brings the addresses to use.
		next.Node.Bootstrap = nil
		if err := h.SaveConfig(&next); err != nil {
			return nil, err
		}
	}
	return &UpgradeReport{AlreadyDone: true, Fingerprint: ks.Identity.Fingerprint(), Carried: c}, nil
}

func loadKeys(path, passphrase string) (*directory.Keystore, error) {
	ks, err := directory.LoadKeystore(path, passphrase)
	if errors.Is(err, directory.ErrWrongPassphrase) {
		return nil, errors.New("wrong passphrase for this home's keys")
	}
	if err != nil {
		return nil, fmt.Errorf("open keys: %w", err)
	}
	return ks, nil
}

func writeCarried(h Home, c *Carried, passphrase string, workFactor int) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	sealed, err := directory.EncryptWithPassphrase(raw, passphrase, workFactor)
	if err != nil {
		return err
	}
	return directory.WriteFileAtomic(h.UpgradePath(), sealed, 0o600)
}

// readCarried reads upgrade.age; a home that was never upgraded has none,
// which is no error: nil, nil.
func readCarried(h Home, passphrase string) (*Carried, error) {
	raw, err := os.ReadFile(h.UpgradePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	plain, err := directory.DecryptWithPassphrase(raw, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s does not open with this passphrase: %w", h.UpgradePath(), err)
	}
	var c Carried
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w", h.UpgradePath(), err)
	}
	return &c, nil
}

// carryOver decides what of a version-1 store a home carries over: its own
// live entries, and for a steward the lists. stored is every record of the
// store by hash.
func carryOver(stored map[directory.Hash][]byte, netID directory.NetworkID, keys directory.Keyring, me directory.PublicKey, now time.Time) *UpgradeReport {
	rep := &UpgradeReport{Carried: &Carried{V1Network: hex.EncodeToString(netID[:]), Upgraded: now.UTC(), Entries: []directory.Entry{}}}
	hashes := make([]directory.Hash, 0, len(stored))
	for h := range stored {
		hashes = append(hashes, h)
	}
	slices.SortFunc(hashes, func(a, b directory.Hash) int { return slices.Compare(a[:], b[:]) })
	newest := map[string]*directory.Entry{}
	var recs []*v1compat.Record
	for _, h := range hashes {
		r, err := v1compat.Open(stored[h], netID, keys)
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("record %s: %v", h.Short(), err))
			continue
		}
		e, err := r.Entry()
		if r.Type != v1compat.TypeEntry || len(r.Sigs) != 1 || r.Sigs[0].Key != me {
			recs = append(recs, r)
			rep.Others++
			continue
		}
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("record %s: %v", h.Short(), err))
			continue
		}
		if cur := newest[e.ID]; cur == nil || e.Seq > cur.Seq {
			newest[e.ID] = e
		}
	}
	for _, id := range slices.Sorted(maps.Keys(newest)) {
		e := newest[id]
		switch {
		case e.Deleted:
			rep.Deleted++
		case e.Expires <= now.Unix():
			rep.Expired++
		default:
			rep.Carried.Entries = append(rep.Carried.Entries, *e)
		}
	}
	stewardLists(rep.Carried, recs, me, now)
	return rep
}

// stewardLists fills the member, reader and revocation lists when me was a
// steward of the newest version-1 charter the store holds. A membership is
// listed when the threshold of its cited charter's stewards signed it (on
// the record or by approvals), a revocation when its own key or that
// threshold did, a reader when a listed member vouched for it and it has
// not expired: what a version-1 node applied, without the state's finer
// rules (ordering, expiry of stewards), so the stewards check the lists
// before they act on them.
func stewardLists(c *Carried, recs []*v1compat.Record, me directory.PublicKey, now time.Time) {
	charters := map[uint64]*v1compat.Charter{}
	var latest *v1compat.Charter
	type proposal struct {
		r       *v1compat.Record
		signers map[directory.PublicKey]bool
	}
	props := map[directory.Hash]*proposal{}
	var readers []*v1compat.Record
	for _, r := range recs {
		body := r
		if r.Type == v1compat.TypeApproval {
			var err error
			if body, err = r.ProposalBody(); err != nil {
				continue
			}
		}
		switch body.Type {
		case v1compat.TypeCharter:
			if ch, err := body.Charter(); err == nil {
				charters[ch.Version] = ch
				if latest == nil || ch.Version > latest.Version {
					latest = ch
				}
			}
		case v1compat.TypeMembership, v1compat.TypeRevocation:
			id := r.ProposalID()
			p := props[id]
			if p == nil {
				p = &proposal{r: body, signers: map[directory.PublicKey]bool{}}
				props[id] = p
			}
			for _, k := range r.Signers() {
				p.signers[k] = true
			}
		case v1compat.TypeReader:
			readers = append(readers, body)
		}
	}
	if latest == nil || !slices.ContainsFunc(latest.Stewards, func(s v1compat.Steward) bool { return s.Key == me }) {
		return
	}
	approved := func(cited uint64, signers map[directory.PublicKey]bool) bool {
		ch := charters[cited]
		if ch == nil {
			return false
		}
		n := 0
		for _, s := range ch.Stewards {
			if signers[s.Key] {
				n++
			}
		}
		return n >= int(ch.Threshold)
	}
	revoked := map[directory.PublicKey]bool{}
	members := map[directory.PublicKey]string{}
	for _, p := range props {
		switch p.r.Type {
		case v1compat.TypeRevocation:
			if rv, err := p.r.Revocation(); err == nil && (p.signers[rv.Key] || approved(rv.Charter, p.signers)) && !revoked[rv.Key] {
				revoked[rv.Key] = true
				c.Revoked = append(c.Revoked, listed(rv.Key, rv.Reason, ""))
			}
		case v1compat.TypeMembership:
			if m, err := p.r.Membership(); err == nil && approved(m.Charter, p.signers) {
				members[m.Org] = m.Name
			}
		}
	}
	for k, name := range members {
		if !revoked[k] {
			c.Members = append(c.Members, listed(k, name, ""))
		}
	}
	seen := map[directory.PublicKey]bool{}
	for _, r := range readers {
		rd, err := r.Reader()
		if err != nil || len(r.Sigs) != 1 || revoked[rd.Key] || seen[rd.Key] || (rd.Expires != 0 && rd.Expires <= now.Unix()) {
			continue
		}
		if _, ok := members[r.Sigs[0].Key]; !ok || revoked[r.Sigs[0].Key] {
			continue
		}
		seen[rd.Key] = true
		c.Readers = append(c.Readers, listed(rd.Key, rd.Label, directory.Fingerprint(r.Sigs[0].Key)))
	}
	for _, l := range [][]ListedKey{c.Members, c.Readers, c.Revoked} {
		slices.SortFunc(l, func(a, b ListedKey) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
	}
}

func listed(k directory.PublicKey, name, by string) ListedKey {
	return ListedKey{Fingerprint: directory.Fingerprint(k), Key: k.Hex(), Name: name, VouchedBy: by}
}

// republishCarried re-publishes, once this node is an admitted member of
// its (version-2) network, the entries `ceiba upgrade` carried over from
// version 1: same IDs, the version-1 seq + 1 (or the next seq, if this
// network already holds the ID), the version-1 expiry. An entry that
// expired while the home waited for its admission is dropped, and said so.
// What fails to publish stays in upgrade.age for the next start.
func (d *Daemon) republishCarried(n *node.Node) {
	c, err := readCarried(d.home, d.opts.Passphrase)
	if err != nil {
		d.log.Warn("the entries kept by \"ceiba upgrade\" cannot be read", "err", err)
		return
	}
	if c == nil || len(c.Entries) == 0 {
		return
	}
	events, cancel := n.Subscribe()
	tick := time.NewTicker(5 * time.Second)
	for !d.isMember(n.State()) {
		select {
		case <-d.ctx.Done():
			cancel()
			tick.Stop()
			return
		case <-events:
		case <-tick.C:
		}
	}
	cancel()
	tick.Stop()
	var left []directory.Entry
	for _, old := range c.Entries {
		now := time.Now()
		if old.Expires <= now.Unix() {
			d.log.Warn("an entry kept from version 1 expired before this node was admitted; publish it again with \"ceiba entry publish\"", "id", old.ID)
			continue
		}
		e := &directory.Entry{ID: old.ID, Seq: max(old.Seq+1, d.nextSeq(n.State(), old.ID)), Issued: now.Unix(), Expires: old.Expires, Service: old.Service}
		if _, err := d.publishEntry(d.ctx, n, e); err != nil {
			d.log.Warn("re-publishing an entry kept from version 1", "id", old.ID, "err", err)
			left = append(left, old)
			continue
		}
		d.log.Info("re-published an entry kept from version 1", "id", e.ID, "seq", e.Seq)
		c.Republished = append(c.Republished, old.ID)
	}
	c.Entries = left
	if c.Entries == nil {
		c.Entries = []directory.Entry{}
	}
	d.mu.Lock()
	wiped := d.wiped
	d.mu.Unlock()
	if wiped {
		return
	}
	if err := writeCarried(d.home, c, d.opts.Passphrase, d.opts.WorkFactor); err != nil {
		d.log.Warn("recording the re-published version-1 entries", "err", err)
	}
}
