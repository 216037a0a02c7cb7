#!/usr/bin/env bash
# Bring up the local backing services on 127.0.0.1: PostgreSQL, Redis and
# ClickHouse 18.16.
#
#   scripts/services.sh [up]   start whatever does not answer yet (idempotent)
#   scripts/services.sh status show what answers
#   scripts/services.sh down [SERVICE...]
#                              stop only what this script started: every such
#                              service, or only the ones named (postgres, redis,
#                              clickhouse)
#
# A service that already answers is used as it is and is never stopped by
# `down`. Whatever this script starts keeps its logs under .services/<service>/.
#
# Environment (all optional):
#   POSTGRES_PORT (5432)  POSTGRES_USER (postgres)  POSTGRES_DB (diehard)
#   REDIS_PORT (6379)
#   CLICKHOUSE_PORT (8123, HTTP)  CLICKHOUSE_TCP_PORT (9000)
set -euo pipefail

PROG=services
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

SERVICES_DIR="$(dirname "$SCRIPT_DIR")/.services"

HOST=127.0.0.1
PG_PORT="${POSTGRES_PORT:-5432}"
PG_USER="${POSTGRES_USER:-postgres}"
PG_DB="${POSTGRES_DB:-diehard}"
REDIS_PORT="${REDIS_PORT:-6379}"
CH_PORT="${CLICKHOUSE_PORT:-8123}"
CH_TCP_PORT="${CLICKHOUSE_TCP_PORT:-9000}"
CH_NAME=dev

PG_DIR="$SERVICES_DIR/postgres"
PG_MARKER="$PG_DIR/started-by-services" # holds "<version> <cluster>"
REDIS_DIR="$SERVICES_DIR/redis"
REDIS_MARKER="$REDIS_DIR/started-by-services"
REDIS_PID_FILE="$REDIS_DIR/redis.pid"
CLICKHOUSE_SH="$SCRIPT_DIR/clickhouse.sh"

# Run a command as the postgres OS user (peer authentication on the socket).
as_postgres() {
    if [ "$(id -un)" = postgres ]; then
        (cd / && "$@")
    elif [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    elif command -v sudo >/dev/null 2>&1; then
        (cd / && sudo -u postgres "$@")
    else
        die "cannot run as the postgres user: $*"
    fi
}

# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

pg_answers() {
    command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$HOST" -p "$PG_PORT"
}

# "<version> <cluster>" of the Debian cluster configured for PG_PORT.
pg_pick_cluster() {
    pg_lsclusters --no-header 2>/dev/null |
        awk -v port="$PG_PORT" '$3 == port { print $1 " " $2; exit }'
}

pg_psql() {
    psql -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U "$PG_USER" "$@"
}

postgres_start() {
    if ! command -v pg_lsclusters >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
        say "postgres: not installed, installing the Debian package"
        apt_install postgresql
        if pg_answers; then
            say "postgres: the package started its cluster on $HOST:$PG_PORT"
            return 0
        fi
    fi
    local cluster version name
    cluster="$(pg_pick_cluster)"
    if [ -z "$cluster" ] && [ -n "$(pg_lsclusters --no-header 2>/dev/null)" ]; then
        pg_lsclusters >&2
        die "postgres: no cluster is configured for port $PG_PORT (set POSTGRES_PORT to one of the ports above)"
    fi
    if [ -z "$cluster" ]; then
        version="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
        [ -n "$version" ] || die "postgres: no PostgreSQL server version found under /usr/lib/postgresql"
        say "postgres: creating cluster $version/main on port $PG_PORT"
        as_root pg_createcluster "$version" main --port "$PG_PORT"
        cluster="$version main"
    fi
    read -r version name <<<"$cluster"
    say "postgres: starting cluster $version/$name"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
    mkdir -p "$PG_DIR"
    echo "$version $name" >"$PG_MARKER"
    wait_for 30 pg_answers || die "postgres: cluster $version/$name does not answer on $HOST:$PG_PORT (see /var/log/postgresql/)"
}

# Make "$PG_USER@127.0.0.1" able to log in without a password and create
# databases, as the application's default URL expects. Trust is granted to that
# user alone, for every database: it may create databases anyway, and the
# project's are many (`postgres`, where psql, createdb, Django's test runner and
# the benchmarks connect first, PG_DB, Django's test database test_<PG_DB>, and
# the benchmarks' scratch databases, named after each run's process id:
# `scratch_name` in benchmarks/scratch.py).
postgres_ensure_access() {
    local err
    if err="$(pg_psql -d postgres -tAc 'SELECT 1' 2>&1 >/dev/null)"; then
        return 0
    fi
    case "$err" in
        *"role \"$PG_USER\" does not exist"*)
            say "postgres: creating role $PG_USER (LOGIN CREATEDB)"
            as_postgres psql -X -q -v ON_ERROR_STOP=1 -v role="$PG_USER" -p "$PG_PORT" \
                <<<'CREATE ROLE :"role" LOGIN CREATEDB'
            ;;
        *password* | *"no pg_hba.conf entry"*)
            local hba databases="all"
            hba="$(as_postgres psql -X -tA -p "$PG_PORT" -c 'SHOW hba_file')"
            # A system-wide file is edited: say so loudly, with how to undo it.
            warn "postgres: $PG_USER could not log in on $HOST:$PG_PORT; adding two lines at the top of $hba:" \
                "'host $databases $PG_USER 127.0.0.1/32 trust' and the same for ::1/128" \
                "(passwordless TCP logins for development; delete them to undo)"
            as_root sed -i "1i\\
