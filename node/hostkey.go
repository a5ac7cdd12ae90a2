package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/ceiba-network/ceiba/directory"
)

// hostKeyFile is the libp2p identity inside DataDir. It is not the
// organization's signing key: a peer ID is visible to anyone the node talks
// to, and must not be linkable to (or usable as) the key that signs
// records. Losing it only changes the node's peer ID.
const hostKeyFile = "host.key"

// loadHostKey reads the host key at path, or creates one (0600) if there
// is none yet.
func loadHostKey(path string) (crypto.PrivKey, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			// Someone else on the machine could read it and impersonate
			// this node's peer ID; tighten it rather than refuse to run.
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("host key %s is readable by others and cannot be fixed: %w", path, err)
			}
		}
		sk, err := crypto.UnmarshalPrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("host key %s is corrupt: %w", path, err)
		}
		return sk, nil
	case errors.Is(err, fs.ErrNotExist):
		sk, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return nil, err
		}
		raw, err := crypto.MarshalPrivateKey(sk)
		if err != nil {
			return nil, err
		}
		if err := directory.WriteFileAtomic(path, raw, 0o600); err != nil {
			return nil, fmt.Errorf("writing host key: %w", err)
		}
		return sk, nil
	default:
		return nil, fmt.Errorf("reading host key: %w", err)
	}
}
