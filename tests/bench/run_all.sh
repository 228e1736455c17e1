#!/usr/bin/env bash
# `make bench`: runs every CPU benchmark (tests/bench/bench_*.sh) with the ckpt binary given.
# Each prints a result table; BENCHMARKS.md records them with this command.
set -euo pipefail
ckpt=${1:?usage: run_all.sh path/to/ckpt}
here=$(dirname "$0")
failed=()
for b in "$here"/bench_*.sh; do
  echo "== $(basename "$b")"
  bash "$b" "$ckpt" || failed+=("$(basename "$b")")
done
if [ ${#failed[@]} -ne 0 ]; then echo "targets missed in: ${failed[*]}"; exit 1; fi
