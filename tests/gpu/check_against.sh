#!/usr/bin/env bash
# GPU machine: `ckpt validate --against` on the CUDA forwards (phase "against (cuda)") gives the
# verdicts the CPU reference gives: tests/cli/test_forward.sh run with CKPT_AGAINST_DEVICE=cuda —
# re-sharded, cast, FP8 and INT4 outputs pass, the planted faults (a swapped pair of rows in one
# rank's q_proj, an FP8 scale with a flipped exponent bit, an FP8 Linear left unscaled, GPTQ v1
# zeros read as v2, one MoE expert's scale flipped) exit 1 naming the same layer, Linear and rank.
set -euo pipefail
ckpt=${1:?ckpt binary}
td=${2:?testdata dir}
CKPT_AGAINST_DEVICE=cuda bash "$(dirname "$0")/../cli/test_forward.sh" "$ckpt" "$td"
echo "check_against: all passed"
