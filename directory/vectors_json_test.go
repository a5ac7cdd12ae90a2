package directory

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// The JSON shapes of the test vectors in docs/vectors (PROTOCOL.md §11),
// shared by the generator (vectors_gen_test.go) and the check
// (vectors_test.go). Every byte string is lowercase hex.

// vectorsDir is where the vectors live: under docs/, next to the text
// that specifies them, for whoever writes a second implementation.
const vectorsDir = "../docs/vectors"

// hexb is a byte string that reads and writes itself as hex in JSON.
type hexb []byte

func (b hexb) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(b)) }

func (b *hexb) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("hex field: %w", err)
	}
	*b = v
	return nil
}

type vecIdentity struct {
	Name         string `json:"name"`
	Ed25519Seed  hexb   `json:"ed25519_seed"`
	PublicKey    hexb   `json:"public_key"`
	Fingerprint  string `json:"fingerprint"`
	XWingSeed    hexb   `json:"xwing_seed"`
	KEMPublicKey hexb   `json:"kem_public_key"`
	KEMSig       hexb   `json:"kem_sig"`
}

type vecFingerprint struct {
	Input      string `json:"input"`
	Normalized string `json:"normalized,omitempty"`
	Error      string `json:"error,omitempty"`
}

type keysFile struct {
	Comment      string           `json:"comment"`
	Identities   []vecIdentity    `json:"identities"`
	Fingerprints []vecFingerprint `json:"fingerprints"`
}

type vecRecord struct {
	Name       string     `json:"name"`
	Type       RecordType `json:"type"`
	TypeName   string     `json:"type_name"`
	Domain     string     `json:"domain"`
	Signers    []string   `json:"signers"`
	Encoding   hexb       `json:"encoding"`
	Hash       hexb       `json:"hash"`
	ProposalID hexb       `json:"proposal_id,omitempty"`
	Slot       string     `json:"slot"`
	SlotID     hexb       `json:"slot_id"`
}

type recordsFile struct {
	Comment   string      `json:"comment"`
	Now       int64       `json:"now"`
	NetworkID hexb        `json:"network_id"`
	Records   []vecRecord `json:"records"`
}

type vecSealing struct {
	Name         string `json:"name"`
	Record       string `json:"record"`
	Encoding     hexb   `json:"encoding"`
	Nonce        hexb   `json:"nonce"`
	PaddedLength int    `json:"padded_length"`
	Sealed       hexb   `json:"sealed"`
	// ServeAsOwn is whether a node that opened Sealed may store and serve
	// it as its own sealing of the record (§5: padded to the record's own
	// bucket, no larger).
	ServeAsOwn bool `json:"serve_as_own"`
}

type sealingFile struct {
	Comment   string       `json:"comment"`
	NetworkID hexb         `json:"network_id"`
	Epoch     uint64       `json:"epoch"`
	ReadKey   hexb         `json:"read_key"`
	SealKey   hexb         `json:"seal_key"`
	KeyTag    hexb         `json:"key_tag"`
	Sealings  []vecSealing `json:"sealings"`
	Buckets   []vecBucket  `json:"buckets"`
}

type vecBucket struct {
	RecordLength int `json:"record_length"`
	PaddedLength int `json:"padded_length"`
}

type vecPackage struct {
	Recipient    string `json:"recipient"`
	XWingSeed    hexb   `json:"xwing_seed"`
	RecipientKey hexb   `json:"recipient_key"`
	Tag          hexb   `json:"tag"`
	Page         int    `json:"page"`
	Info         hexb   `json:"info"`
	Sealed       hexb   `json:"sealed"`
}

type vecNoPackage struct {
	Recipient    string `json:"recipient"`
	RecipientKey hexb   `json:"recipient_key"`
	Pages        []int  `json:"pages"`
	Error        string `json:"error"`
}

type vecMismatch struct {
	XWingSeed hexb   `json:"xwing_seed"`
	Info      hexb   `json:"info"`
	Sealed    hexb   `json:"sealed"`
	OpensTo   hexb   `json:"opens_to"`
	KeyCommit hexb   `json:"key_commit"`
	Error     string `json:"error"`
}

type keyPackagesFile struct {
	Comment     string         `json:"comment"`
	NetworkID   hexb           `json:"network_id"`
	Epoch       string         `json:"epoch"`
	Pages       []string       `json:"pages"`
	Number      uint64         `json:"number"`
	Rotation    hexb           `json:"rotation"`
	ReadKey     hexb           `json:"read_key"`
	KeyCommit   hexb           `json:"key_commit"`
	Packages    []vecPackage   `json:"packages"`
	NoPackage   []vecNoPackage `json:"no_package"`
	KeyMismatch vecMismatch    `json:"key_mismatch"`
}

type vecDigestLine struct {
	Label string `json:"label"`
	Parts []hexb `json:"parts"`
}

type vecDigestSet struct {
	Name    string          `json:"name"`
	Comment string          `json:"comment"`
	Now     int64           `json:"now"`
	Records []string        `json:"records"`
	Lines   []vecDigestLine `json:"lines"`
	Digest  hexb            `json:"digest"`
}

type digestsFile struct {
	Comment string         `json:"comment"`
	Sets    []vecDigestSet `json:"sets"`
}

type vecSlotKey struct {
	Slot   string `json:"slot"`
	SlotID hexb   `json:"slot_id"`
	DHTKey string `json:"dht_key"`
}

type vecRendezvous struct {
	Day   string `json:"day"`
	Value hexb   `json:"value"`
	CID   hexb   `json:"cid"`
}

