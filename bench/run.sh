#!/usr/bin/env bash
# Runs every device-host benchmark (about 10 minutes on 2 cores) and writes
# bench/results/summary.md. Each one also runs alone: .venv/bin/python bench/<name>.py
# Measurements only: nothing here passes or fails on a timing.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

missing=()
for tool in wrk hyperfine; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: missing ${missing[*]}; install with: apt-get install -y ${missing[*]}" >&2
    exit 1
fi
if ! "$PY" -c "import pytest_benchmark" 2>/dev/null; then
    echo "bench: missing pytest-benchmark; install with: $PY -m pip install pytest-benchmark" >&2
    exit 1
fi

failed=()
started=$SECONDS
for bench in bench_dashboard bench_hot_swap bench_restart bench_memory bench_sensor bench_plugin_attacks \
    bench_cross_compile; do
    printf '\033[1m==> %s\033[0m\n' "$bench"
    "$PY" "bench/$bench.py" || failed+=("$bench")
done
"$PY" -c "import sys; sys.path.insert(0, 'bench'); import harness; harness.write_summary()
print(f'pruned {harness.prune_compiled()} stale compiled components')"
echo "Done in $((SECONDS - started)) s. Summary: bench/results/summary.md"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: these benchmarks did not finish: ${failed[*]}" >&2
    exit 1
fi
