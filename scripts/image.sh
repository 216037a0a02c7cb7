#!/usr/bin/env bash
# Build the project's container image (docker/Dockerfile) with podman, on a
# machine that reaches no image registry.
#
#   scripts/image.sh build      the base unless present, then the image (make image)
#   scripts/image.sh base       only the base image, unless present
#   scripts/image.sh rebase     build the base again, even if present
#   scripts/image.sh podman ARGS...
#                               run podman with the settings below (for tests and by hand)
#
# The Dockerfile's default base is the official python:3.13-slim. These
# machines reach no registry, so by default this script makes a stand-in from
# Debian's own packages:
# `debootstrap --variant=minbase trixie` (Debian 13 ships python3.13), imported
# as $BASE_IMAGE and passed to the build as the BASE_IMAGE argument. Only this
# stand-in carries the host's CA bundle (SSL_CERT_FILE, PIP_CERT,
# UV_SYSTEM_CERTS=1), so that pip and uv inside the build trust the same TLS as
# the host, e.g. behind a TLS-inspecting proxy; the shipped Dockerfile's
# default path does not.
#
# podman needs two settings on these machines, passed per command so the
# system's configuration is untouched: no default rlimits (the kernel refuses
# podman's RLIMIT_NOFILE/NPROC; scripts/image/containers.conf, through
# CONTAINERS_CONF) and the runc runtime (crun refuses a hybrid cgroup layout).
# Podman, runc, debootstrap, slirp4netns and catatonit come from Debian's
# packages when missing.
#
# Variables: IMAGE (default die-hard:local, the tag compose.yaml uses),
# BASE_IMAGE (default localhost/die-hard-python:3.13-trixie, the stand-in; any
# name outside localhost/, e.g. docker.io/library/python:3.13-slim, is pulled
# where a registry answers), DEBIAN_MIRROR
# (default: the mirror apt already uses, else deb.debian.org).
set -euo pipefail

PROG=image
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
IMAGE="${IMAGE:-die-hard:local}"
BASE_IMAGE="${BASE_IMAGE:-localhost/die-hard-python:3.13-trixie}"
BASE_SUITE=trixie
BASE_PACKAGES=python3.13,python3.13-venv,python3-pip,ca-certificates
# Inside the stand-in base only: the host's CA bundle, under a name of its own.
BASE_CA_BUNDLE=/etc/ssl/certs/host-ca-bundle.crt
export CONTAINERS_CONF="$SCRIPT_DIR/image/containers.conf"

# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

ensure_tools() {
    local missing=()
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    # Containers with a network namespace of their own that reach this
    # machine's loopback (the image tests), and compose's `init: true`.
    command -v slirp4netns >/dev/null 2>&1 || missing+=(slirp4netns)
    [ -x /usr/bin/catatonit ] || [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
    if [ "${#missing[@]}" -gt 0 ]; then
        say "image: installing ${missing[*]} from Debian's packages"
        apt_install --no-install-recommends "${missing[@]}"
    fi
}

podman_() { as_root podman --runtime runc "$@"; }

# The first http(s) mirror of Debian's main archive in apt's sources.
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local mirror
    mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
        grep -Eo 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -1 | tr -d ' ' || true)"
    echo "${mirror:-http://deb.debian.org/debian}"
}

build_base() {
    local root started
    started=$SECONDS
    root="$(mktemp -d /var/tmp/die-hard-base.XXXXXX)"
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "as_root rm -rf '$root'" EXIT
    say "image: building the base $BASE_IMAGE (debootstrap $BASE_SUITE from $(debian_mirror))"
    as_root debootstrap --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" "$root" "$(debian_mirror)" >/dev/null
    # What python:3.13-slim offers the Dockerfile: `python` and `pip` on PATH,
    # and a pip that may install into the system (no PEP 668 marker).
    as_root ln -sf /usr/bin/python3.13 "$root/usr/local/bin/python"
    as_root ln -sf /usr/bin/python3.13 "$root/usr/local/bin/python3"
    as_root ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
    as_root rm -f "$root"/usr/lib/python3.13/EXTERNALLY-MANAGED
    as_root install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root$BASE_CA_BUNDLE"
    # Slim: no package lists, caches, manuals or documentation.
    as_root rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/man \
        "$root"/usr/share/doc "$root"/usr/share/info "$root"/usr/share/locale
    as_root tar --numeric-owner -C "$root" -c . | podman_ import --quiet \
        --change "ENV SSL_CERT_FILE=$BASE_CA_BUNDLE" \
        --change "ENV PIP_CERT=$BASE_CA_BUNDLE" \
        --change "ENV UV_SYSTEM_CERTS=1" \
        --change "ENV LANG=C.UTF-8" \
        --change 'CMD ["python3"]' \
        - "$BASE_IMAGE" >/dev/null
    as_root rm -rf "$root"
    trap - EXIT
    say "image: base $BASE_IMAGE built in $((SECONDS - started)) s"
}

# The stand-in is made here; any other base (the official one, on a machine
# that reaches its registry) is pulled.
ensure_base() {
    if podman_ image exists "$BASE_IMAGE"; then
        say "image: base $BASE_IMAGE present"
    elif [[ "$BASE_IMAGE" == localhost/* ]]; then
        build_base
    else
        say "image: pulling the base $BASE_IMAGE"
        podman_ pull "$BASE_IMAGE" >/dev/null || die "cannot pull $BASE_IMAGE: without a registry, leave BASE_IMAGE unset for the stand-in"
    fi
}

build_image() {
    local started
    started=$SECONDS
    say "image: building $IMAGE from docker/Dockerfile on $BASE_IMAGE"
    podman_ build --pull=never --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --file "$REPO_ROOT/docker/Dockerfile" --tag "$IMAGE" "$REPO_ROOT"
    say "image: $IMAGE built in $((SECONDS - started)) s," \
        "$(podman_ image inspect --format '{{.Size}}' "$IMAGE") bytes"
}

case "${1:-}" in
    build)
        ensure_tools
        ensure_base
        build_image
        ;;
    base)
        ensure_tools
        ensure_base
        ;;
    rebase)
        ensure_tools
        build_base
        ;;
    podman)
        shift
        podman_ "$@"
        ;;
    *)
        usage >&2
        exit 64
        ;;
esac
