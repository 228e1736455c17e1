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

# against_cp SRC_FILE RUNS OUT_DIR CMD...: alternates `cp SRC_FILE` with CMD (which writes
# OUT_DIR), RUNS times each, every run from a settled page cache; sets cp_med and cmd_med (median
# seconds), cp_rss and cmd_rss (peak MB), and cp_runs and cmd_runs (every time, for the record).
against_cp() {
  local file=$1 n=$2 out=$3
  shift 3
  local cps=() cmds=() cprss=() cmdrss=() i
  for ((i = 0; i < n; i++)); do
    rm -rf "$bench_dir/cp-out" "$out"; settle
    timed cp "$file" "$bench_dir/cp-out"; cps+=("$secs"); cprss+=("$rss_mb")
    rm -rf "$bench_dir/cp-out"; settle
    timed "$@"; cmds+=("$secs"); cmdrss+=("$rss_mb")
  done
  rm -rf "$bench_dir/cp-out" "$out"
  cp_med=$(median "${cps[@]}"); cmd_med=$(median "${cmds[@]}")
  cp_rss=$(max_of "${cprss[@]}"); cmd_rss=$(max_of "${cmdrss[@]}")
  cp_runs="${cps[*]}"; cmd_runs="${cmds[*]}"
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