# added by scripts/services.sh: passwordless local TCP for development\\
host    $databases    $PG_USER    127.0.0.1/32    trust\\
host    $databases    $PG_USER    ::1/128         trust" "$hba"
            as_postgres psql -X -q -p "$PG_PORT" -c 'SELECT pg_reload_conf()' >/dev/null
            sleep 0.5
            ;;
        *) die "postgres: cannot connect as $PG_USER@$HOST:$PG_PORT: $err" ;;
    esac
    err="$(pg_psql -d postgres -tAc 'SELECT 1' 2>&1 >/dev/null)" ||
        die "postgres: still cannot connect as $PG_USER@$HOST:$PG_PORT: $err"
}

postgres_ensure_db() {
    local exists
    exists="$(pg_psql -d postgres -tA -v db="$PG_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db'")"
    if [ "$exists" = 1 ]; then
        say "postgres: database $PG_DB exists"
    else
        createdb -h "$HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB"
        say "postgres: created database $PG_DB"
    fi
}

# The site's and the relay's own roles (least privilege): LOGIN, nothing else.
# `manage.py database_grants` (run by `make migrate`) gives them their rights
# on the tables; point DATABASE_URL and RELAY_DATABASE_URL at them to use them.
PG_APP_ROLES=(diehard_web diehard_relay)

postgres_ensure_roles() {
    local role exists
    for role in "${PG_APP_ROLES[@]}"; do
        exists="$(pg_psql -d postgres -tA -v role="$role" <<<"SELECT 1 FROM pg_roles WHERE rolname = :'role'")"
        if [ "$exists" != 1 ]; then
            pg_psql -d postgres -v role="$role" \
                <<<'CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT'
            say "postgres: created role $role"
        fi
    done
}

postgres_up() {
    if pg_answers; then
        say "postgres: already running on $HOST:$PG_PORT"
    else
        postgres_start
        say "postgres: started on $HOST:$PG_PORT"
    fi
    postgres_ensure_access
    postgres_ensure_db
    postgres_ensure_roles
}

postgres_down() {
    if [ ! -f "$PG_MARKER" ]; then
        say "postgres: not started by this script, left alone"
        return 0
    fi
    local version name
    read -r version name <"$PG_MARKER"
    say "postgres: stopping cluster $version/$name"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" stop || true
    rm -f "$PG_MARKER"
}

# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------

redis_answers() {
    local reply
    if command -v redis-cli >/dev/null 2>&1; then
        reply="$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null || true)"
    else
        # Without redis-cli: speak RESP over bash's /dev/tcp.
        reply="$(
            exec 2>/dev/null 3<>"/dev/tcp/$HOST/$REDIS_PORT" || exit 0
            printf 'PING\r\n' >&3
            IFS= read -r -t 2 line <&3 || true
            printf '%s' "${line#+}"
        )"
        reply="${reply%$'\r'}"
    fi
    [ "$reply" = PONG ]
}

