# Sourced by scripts/compose-test and scripts/chaos: the images the compose
# files run, made without any image registry.
#
#   BASE_IMAGE   a Debian bookworm image made with debootstrap + docker import
#                (nats-server, redis-server, prometheus, wget inside); made
#                once, kept between runs
#   BIN_DIR      where cargo puts the release binaries (honours CARGO_TARGET_DIR)
#
#   make_base_image SCRATCH_DIR   makes BASE_IMAGE if it is missing
#   build_toolfan_image IMAGE SCRATCH_DIR
#                builds the binaries on the host and IMAGE from them
#                (deploy/Dockerfile --target prebuilt, FROM BASE_IMAGE)
#
# The caller has cd'ed to the repository root and defines log().

BASE_IMAGE=${BASE_IMAGE:-toolfan-base:bookworm}
BIN_DIR=${CARGO_TARGET_DIR:-target}/release

make_base_image() {
    local scratch=$1 mirror
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
    log "making $BASE_IMAGE with debootstrap"
    command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
    debootstrap --variant=minbase --include=nats-server,redis-server,prometheus,wget,ca-certificates \
        bookworm "$scratch/rootfs" "$mirror" >"$scratch/debootstrap.log" 2>&1 \
        || { tail -20 "$scratch/debootstrap.log"; return 1; }
    tar -C "$scratch/rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
    rm -rf "$scratch/rootfs"
}

build_toolfan_image() {
    local image=$1 scratch=$2
    log "building the toolfan binaries and $image"
    cargo build --release --workspace --bins --quiet
    rm -rf "$scratch/ctx" && mkdir -p "$scratch/ctx/bin"
    cp "$BIN_DIR/toolfan" "$BIN_DIR/toolfan-coordinator" "$BIN_DIR/toolfan-worker" "$scratch/ctx/bin/"
    docker build -q -f deploy/Dockerfile --target prebuilt --build-arg BASE="$BASE_IMAGE" -t "$image" "$scratch/ctx" >/dev/null
}
