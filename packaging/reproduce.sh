#!/usr/bin/env bash
# reproduce.sh: show that a release is reproducible and verifiable. It
# builds the release of HEAD twice, from two clean clones in different
# directories, and compares the checksum files (with FRESH_CACHE=1 the
# second build starts from an empty build cache, recompiling everything:
# about 4 minutes of CPU per target; without it, a path or stamp that leaks
# into a package still shows, as a cache miss that compiles differently); then signs one with a throwaway minisign key and checks
# the signature with minisign (the documented command) and with
# "ceiba release verify". Run by "make release-check" and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

for n in 1 2; do
	git clone -q --no-hardlinks . "$work/clone$n"
done
(cd "$work/clone1" && DIST="$work/dist1" packaging/release.sh)
cache2=$("$GO" env GOCACHE)
if [ -n "${FRESH_CACHE:-}" ]; then cache2="$work/gocache"; fi
(cd "$work/clone2" && GOCACHE="$cache2" DIST="$work/dist2" packaging/release.sh)
sums1=$(ls "$work"/dist1/*/SHA256SUMS)
sums2=$(ls "$work"/dist2/*/SHA256SUMS)
if ! cmp -s "$sums1" "$sums2"; then
	echo "reproduce: the two builds differ:" >&2
	diff "$sums1" "$sums2" >&2 || true
	exit 1
fi
echo "reproduce: two clean builds are identical ($(wc -l < "$sums1") files)"

# A throwaway key stands in for the release key (kept offline): what is
# checked here is that the signing and both ways of verifying agree.
minisign -G -W -p "$work/test.pub" -s "$work/test.key" >/dev/null
minisign -S -s "$work/test.key" -m "$sums1" -t "reproduce check" >/dev/null
minisign -Vm "$sums1" -p "$work/test.pub"
bin=$(ls "$(dirname "$sums1")"/ceiba-*-linux-amd64)
"$bin" release verify --key "$work/test.pub" "$sums1"
