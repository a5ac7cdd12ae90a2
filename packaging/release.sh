#!/usr/bin/env bash
# release.sh: build every release target of ceiba, byte for byte
# reproducibly, plus Debian packages for linux, and write SHA256SUMS.
# Run through "make release" (docs/RELEASING.md). With RELEASE_KEY set to a
# minisign secret key it also signs SHA256SUMS (minisign asks for the key's
# password). Output: dist/ceiba-<version>/.
#
# Reproducible means: the same commit built with the same Go release on any
# machine, in any directory, gives the same bytes. Hence -trimpath (no build
# paths), -buildid= (no build ID), CGO off (no host C toolchain), the VCS
# stamp from the commit (its time, not the build's), file times in the .deb
# set to the commit's time, and the Go release pinned below.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
# The Go release every build is made with. Someone reproducing a release
# needs exactly this one; bump it in its own commit.
RELEASE_GO=${RELEASE_GO:-go1.26.8}
TARGETS=${TARGETS:-"linux/amd64 linux/arm64 darwin/arm64 darwin/amd64 windows/amd64 freebsd/amd64 android/arm64"}
DIST=${DIST:-dist}

have=$(GOTOOLCHAIN=local "$GO" env GOVERSION)
if [ "$have" != "$RELEASE_GO" ]; then
	echo "release: this is $have; releases are built with $RELEASE_GO (set RELEASE_GO to override, and say so in the release notes)" >&2
	exit 1
fi
if [ -n "$(git status --porcelain)" ] && [ -z "${ALLOW_DIRTY:-}" ]; then
	echo "release: the working tree has uncommitted changes; a release is built from a commit (ALLOW_DIRTY=1 to try anyway)" >&2
	exit 1
fi

commit=$(git rev-parse HEAD)
VERSION=${VERSION:-$(git describe --tags --always --dirty)}
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct HEAD)
export SOURCE_DATE_EPOCH GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
out="$DIST/ceiba-$VERSION"
rm -rf "$out"
mkdir -p "$out"

for t in $TARGETS; do
	os=${t%/*} arch=${t#*/}
	ext=""
	[ "$os" = windows ] && ext=.exe
	ld="-s -w -buildid= -X main.version=$VERSION -X main.commit=$commit"
	# github.com/wlynxg/anet reaches into package net through
	# go:linkname, which the linker refuses by default on Android.
	[ "$os" = android ] && ld="$ld -checklinkname=0"
	name="ceiba-$VERSION-$os-$arch$ext"
	echo "release: $name"
	GOOS=$os GOARCH=$arch "$GO" build -trimpath -ldflags="$ld" -o "$out/$name" ./cmd/ceiba
done

# The reader's web app (webapp/, issue 16), built by make webapp: esbuild
# and every JavaScript package pinned by webapp/package-lock.json, the
# core compiled with -trimpath and no build ID by the Go release above, so
# the same commit gives the same files. Published twice over: one archive
# of the files build.json lists (file times the commit's, owner root, no
# gzip name or time), and build.json itself, whose SHA-256 is the version
# the app shows a person (docs/RELEASING.md, "The web app").
"${MAKE:-make}" --no-print-directory GO="$GO" webapp >/dev/null
app=webapp/dist
appfiles=$(sed -n 's/^    "\([^"/]*\)": "[0-9a-f]\{64\}",\{0,1\}$/\1/p' "$app/build.json")
[ -n "$appfiles" ] || { echo "release: $app/build.json lists no files" >&2; exit 1; }
# shellcheck disable=SC2086 # the names are build.json's plain file names
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
	--mode='a=r,u+w' --format=ustar --transform='s,^,ceiba-webapp/,' \
	-C "$app" -cf - build.json $appfiles | gzip -n -9 > "$out/ceiba-$VERSION-webapp.tar.gz"
cp "$app/build.json" "$out/ceiba-$VERSION-webapp.json"
echo "release: ceiba-$VERSION-webapp.tar.gz, app version $(sha256sum < "$app/build.json" | cut -c1-64)"

# Debian packages, for the linux targets. A tagged build v1.2.3 is 1.2.3,
# and n commits later 1.2.3+n+g<hash> (later than 1.2.3: "-" would start a
# Debian revision); an untagged build, a bare commit hash, is 0.0~git<hash>
# (earlier than any release).
debver=${VERSION#v}
case $debver in
[0-9]*.*) debver=${debver//-/+} ;;
*) debver="0.0~git${debver//-/+}" ;;
esac
for arch in amd64 arm64; do
	bin="$out/ceiba-$VERSION-linux-$arch"
	[ -f "$bin" ] || continue
	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/share/doc/ceiba"
	install -m 0755 "$bin" "$root/usr/bin/ceiba"
	install -m 0644 packaging/ceiba.service "$root/lib/systemd/system/ceiba.service"
	install -m 0644 docs/OPERATIONS.md "$root/usr/share/doc/ceiba/OPERATIONS.md"
	install -m 0644 docs/SECURITY.md "$root/usr/share/doc/ceiba/SECURITY.md"
	# The web app, for [webapp] dir = "/usr/share/ceiba/webapp".
	install -d -m 0755 "$root/usr/share/ceiba/webapp"
	for f in build.json $appfiles; do install -m 0644 "$app/$f" "$root/usr/share/ceiba/webapp/$f"; done
	install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
	size=$(du -sk --apparent-size "$root/usr" "$root/lib" | awk '{s+=$1} END {print s}')
	sed -e "s/@VERSION@/$debver/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control.in > "$root/DEBIAN/control"
	chmod 0644 "$root/DEBIAN/control"
	find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	# gzip, not xz: dpkg-deb's xz is multi-threaded with as many threads
	# as the machine has cores, and its output differs between machines.
	dpkg-deb --root-owner-group -Zgzip --build "$root" "$out/ceiba_${debver}_$arch.deb" >/dev/null
	rm -rf "$root"
	trap - EXIT
	echo "release: ceiba_${debver}_$arch.deb"
done

# Only ceiba* files: the redirection creates SHA256SUMS while the glob may
# still be expanding on the other side of the pipe.
(cd "$out" && sha256sum -- ceiba* | LC_ALL=C sort -k2 > SHA256SUMS)
echo "release: $out/SHA256SUMS"

if [ -n "${RELEASE_KEY:-}" ]; then
	minisign -S -s "$RELEASE_KEY" -m "$out/SHA256SUMS" -x "$out/SHA256SUMS.minisig" \
		-t "ceiba $VERSION $commit $RELEASE_GO"
	echo "release: signed $out/SHA256SUMS.minisig"
else
	echo "release: not signed (set RELEASE_KEY to a minisign secret key to sign)"
fi
