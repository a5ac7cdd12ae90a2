package directory

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors name each reason a record can be refused. Callers match
// them with errors.Is; the wrapping *RejectError adds which record and why.
var (
	ErrMalformed        = errors.New("malformed encoding")
	ErrNonCanonical     = errors.New("encoding is not canonical")
	ErrTooLarge         = errors.New("record exceeds the size limit")
	ErrUnknownVersion   = errors.New("unknown format version")
	ErrUnknownType      = errors.New("unknown record type")
	ErrWrongNetwork     = errors.New("record belongs to another network")
	ErrBadSignature     = errors.New("signature does not verify")
	ErrNoKey            = errors.New("no read key for this epoch")
	ErrDecrypt          = errors.New("ciphertext does not open with the read key")
	ErrInvalid          = errors.New("invalid field")
	ErrThreshold        = errors.New("approvals below the charter threshold")
	ErrNotSteward       = errors.New("signer is not a steward of the cited charter")
	ErrUnknownCharter   = errors.New("cited charter version is not in the chain")
	ErrNotMember        = errors.New("signer is not an admitted member organization")
	ErrRevoked          = errors.New("key is revoked")
	ErrStale            = errors.New("an equal or newer version is already known")
	ErrRollback         = errors.New("charter would roll back or fork the chain")
	ErrExpired          = errors.New("record has expired")
	ErrFromFuture       = errors.New("record is dated beyond the allowed clock skew")
	ErrDuplicate        = errors.New("record is already known")
	ErrWrongPassphrase  = errors.New("wrong passphrase")
	ErrCorruptKeystore  = errors.New("keystore file is corrupt")
	ErrBadFingerprint   = errors.New("fingerprint is malformed or its check character is wrong")
	ErrNotRecipient     = errors.New("epoch carries no key package for this key")
	ErrPendingSignature = errors.New("signer is not yet known to be authorized")
	ErrKeyMismatch      = errors.New("key package holds another key than the epoch commits to")
	ErrQuota            = errors.New("pending records over the quota")
	ErrPagesMissing     = errors.New("not every page of the rotation is held yet")
	ErrPageMismatch     = errors.New("epoch page is not the one its epoch lists")
)

// RejectError says which record was refused and why. Reason is one of the
// sentinel errors above, so errors.Is(err, ErrRevoked) works through it.
type RejectError struct {
	Type   RecordType
	Reason error
	Detail string
	// NotBefore, for ErrFromFuture, is the time on the state's clock from
	// which the record is no longer too far ahead of it: a node may ask
	// for it again then, rather than much later.
	NotBefore time.Time
}

func (e *RejectError) Error() string {
	// A record refused before its type could be read (it did not open, or
	// did not decode) has Type 0, which names no type: say so instead of
	// "type(0)".
	what := "undecodable record"
	if e.Type != 0 {
		what = e.Type.String() + " record"
	}
	// Detail is often the text of an error that wraps Reason already
	// ("malformed encoding: cbor: …"); say the reason once.
	detail := e.Detail
	if e.Reason != nil {
		r := e.Reason.Error()
		if detail == r {
			detail = ""
		} else {
			detail = strings.TrimPrefix(detail, r+": ")
		}
	}
	if detail == "" {
		return fmt.Sprintf("%s rejected: %v", what, e.Reason)
	}
	return fmt.Sprintf("%s rejected: %v: %s", what, e.Reason, detail)
}

func (e *RejectError) Unwrap() error { return e.Reason }

func reject(t RecordType, reason error, format string, args ...any) error {
	return &RejectError{Type: t, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// MayPass reports whether a record was refused for a reason that more
// records may remove: its signer's standing, its charter version or a pool
// quota not there yet. A holder keeps such a record and applies it again
// when governance changes, instead of dropping it.
func MayPass(err error) bool {
	return errors.Is(err, ErrQuota) || errors.Is(err, ErrPendingSignature) || errors.Is(err, ErrUnknownCharter)
}
