package directory

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Policy is the part of the charter that bounds what nodes accept. Zero
// fields take the defaults below, so a charter states only what it changes.
type Policy struct {
	MaxRecordBytes   uint32   `cbor:"1,keyasint,omitempty"`
	MaxEntryLifetime uint32   `cbor:"2,keyasint,omitempty"` // seconds from Issued to Expires
	ClockSkew        uint32   `cbor:"3,keyasint,omitempty"` // seconds a record may be dated ahead
	StaleAfter       uint32   `cbor:"4,keyasint,omitempty"` // seconds without news before data shows as stale
	Relays           []string `cbor:"5,keyasint,omitempty"` // static relay addresses for NATed nodes
	// Per-author limits (see authorlimit.go). Updates per hour is a
	// forwarding rule: every node forwards at most that many replacing
	// versions of one author's entries. Entries and bytes are a state rule:
	// an author's live entry slots beyond them are held back, not shown.
	MaxAuthorUpdatesPerHour uint32 `cbor:"6,keyasint,omitempty"`
	MaxAuthorEntries        uint32 `cbor:"7,keyasint,omitempty"` // live entry slots, tombstones included until they expire
	MaxAuthorBytes          uint64 `cbor:"8,keyasint,omitempty"` // sum of the sizes of an author's live entry records
}

// Policy defaults.
const (
	DefaultMaxRecordBytes   = 64 << 10
	DefaultMaxEntryLifetime = 180 * 24 * 3600
	DefaultClockSkew        = 10 * 60
	DefaultStaleAfter       = 7 * 24 * 3600

	DefaultMaxAuthorUpdatesPerHour = 60
	DefaultMaxAuthorEntries        = 1024
	DefaultMaxAuthorBytes          = 32 << 20
	// The ranges a charter may set them in: room for at least one typical
	// entry, and caps that keep the arithmetic far from overflow. A
	// network that publishes in bulk (an import of a large directory, a
	// benchmark) raises the limits by amendment.
	minAuthorBytes             = 4096
	maxAuthorUpdatesPerHourCap = 1 << 24
	maxAuthorEntriesCap        = 1 << 24
	maxAuthorBytesCap          = 1 << 40
)

// MaxRecordSize is the largest entry record nodes show, and the largest
// record honest nodes make and store for others (see outsidePolicy).
func (p Policy) MaxRecordSize() int { return p.maxRecordBytes() }

// MaxEntryLife is the longest an entry may live, from its issue date to
// its expiry, and still be shown.
func (p Policy) MaxEntryLife() time.Duration { return p.maxEntryLifetime() }

func (p Policy) maxRecordBytes() int {
	if p.MaxRecordBytes == 0 {
		return DefaultMaxRecordBytes
	}
	return int(p.MaxRecordBytes)
}

func (p Policy) maxEntryLifetime() time.Duration {
	if p.MaxEntryLifetime == 0 {
		return DefaultMaxEntryLifetime * time.Second
	}
	return time.Duration(p.MaxEntryLifetime) * time.Second
}

// ClockSkewBound is how far ahead of a node's clock a record may be dated.
func (p Policy) ClockSkewBound() time.Duration {
	if p.ClockSkew == 0 {
		return DefaultClockSkew * time.Second
	}
	return time.Duration(p.ClockSkew) * time.Second
}

// StaleBound is how long a node may go without news before its copy is
// shown as stale.
func (p Policy) StaleBound() time.Duration {
	if p.StaleAfter == 0 {
		return DefaultStaleAfter * time.Second
	}
	return time.Duration(p.StaleAfter) * time.Second
}

// Steward is one steward's keys as the charter lists them.
type Steward struct {
	Key  PublicKey `cbor:"1,keyasint"`
	KEM  []byte    `cbor:"2,keyasint"`
	Name string    `cbor:"3,keyasint"`
	// KEMSig is Key's own signature on KEM (Identity.KEMBinding): nobody
	// can list a steward with an encapsulation key the steward does not own.
	KEMSig []byte `cbor:"4,keyasint"`
}

