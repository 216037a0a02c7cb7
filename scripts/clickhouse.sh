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
# Each instance keeps its config, data, logs and pid file in
# .services/clickhouse/NAME/.
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

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
TEMPLATE_DIR="$SCRIPT_DIR/clickhouse"

CH_HOME="${CLICKHOUSE_HOME:-$REPO_ROOT/.services/clickhouse}"
ROOT="$CH_HOME/root"
APT_DIR="$CH_HOME/apt"
SERVER_BIN="$ROOT/usr/sbin/clickhouse-server"
CLIENT_BIN="$ROOT/usr/bin/clickhouse-client"
INSTALLED_MARKER="$ROOT/.installed"

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DEBIAN_MIRROR="${CLICKHOUSE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${CLICKHOUSE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
SUITE=bookworm

# What to fetch. The closure is computed from these roots; recursion stops at
# the packages below, which every Debian system has (the unpacked server then
# takes only libc, libm, libgcc_s and libstdc++ from the system).
ROOT_PACKAGES=(clickhouse-server clickhouse-common clickhouse-client)
EXTRA_PACKAGES=(tzdata) # used only when the system has no /usr/share/zoneinfo
SYSTEM_PACKAGES=" libc6 libc-bin libgcc-s1 libgcc1 libstdc++6 gcc-12-base libcrypt1
  adduser passwd login debconf cdebconf debconf-2.0 dpkg tar install-info base-files
  lsb-base init-system-helpers sysvinit-utils perl-base coreutils "

NAME="${CLICKHOUSE_NAME:-dev}"
HTTP_PORT="${CLICKHOUSE_PORT:-8123}"
TCP_PORT="${CLICKHOUSE_TCP_PORT:-9000}"
LOG_LEVEL="${CLICKHOUSE_LOG_LEVEL:-information}"
FOREGROUND=0
EXTRA_ARGS=()

log() { printf 'clickhouse: %s\n' "$*"; }
die() { printf 'clickhouse: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

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

APT_OPTS=()
setup_apt() {
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/debs"
    : >"$APT_DIR/status" # empty on purpose: resolve against bookworm alone
    cat >"$APT_DIR/sources.list" <<EOF
deb [signed-by=$KEYRING] $DEBIAN_MIRROR $SUITE main
deb [signed-by=$KEYRING] $SECURITY_MIRROR $SUITE-security main
EOF
    APT_OPTS=(
        -o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::Etc::preferences=/dev/null"
        -o "Dir::Etc::PreferencesParts=/dev/null"
        -o "Dir::State::Lists=$APT_DIR/lists"
        -o "Dir::State::status=$APT_DIR/status"
        -o "Dir::State::extended_states=$APT_DIR/extended_states"
        -o "Dir::Cache=$APT_DIR/cache"
        -o "Dir::Cache::pkgcache=pkgcache.bin"
        -o "Dir::Cache::srcpkgcache=srcpkgcache.bin"
        -o "APT::Architectures::=$(dpkg --print-architecture)"
        -o "Debug::NoLocking=true"
    )
    if [ "$(id -u)" -eq 0 ]; then
        # The private directories are not readable by apt's _apt sandbox user.
        APT_OPTS+=(-o "APT::Sandbox::User=root")
    fi
}

# Breadth-first closure over Depends/Pre-Depends (first alternative of each
# or-group), not descending into SYSTEM_PACKAGES.
compute_closure() {
    local seen=" " todo="${ROOT_PACKAGES[*]}" next dep
    while [ -n "$todo" ]; do
        for dep in $todo; do seen+="$dep "; done
        next=""
        while read -r dep; do
            case "$SYSTEM_PACKAGES$seen$next " in *" $dep "*) continue ;; esac
            next+="$dep "
        done < <(
            # shellcheck disable=SC2086 # word splitting of $todo is intended
            apt-cache "${APT_OPTS[@]}" depends --no-recommends --no-suggests \
                --no-conflicts --no-breaks --no-replaces --no-enhances $todo |
                awk '
                    /^[^ ]/ { alt = 0; next }
                    /^ [ |][A-Za-z-]+: / {
                        if (!alt && $2 !~ /^</) print $2
                        alt = ($0 ~ /^ \|/)
                    }' | sort -u
        )
        todo="$next"
    done
    # shellcheck disable=SC2086
    printf '%s\n' $seen "${EXTRA_PACKAGES[@]}" | sort -u
}

