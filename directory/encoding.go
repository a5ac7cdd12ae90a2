package directory

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Decoding limits. A record is small (an entry is a few kilobytes); anything
// deeper or longer than this is an attack on the decoder, not data.
const (
	maxNesting       = 12
	maxArrayElements = 4096
	maxMapPairs      = 256
	// MaxRecordBytes bounds one signed record before sealing. The charter
	// policy may set a lower limit; nothing larger is ever decoded.
	MaxRecordBytes = 256 << 10
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
	// claimMode is decMode without the unknown-field error: a Claim
	// reads a few fields and skips the rest.
	claimMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	opts := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   maxNesting,
		MaxArrayElements:  maxArrayElements,
		MaxMapPairs:       maxMapPairs,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}
	if decMode, err = opts.DecMode(); err != nil {
		panic(err)
	}
	opts.ExtraReturnErrors = cbor.ExtraDecErrorNone
	if claimMode, err = opts.DecMode(); err != nil {
		panic(err)
	}
}

// marshal encodes v in core deterministic CBOR: one value, one encoding.
func marshal(v any) []byte {
	b, err := encMode.Marshal(v)
	if err != nil {
		// Every type we encode is a plain struct of encodable fields; a
		// failure here is a programming error, not bad input.
		panic(fmt.Sprintf("directory: encoding %T: %v", v, err))
	}
	return b
}

// unmarshalCanonical decodes data into v and insists that data is exactly the
// deterministic encoding of the result. Without this check the same record
// could travel under many encodings, each with its own hash, and honest nodes
// would see false equivocation and waste work on duplicates.
func unmarshalCanonical(data []byte, v any) error {
	return unmarshalChecked(data, v, true)
}

// unmarshalChecked is unmarshalCanonical, with the canonical check (a
// re-encoding, half of what decoding a record costs) only if canonical is
// set. Only bytes known to be canonical may skip it: a node re-reading a
// record it checked before, named by the hash of these very bytes
// (OpenVerified).
func unmarshalChecked(data []byte, v any, canonical bool) error {
	if len(data) > MaxRecordBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxRecordBytes)
	}
	rest, err := decMode.UnmarshalFirst(data, v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	if canonical && !bytes.Equal(marshal(v), data) {
		return ErrNonCanonical
	}
	return nil
}
