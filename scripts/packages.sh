#!/usr/bin/env bash
# Install the Debian packages the local services run on, skipping those already
# installed (`python -m devservices` runs this when a program is missing).
#
#   scripts/packages.sh PACKAGE...
#
# Each PACKAGE comes from the system's apt sources, except clickhouse-server:
# Debian bookworm's clickhouse-server 18.16.1 and the libraries it needs,
# downloaded with a private apt configuration (it never touches the system's
# package state, so it works the same on Debian 12 and Debian 13, which ships
# no ClickHouse) and unpacked into .services/clickhouse/root.
#
# Environment (all optional):
#   CLICKHOUSE_HOME                    state directory (default: <repo>/.services/clickhouse)
#   CLICKHOUSE_DEBIAN_MIRROR           (default: http://deb.debian.org/debian)
#   CLICKHOUSE_DEBIAN_SECURITY_MIRROR  (default: http://deb.debian.org/debian-security)
set -euo pipefail

PROG=packages
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

CH_HOME="${CLICKHOUSE_HOME:-$(dirname "$SCRIPT_DIR")/.services/clickhouse}"
ROOT="$CH_HOME/root"
APT_DIR="$CH_HOME/apt"
SERVER_BIN="$ROOT/usr/sbin/clickhouse-server"
INSTALLED_MARKER="$ROOT/.installed"

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DEBIAN_MIRROR="${CLICKHOUSE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${CLICKHOUSE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
SUITE=bookworm

# The Depends/Pre-Depends closure of the server and client in bookworm, less
# what every Debian system has (libc6, libgcc-s1, libstdc++6, adduser, ...): the
# unpacked server takes only libc, libm, libgcc_s and libstdc++ from the
# system. The install checks with ldd that every library resolves. tzdata is
# used only where the system has no /usr/share/zoneinfo.
CLICKHOUSE_PACKAGES=(
    clickhouse-server clickhouse-common clickhouse-client
    libboost-filesystem1.74.0 libboost-program-options1.74.0 libcapnp-0.9.2 libcctz2
    libcpuinfo0 libdb5.3 libdouble-conversion3 libexpat1 libfarmhash0 libicu72
    libjemalloc2 libltdl7 liblz4-1 libmariadb3 libmetrohash1 libodbc2 libpcre3
    libpococrypto80 libpocodata80 libpocodataodbc80 libpocofoundation80 libpocojson80
    libpocomongodb80 libpoconet80 libpoconetssl80 libpocoutil80 libpocoxml80
    librdkafka1 libre2-9 libreadline8 libsasl2-2 libsasl2-modules-db libssl3 libtinfo6
    libzstd1 mariadb-common mysql-common readline-common zlib1g tzdata
)

log() { say "clickhouse: $*"; }

# apt with its own sources (bookworm only), lists, cache and an empty package
# status, so it resolves against bookworm alone and leaves the system's apt
# state untouched.
private_apt() {
    local opts=(
        -o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::Etc::preferences=/dev/null"
        -o "Dir::Etc::PreferencesParts=/dev/null"
        -o "Dir::State::Lists=$APT_DIR/lists"
        -o "Dir::State::status=$APT_DIR/status"
        -o "Dir::State::extended_states=$APT_DIR/extended_states"
        -o "Dir::Cache=$APT_DIR/cache"
        -o "APT::Architectures::=$(dpkg --print-architecture)"
        -o "Debug::NoLocking=true"
    )
    # The private directories are not readable by apt's _apt sandbox user.
    [ "$(id -u)" -ne 0 ] || opts+=(-o "APT::Sandbox::User=root")
    apt-get "${opts[@]}" -q "$@"
}

# The libraries the unpacked server resolves with ldd, as `devservices` runs it.
unresolved_libraries() {
    local triplet
    case "$(dpkg --print-architecture)" in
        amd64) triplet=x86_64-linux-gnu ;;
        arm64) triplet=aarch64-linux-gnu ;;
        *) die "unsupported architecture $(dpkg --print-architecture)" ;;
    esac
    LD_LIBRARY_PATH="$ROOT/usr/lib/$triplet:$ROOT/lib/$triplet${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        ldd "$SERVER_BIN" | grep 'not found' || true
}

clickhouse_install() {
    if [ -x "$SERVER_BIN" ] && [ -f "$INSTALLED_MARKER" ]; then
        log "already installed: $SERVER_BIN ($(cat "$INSTALLED_MARKER"))"
        return 0
    fi
    command -v dpkg-deb >/dev/null 2>&1 || die "apt-get and dpkg-deb are required (Debian/Ubuntu)"
    [ -f "$KEYRING" ] || apt_install --reinstall debian-archive-keyring
    [ -f "$KEYRING" ] || die "$KEYRING missing"

    local start=$SECONDS deb missing
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/debs"
    : >"$APT_DIR/status"
    printf 'deb [signed-by=%s] %s %s main\n' \
        "$KEYRING" "$DEBIAN_MIRROR" "$SUITE" "$KEYRING" "$SECURITY_MIRROR" "$SUITE-security" \
        >"$APT_DIR/sources.list"
    log "apt-get update (private config for Debian $SUITE in $APT_DIR)"
    private_apt update
    log "downloading ${#CLICKHOUSE_PACKAGES[@]} packages"
    rm -f "$APT_DIR/debs/"*.deb
    (cd "$APT_DIR/debs" && private_apt download "${CLICKHOUSE_PACKAGES[@]}")

    log "unpacking into $ROOT"
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    for deb in "$APT_DIR/debs/"*.deb; do
        dpkg-deb -x "$deb" "$ROOT"
    done
    missing="$(unresolved_libraries)"
    [ -z "$missing" ] || die "unresolved libraries for clickhouse-server:"$'\n'"$missing"

    dpkg-deb -f "$APT_DIR/debs/"clickhouse-server_*.deb Version >"$INSTALLED_MARKER"
    log "installed clickhouse-server $(cat "$INSTALLED_MARKER") in $((SECONDS - start)) s: $SERVER_BIN"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

case "${1:-}" in
    '') usage >&2; exit 2 ;;
    -h | --help | help) usage; exit 0 ;;
esac
missing=()
for package in "$@"; do
    [ "$package" = clickhouse-server ] || installed "$package" || missing+=("$package")
done
[ "${#missing[@]}" = 0 ] || apt_install "${missing[@]}"
case " $* " in *" clickhouse-server "*) clickhouse_install ;; esac
