#!/usr/bin/env bash
# Local ClickHouse 18.16 server without Docker and without installing it
# system-wide.
#
#   scripts/clickhouse.sh install
#   scripts/clickhouse.sh start  [--name NAME] [--http-port P] [--tcp-port Q] [--foreground]
#   scripts/clickhouse.sh stop   [--name NAME]
#   scripts/clickhouse.sh status [--name NAME] [--http-port P]
#   scripts/clickhouse.sh client [--tcp-port Q] [-- CLICKHOUSE-CLIENT ARGS]
#
# `install` downloads Debian bookworm's clickhouse-server 18.16.1 and the
# libraries it needs with a private apt configuration (it never touches the
# system's package state, so it works the same on Debian 12 and Debian 13,
# which ships no ClickHouse) and unpacks them into .services/clickhouse/root.
# Each instance keeps its data, logs and pid file in .services/clickhouse/NAME/.
#
# Environment (all optional):
#   CLICKHOUSE_NAME        instance name              (default: dev)
#   CLICKHOUSE_PORT        HTTP port                  (default: 8123)
#   CLICKHOUSE_TCP_PORT    native protocol port       (default: 9000)
#   CLICKHOUSE_LOG_LEVEL   server log level           (default: information)
#   CLICKHOUSE_HOME        state directory            (default: <repo>/.services/clickhouse)
#   CLICKHOUSE_DEBIAN_MIRROR           (default: http://deb.debian.org/debian)
#   CLICKHOUSE_DEBIAN_SECURITY_MIRROR  (default: http://deb.debian.org/debian-security)
set -euo pipefail

PROG=clickhouse
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

CONFIG="$SCRIPT_DIR/clickhouse/config.xml" # paths in it are relative to the instance
CH_HOME="${CLICKHOUSE_HOME:-$(dirname "$SCRIPT_DIR")/.services/clickhouse}"
ROOT="$CH_HOME/root"
APT_DIR="$CH_HOME/apt"
SERVER_BIN="$ROOT/usr/sbin/clickhouse-server"
CLIENT_BIN="$ROOT/usr/bin/clickhouse-client"
INSTALLED_MARKER="$ROOT/.installed"

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DEBIAN_MIRROR="${CLICKHOUSE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${CLICKHOUSE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
SUITE=bookworm

# The Depends/Pre-Depends closure of the server and client in bookworm, less
# what every Debian system has (libc6, libgcc-s1, libstdc++6, adduser, ...): the
# unpacked server takes only libc, libm, libgcc_s and libstdc++ from the
# system. `install` checks with ldd that every library resolves. tzdata is
# used only where the system has no /usr/share/zoneinfo.
PACKAGES=(
    clickhouse-server clickhouse-common clickhouse-client
    libboost-filesystem1.74.0 libboost-program-options1.74.0 libcapnp-0.9.2 libcctz2
    libcpuinfo0 libdb5.3 libdouble-conversion3 libexpat1 libfarmhash0 libicu72
    libjemalloc2 libltdl7 liblz4-1 libmariadb3 libmetrohash1 libodbc2 libpcre3
    libpococrypto80 libpocodata80 libpocodataodbc80 libpocofoundation80 libpocojson80
    libpocomongodb80 libpoconet80 libpoconetssl80 libpocoutil80 libpocoxml80
    librdkafka1 libre2-9 libreadline8 libsasl2-2 libsasl2-modules-db libssl3 libtinfo6
    libzstd1 mariadb-common mysql-common readline-common zlib1g tzdata
)

NAME="${CLICKHOUSE_NAME:-dev}"
HTTP_PORT="${CLICKHOUSE_PORT:-8123}"
TCP_PORT="${CLICKHOUSE_TCP_PORT:-9000}"
LOG_LEVEL="${CLICKHOUSE_LOG_LEVEL:-information}"
FOREGROUND=0
EXTRA_ARGS=()

log() { say "clickhouse: $*"; }

multiarch() {
    case "$(dpkg --print-architecture)" in
        amd64) echo x86_64-linux-gnu ;;
        arm64) echo aarch64-linux-gnu ;;
        *) die "unsupported architecture $(dpkg --print-architecture)" ;;
    esac
}

# --------------------------------------------------------------------------
# install
# --------------------------------------------------------------------------

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

cmd_install() {
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
    log "downloading ${#PACKAGES[@]} packages"
    rm -f "$APT_DIR/debs/"*.deb
    (cd "$APT_DIR/debs" && private_apt download "${PACKAGES[@]}")

    log "unpacking into $ROOT"
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    for deb in "$APT_DIR/debs/"*.deb; do
        dpkg-deb -x "$deb" "$ROOT"
    done
    missing="$(
        export_runtime_env
        ldd "$SERVER_BIN" | grep 'not found' || true
    )"
    [ -z "$missing" ] || die "unresolved libraries for clickhouse-server:"$'\n'"$missing"

    dpkg-deb -f "$APT_DIR/debs/"clickhouse-server_*.deb Version >"$INSTALLED_MARKER"
    log "installed clickhouse-server $(cat "$INSTALLED_MARKER") in $((SECONDS - start)) s: $SERVER_BIN"
}

# Export what the unpacked binaries need: their libraries, and the time zone
# database when the system has none (the server aborts without one).
export_runtime_env() {
    local triplet
    triplet="$(multiarch)"
    export LD_LIBRARY_PATH="$ROOT/usr/lib/$triplet:$ROOT/lib/$triplet${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    if [ ! -e /usr/share/zoneinfo/UTC ] && [ -d "$ROOT/usr/share/zoneinfo" ]; then
        export TZDIR="$ROOT/usr/share/zoneinfo"
    fi
}