redis_up() {
    if redis_answers; then
        say "redis: already running on $HOST:$REDIS_PORT"
        return 0
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        say "redis: not installed, installing the Debian package"
        apt_install redis-server
        if redis_answers; then
            say "redis: the package started its service on $HOST:$REDIS_PORT"
            return 0
        fi
    fi
    mkdir -p "$REDIS_DIR"
    redis-server --daemonize yes --bind "$HOST" --port "$REDIS_PORT" \
        --save "" --appendonly no --dir "$REDIS_DIR" \
        --logfile "$REDIS_DIR/redis.log" --pidfile "$REDIS_PID_FILE"
    touch "$REDIS_MARKER"
    wait_for 15 redis_answers || die "redis: does not answer on $HOST:$REDIS_PORT (see $REDIS_DIR/redis.log)"
    say "redis: started on $HOST:$REDIS_PORT (log $REDIS_DIR/redis.log)"
}

redis_down() {
    if [ ! -f "$REDIS_MARKER" ]; then
        say "redis: not started by this script, left alone"
        return 0
    fi
    local pid
    if pid="$(live_pid "$REDIS_PID_FILE" redis-server)"; then
        stop_pid redis "$pid"
    else
        say "redis: not running"
    fi
    rm -f "$REDIS_MARKER" "$REDIS_PID_FILE"
}

# --------------------------------------------------------------------------
# ClickHouse
# --------------------------------------------------------------------------

clickhouse_answers() { clickhouse_pings "$CH_PORT"; }

clickhouse_up() {
    command -v curl >/dev/null 2>&1 || apt_install curl
    if clickhouse_answers; then
        say "clickhouse: already running on $HOST:$CH_PORT (http), $(clickhouse_version "$CH_PORT")"
        return 0
    fi
    "$CLICKHOUSE_SH" start --name "$CH_NAME" --http-port "$CH_PORT" --tcp-port "$CH_TCP_PORT"
}

clickhouse_down() {
    # Stops only the instance whose pid file this repository holds.
    "$CLICKHOUSE_SH" stop --name "$CH_NAME"
}

# --------------------------------------------------------------------------

cmd_up() {
    mkdir -p "$SERVICES_DIR"
    postgres_up
    redis_up
    clickhouse_up
    say "services: up (postgres://$PG_USER@$HOST:$PG_PORT/$PG_DB, redis://$HOST:$REDIS_PORT/0, http://$HOST:$CH_PORT)"
}

cmd_status() {
    local rc=0
    if pg_answers; then say "postgres: running on $HOST:$PG_PORT"; else say "postgres: not answering on $HOST:$PG_PORT"; rc=1; fi
    if redis_answers; then say "redis: running on $HOST:$REDIS_PORT"; else say "redis: not answering on $HOST:$REDIS_PORT"; rc=1; fi
    if clickhouse_answers; then say "clickhouse: running on $HOST:$CH_PORT"; else say "clickhouse: not answering on $HOST:$CH_PORT"; rc=1; fi
    return "$rc"
}

# cmd_down [SERVICE...]: stop the named services (all three by default), each
# only if this script started it. `make run` names just the ones it started, so
# a service an earlier `make services` started keeps running.
cmd_down() {
    local service
    local -a wanted=("$@")
    [ "$#" -gt 0 ] || wanted=(clickhouse redis postgres)
    for service in "${wanted[@]}"; do
        case "$service" in
            postgres | redis | clickhouse) ;;
            *) die "unknown service: $service (postgres, redis or clickhouse)" ;;
        esac
    done
    # The clients first, the database last, whatever order they were named in.
    for service in clickhouse redis postgres; do
        case " ${wanted[*]} " in *" $service "*) "${service}_down" ;; esac
    done
}

case "${1:-up}" in
    up) cmd_up ;;
    down)
        shift
        cmd_down "$@"
        ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *) die "unknown command: $1 (up|status|down)" ;;
esac
