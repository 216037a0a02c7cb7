# Helpers shared by the service scripts: messages, root and apt, waiting,
# and the pid files that say which process a script started.
#
# A script sets PROG (its name in warnings and errors) before sourcing this.
# shellcheck shell=bash

say() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

# The comment block at the top of the running script, without the `#`s.
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $*"
    fi
}

# Install Debian packages, refreshing the package lists once per run.
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* yourself"
    if [ "$APT_UPDATED" = 0 ]; then
        as_root apt-get update -q
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# wait_for SECONDS COMMAND...: run COMMAND every 0.5 s until it succeeds;
# fail when it still fails after SECONDS.
wait_for() {
    local tries=$(($1 * 2))
    shift
    until "$@"; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.5
    done
}

# live_pid PID_FILE PATTERN: print the pid the file names if that process still
# runs and its command line contains PATTERN (a reused pid is not ours).
live_pid() {
    local pid
    [ -f "$1" ] || return 1
    pid="$(cat "$1" 2>/dev/null)"
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
    echo "$pid"
}

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# stop_pid LABEL PID: SIGTERM, up to 15 s to exit, then SIGKILL.
stop_pid() {
    say "$1: stopping (pid $2)"
    kill -TERM "$2" 2>/dev/null || true
    if ! wait_for 15 pid_gone "$2"; then
        say "$1: still running after 15 s: SIGKILL"
        kill -KILL "$2" 2>/dev/null || true
        wait_for 5 pid_gone "$2" || true
    fi
}

# clickhouse_pings PORT: a ClickHouse server answers HTTP on 127.0.0.1:PORT.
clickhouse_pings() {
    [ "$(curl -s --max-time 2 "http://127.0.0.1:$1/ping" 2>/dev/null)" = "Ok." ]
}

# clickhouse_version PORT: what the server on 127.0.0.1:PORT says it is.
clickhouse_version() { curl -s --max-time 2 "http://127.0.0.1:$1/?query=SELECT%20version()"; }
