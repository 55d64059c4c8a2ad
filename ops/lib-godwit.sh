# Shared helpers for the ops procedures (migrate-safely, rollback-migration). Sourced.

GODWIT=${GODWIT:-}
if [ -z "$GODWIT" ]; then
    if [ -x .build/release/godwit ]; then GODWIT=$PWD/.build/release/godwit
    elif [ -x .build/x86_64-unknown-linux-gnu/release/godwit ]; then GODWIT=$PWD/.build/x86_64-unknown-linux-gnu/release/godwit
    elif command -v godwit >/dev/null 2>&1; then GODWIT=$(command -v godwit)
    else echo "$(basename "$0"): no godwit binary: build it (swift build -c release) or set GODWIT" >&2; exit 2
    fi
fi

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\n%s: STOPPED: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

require_database_url() {
    if [ -z "${DATABASE_URL:-}" ] && [ -f .env ]; then
        DATABASE_URL=$(sed -n 's/^\(export \)\{0,1\}DATABASE_URL=//p' .env | tail -n 1 | tr -d "\"'")
        export DATABASE_URL
    fi
    [ -n "${DATABASE_URL:-}" ] || { echo "$(basename "$0"): set DATABASE_URL (or put it in ./.env)" >&2; exit 2; }
}

# pg_query SQL: one value, through the real psql binary (not Debian's wrapper).
pg_query() {
    local psql
    psql="$(pg_config --bindir 2>/dev/null)/psql"
    [ -x "$psql" ] || psql=psql
    "$psql" -qAtX -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"
}
