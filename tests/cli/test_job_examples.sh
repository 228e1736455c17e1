# The scheduler examples of recipes/jobs, run without a cluster, unchanged apart from paths:
# the Slurm array script as 8 concurrent processes (SLURM_ARRAY_TASK_ID 0..7), one killed midway
# and run again (as a requeue would), then the finalize script; the Kubernetes Indexed Job's
# command for every JOB_COMPLETION_INDEX, then its finalize command. Both give the bytes of one run.
source "$(dirname "$0")/lib.sh"
RANDOM=7
jobs_dir="$(dirname "$0")/../../recipes/jobs"
export CKPT="$ckpt"

# Slurm: the array's tasks as processes, with the variables Slurm sets.
src="$td/llama-trained"
args=(cast "$src" "$scratch/dst" --dtype f32 --max-shard-size 1MB)
"$ckpt" "${args[@]}" -q --threads 1 || fail "single run"
mv "$scratch/dst" "$scratch/ref"
task() {
  SLURM_ARRAY_TASK_ID=$1 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=8 SLURM_CPUS_PER_TASK=1 \
    bash "$jobs_dir/ckpt-part.sbatch" "${args[@]}" -q
}
for i in 0 1 2 3 4 5 6 7; do
  task $i &
  pids[$i]=$!
done
sleep "0.$((RANDOM % 4 + 1))"
kill -9 "${pids[5]}" 2>/dev/null
for i in 0 1 2 3 4 5 6 7; do wait "${pids[$i]}" 2>/dev/null; done
task 5 || fail "task 5 requeued"
bash "$jobs_dir/ckpt-finalize.sbatch" "$scratch/dst" || fail "finalize job"
diff -r "$scratch/ref" "$scratch/dst" >/dev/null \
  && pass "Slurm array: 8 concurrent tasks, task 5 killed and requeued, finalize job: identical to one run" \
  || fail "Slurm array output differs: $(diff -rq "$scratch/ref" "$scratch/dst" | head -3)"

# Kubernetes: the container command of each index, /data being the shared volume.
mkdir -p "$scratch/data"
ln -s "$(cd "$td/llama-trained" && pwd)" "$scratch/data/src"
part_cmd=$(sed -n 's|^ *- exec ckpt |exec "$CKPT" |p' "$jobs_dir/ckpt-parts.k8s.yaml" | sed "s|/data/|$scratch/data/|g")
[ -n "$part_cmd" ] || fail "no command found in ckpt-parts.k8s.yaml"
for i in 0 1 2 3 4 5 6 7; do JOB_COMPLETION_INDEX=$i sh -c "$part_cmd -q" & done
wait
final_cmd=$(sed -n 's|^ *command: \["ckpt", "finalize", \(.*\)\]$|\1|p' "$jobs_dir/ckpt-finalize.k8s.yaml" | tr -d '",' \
  | sed "s|/data/|$scratch/data/|g")
[ -n "$final_cmd" ] || fail "no finalize command found in ckpt-finalize.k8s.yaml"
# shellcheck disable=SC2086
"$ckpt" finalize $final_cmd -q || fail "k8s finalize"
"$ckpt" rechunk "$scratch/data/src" "$scratch/k8s-ref" --max-shard-size 5GB -q || fail "k8s single run"
same=1
for f in $(cd "$scratch/k8s-ref" && ls); do
  [ "$f" = ckpt-manifest.json ] || cmp -s "$scratch/k8s-ref/$f" "$scratch/data/dst/$f" || same=0
done
[ "$same" = 1 ] && pass "Kubernetes Indexed Job commands, 8 indexes, finalize: the files of one run" \
  || fail "Kubernetes output differs"
finish
