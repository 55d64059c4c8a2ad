# Shared by the benchmarks that need Python packages from PyPI (never dependencies of Godwit):
# they live in .build-bench/venv, made on first use. Sourced, not run, from the package's folder.

# godwit_bench_venv IMPORTS PIP_ARGUMENTS...: makes sure the venv's python can run
# `import IMPORTS` (e.g. "asyncpg" or "pgqueuer, asyncpg"), creating the venv and running
# `pip install -q PIP_ARGUMENTS...` into it when it cannot, and prints that python's path.
# Returns 1, having said why on stderr, when the import still fails.
godwit_bench_venv() {
    local imports=$1 venv=.build-bench/venv
    shift
    if ! "$venv/bin/python" -c "import $imports" 2>/dev/null; then
        echo "ops/bench: installing $* into $venv" >&2
        { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } && "$venv/bin/pip" install -q "$@" >&2
        "$venv/bin/python" -c "import $imports" 2>/dev/null \
            || { echo "ops/bench: $venv cannot import $imports (pip install $* failed)" >&2; return 1; }
    fi
    echo "$venv/bin/python"
}
