#!/usr/bin/env bash
# Three `marina serve` replicas over one PostgreSQL database and one Garage
# bucket, behind haproxy (round robin, no stickiness), all on this machine.
#
#   examples/replicas/topology.sh start    # prints the registry's address
#   examples/replicas/topology.sh status
#   examples/replicas/topology.sh stop     # stops everything, keeps the data
#   examples/replicas/topology.sh clean    # stops everything, deletes the data
#
# Needs: marina (or MARINA=path/to/marina), PostgreSQL's server binaries
# (Debian: postgresql), garage (cargo install garage --locked), haproxy.
# Everything lives in $TOPOLOGY_DIR (default /tmp/marina-replicas) and listens
# on loopback only: the balancer on $LB_PORT (5200), the replicas on the next
# three ports, PostgreSQL on $PG_PORT (55442), Garage's S3 API on $S3_PORT (53910).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${TOPOLOGY_DIR:-/tmp/marina-replicas}
MARINA=${MARINA:-marina}
LB_PORT=${LB_PORT:-5200}
PG_PORT=${PG_PORT:-55442}
S3_PORT=${S3_PORT:-53910}
REPLICAS=(1 2 3)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)

# PostgreSQL refuses to run as root: use the postgres user then.
as_pg() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
need() { command -v "$1" >/dev/null || { echo "missing: $1 ($2)" >&2; exit 1; }; }

start_postgres() {
    [ -n "$PG_BIN" ] || { echo "missing: PostgreSQL server binaries (apt install postgresql)" >&2; exit 1; }
    if [ ! -d "$DIR/pg" ]; then
        mkdir -p "$DIR/pg"
        [ "$(id -u)" = 0 ] && chown postgres "$DIR/pg"
        as_pg "$PG_BIN/initdb -D $DIR/pg -A trust -U postgres >/dev/null"
    fi
    as_pg "$PG_BIN/pg_ctl -D $DIR/pg -o '-p $PG_PORT -k $DIR/pg -c listen_addresses=127.0.0.1' -l $DIR/pg/server.log -w start >/dev/null"
}

start_garage() {
    need garage "cargo install garage --locked"
    local g="garage -c $DIR/garage.toml"
    if [ ! -f "$DIR/garage.toml" ]; then
        cat > "$DIR/garage.toml" <<TOML
metadata_dir = "$DIR/garage/meta"
data_dir = "$DIR/garage/data"
db_engine = "sqlite"
replication_factor = 1
metadata_fsync = true
data_fsync = true
rpc_bind_addr = "127.0.0.1:$((S3_PORT + 1))"
rpc_public_addr = "127.0.0.1:$((S3_PORT + 1))"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
TOML
    fi
    $g server > "$DIR/garage.log" 2>&1 &
    echo $! > "$DIR/garage.pid"
    for _ in $(seq 1 100); do $g status >/dev/null 2>&1 && break; sleep 0.2; done
    if [ ! -f "$DIR/s3.env" ]; then
        $g layout assign -z dc1 -c 1G "$($g node id -q | cut -d@ -f1)" >/dev/null
        $g layout apply --version 1 >/dev/null
        $g bucket create marina >/dev/null
        local key
        key=$($g key create marina-key)
        $g bucket allow --read --write --owner marina --key marina-key >/dev/null
        {
            echo "AWS_ACCESS_KEY_ID=$(echo "$key" | awk '/Key ID:/ {print $3}')"
            echo "AWS_SECRET_ACCESS_KEY=$(echo "$key" | awk '/Secret key:/ {print $3}')"
        } > "$DIR/s3.env"
        chmod 600 "$DIR/s3.env"
    fi
}

start_replicas() {
    need "$MARINA" "cargo build --release, then MARINA=target/release/marina"
    set -a; . "$DIR/s3.env"; set +a
    for i in "${REPLICAS[@]}"; do
        alive "$DIR/r$i.pid" && continue
        MARINA_METADATA_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres" \
        MARINA_BLOB_URL="s3://marina/registry?endpoint=http://127.0.0.1:$S3_PORT&region=garage" \
            "$MARINA" serve --listen "127.0.0.1:$((LB_PORT + i))" --data-dir "$DIR/r$i" \
            --trusted-proxy 127.0.0.1 > "$DIR/r$i.log" 2>&1 &
        echo $! > "$DIR/r$i.pid"
    done
}

start_balancer() {
    need haproxy "apt install haproxy"
    export MARINA_LB_ADDR="127.0.0.1:$LB_PORT"
    for i in "${REPLICAS[@]}"; do export "MARINA_REPLICA_$i=127.0.0.1:$((LB_PORT + i))"; done
    haproxy -f "$HERE/haproxy.cfg" -D -p "$DIR/haproxy.pid"
}

wait_ready() {
    for _ in $(seq 1 150); do
        local up=0
        for i in "${REPLICAS[@]}"; do
            curl -fs "http://127.0.0.1:$((LB_PORT + i))/readyz" >/dev/null && up=$((up + 1))
        done
        if [ "$up" = "${#REPLICAS[@]}" ] && curl -fs "http://127.0.0.1:$LB_PORT/v2/" >/dev/null; then
            echo "registry: http://127.0.0.1:$LB_PORT (replicas on $((LB_PORT + 1))-$((LB_PORT + ${#REPLICAS[@]})), logs in $DIR)"
            return 0
        fi
        sleep 0.2
    done
    echo "not ready after 30 s; see the logs in $DIR" >&2
    exit 1
}

stop_pid() {
    # SIGTERM: a replica drains its requests, then exits.
    if alive "$1"; then
        local pid; pid=$(cat "$1")
        kill "$pid"
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$1"
}

stop_all() {
    stop_pid "$DIR/haproxy.pid"
    for i in "${REPLICAS[@]}"; do stop_pid "$DIR/r$i.pid"; done
    stop_pid "$DIR/garage.pid"
    if [ -n "$PG_BIN" ] && [ -f "$DIR/pg/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl -D $DIR/pg -m fast stop >/dev/null" || true
    fi
}

case "${1:-}" in
    start)
        mkdir -p "$DIR"
        start_postgres
        start_garage
        start_replicas
        start_balancer
        wait_ready
        ;;
    status)
        for name in haproxy r1 r2 r3 garage; do
            if alive "$DIR/$name.pid"; then echo "$name: running"; else echo "$name: stopped"; fi
        done
        if [ -f "$DIR/pg/postmaster.pid" ]; then echo "postgres: running"; else echo "postgres: stopped"; fi
        ;;
    stop) stop_all ;;
    clean) stop_all; rm -rf "$DIR" ;;
    *) echo "usage: $0 start|status|stop|clean" >&2; exit 2 ;;
esac