// Charter is the network's constitution. Version 1 is the genesis, signed
// by every initial steward; version N+1 names the hash of version N and is
// approved by Threshold stewards of version N.
type Charter struct {
	Name      string    `cbor:"1,keyasint"`
	Version   uint64    `cbor:"2,keyasint"`
	Previous  Hash      `cbor:"3,keyasint"` // ProposalID of version N; zero in the genesis
	Stewards  []Steward `cbor:"4,keyasint"`
	Threshold uint8     `cbor:"5,keyasint"`
	Policy    Policy    `cbor:"6,keyasint"`
	Issued    int64     `cbor:"7,keyasint"`
	// Salt makes two networks with the same name and stewards distinct.
	Salt []byte `cbor:"8,keyasint"`
}

func (*Charter) RecordType() RecordType { return TypeCharter }

func (c *Charter) check() error {
	if err := checkText("name", c.Name, 1, 120); err != nil {
		return err
	}
	if c.Version == 0 {
		return errors.New("version must start at 1")
	}
	if (c.Version == 1) != (c.Previous == Hash{}) {
		return errors.New("previous is set exactly when version is above 1")
	}
	if len(c.Stewards) == 0 || len(c.Stewards) > 64 {
		return fmt.Errorf("%d stewards, want 1 to 64", len(c.Stewards))
	}
	if c.Threshold == 0 || int(c.Threshold) > len(c.Stewards) {
		return fmt.Errorf("threshold %d with %d stewards", c.Threshold, len(c.Stewards))
	}
	for i, s := range c.Stewards {
		if err := CheckPublicKey(s.Key); err != nil {
			return fmt.Errorf("steward %d: %v", i, err)
		}
		if err := checkKEMBinding(s.Key, s.KEM, s.KEMSig); err != nil {
			return fmt.Errorf("steward %d: %v", i, err)
		}
		if err := checkText("steward name", s.Name, 0, 120); err != nil {
			return err
		}
		if i > 0 && !keyLess(c.Stewards[i-1].Key, s.Key) {
			return errors.New("stewards must be sorted by key, each once")
		}
	}
	if len(c.Salt) != 16 {
		return errors.New("salt must be 16 bytes")
	}
	if c.Policy.MaxRecordBytes != 0 && (c.Policy.MaxRecordBytes < 4096 || c.Policy.MaxRecordBytes > MaxRecordBytes) {
		return fmt.Errorf("policy max record size %d outside 4096..%d", c.Policy.MaxRecordBytes, MaxRecordBytes)
	}
	if len(c.Policy.Relays) > 32 {
		return errors.New("at most 32 relays")
	}
	if err := c.Policy.checkAuthorLimits(); err != nil {
		return err
	}
	return checkTime("issued", c.Issued)
}

// StewardKeys returns the charter's steward keys.
func (c *Charter) StewardKeys() []PublicKey {
	keys := make([]PublicKey, len(c.Stewards))
	for i, s := range c.Stewards {
		keys[i] = s.Key
	}
	return keys
}

func (c *Charter) isSteward(k PublicKey) bool {
	return slices.ContainsFunc(c.Stewards, func(s Steward) bool { return s.Key == k })
}

// Membership admits an organization as a publisher. It takes effect when
// Threshold stewards of the charter version it cites have approved it.
type Membership struct {
	Charter uint64    `cbor:"1,keyasint"`
	Org     PublicKey `cbor:"2,keyasint"`
	KEM     []byte    `cbor:"3,keyasint"`
	Name    string    `cbor:"4,keyasint"`
	Peers   []string  `cbor:"5,keyasint,omitempty"` // libp2p peer IDs of the organization's nodes
	Issued  int64     `cbor:"6,keyasint"`
	KEMSig  []byte    `cbor:"7,keyasint"` // Org's signature on KEM (Identity.KEMBinding)
}

