// Package release checks a downloaded Ceiba release: the minisign
// signature on its SHA256SUMS file under the project's release key, then
// each downloaded file's SHA-256 against that file. It is what
// "ceiba release verify" runs, so that people can check a binary with the
// binary they already trust, as well as with minisign itself.
//
// It holds only the release key's public half, never touches the network
// or a Ceiba home, and says which file failed and why.
package release
