package directory

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
)

// A rotation seals the new read key to every recipient. One record cannot
// hold the packages of a real network (a package is about 1.2 KB, a record
// at most max_record_bytes), so the approved Epoch record carries only the
// hashes of its pages, and EpochPage records carry the packages. Approvals,
// the threshold and the single-steward rule after a revocation still weigh
// the one Epoch record; a page is authorized by its hash being listed there.

// EpochPage carries one page of a rotation's key packages.
type EpochPage struct {
	Number   uint64    `cbor:"1,keyasint"`
	Rotation [16]byte  `cbor:"2,keyasint"`
	Index    uint16    `cbor:"3,keyasint"`
	Packages []Package `cbor:"4,keyasint"`
}

// Package is the read key HPKE-sealed to one recipient, or a dummy of the
// same size. Tag is PackageTag for a real recipient and random for a
// dummy, so a recipient finds its own package without trying to open the
// others, and nobody without a key can tell real from dummy.
type Package struct {
	Tag    [PackageTagSize]byte `cbor:"1,keyasint"`
	Sealed []byte               `cbor:"2,keyasint"`
}

// aliasPackages points each package's sealed bytes into data, the
// encoding p was decoded from, in place of the decoder's copies: a node
// holds a page's record body for as long as the page, and the copies
// doubled what every rotation's pages take in memory (issue 14). The
// bytes are equal either way; data must not change afterwards, as a
// record's body never does once decoded. In canonical CBOR each sealed
// package follows the previous one, so each search ends within a few
// bytes of where it starts.
func (p *EpochPage) aliasPackages(data []byte) {
	off := 0
	for i := range p.Packages {
		sealed := p.Packages[i].Sealed
		j := bytes.Index(data[off:], sealed)
		if j < 0 {
			return // not from data after all: keep the copies
		}
		start := off + j
		end := start + len(sealed)
		p.Packages[i].Sealed = data[start:end:end]
		off = end
	}
}

// PackageTagSize is the length of a package tag.
const PackageTagSize = 16

// maxPages bounds the pages of one rotation: 4096 pages of about 50
// packages at the default record size is room for 200,000 recipients.
const maxPages = maxArrayElements

func (*EpochPage) RecordType() RecordType { return TypeEpochPage }

func (p *EpochPage) check() error {
	if p.Number == 0 || p.Number > maxEpochNumber {
		return fmt.Errorf("epoch number %d outside 1..%d", p.Number, uint64(maxEpochNumber))
	}
	if int(p.Index) >= maxPages {
		return fmt.Errorf("page index %d, at most %d pages", p.Index, maxPages)
	}
	if len(p.Packages) == 0 || len(p.Packages) > maxArrayElements {
		return fmt.Errorf("%d key packages", len(p.Packages))
	}
	for i, k := range p.Packages {
		if len(k.Sealed) == 0 || len(k.Sealed) > 2048 {
			return fmt.Errorf("package %d has %d bytes", i, len(k.Sealed))
		}
		if i > 0 && bytes.Compare(p.Packages[i-1].Tag[:], k.Tag[:]) >= 0 {
			return errors.New("packages must be sorted by tag, each once")
		}
	}
	return nil
}

// find returns the package tagged t, if the page has it.
func (p *EpochPage) find(t [PackageTagSize]byte) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(p.Packages, t, func(k Package, t [PackageTagSize]byte) int { return bytes.Compare(k.Tag[:], t[:]) })
	if !ok {
		return nil, false
	}
	return p.Packages[i].Sealed, true
}

// PackageTag is where recipient k's package is found in a rotation. It is
// bound to the network, the epoch number and the rotation ID, so tags of
// two rotations cannot be linked to one recipient by anyone who does not
// already know k; whoever knows k (a member, a steward) can find whether
// k has a package, as it could read the recipient list before.
func PackageTag(net NetworkID, number uint64, rotation [16]byte, k PublicKey) [PackageTagSize]byte {
	full := domainHash("ceiba/v2/package-tag", net[:], binary.BigEndian.AppendUint64(nil, number), rotation[:], k[:])
	var t [PackageTagSize]byte
	copy(t[:], full[:])
	return t
}

// PageHash is what an Epoch lists for a page: the hash of the page body.
func PageHash(body []byte) Hash {
	return domainHash("ceiba/v2/epoch-page", body)
}

// PaddedPackages is how many packages a rotation to n recipients carries:
// 64 at least, then four steps per doubling (64, 80, 96, 112, 128, 160,
// 192, 224, 256, 320, …). A rotation's size tells an outsider the number
// of recipients only to within 25%, for at most 25% more sealing.
func PaddedPackages(n int) int {
	if n <= 64 {
		return 64
	}
	p := 64
	for p*2 <= n {
		p *= 2
	}
	step := p / 4
	return (n + step - 1) / step * step
}

// packagesPerPage is how many packages of sealedLen bytes fit a page
// record under limit: the record, its signature and CBOR framing take
// well under the 1 KiB kept aside.
func packagesPerPage(limit, sealedLen int) int {
	per := (limit - 1024) / (PackageTagSize + sealedLen + 8)
	return max(1, min(per, maxArrayElements))
}

// paddingForTest, when set, replaces PaddedPackages: tests that build
// hundreds of rotations seal a handful of packages each instead of 64.
var paddingForTest func(int) int

