#!/usr/bin/env bash
# ckpt stage: a verified copy in shared memory (here a --shm-root under the scratch directory, and
# once the real /dev/shm), refusing to clobber, refusing before copying when space is short (a
# sparse source larger than the file system's free space), refusing a copy that differs from the
# manifest, TP roots staged rank by rank, --drop; validate --from-shm and --io without a GPU.
source "$(dirname "$0")/lib.sh"
st_edit=$(dirname "$0")/../support/st_edit.py
shm=$scratch/shm
mkdir -p "$shm"

"$ckpt" rechunk "$td/llama" "$scratch/rc" -q
"$ckpt" shard --tp 2 "$td/llama" "$scratch/tp2" -q

# A checkpoint with a manifest: every file copied byte for byte, the weights verified.
"$ckpt" stage "$scratch/rc" --shm m1 --shm-root "$shm" 2>"$scratch/log" || fail "stage rc: $(cat "$scratch/log")"
grep -q "1 weight file verified against the manifest -> $shm/m1" "$scratch/log" || fail "stage summary: $(cat "$scratch/log")"
for f in "$scratch"/rc/*; do cmp -s "$f" "$shm/m1/$(basename "$f")" || fail "staged $(basename "$f") differs"; done
[ -f "$shm/m1/ckpt-staged.json" ] || fail "no marker"
[ "$(ls -A "$shm" | grep -c ckpt-tmp)" = 0 ] || fail "temporary left behind"
pass "stage copies and verifies"

# The default name is the source directory's; --json reports the path and what was verified.
"$ckpt" stage "$scratch/rc/" --shm-root "$shm" --json >"$scratch/j" 2>/dev/null || fail "stage default name"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['path'].endswith('/rc') and j['verified_files']==1 and j['manifest']" \
  "$scratch/j" || fail "stage --json: $(cat "$scratch/j")"

# Without a manifest there is nothing to verify against, and it says so.
"$ckpt" stage "$td/llama" --shm plain --shm-root "$shm" 2>"$scratch/log" || fail "stage plain"
grep -q "no ckpt-manifest.json: not verified" "$scratch/log" || fail "unverified summary: $(cat "$scratch/log")"

# Refuses to clobber; --force replaces.
expect_error 1 "the destination exists (use --force to replace it)" "$ckpt" stage "$scratch/rc" --shm m1 --shm-root "$shm"
"$ckpt" stage "$scratch/rc" --shm m1 --shm-root "$shm" -f -q || fail "stage --force"

# A TP output root: its files and each rank's.
"$ckpt" stage "$scratch/tp2" --shm tp2 --shm-root "$shm" 2>"$scratch/log" || fail "stage tp2: $(cat "$scratch/log")"
for r in rank-0 rank-1; do
  cmp -s "$scratch/tp2/$r/model.safetensors" "$shm/tp2/$r/model.safetensors" || fail "tp2 $r not staged"
done
grep -q "2 weight files verified" "$scratch/log" || fail "tp2 summary: $(cat "$scratch/log")"
pass "TP root staged rank by rank"

# Bad names never reach outside the root.
expect_error 2 "a staged name is one path component" "$ckpt" stage "$scratch/rc" --shm ../x --shm-root "$shm"
expect_error 2 "a staged name is one path component" "$ckpt" stage "$scratch/rc" --shm .hidden --shm-root "$shm"
expect_error 1 "shared-memory root does not exist" "$ckpt" stage "$scratch/rc" --shm x --shm-root "$scratch/nope"

# A copy that differs from the manifest is refused, naming the source's file and tensor, and leaves nothing.
cp -r "$scratch/rc" "$scratch/flip"
python3 "$st_edit" flip "$scratch/flip/model.safetensors" model.layers.1.mlp.up_proj.weight 100
expect_error 1 "flip/model.safetensors: tensor 'model.layers.1.mlp.up_proj.weight': checksum:" \
  "$ckpt" stage "$scratch/flip" --shm flip --shm-root "$shm"
[ ! -e "$shm/flip" ] && [ "$(ls -A "$shm" | grep -c ckpt-tmp)" = 0 ] || fail "a refused stage left files: $(ls -A "$shm")"

# Space: a sparse source larger than the root's free space is refused before anything is created,
# naming what it needs and what is free.
avail=$(df -B1 --output=avail "$shm" | tail -1)
make_sparse_model $(( avail / 1048576 + 1024 )) "$scratch/huge"
before=$(ls -A "$shm")
expect_error 1 "not enough space to stage .*huge: it needs .* has .* free; nothing was copied" \
  "$ckpt" stage "$scratch/huge" --shm huge --shm-root "$shm"
[ "$(ls -A "$shm")" = "$before" ] || fail "the space refusal created something: $(ls -A "$shm")"

# validate --from-shm loads the staged copy, and the report says so.
"$ckpt" validate --from-shm m1 --shm-root "$shm" --cpu-only --report "$scratch/v.json" >/dev/null 2>"$scratch/log" ||
  fail "validate --from-shm: $(cat "$scratch/log")"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['passed'] and r['from_shm']['name']=='m1' and r['directory'].endswith('/m1')" \
  "$scratch/v.json" || fail "from_shm not in the report"
"$ckpt" validate --from-shm tp2 --shm-root "$shm" --cpu-only >/dev/null 2>&1 || fail "validate --from-shm tp2"
expect_error 1 "no staged copy named 'nope'" "$ckpt" validate --from-shm nope --shm-root "$shm" --cpu-only
expect_error 2 "from-shm" "$ckpt" validate "$scratch/rc" --from-shm m1 --shm-root "$shm"
expect_error 2 "validate needs DIR (or --from-shm NAME)" "$ckpt" validate --cpu-only
pass "validate --from-shm"

# --io: checked when parsed; without a GPU the run says gds read nothing and records why.
expect_error 2 "--io" "$ckpt" validate "$scratch/rc" --io nvme
if ! nvidia-smi -L >/dev/null 2>&1; then
  for io in gds auto; do
    "$ckpt" validate --from-shm m1 --shm-root "$shm" --io $io --report "$scratch/io.json" >/dev/null 2>"$scratch/log"
    rc=$?
    [ $rc = 3 ] || fail "--io $io without a GPU: exit $rc, want 3"
    grep -q "no GPU: .*did not run, so --io $io read nothing (cuFile was not tried)" "$scratch/log" ||
      fail "--io $io no-GPU message: $(cat "$scratch/log")"
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['io']=={'requested':sys.argv[2],'used':'none','reason':'no GPU'}" \
      "$scratch/io.json" $io || fail "--io $io not in the report"
  done
  pass "--io without a GPU"
fi

# --drop: only what stage made, renamed aside then removed.
mkdir "$shm/other"
expect_error 2 "not a copy made by ckpt stage (no ckpt-staged.json); left alone" "$ckpt" stage --drop other --shm-root "$shm"
[ -d "$shm/other" ] || fail "drop removed a foreign directory"
"$ckpt" stage --drop m1 --shm-root "$shm" -q || fail "drop m1"
[ ! -e "$shm/m1" ] && [ "$(ls -A "$shm" | grep -c ckpt-drop)" = 0 ] || fail "drop left $(ls -A "$shm")"
expect_error 1 "no staged copy named 'm1'" "$ckpt" stage --drop m1 --shm-root "$shm"
expect_error 2 "stage needs SRC (or --drop NAME)" "$ckpt" stage --shm-root "$shm"
pass "drop"

# The real /dev/shm, where the machine has one: stage, validate from it, drop.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  name=ckpt-test-$$
  "$ckpt" stage "$scratch/rc" --shm $name -q || fail "stage into /dev/shm"
  "$ckpt" validate --from-shm $name --cpu-only >/dev/null 2>&1 || fail "validate --from-shm in /dev/shm"
  "$ckpt" stage --drop $name -q || fail "drop from /dev/shm"
  [ ! -e /dev/shm/$name ] || fail "/dev/shm/$name left"
  pass "/dev/shm"
fi
finish
