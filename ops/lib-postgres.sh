# Shared shell helpers for ops/ scripts: install PostgreSQL when missing, and start or stop a
# private cluster. Sourced, not run.

# Installs the Debian packages Godwit needs when any is missing.
godwit_install_packages() {
    local missing=()
    command -v pg_config >/dev/null 2>&1 || missing+=(libpq-dev)
    [ -f /usr/include/postgresql/libpq-fe.h ] || missing+=(libpq-dev)
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql); fi
    if ! ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1; then missing+=(postgresql-contrib); fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "ops: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Installs promtool (Debian's prometheus package) when missing: the tests check /metrics,
# ops/prometheus.yml and ops/prometheus-rules.yml with it (ops/test; not the demo's business).
godwit_install_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    echo "ops: installing prometheus (for promtool)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq prometheus >/dev/null
}

# The directory with initdb, pg_ctl, psql, pg_dump (the real binaries, not Debian's wrappers).
godwit_pg_bindir() {
    local dir
    dir=$(pg_config --bindir 2>/dev/null)
    if [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
    ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1
}

# Runs a command as the owner of the cluster: the postgres OS user when we are root
# (initdb refuses root), ourselves otherwise.
godwit_as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A free TCP port on 127.0.0.1.
# A free loopback port below the kernel's ephemeral range (32768 and up), where a client socket
# could take a cluster's port while it is down.
godwit_free_port() {
    python3 -c '
import random, socket
for _ in range(1000):
    port = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free port between 20000 and 32000")
'
}

# godwit_start_cluster DIR PORT: creates (first time) and starts a cluster in DIR on PORT.
# Local and loopback connections by the postgres role are trusted; other roles need a password
# over TCP, so tests can check that passwords never leak.
godwit_start_cluster() {
    local dir=$1 port=$2 bindir
    bindir=$(godwit_pg_bindir)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        godwit_as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
        cat >"$dir/data/pg_hba.conf" <<HBA
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
HBA
        cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 1000
shared_buffers = 256MB
CONF
        # Tests and the demo trade durability for speed; benchmarks set GODWIT_DURABLE=1 to
        # measure with PostgreSQL's defaults.
        if [ "${GODWIT_DURABLE:-0}" != 1 ]; then
            printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >>"$dir/data/postgresql.conf"
        fi
    fi
    sed -i "s/^port = .*//" "$dir/data/postgresql.conf"
    echo "port = $port" >>"$dir/data/postgresql.conf"
    # pg_stat_statements, the reader evidence `godwit change complete` is gated on, loads only
    # at server start: set on every start, so a cluster made before this line gets it too.
    # Each database that samples it still needs CREATE EXTENSION pg_stat_statements. Room for
    # 20000 statements (5000 by default): every test database makes its own, and each eviction
    # restarts the quiet windows of changes in flight.
    sed -i -e "s/^shared_preload_libraries = .*//" -e "s/^pg_stat_statements.max = .*//" "$dir/data/postgresql.conf"
    printf "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.max = 20000\n" >>"$dir/data/postgresql.conf"
    godwit_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
        || { cat "$dir/server.log" >&2; return 1; }
}

godwit_stop_cluster() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    godwit_as_owner "$(godwit_pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# godwit_build [release|debug]: builds the godwit executable and prints its path. Release builds
# link the Swift runtime and Foundation statically: one file to deploy, and about 5 MB less
# resident memory per process.
godwit_build() {
    local configuration=${1:-release} log flags=()
    [ "$configuration" = release ] && flags=(--static-swift-stdlib)
    log=$(mktemp)
    if ! swift build -c "$configuration" --product godwit "${flags[@]}" >"$log" 2>&1; then
        grep -v '^\[' "$log" >&2
        return 1
    fi
    echo "$(swift build -c "$configuration" "${flags[@]}" --show-bin-path)/godwit"
}