type derivationsFile struct {
	Comment       string            `json:"comment"`
	ReadKey       hexb              `json:"read_key"`
	SealKey       hexb              `json:"seal_key"`
	KeyTag        hexb              `json:"key_tag"`
	BlindKey      hexb              `json:"blind_key"`
	RendezvousKey hexb              `json:"rendezvous_key"`
	Topics        map[string]string `json:"topics"`
	Rendezvous    []vecRendezvous   `json:"rendezvous"`
	Slots         []vecSlotKey      `json:"slots"`
}

type vecAdmit struct {
	Opener   hexb   `json:"opener_peer_id"`
	Accepter hexb   `json:"accepter_peer_id"`
	NonceO   hexb   `json:"n_o"`
	NonceA   hexb   `json:"n_a"`
	MACO     hexb   `json:"mac_o"`
	MACA     hexb   `json:"mac_a"`
	SignerO  string `json:"signer_o"`
	SignedO  hexb   `json:"signed_o"`
	ProofO   hexb   `json:"key_o_sig_o"`
}

type vecSyncHello struct {
	Initiator hexb     `json:"initiator_peer_id"`
	Responder hexb     `json:"responder_peer_id"`
	ProofI    hexb     `json:"proof_i"`
	ProofR    hexb     `json:"proof_r"`
	Signer    string   `json:"signer"`
	Time      int64    `json:"time"`
	Nonce     hexb     `json:"nonce"`
	Epochs    []uint64 `json:"epochs"`
	Signed    hexb     `json:"signed"`
	Body      hexb     `json:"hello_body"`
}

type sessionFile struct {
	Comment   string       `json:"comment"`
	NetworkID hexb         `json:"network_id"`
	SyncKey   hexb         `json:"sync_key"`
	Hello     vecSyncHello `json:"sync_hello"`
	Admit     vecAdmit     `json:"admit"`
}

type vecInviteCode struct {
	Peer  hexb   `json:"peer"`
	Addrs []hexb `json:"addrs"`
	// AddrsText are the addresses as multiaddr text, for reading.
	AddrsText []string `json:"addrs_text"`
	Token     hexb     `json:"token"`
	CBOR      hexb     `json:"cbor"`
	Code      string   `json:"code"`
}

type vecInviteRedemption struct {
	Redeemer     string `json:"redeemer"`
	InviterPeer  hexb   `json:"inviter_peer_id"`
	RedeemerPeer hexb   `json:"redeemer_peer_id"`
	TokenHash    hexb   `json:"token_hash"`
	Transcript   hexb   `json:"transcript_message"`
	Request      hexb   `json:"request_cbor"`
	WelcomeInfo  hexb   `json:"welcome_info"`
	Welcome      hexb   `json:"welcome_sealed"`
	Plaintext    hexb   `json:"welcome_plaintext"`
	Response     hexb   `json:"response_cbor"`
}

type vecInviteParse struct {
	Input string `json:"input"`
	Error string `json:"error"`
}

type inviteFile struct {
	Comment    string              `json:"comment"`
	Code       vecInviteCode       `json:"code"`
	Redemption vecInviteRedemption `json:"redemption"`
	Refused    []vecInviteParse    `json:"refused_codes"`
}

type vecNegative struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Input hexb   `json:"input,omitempty"`
	Text  string `json:"text,omitempty"`
	Error string `json:"error"`
}

type negativeFile struct {
	Comment   string        `json:"comment"`
	NetworkID hexb          `json:"network_id"`
	Vectors   []vecNegative `json:"vectors"`
}

// vecErrors names the error classes the vectors use: the sentinel errors
// of errors.go, which a conforming implementation must refuse with (in
// whatever form its language gives them).
var vecErrors = map[string]error{
	"ErrMalformed":         ErrMalformed,
	"ErrNonCanonical":      ErrNonCanonical,
	"ErrTooLarge":          ErrTooLarge,
	"ErrUnknownVersion":    ErrUnknownVersion,
	"ErrUnknownType":       ErrUnknownType,
	"ErrWrongNetwork":      ErrWrongNetwork,
	"ErrBadSignature":      ErrBadSignature,
	"ErrNoKey":             ErrNoKey,
	"ErrDecrypt":           ErrDecrypt,
	"ErrInvalid":           ErrInvalid,
	"ErrWeakKey":           ErrWeakKey,
	"ErrBadFingerprint":    ErrBadFingerprint,
	"ErrNotRecipient":      ErrNotRecipient,
	"ErrPagesMissing":      ErrPagesMissing,
	"ErrKeyMismatch":       ErrKeyMismatch,
	"ErrNotInviteCode":     ErrNotInviteCode,
	"ErrInviteCodeDamaged": ErrInviteCodeDamaged,
	"ErrInviteCodeNoAddrs": ErrInviteCodeNoAddrs,
}

// errorName is the vector name of err's class, or "" for nil; it fails
// loudly on an error of no listed class, so no vector says "some error".
func errorName(err error) (string, error) {
	if err == nil {
		return "", nil
	}
	// ErrNonCanonical before ErrMalformed: a few errors wrap both.
	for _, n := range []string{"ErrNonCanonical", "ErrTooLarge", "ErrWeakKey", "ErrUnknownVersion", "ErrUnknownType",
		"ErrWrongNetwork", "ErrBadSignature", "ErrNoKey", "ErrDecrypt", "ErrKeyMismatch", "ErrNotRecipient",
		"ErrPagesMissing", "ErrBadFingerprint", "ErrNotInviteCode", "ErrInviteCodeDamaged", "ErrInviteCodeNoAddrs",
		"ErrInvalid", "ErrMalformed"} {
		if errors.Is(err, vecErrors[n]) {
			return n, nil
		}
	}
	return "", fmt.Errorf("error of no vector class: %v", err)
}
