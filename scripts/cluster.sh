#!/usr/bin/env bash
# A replicated ClickHouse cluster on 127.0.0.1: ZooKeeper (Debian's package)
# and two ClickHouse 18.16 replicas of one shard, cluster `die_hard`.
#
#   scripts/cluster.sh [up]            start whatever is not running yet (idempotent)
#   scripts/cluster.sh status          show what runs
#   scripts/cluster.sh down [PART...]  stop what this script started: everything, or
#                                      only the parts named (zookeeper, replica1, replica2)
#   scripts/cluster.sh purge           stop everything and delete the cluster's data
#   scripts/cluster.sh pid PART        the process id of a running part
#   scripts/cluster.sh install         install ZooKeeper and ClickHouse, start nothing
#
# Nothing this script did not start is ever stopped. A port another process
# holds fails `up` with its name: choose other ports with the variables below
# (the tests start clusters of their own that way). State and logs live under
# .services/zookeeper/PREFIX/ and .services/clickhouse/PREFIX-replicaN/.
#
# Environment (all optional):
#   CLICKHOUSE_CLUSTER          cluster name                     (die_hard)
#   CLUSTER_PREFIX              name of this cluster's state     (cluster)
#   CLUSTER_HTTP_PORTS          HTTP port of each replica        ("8123 8124")
#   CLUSTER_TCP_PORTS           native port of each replica      ("9000 9001")
#   CLUSTER_INTERSERVER_PORTS   replication port of each replica ("9009 9010")
#   CLUSTER_ZOOKEEPER_PORT      ZooKeeper's client port          (2181)
#   CLUSTER_SESSION_TIMEOUT_MS  ZooKeeper session timeout of the replicas (30000):
#                               how long a dead replica still counts toward a quorum
set -euo pipefail

PROG=cluster
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

REPO_ROOT="$(dirname "$SCRIPT_DIR")"
CLICKHOUSE_SH="$SCRIPT_DIR/clickhouse.sh"
CH_HOME="${CLICKHOUSE_HOME:-$REPO_ROOT/.services/clickhouse}"

CLUSTER="${CLICKHOUSE_CLUSTER:-die_hard}"
PREFIX="${CLUSTER_PREFIX:-cluster}"
read -r -a HTTP_PORTS <<<"${CLUSTER_HTTP_PORTS:-8123 8124}"
read -r -a TCP_PORTS <<<"${CLUSTER_TCP_PORTS:-9000 9001}"
read -r -a INTERSERVER_PORTS <<<"${CLUSTER_INTERSERVER_PORTS:-9009 9010}"
ZK_PORT="${CLUSTER_ZOOKEEPER_PORT:-2181}"
SESSION_TIMEOUT_MS="${CLUSTER_SESSION_TIMEOUT_MS:-30000}"
ZK_DIR="$REPO_ROOT/.services/zookeeper/$PREFIX"
ZK_PID_FILE="$ZK_DIR/zookeeper.pid"

REPLICAS="${#HTTP_PORTS[@]}"
[ "$REPLICAS" -ge 1 ] && [ "${#TCP_PORTS[@]}" = "$REPLICAS" ] && [ "${#INTERSERVER_PORTS[@]}" = "$REPLICAS" ] ||
    die "CLUSTER_HTTP_PORTS, CLUSTER_TCP_PORTS and CLUSTER_INTERSERVER_PORTS must name one port per replica"
case "$PREFIX" in '' | *[!A-Za-z0-9_.-]* | .*) die "invalid CLUSTER_PREFIX: '$PREFIX'" ;; esac
case "$CLUSTER" in '' | *[!A-Za-z0-9_]*) die "invalid CLICKHOUSE_CLUSTER: '$CLUSTER'" ;; esac

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --------------------------------------------------------------------------
# ZooKeeper
# --------------------------------------------------------------------------

zookeeper_pid() { live_pid "$ZK_PID_FILE" "$ZK_DIR/zoo.cfg"; }

zookeeper_answers() {
    local reply
    reply="$(
        exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" || exit 0
        printf 'ruok' >&3
        IFS= read -r -t 2 line <&3 || true
        printf '%s' "$line"
    )"
    [ "$reply" = imok ]
}

zookeeper_install() {
    [ ! -f /usr/share/java/zookeeper.jar ] || return 0
    say "zookeeper: not installed, installing the Debian package"
    apt_install zookeeper
}

