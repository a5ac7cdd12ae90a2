// Package directory is Ceiba's domain: keys, records, sealing, validation,
// the directory state machine and search.
//
// It owns everything that decides what a node believes: which charter is
// current, who is a member or reader, which entries are live, which keys are
// revoked, and which read key is in force. The state is a pure function of the
// set of records applied to it, so every honest node that holds the same
// records computes the same state and the same digest, whatever order the
// records reached it in.
//
// It must never import networking (libp2p, net/http) or package node: it is
// testable without a network, and nodes, the CLI and benchmarks all drive it
// through the same small API.
package directory
