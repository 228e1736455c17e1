# Shared by the benchmark scripts: timing with /usr/bin/time -v, medians, synthetic checkpoints.
# Usage: source lib.sh; every timing is wall seconds, every RSS is MB.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
synthetic_bin=${CKPT_SYNTHETIC:-$bench_root/build/tests/ckpt_make_synthetic}
bench_dir=${CKPT_BENCH_DIR:-${TMPDIR:-/tmp}/ckpt-bench}
mkdir -p "$bench_dir"

# timed CMD... : runs CMD under /usr/bin/time -v; sets $secs, $rss_mb and $cpu_s (user + system
# seconds: what a loaded machine's scheduling does not inflate).
timed() {
  /usr/bin/time -v "$@" >/dev/null 2>"$bench_dir/.time" || { cat "$bench_dir/.time" >&2; return 1; }
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$bench_dir/.time")
  rss_mb=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$bench_dir/.time")
  cpu_s=$(awk -F': ' '/User time|System time/ {s+=$2} END {printf "%.2f", s}' "$bench_dir/.time")
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

# fsync_timed PATH: wall seconds of fsync'ing PATH alone (`sync PATH`: not what other processes
# left dirty, which a bare sync would wait for too); sets $secs.
fsync_timed() {
  local start end
  start=$(date +%s.%N)
  sync "$1"
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.3f", b - a}')
}

# against_cp SRC_FILE RUNS OUT_DIR CMD...: alternates `cp SRC_FILE` with CMD (which writes
# OUT_DIR), RUNS times each, every run from a settled page cache; sets cp_med and cmd_med (median
# seconds), cp_rss and cmd_rss (peak MB), and cp_runs and cmd_runs (every time, for the record).
# cp leaves its bytes in the page cache while CMD (durable by default) fsyncs its output before the
# rename, so an fsync of each output (`sync FILE`: that file only, not what other processes left
# dirty) is timed after it too: cpsync_med / cpsync_runs is cp + fsync (until cp's bytes are on
# disk, the fair floor for a durable CMD) and cmdsync_med / cmdsync_runs is CMD + fsync of OUT.
# With against_cp_nosync=1, CMD --no-sync is timed as well (nosync_med / nosync_runs: the fair
# comparison with plain cp, both leaving the bytes in the page cache). cp_cpu_runs, cmd_cpu_runs
# and nosync_cpu_runs list each run's CPU seconds.
against_cp() {
  local file=$1 n=$2 out=$3
  shift 3
  local cps=() cmds=() cprss=() cmdrss=() cpss=() cmdss=() nss=() cpc=() cmdc=() nsc=() i
  for ((i = 0; i < n; i++)); do
    rm -rf "$bench_dir/cp-out" "$out"; settle
    timed cp "$file" "$bench_dir/cp-out"; cps+=("$secs"); cprss+=("$rss_mb"); cpc+=("$cpu_s")
    fsync_timed "$bench_dir/cp-out"; cpss+=("$(awk -v a="${cps[-1]}" -v b="$secs" 'BEGIN{printf "%.3f", a + b}')")
    rm -rf "$bench_dir/cp-out"; settle
    timed "$@"; cmds+=("$secs"); cmdrss+=("$rss_mb"); cmdc+=("$cpu_s")
    fsync_timed "$out"; cmdss+=("$(awk -v a="${cmds[-1]}" -v b="$secs" 'BEGIN{printf "%.3f", a + b}')")
    if [ "${against_cp_nosync:-0}" = 1 ]; then
      rm -rf "$out"; settle
      timed "$@" --no-sync; nss+=("$secs"); nsc+=("$cpu_s")
    fi
  done
  rm -rf "$bench_dir/cp-out" "$out"
  cp_med=$(median "${cps[@]}"); cmd_med=$(median "${cmds[@]}")
  cp_rss=$(max_of "${cprss[@]}"); cmd_rss=$(max_of "${cmdrss[@]}")
  cp_runs="${cps[*]}"; cmd_runs="${cmds[*]}"
  cp_cpu_runs="${cpc[*]}"; cmd_cpu_runs="${cmdc[*]}"; nosync_cpu_runs="${nsc[*]}"
  cpsync_med=$(median "${cpss[@]}"); cmdsync_med=$(median "${cmdss[@]}")
  cpsync_runs="${cpss[*]}"; cmdsync_runs="${cmdss[*]}"
  nosync_med=; nosync_runs=
  if [ ${#nss[@]} -gt 0 ]; then nosync_med=$(median "${nss[@]}"); nosync_runs="${nss[*]}"; fi
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