func (*Membership) RecordType() RecordType { return TypeMembership }

func (m *Membership) check() error {
	if m.Charter == 0 {
		return errors.New("charter version missing")
	}
	if err := CheckPublicKey(m.Org); err != nil {
		return err
	}
	if err := checkKEMBinding(m.Org, m.KEM, m.KEMSig); err != nil {
		return err
	}
	if err := checkText("name", m.Name, 1, 120); err != nil {
		return err
	}
	if len(m.Peers) > 16 {
		return errors.New("at most 16 peers")
	}
	for _, p := range m.Peers {
		if err := checkText("peer", p, 1, 128); err != nil {
			return err
		}
	}
	return checkTime("issued", m.Issued)
}

// Reader admits an activist's key so that it receives read keys. It is
// signed by one member organization and falls with it.
type Reader struct {
	Key     PublicKey `cbor:"1,keyasint"`
	KEM     []byte    `cbor:"2,keyasint"`
	Label   string    `cbor:"3,keyasint,omitempty"` // the voucher's own note; never required
	Issued  int64     `cbor:"4,keyasint"`
	Expires int64     `cbor:"5,keyasint,omitempty"`
	// KEMSig is Key's own signature on KEM (Identity.KEMBinding), which the
	// voucher got from the reader at redemption: a voucher cannot pair a
	// reader's key with an encapsulation key of its own.
	KEMSig []byte `cbor:"6,keyasint"`
}

func (*Reader) RecordType() RecordType { return TypeReader }

func (r *Reader) check() error {
	if err := CheckPublicKey(r.Key); err != nil {
		return err
	}
	if err := checkKEMBinding(r.Key, r.KEM, r.KEMSig); err != nil {
		return err
	}
	if err := checkText("label", r.Label, 0, 120); err != nil {
		return err
	}
	if r.Expires != 0 && r.Expires <= r.Issued {
		return errors.New("expires before it is issued")
	}
	return checkTime("issued", r.Issued)
}

// Revocation rejects a key and everything it signed or vouched for, for
// good. It is valid signed by the key itself, or by Threshold stewards of
// the charter version it cites.
type Revocation struct {
	Key     PublicKey `cbor:"1,keyasint"`
	Charter uint64    `cbor:"2,keyasint,omitempty"`
	Reason  string    `cbor:"3,keyasint,omitempty"`
	Issued  int64     `cbor:"4,keyasint"`
}

func (*Revocation) RecordType() RecordType { return TypeRevocation }

func (r *Revocation) check() error {
	if err := CheckPublicKey(r.Key); err != nil {
		return err
	}
	if err := checkText("reason", r.Reason, 0, 500); err != nil {
		return err
	}
	return checkTime("issued", r.Issued)
}

// Epoch introduces a new read key, sealed to each remaining member and
// reader in its own package, carried by the EpochPage records whose hashes
// PageHashes lists (epochpage.go). Epoch N+1 takes effect only after epoch
// N. It is valid when Threshold unrevoked stewards of the cited charter
// approve it, or when one of them signs it right after a revocation
// approved by stewards (not a self-revocation) that After names: the
// automatic rotation that follows a revocation (State.epochValid says what
// "right after" is).
type Epoch struct {
	Number  uint64 `cbor:"1,keyasint"`
	Charter uint64 `cbor:"2,keyasint"`
	After   Hash   `cbor:"3,keyasint"`
	// PageHashes lists PageHash of each page, by index: the approval of
	// the epoch is the approval of exactly these packages.
	PageHashes []Hash `cbor:"4,keyasint"`
	Issued     int64  `cbor:"5,keyasint"`
	// Rotation is a random ID in every package's HPKE info and tag, and in
	// every page, so a package or page cannot be moved into another epoch
	// record of the same number.
	Rotation [16]byte `cbor:"6,keyasint"`
	// KeyCommit commits the record to one read key (EpochKeyCommitment).
	// Co-approvers cannot open each other's packages; each recipient checks
	// its own against this, so one epoch cannot hand different keys to
	// different recipients without the mismatch being seen.
	KeyCommit Hash `cbor:"7,keyasint"`
}