zookeeper_up() {
    if zookeeper_pid >/dev/null && zookeeper_answers; then
        say "zookeeper: already running on 127.0.0.1:$ZK_PORT (pid $(zookeeper_pid))"
        return 0
    fi
    zookeeper_pid >/dev/null && die "zookeeper: pid $(zookeeper_pid) runs but does not answer on $ZK_PORT (see $ZK_DIR/zookeeper.log)"
    port_taken "$ZK_PORT" && die "zookeeper: port $ZK_PORT is taken by another process (set CLUSTER_ZOOKEEPER_PORT)"
    zookeeper_install
    command -v java >/dev/null 2>&1 || die "zookeeper: java not found (install a JRE, e.g. openjdk-17-jre-headless)"
    mkdir -p "$ZK_DIR/data"
    cat >"$ZK_DIR/zoo.cfg" <<EOF
tickTime=1000
initLimit=10
syncLimit=5
dataDir=$ZK_DIR/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok
autopurge.purgeInterval=1
EOF
    (
        cd "$ZK_DIR"
        nohup setsid java -Xms64m -Xmx256m -Dzookeeper.log.dir="$ZK_DIR" \
            -Dzookeeper.root.logger=INFO,CONSOLE \
            -cp "/usr/share/java/*:/etc/zookeeper/conf" \
            org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZK_DIR/zoo.cfg" \
            >>"$ZK_DIR/zookeeper.log" 2>&1 </dev/null &
        echo $! >"$ZK_PID_FILE"
    )
    if ! wait_for 60 zookeeper_answers; then
        tail -n 20 "$ZK_DIR/zookeeper.log" >&2 || true
        die "zookeeper: no answer on 127.0.0.1:$ZK_PORT after 60 s (see $ZK_DIR/zookeeper.log)"
    fi
    say "zookeeper: started on 127.0.0.1:$ZK_PORT (log $ZK_DIR/zookeeper.log)"
}

zookeeper_down() {
    local pid
    if ! pid="$(zookeeper_pid)"; then
        say "zookeeper: not running (or not started by this script), left alone"
        rm -f "$ZK_PID_FILE"
        return 0
    fi
    stop_pid zookeeper "$pid"
    rm -f "$ZK_PID_FILE"
}

# --------------------------------------------------------------------------
# ClickHouse replicas
# --------------------------------------------------------------------------

replica_name() { echo "$PREFIX-replica$1"; }

replica_pid() { live_pid "$CH_HOME/$(replica_name "$1")/server.pid" clickhouse-server; }

replica_answers() { clickhouse_pings "${HTTP_PORTS[$1 - 1]}"; }

# The replica's configuration: the standalone server's, plus what makes it a
# replica (ZooKeeper, its macros, the cluster's members, the replication port).
# Its paths stay relative to the instance's directory; users.xml is shared.
render_replica_config() {
    local number="$1" config="$2" i members=""
    for ((i = 0; i < REPLICAS; i++)); do
        members+="                <replica><host>127.0.0.1</host><port>${TCP_PORTS[$i]}</port></replica>
"
    done
    mkdir -p "$(dirname "$config")"
    {
        sed -e '/<\/yandex>/d' \
            -e "s|<users_config>users.xml</users_config>|<users_config>$SCRIPT_DIR/clickhouse/users.xml</users_config>|" \
            "$SCRIPT_DIR/clickhouse/config.xml"
        cat <<EOF
    <!-- Written by scripts/cluster.sh: replica $number of cluster $CLUSTER. -->
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>${INTERSERVER_PORTS[$number - 1]}</interserver_http_port>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
        <session_timeout_ms>$SESSION_TIMEOUT_MS</session_timeout_ms>
    </zookeeper>
    <macros>
        <cluster>$CLUSTER</cluster>
        <shard>01</shard>
        <replica>replica$number</replica>
    </macros>
    <remote_servers>
        <$CLUSTER>
            <shard>
                <internal_replication>true</internal_replication>
$members            </shard>
        </$CLUSTER>
    </remote_servers>
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
</yandex>
EOF
    } >"$config"
}

replica_up() {
    local number="$1" http="${HTTP_PORTS[$1 - 1]}" tcp="${TCP_PORTS[$1 - 1]}" config
    if replica_pid "$number" >/dev/null && replica_answers "$number"; then
        say "replica$number: already running on 127.0.0.1:$http (pid $(replica_pid "$number"))"
        return 0
    fi
    config="$CH_HOME/$(replica_name "$number")/cluster-config.xml"
    render_replica_config "$number" "$config"
    "$CLICKHOUSE_SH" start --name "$(replica_name "$number")" --http-port "$http" --tcp-port "$tcp" \
        --config "$config" | sed "s/^/replica$number: /"
}