cmd_install() {
    if [ -x "$SERVER_BIN" ] && [ -f "$INSTALLED_MARKER" ]; then
        log "already installed: $SERVER_BIN ($(cat "$INSTALLED_MARKER"))"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
        die "apt-get and dpkg-deb are required (Debian/Ubuntu)"
    fi
    if [ ! -f "$KEYRING" ]; then
        log "$KEYRING missing: installing debian-archive-keyring"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall debian-archive-keyring
        [ -f "$KEYRING" ] || die "$KEYRING still missing"
    fi

    local start=$SECONDS
    setup_apt
    log "apt-get update (private config for Debian $SUITE in $APT_DIR)"
    apt-get "${APT_OPTS[@]}" -q update

    local packages
    mapfile -t packages < <(compute_closure)
    [ "${#packages[@]}" -gt 3 ] || die "could not compute the package closure"
    log "downloading ${#packages[@]} packages: ${packages[*]}"
    rm -f "$APT_DIR/debs/"*.deb
    (cd "$APT_DIR/debs" && apt-get "${APT_OPTS[@]}" -q download "${packages[@]}")

    log "unpacking into $ROOT"
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    local deb
    for deb in "$APT_DIR/debs/"*.deb; do
        dpkg-deb -x "$deb" "$ROOT"
    done
    [ -x "$SERVER_BIN" ] || die "$SERVER_BIN missing after unpacking"

    # Every shared library must resolve now; report what does not.
    local missing
    missing="$(
        export_runtime_env
        ldd "$SERVER_BIN" | grep 'not found' || true
    )"
    [ -z "$missing" ] || die "unresolved libraries for clickhouse-server:
$missing"

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
    while [ $# -gt 0 ]; do
        case "$1" in
            --name) NAME="${2:?--name needs a value}"; shift 2 ;;
            --name=*) NAME="${1#*=}"; shift ;;
            --http-port) HTTP_PORT="${2:?--http-port needs a value}"; shift 2 ;;
            --http-port=*) HTTP_PORT="${1#*=}"; shift ;;
            --tcp-port) TCP_PORT="${2:?--tcp-port needs a value}"; shift 2 ;;
            --tcp-port=*) TCP_PORT="${1#*=}"; shift ;;
            --foreground) FOREGROUND=1; shift ;;
            --) shift; EXTRA_ARGS=("$@"); break ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
    done
    case "$NAME" in
        '' | *[!A-Za-z0-9_.-]* | .*) die "invalid instance name: '$NAME'" ;;
    esac
    case "$HTTP_PORT$TCP_PORT" in *[!0-9]*) die "ports must be numbers" ;; esac
    INSTANCE_DIR="$CH_HOME/$NAME"
    PID_FILE="$INSTANCE_DIR/server.pid"
    LOG_FILE="$INSTANCE_DIR/log/clickhouse-server.log"
    ERR_LOG_FILE="$INSTANCE_DIR/log/clickhouse-server.err.log"
    STDOUT_LOG="$INSTANCE_DIR/log/stdout.log"
}