func (*Epoch) RecordType() RecordType { return TypeEpoch }

func (e *Epoch) check() error {
	if e.Number == 0 || e.Charter == 0 {
		return errors.New("number and charter start at 1")
	}
	if e.Number > maxEpochNumber {
		return fmt.Errorf("epoch number %d is beyond any real network's %d", e.Number, uint64(maxEpochNumber))
	}
	if e.KeyCommit == (Hash{}) {
		return errors.New("key commitment missing")
	}
	if len(e.PageHashes) == 0 || len(e.PageHashes) > maxPages {
		return fmt.Errorf("%d pages, want 1 to %d", len(e.PageHashes), maxPages)
	}
	return checkTime("issued", e.Issued)
}

// Approval is one steward's signature on a proposal (a Charter amendment,
// Membership, Revocation or Epoch body). Approvals travel in the network so
// co-stewards see pending proposals; they add up with signatures carried by
// the proposal's own record.
type Approval struct {
	Of       RecordType `cbor:"1,keyasint"`
	Proposal []byte     `cbor:"2,keyasint"`
}

func (*Approval) RecordType() RecordType { return TypeApproval }

func (a *Approval) check() error {
	if a.Of == TypeApproval {
		return errors.New("an approval cannot approve an approval")
	}
	return nil
}

// maxEpochNumber keeps epoch arithmetic far from wrapping: a rotation a
// minute for a thousand years stays below it.
const maxEpochNumber = 1 << 40

func keyLess(a, b PublicKey) bool { return string(a[:]) < string(b[:]) }

func checkKEM(k []byte) error {
	if len(k) != KEMPublicKeySize {
		return fmt.Errorf("encryption key has %d bytes, want %d", len(k), KEMPublicKeySize)
	}
	if _, err := kem.NewPublicKey(k); err != nil {
		return fmt.Errorf("encryption key: %v", err)
	}
	return nil
}

// checkKEMBinding checks an encapsulation key and its owner's signature
// on it.
func checkKEMBinding(k PublicKey, kemKey, sig []byte) error {
	if err := checkKEM(kemKey); err != nil {
		return err
	}
	if !VerifyKEMBinding(k, kemKey, sig) {
		return errors.New("encryption key is not signed by the key it is admitted with")
	}
	return nil
}

func checkText(field, s string, min, max int) error {
	n := utf8.RuneCountInString(s)
	if n < min {
		if min == 1 {
			return fmt.Errorf("%s is required", field)
		}
		return fmt.Errorf("%s needs at least %d characters", field, min)
	}
	if n > max {
		return fmt.Errorf("%s has %d characters, at most %d", field, n, max)
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return fmt.Errorf("%s contains a control character", field)
		}
	}
	if strings.TrimSpace(s) != s && min > 0 {
		return fmt.Errorf("%s has leading or trailing spaces", field)
	}
	return nil
}

// Times are Unix seconds. Anything before 2020 or after 2200 is an error in
// the data, not a date.
func checkTime(field string, t int64) error {
	if t < 1577836800 || t > 7258118400 {
		return fmt.Errorf("%s time %d is out of range", field, t)
	}
	return nil
}

// validEntryID reports whether id is 1 to 64 lowercase ASCII letters,
// digits and dashes, starting with a letter or digit
// (^[a-z0-9][a-z0-9-]{0,63}$). Not a regular expression: every start
// checks every entry's ID in the index snapshot, and the regexp was 37 ms
// of it at 100,000 entries.
func validEntryID(id string) bool {
	if len(id) == 0 || len(id) > 64 || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

var (
	languagePattern = regexp.MustCompile(`^[a-z]{2,3}$`)
	countryPattern  = regexp.MustCompile(`^[A-Z]{2}$`)
	datePattern     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)
