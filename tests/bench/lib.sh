# Shared by the benchmark scripts: timing with /usr/bin/time -v, medians, synthetic checkpoints.
# Usage: source lib.sh; every timing is wall seconds, every RSS is MB.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
synthetic_bin=${CKPT_SYNTHETIC:-$bench_root/build/tests/ckpt_make_synthetic}
bench_dir=${CKPT_BENCH_DIR:-${TMPDIR:-/tmp}/ckpt-bench}
mkdir -p "$bench_dir"

# timed CMD... : runs CMD under /usr/bin/time -v; sets $secs and $rss_mb.
timed() {
  /usr/bin/time -v "$@" >/dev/null 2>"$bench_dir/.time" || { cat "$bench_dir/.time" >&2; return 1; }
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$bench_dir/.time")
  rss_mb=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$bench_dir/.time")
}

# durable CMD...: wall seconds of CMD followed by sync (until the bytes are on disk); sets $secs.
# Beside `timed`, whose page-cache times swing with the kernel's write-back heuristics once the
# output approaches the dirty-memory limit, this is the time a pipeline really waits for.
durable() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null && sync
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.3f", b - a}')
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
max_of() { printf '%s\n' "$@" | sort -g | tail -1; }

# synthetic NAME ARGS...: a synthetic Llama-shaped checkpoint under $bench_dir/NAME (made once),
# left in a clean page cache with only the source cached (see warm).
synthetic() {
  local name=$1
  shift
  [ -f "$bench_dir/$name/config.json" ] || "$synthetic_bin" "$bench_dir/$name" "$@" >/dev/null
  warm "$bench_dir/$name"/*
  echo "$bench_dir/$name"
}

# warm FILES...: starts from an empty page cache (when allowed to drop it) holding just FILES, so
# that no run pays for reclaiming memory that earlier work filled; as root only.
warm() {
  sync
  [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches
  cat "$@" >/dev/null
}

# Drops written data to disk between runs so that one run's write-back does not land in the next.
settle() { sync; }
