#!/usr/bin/env bash
# GPU machine: GPTQ of one Linear on the GPU (issue 16; kernels/calib/gptq_device.h) for the
# Llama-3-8B shapes — the Hessian of 4096 tokens (BF16 and float32 activations) and the solve of
# q_proj 4096x4096, gate 14336x4096, down 4096x14336 — each beside its arithmetic floor at the
# device's peak rate (tests/gpu/bench_gptq_gpu.cpp says which). Reported, no target yet.
# Usage: gpu_gptq.sh path/to/ckpt
set -euo pipefail
ckpt=$(realpath "${1:?usage: gpu_gptq.sh path/to/ckpt}")
build=$(dirname "$ckpt")
CKPT_BENCH=1 "$build/tests/bench_gptq_gpu" --gtest_filter='GptqGpuBench.*' | grep -E 'BENCH|FAILED|Failure'