// NewEpoch builds a rotation: the Epoch body to be approved and the pages
// carrying key sealed to each recipient (duplicates once), padded with
// dummies to PaddedPackages and split so each page record fits
// maxRecordBytes. Sealing runs on every core: 10,000 recipients are
// 10,000 HPKE encapsulations. The info string binds each package to its
// network, epoch, rotation and recipient, so a package cannot be replayed
// elsewhere.
func NewEpoch(net NetworkID, number, charter uint64, after Hash, key ReadKey, recipients []Recipient, now time.Time, maxRecordBytes int) (*Epoch, []*EpochPage, error) {
	e := &Epoch{Number: number, Charter: charter, After: after, Issued: now.Unix()}
	rand.Read(e.Rotation[:])
	e.KeyCommit = EpochKeyCommitment(net, number, e.Rotation, key)
	var uniq []Recipient
	seen := map[PublicKey]bool{}
	for _, rc := range recipients {
		if !seen[rc.Key] {
			seen[rc.Key] = true
			uniq = append(uniq, rc)
		}
	}
	total := PaddedPackages(len(uniq))
	if paddingForTest != nil {
		total = paddingForTest(len(uniq))
	}
	// Dummies are sealed for real, to a key made for this rotation and
	// thrown away: random bytes would differ from an X25519 share in
	// ways that can be measured, and a dummy must not be told apart.
	throwaway, err := kem.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	pkgs := make([]Package, total)
	errs := make([]error, total)
	seal := func(i int) {
		if i >= len(uniq) {
			rand.Read(pkgs[i].Tag[:])
			var junk ReadKey
			rand.Read(junk[:])
			pkgs[i].Sealed, errs[i] = hpke.Seal(throwaway.PublicKey(), pkgKDF, pkgAEAD, packageInfo(net, number, e.Rotation, PublicKey{}), junk[:])
			return
		}
		rc := uniq[i]
		pkgs[i].Tag = PackageTag(net, number, e.Rotation, rc.Key)
		pk, err := kem.NewPublicKey(rc.KEM)
		if err != nil {
			errs[i] = fmt.Errorf("recipient %s: %w: %v", Fingerprint(rc.Key), ErrInvalid, err)
			return
		}
		pkgs[i].Sealed, errs[i] = hpke.Seal(pk, pkgKDF, pkgAEAD, packageInfo(net, number, e.Rotation, rc.Key), key[:])
	}
	parallel(total, seal)
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	// Sorting by tag spreads the dummies among the real packages.
	slices.SortFunc(pkgs, func(a, b Package) int { return bytes.Compare(a.Tag[:], b.Tag[:]) })
	pkgs = slices.CompactFunc(pkgs, func(a, b Package) bool { return a.Tag == b.Tag }) // a 2^-128 event
	per := packagesPerPage(maxRecordBytes, len(pkgs[0].Sealed))
	var pages []*EpochPage
	for i := 0; i < len(pkgs); i += per {
		pg := &EpochPage{Number: number, Rotation: e.Rotation, Index: uint16(len(pages)), Packages: pkgs[i:min(i+per, len(pkgs))]}
		pages = append(pages, pg)
		e.PageHashes = append(e.PageHashes, PageHash(marshal(pg)))
	}
	if len(pages) > maxPages {
		return nil, nil, fmt.Errorf("%w: %d recipients need %d pages, at most %d", ErrTooLarge, len(uniq), len(pages), maxPages)
	}
	return e, pages, nil
}

// parallel runs f(0..n-1) on every core.
func parallel(n int, f func(int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= n {
					return
				}
				f(j)
			}
		})
	}
	wg.Wait()
}

// FindPackage returns k's package among the pages of rotation e.
func FindPackage(net NetworkID, e *Epoch, pages []*EpochPage, k PublicKey) ([]byte, bool) {
	t := PackageTag(net, e.Number, e.Rotation, k)
	for _, p := range pages {
		if p.Number == e.Number && p.Rotation == e.Rotation {
			if sealed, ok := p.find(t); ok {
				return sealed, true
			}
		}
	}
	return nil, false
}

// OpenKeyPackage finds id's package among the pages of rotation e, opens
// it and checks the key against the epoch's commitment. ErrKeyMismatch
// means the signers of e sealed this recipient a key other than the one
// they committed to: evidence of equivocation for stewards to see.
// ErrPagesMissing means the package is not in the pages given and some of
// the rotation's pages are not among them; ErrNotRecipient that all are
// and none has a package for id.
func OpenKeyPackage(id *Identity, net NetworkID, e *Epoch, pages []*EpochPage) (ReadKey, error) {
	me := id.Public()
	sealed, ok := FindPackage(net, e, pages, me)
	if !ok {
		if held := heldPages(e, pages); held < len(e.PageHashes) {
			return ReadKey{}, fmt.Errorf("%w: epoch %d, %d of %d pages held", ErrPagesMissing, e.Number, held, len(e.PageHashes))
		}
		return ReadKey{}, fmt.Errorf("%w (epoch %d)", ErrNotRecipient, e.Number)
	}
	plain, err := hpke.Open(id.kem, pkgKDF, pkgAEAD, packageInfo(net, e.Number, e.Rotation, me), sealed)
	if err != nil || len(plain) != len(ReadKey{}) {
		return ReadKey{}, fmt.Errorf("%w: epoch %d package does not open", ErrDecrypt, e.Number)
	}
	var k ReadKey
	copy(k[:], plain)
	if !VerifyEpochKey(net, e, k) {
		return ReadKey{}, fmt.Errorf("%w: epoch %d", ErrKeyMismatch, e.Number)
	}
	return k, nil
}

// heldPages counts the distinct pages of e among pages.
func heldPages(e *Epoch, pages []*EpochPage) int {
	seen := map[uint16]bool{}
	for _, p := range pages {
		if p.Number == e.Number && p.Rotation == e.Rotation && int(p.Index) < len(e.PageHashes) {
			seen[p.Index] = true
		}
	}
	return len(seen)
}