ping_ok() {
    [ "$(curl -s --max-time 2 "http://127.0.0.1:$1/ping" 2>/dev/null)" = "Ok." ]
}

# Pid from the pid file if that process is still a ClickHouse server.
running_pid() {
    local pid
    [ -f "$PID_FILE" ] || return 1
    pid="$(cat "$PID_FILE" 2>/dev/null)"
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q clickhouse-server || return 1
    echo "$pid"
}

sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

render_config() {
    mkdir -p "$INSTANCE_DIR"/{etc,data,tmp,user_files,format_schemas,log}
    local f
    for f in config.xml users.xml; do
        sed -e "s|@@HTTP_PORT@@|$HTTP_PORT|g" \
            -e "s|@@TCP_PORT@@|$TCP_PORT|g" \
            -e "s|@@LOG_LEVEL@@|$(sed_escape "$LOG_LEVEL")|g" \
            -e "s|@@LOG_DIR@@|$(sed_escape "$INSTANCE_DIR/log")|g" \
            -e "s|@@DATA_DIR@@|$(sed_escape "$INSTANCE_DIR/data")|g" \
            -e "s|@@TMP_DIR@@|$(sed_escape "$INSTANCE_DIR/tmp")|g" \
            -e "s|@@USER_FILES_DIR@@|$(sed_escape "$INSTANCE_DIR/user_files")|g" \
            -e "s|@@FORMAT_SCHEMAS_DIR@@|$(sed_escape "$INSTANCE_DIR/format_schemas")|g" \
            "$TEMPLATE_DIR/$f" >"$INSTANCE_DIR/etc/$f"
    done
}

show_log_tail() {
    local f
    for f in "$STDOUT_LOG" "$ERR_LOG_FILE" "$LOG_FILE"; do
        if [ -s "$f" ]; then
            echo "---- tail of $f ----" >&2
            tail -n 25 "$f" >&2
        fi
    done
}

cmd_start() {
    parse_args "$@"
    if ping_ok "$HTTP_PORT"; then
        log "already answering on http://127.0.0.1:$HTTP_PORT (instance '$NAME' not started again)"
        return 0
    fi
    command -v curl >/dev/null 2>&1 || die "curl is required"
    [ -x "$SERVER_BIN" ] || cmd_install

    local pid
    if pid="$(running_pid)"; then
        log "instance '$NAME' already running (pid $pid) but not answering on port $HTTP_PORT yet"
    else
        rm -f "$PID_FILE"
        render_config
        if [ "$FOREGROUND" = 1 ]; then
            log "starting '$NAME' in the foreground: http 127.0.0.1:$HTTP_PORT, tcp 127.0.0.1:$TCP_PORT, log $LOG_FILE"
            echo $$ >"$PID_FILE"
            cd "$INSTANCE_DIR"
            export_runtime_env
            # Also log to the console, for a supervising process to collect.
            exec "$SERVER_BIN" --config-file="$INSTANCE_DIR/etc/config.xml" -- --logger.console=1
        fi
        log "starting '$NAME': http 127.0.0.1:$HTTP_PORT, tcp 127.0.0.1:$TCP_PORT"
        (
            cd "$INSTANCE_DIR"
            export_runtime_env
            nohup setsid "$SERVER_BIN" --config-file="$INSTANCE_DIR/etc/config.xml" \
                >>"$STDOUT_LOG" 2>&1 </dev/null &
            echo $! >"$PID_FILE"
        )
    fi

    local i
    for i in $(seq 1 60); do
        if ping_ok "$HTTP_PORT"; then
            log "'$NAME' is up (pid $(cat "$PID_FILE")), $(curl -s "http://127.0.0.1:$HTTP_PORT/?query=SELECT%20version()")"
            log "log: $LOG_FILE"
            return 0
        fi
        if ! kill -0 "$(cat "$PID_FILE" 2>/dev/null || echo 0)" 2>/dev/null; then
            log "server process exited during startup" >&2
            show_log_tail
            rm -f "$PID_FILE"
            exit 1
        fi
        [ "$i" -lt 60 ] && sleep 0.5
    done
    log "no answer on http://127.0.0.1:$HTTP_PORT/ping after 30 s" >&2
    show_log_tail
    exit 1
}

cmd_stop() {
    parse_args "$@"
    local pid i
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "instance '$NAME' is not running"
        return 0
    fi
    log "stopping '$NAME' (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            log "stopped '$NAME'"
            return 0
        fi
        [ "$i" -lt 30 ] && sleep 0.5
    done
    log "'$NAME' still running after 15 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
    rm -f "$PID_FILE"
}

cmd_status() {
    parse_args "$@"
    local pid="" owner=""
    pid="$(running_pid || true)"
    [ -z "$pid" ] || owner=" (instance $NAME, pid $pid)"
    if ping_ok "$HTTP_PORT"; then
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

main() {
    local cmd="${1:-}"
    [ $# -gt 0 ] && shift
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
}

main "$@"
