# --resume after SIGKILL at random (seeded) moments: the finished output is always byte-identical
# to one uninterrupted run, and a staged file damaged after the kill is rewritten, never taken as
# complete. (Concurrent parts killed and resumed: test_job_examples.sh.)
source "$(dirname "$0")/lib.sh"
RANDOM=19

src="$td/llama-trained"
args=(--dtype f32 --max-shard-size 2MB --threads 1 -q)
dst="$scratch/out"
t0=$(date +%s.%N)
"$ckpt" cast "$src" "$dst" "${args[@]}" || fail "single run"
full=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')
mv "$dst" "$scratch/ref"

# A moment in [0, full run time).
moment() { awk -v r="$RANDOM" -v t="$full" 'BEGIN{printf "%.3f", r / 32768 * t}'; }

# Damages one byte of a staged file that a killed run completed, if there is one.
damage_one() {
  local f
  f=$(find "$dst.ckpt-parts/files" -path '*/out/*.safetensors' 2>/dev/null | sort | head -1)
  [ -n "$f" ] || return 0
  printf '\x7f' | dd of="$f" bs=1 seek=$(($(stat -c %s "$f") / 2)) conv=notrunc status=none
  echo "damaged $f"
}

for iter in 1 2 3 4 5 6; do
  "$ckpt" cast "$src" "$dst" "${args[@]}" --resume &
  pid=$!
  sleep "$(moment)"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  staged=$(find "$dst.ckpt-parts/files" -path '*/out/*.safetensors' 2>/dev/null | wc -l)
  # (Only before the final rename: the output's files are the staged files' hard links.)
  [ "$iter" = 2 ] && [ ! -e "$dst" ] && damage_one
  # A kill after the final rename leaves a finished output; otherwise the run is resumed.
  [ -e "$dst" ] || "$ckpt" cast "$src" "$dst" "${args[@]}" --resume || fail "iteration $iter: resume"
  if diff -r "$scratch/ref" "$dst" >/dev/null; then
    pass "iteration $iter: killed with $staged files staged, resumed: identical to one run"
  else
    fail "iteration $iter: differs: $(diff -rq "$scratch/ref" "$dst" | head -3)"
  fi
  rm -rf "$dst" "$dst.ckpt-parts"
done

finish