# --------------------------------------------------------------------------
# instances
# --------------------------------------------------------------------------

parse_args() {
    local opts
    opts="$(getopt -n clickhouse -o h -l name:,http-port:,tcp-port:,foreground,help -- "$@")" ||
        die "see --help"
    eval set -- "$opts"
    while true; do
        case "$1" in
            --name) NAME="$2"; shift 2 ;;
            --http-port) HTTP_PORT="$2"; shift 2 ;;
            --tcp-port) TCP_PORT="$2"; shift 2 ;;
            --foreground) FOREGROUND=1; shift ;;
            -h | --help) usage; exit 0 ;;
            --) shift; EXTRA_ARGS=("$@"); break ;;
        esac
    done
    case "$NAME" in
        '' | *[!A-Za-z0-9_.-]* | .*) die "invalid instance name: '$NAME'" ;;
    esac
    case "$HTTP_PORT$TCP_PORT" in '' | *[!0-9]*) die "ports must be numbers" ;; esac
    INSTANCE_DIR="$CH_HOME/$NAME"
    PID_FILE="$INSTANCE_DIR/server.pid"
    STDOUT_LOG="$INSTANCE_DIR/log/stdout.log"
}

server_pid() { live_pid "$PID_FILE" clickhouse-server; }

show_log_tail() {
    local f
    for f in "$STDOUT_LOG" "$INSTANCE_DIR/log/clickhouse-server.err.log" "$INSTANCE_DIR/log/clickhouse-server.log"; do
        if [ -s "$f" ]; then
            echo "---- tail of $f ----" >&2
            tail -n 25 "$f" >&2
        fi
    done
}

# The server answers, or has exited: either way, waiting is over.
settled() { clickhouse_pings "$HTTP_PORT" || ! server_pid >/dev/null; }

cmd_start() {
    parse_args "$@"
    if clickhouse_pings "$HTTP_PORT"; then
        log "already answering on http://127.0.0.1:$HTTP_PORT (instance '$NAME' not started again)"
        return 0
    fi
    command -v curl >/dev/null 2>&1 || die "curl is required"
    [ -f "$INSTALLED_MARKER" ] || cmd_install

    # The instance's settings go on the command line; the config file's paths
    # are relative to the instance directory, the server's working directory.
    local server=("$SERVER_BIN" "--config-file=$CONFIG" --
        "--http_port=$HTTP_PORT" "--tcp_port=$TCP_PORT" "--logger.level=$LOG_LEVEL")
    local pid
    if pid="$(server_pid)"; then
        log "instance '$NAME' already running (pid $pid) but not answering on port $HTTP_PORT yet"
    else
        mkdir -p "$INSTANCE_DIR/log"
        if [ "$FOREGROUND" = 1 ]; then
            log "starting '$NAME' in the foreground: http 127.0.0.1:$HTTP_PORT, tcp 127.0.0.1:$TCP_PORT, logs in $INSTANCE_DIR/log"
            echo $$ >"$PID_FILE"
            cd "$INSTANCE_DIR"
            export_runtime_env
            # Also log to the console, for a supervising process to collect.
            exec "${server[@]}" --logger.console=1
        fi
        log "starting '$NAME': http 127.0.0.1:$HTTP_PORT, tcp 127.0.0.1:$TCP_PORT"
        (
            # In a subshell: the server's libraries must not reach curl and the rest.
            cd "$INSTANCE_DIR"
            export_runtime_env
            nohup setsid "${server[@]}" >>"$STDOUT_LOG" 2>&1 </dev/null &
            echo $! >"$PID_FILE"
        )
    fi

    wait_for 30 settled || true
    if clickhouse_pings "$HTTP_PORT"; then
        log "'$NAME' is up (pid $(cat "$PID_FILE")), $(clickhouse_version "$HTTP_PORT")"
        log "logs in $INSTANCE_DIR/log"
        return 0
    fi
    if server_pid >/dev/null; then
        log "no answer on http://127.0.0.1:$HTTP_PORT/ping after 30 s" >&2
    else
        log "server process exited during startup" >&2
        rm -f "$PID_FILE"
    fi
    show_log_tail
    exit 1
}

cmd_stop() {
    parse_args "$@"
    local pid
    if pid="$(server_pid)"; then
        stop_pid "clickhouse '$NAME'" "$pid"
        log "stopped '$NAME'"
    else
        log "instance '$NAME' is not running"
    fi
    rm -f "$PID_FILE"
}

cmd_status() {
    parse_args "$@"
    local pid owner=""
    if pid="$(server_pid)"; then owner=" (instance $NAME, pid $pid)"; fi
    if clickhouse_pings "$HTTP_PORT"; then
        log "answering on http://127.0.0.1:$HTTP_PORT$owner"
        return 0
    fi
    log "not answering on http://127.0.0.1:$HTTP_PORT$owner"
    return 1
}

cmd_client() {
    parse_args "$@"
    [ -x "$CLIENT_BIN" ] || die "not installed: run $0 install"
    export_runtime_env
    exec "$CLIENT_BIN" --host 127.0.0.1 --port "$TCP_PORT" "${EXTRA_ARGS[@]}"
}

cmd="${1:-}"
[ $# -eq 0 ] || shift
case "$cmd" in
    install) cmd_install ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    client) cmd_client "$@" ;;
    -h | --help | help) usage ;;
    '') usage; exit 2 ;;
    *) die "unknown command: $cmd (install|start|stop|status|client)" ;;
esac
