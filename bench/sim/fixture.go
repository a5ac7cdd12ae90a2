package sim

import (
	"fmt"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// Fixture is a network's keys and founding records. It is built with the
// directory package alone rather than directory/dirtest, because dirtest
// needs a testing.TB and the simulator also runs outside tests.
type Fixture struct {
	Net       directory.NetworkID
	Key       directory.ReadKey
	Stewards  []*directory.Identity
	Threshold int
	Genesis   *directory.Record
	// Now is the issue date of every record the fixture signs. Nodes run
	// on the wall clock, so it is the real time the fixture was made.
	Now time.Time
}

// NewFixture creates a network of stewards stewards with threshold k and
// the given charter policy.
func NewFixture(stewards, k int, policy directory.Policy) (*Fixture, error) {
	f := &Fixture{Key: directory.NewReadKey(), Threshold: k, Now: time.Now().Truncate(time.Second)}
	var list []directory.Steward
	for i := range stewards {
		id, err := directory.NewIdentity()
		if err != nil {
			return nil, err
		}
		f.Stewards = append(f.Stewards, id)
		list = append(list, directory.Steward{Key: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(), Name: fmt.Sprintf("steward %d", i+1)})
	}
	c, err := directory.NewGenesis("Red simulada", list, k, policy, f.Now)
	if err != nil {
		return nil, err
	}
	f.Net = directory.GenesisIDOf(c)
	if f.Genesis, err = directory.NewRecord(f.Net, c, f.Stewards...); err != nil {
		return nil, err
	}
	return f, nil
}

// Keyring is what every node of the fixture holds: epoch 1's key.
func (f *Fixture) Keyring() directory.Keyring { return directory.Keyring{1: f.Key} }

// Admit is a membership for org approved by the first k stewards.
func (f *Fixture) Admit(org *directory.Identity, name string) (*directory.Record, error) {
	m := &directory.Membership{Charter: 1, Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(), Name: name, Issued: f.Now.Unix()}
	return directory.NewRecord(f.Net, m, f.Stewards[:f.Threshold]...)
}

// Revoke is a revocation of key carrying the signatures of the first k
// stewards at once: what sync hands on once a quorum approved it.
func (f *Fixture) Revoke(key directory.PublicKey) (*directory.Record, error) {
	return directory.NewRecord(f.Net, f.revocation(key), f.Stewards[:f.Threshold]...)
}

// RevokeByApprovals is the revocation of key as stewards make it: the
// first steward's proposal ("ceiba steward revoke") and the approvals of
// the next k-1 ("ceiba steward approve"), each signed by one steward; the
// last approval completes the quorum. With k = 1 the proposal alone
// revokes, and there are no approvals.
func (f *Fixture) RevokeByApprovals(key directory.PublicKey) (proposal *directory.Record, approvals []*directory.Record, err error) {
	if proposal, err = directory.NewRecord(f.Net, f.revocation(key), f.Stewards[0]); err != nil {
		return nil, nil, err
	}
	for _, s := range f.Stewards[1:f.Threshold] {
		a, err := directory.NewApproval(proposal, s)
		if err != nil {
			return nil, nil, err
		}
		approvals = append(approvals, a)
	}
	return proposal, approvals, nil
}

func (f *Fixture) revocation(key directory.PublicKey) *directory.Revocation {
	return &directory.Revocation{Key: key, Charter: 1, Reason: "dispositivo incautado", Issued: f.Now.Unix()}
}

// Entry is version seq of entry id, published by org: a legal-aid service
// of typical size whose name carries token, so a search can find exactly
// this entry.
func (f *Fixture) Entry(org *directory.Identity, id string, seq uint64, token string) (*directory.Record, error) {
	e := &directory.Entry{
		ID: id, Seq: seq, Issued: f.Now.Unix(), Expires: f.Now.Add(90 * 24 * time.Hour).Unix(),
		Service: &directory.Service{
			Name:        "Asesoría jurídica " + token,
			Description: fmt.Sprintf("Acompañamiento legal en trámites de asilo y protección (versión %d).", seq),
			Status:      "active",
			Categories:  []string{"legal", "migration"},
			Languages:   []string{"es"},
			Areas:       []directory.Area{{City: "Ciudad de México", Country: "MX"}},
			Contacts:    []directory.Contact{{Kind: "signal", Value: "+52 55 0000 0000", Preferred: true}},
		},
	}
	return directory.NewRecord(f.Net, e, org)
}

// Token is a word the search index keeps whole (no stemming rule touches
// a final k) and that matches nothing else in the corpus, so a search for
// it finds exactly the entries named after it.
func Token(i int) string { return fmt.Sprintf("zq%dk", i) }

// BulkPolicy lifts the per-author limits for benchmarks in which a few
// organizations publish and update thousands of entries in seconds: what
// they measure is sync and gossip, not the limits.
var BulkPolicy = directory.Policy{MaxAuthorUpdatesPerHour: 1 << 24, MaxAuthorEntries: 1 << 24, MaxAuthorBytes: 1 << 40}
