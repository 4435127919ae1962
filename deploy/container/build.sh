#!/usr/bin/env bash
# Builds legate's OCI image without pulling anything from a registry: a distroless layout
# (the release binary, the few shared libraries it links, CA roots, a passwd entry for its
# non-root user, an empty /data) packed with umoci (Debian `umoci`).
#
#   bash deploy/container/build.sh [OCI_LAYOUT_DIR]     # default: $TARGET/legate-oci
#
# The image: user 10001:10001, entrypoint /usr/local/bin/legate, command `serve`, working
# directory and volume /data (the data directory; put config.toml there or mount one and pass
# `--config`), ports 25 465 587 143 993 80 443 and the dev ports. It runs with a read-only root
# filesystem: legate writes only under its data directory. Health: HTTP GET /healthz (the Helm
# chart's probes); the image holds no shell, so there is no exec health command.
# Honours CARGO_TARGET_DIR; LEGATE_BIN skips the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${1:-$TARGET/legate-oci}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
TAG=${LEGATE_IMAGE_TAG:-$VERSION}

if [ -z "${LEGATE_BIN:-}" ]; then
  cargo build --release --locked -p legate >&2
  LEGATE_BIN=$TARGET/release/legate
fi
command -v umoci >/dev/null || { echo "build.sh: needs umoci (apt-get install umoci)" >&2; exit 2; }

ROOTLESS=(); [ "$(id -u)" -eq 0 ] || ROOTLESS=(--rootless)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
rm -rf "$OUT"
umoci init --layout "$OUT"
umoci new --image "$OUT:$TAG"
umoci unpack "${ROOTLESS[@]}" --image "$OUT:$TAG" "$WORK/bundle" >/dev/null
R=$WORK/bundle/rootfs

install -D -m 0755 "$LEGATE_BIN" "$R/usr/local/bin/legate"
# The shared libraries the binary links (glibc's, libgcc_s), at the paths the loader uses.
for lib in $(ldd "$LEGATE_BIN" | awk '/=> \// {print $3} /^\t\// {print $1}'); do
  install -D -m 0644 "$(readlink -f "$lib")" "$R$lib"
done
chmod 0755 "$R"/lib64/ld-linux-* 2>/dev/null || true
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$R/data" "$R/tmp"
printf 'root:x:0:0::/:/nonexistent\nlegate:x:10001:10001:legate:/data:/nonexistent\n' > "$R/etc/passwd"
printf 'root:x:0:\nlegate:x:10001:\n' > "$R/etc/group"
printf 'hosts: files dns\n' > "$R/etc/nsswitch.conf"
chmod 1777 "$R/tmp"
[ "$(id -u)" -eq 0 ] && chown 10001:10001 "$R/data"

umoci repack --image "$OUT:$TAG" "$WORK/bundle"
PORTS=()
for p in 25 465 587 143 993 80 443 2525 2587 2143 8080; do PORTS+=(--config.exposedports "$p/tcp"); done
umoci config --image "$OUT:$TAG" \
  --author "legate" \
  --config.user 10001:10001 \
  --config.entrypoint /usr/local/bin/legate \
  --config.cmd serve \
  --config.workingdir /data \
  --config.volume /data \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.stopsignal SIGTERM \
  --config.label org.opencontainers.image.title=legate \
  --config.label "org.opencontainers.image.version=$VERSION" \
  --config.label "io.legate.healthcheck=GET /healthz on the HTTP listener" \
  "${PORTS[@]}"
umoci gc --layout "$OUT"
echo "$OUT:$TAG"
