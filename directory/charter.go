package directory

import (
	"crypto/rand"
	"fmt"
	"slices"
	"time"
)

// NewGenesis drafts version 1 of a network's charter. It becomes the
// network's genesis once every steward listed has signed it.
func NewGenesis(name string, stewards []Steward, threshold int, policy Policy, now time.Time) (*Charter, error) {
	c := &Charter{
		Name:      name,
		Version:   1,
		Stewards:  slices.Clone(stewards),
		Policy:    policy,
		Issued:    now.Unix(),
		Salt:      make([]byte, 16),
		Threshold: uint8(min(max(threshold, 0), 255)),
	}
	if threshold < 1 || threshold > len(stewards) {
		return nil, fmt.Errorf("%w: threshold %d with %d stewards (want 1 to %d)", ErrInvalid, threshold, len(stewards), len(stewards))
	}
	rand.Read(c.Salt)
	slices.SortFunc(c.Stewards, func(a, b Steward) int { return compareKeys(a.Key, b.Key) })
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c, nil
}

// GenesisIDOf is the network ID that genesis charter c defines.
func GenesisIDOf(c *Charter) NetworkID { return GenesisID(marshal(c)) }

// Amend drafts the next version of the current charter with the given
// stewards, threshold and policy. prev is the current charter's proposal ID
// (State.CharterID).
func Amend(cur *Charter, prev Hash, stewards []Steward, threshold int, policy Policy, now time.Time) (*Charter, error) {
	c := &Charter{
		Name:      cur.Name,
		Version:   cur.Version + 1,
		Previous:  prev,
		Stewards:  slices.Clone(stewards),
		Policy:    policy,
		Issued:    now.Unix(),
		Salt:      slices.Clone(cur.Salt),
		Threshold: uint8(min(max(threshold, 0), 255)),
	}
	if threshold < 1 || threshold > len(stewards) {
		return nil, fmt.Errorf("%w: threshold %d with %d stewards", ErrInvalid, threshold, len(stewards))
	}
	slices.SortFunc(c.Stewards, func(a, b Steward) int { return compareKeys(a.Key, b.Key) })
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c, nil
}

// NewApproval wraps one steward's signature on a proposal record's body, so
// it can travel alone and add up with other stewards' approvals.
func NewApproval(proposal *Record, steward *Identity) (*Record, error) {
	r := &Record{Version: FormatVersion, Type: TypeApproval, Network: proposal.Network,
		Body: marshal(&Approval{Of: proposal.Type, Proposal: proposal.Body})}
	r.AddSignature(steward)
	if err := r.Verify(); err != nil {
		return nil, err
	}
	return r, nil
}
