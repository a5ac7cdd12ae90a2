package directory

import (
	"errors"
	"fmt"
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
}

func (e *RejectError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s record rejected: %v", e.Type, e.Reason)
	}
	return fmt.Sprintf("%s record rejected: %v: %s", e.Type, e.Reason, e.Detail)
}

func (e *RejectError) Unwrap() error { return e.Reason }

func reject(t RecordType, reason error, format string, args ...any) error {
	return &RejectError{Type: t, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}