replica_down() {
    if ! replica_pid "$1" >/dev/null; then
        say "replica$1: not running (or not started by this script), left alone"
        return 0
    fi
    "$CLICKHOUSE_SH" stop --name "$(replica_name "$1")" | sed "s/^/replica$1: /"
}

# --------------------------------------------------------------------------

parts() {
    local i
    echo zookeeper
    for ((i = 1; i <= REPLICAS; i++)); do echo "replica$i"; done
}

check_part() {
    parts | grep -qx -- "$1" || die "unknown part: $1 ($(parts | tr '\n' ' '))"
}

# Every port a part not yet running would take must be free: checked before
# anything starts, so a clash leaves nothing half-started.
check_ports() {
    local i port taken=""
    if ! zookeeper_pid >/dev/null && port_taken "$ZK_PORT"; then
        taken+=" $ZK_PORT (zookeeper; CLUSTER_ZOOKEEPER_PORT)"
    fi
    for ((i = 1; i <= REPLICAS; i++)); do
        replica_pid "$i" >/dev/null && continue
        for port in "${HTTP_PORTS[$i - 1]}" "${TCP_PORTS[$i - 1]}" "${INTERSERVER_PORTS[$i - 1]}"; do
            if port_taken "$port"; then
                taken+=" $port (replica$i; CLUSTER_HTTP_PORTS, CLUSTER_TCP_PORTS, CLUSTER_INTERSERVER_PORTS)"
            fi
        done
    done
    [ -z "$taken" ] || die "ports taken by other processes:$taken"
}

cmd_up() {
    command -v curl >/dev/null 2>&1 || die "curl is required"
    check_ports
    "$CLICKHOUSE_SH" install >/dev/null
    zookeeper_up
    local i
    for ((i = 1; i <= REPLICAS; i++)); do replica_up "$i"; done
    say "cluster: $CLUSTER is up, replicas on http://127.0.0.1:{$(
        IFS=,
        echo "${HTTP_PORTS[*]}"
    )}, ZooKeeper on 127.0.0.1:$ZK_PORT"
}

cmd_down() {
    local part i
    local -a wanted=("$@")
    [ "$#" -gt 0 ] || mapfile -t wanted < <(parts)
    for part in "${wanted[@]}"; do check_part "$part"; done
    # The replicas first, ZooKeeper last.
    for ((i = 1; i <= REPLICAS; i++)); do
        case " ${wanted[*]} " in *" replica$i "*) replica_down "$i" ;; esac
    done
    case " ${wanted[*]} " in *" zookeeper "*) zookeeper_down ;; esac
}

cmd_purge() {
    cmd_down
    local i
    for ((i = 1; i <= REPLICAS; i++)); do rm -rf "${CH_HOME:?}/$(replica_name "$i")"; done
    rm -rf "$ZK_DIR"
    say "cluster: purged, the data of $PREFIX is gone"
}

cmd_status() {
    local rc=0 i
    if zookeeper_answers; then say "zookeeper: running on 127.0.0.1:$ZK_PORT"; else say "zookeeper: not answering on 127.0.0.1:$ZK_PORT"; rc=1; fi
    for ((i = 1; i <= REPLICAS; i++)); do
        if replica_answers "$i"; then say "replica$i: running on 127.0.0.1:${HTTP_PORTS[$i - 1]}"; else say "replica$i: not answering on 127.0.0.1:${HTTP_PORTS[$i - 1]}"; rc=1; fi
    done
    return "$rc"
}

cmd_pid() {
    check_part "${1:?pid needs a part}"
    case "$1" in
        zookeeper) zookeeper_pid ;;
        *) replica_pid "${1#replica}" ;;
    esac || die "$1 is not running"
}

case "${1:-up}" in
    up) cmd_up ;;
    down)
        shift
        cmd_down "$@"
        ;;
    status) cmd_status ;;
    purge) cmd_purge ;;
    install)
        zookeeper_install
        "$CLICKHOUSE_SH" install
        ;;
    pid) cmd_pid "${2:-}" ;;
    -h | --help | help) usage ;;
    *) die "unknown command: $1 (up|status|down|purge|pid|install)" ;;
esac
