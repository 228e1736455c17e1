// `ckpt quantize --device auto` (the default): whether the quantization math runs on a CUDA GPU
// or on the CPU, for one input. A pure function of what the caller measured, so that the rule is
// tested without a GPU (tests/unit/test_device_choice.cpp).
//
// The rule. Both paths read the source and write the output the same way (the executor's I/O,
// identical bytes); they differ in where the math runs. The CPU path spends
//     T_cpu = B / (threads x R_cpu)
// on it (R_cpu: source bytes per second one core quantizes); the GPU path spends
//     T_gpu = T_start + B / R_copy
// (T_start: creating the CUDA context and the pinned staging buffers; R_copy: the staging
// pipeline's rate, bound by the host -> device copy of the source). cuda is chosen only when a
// GPU is usable, the method runs there (RTN; not the calibrated GPTQ/AWQ), and T_gpu < T_cpu:
// a large input on few CPU threads. With many cores the CPU's math is already faster than
// copying the source over PCIe, so the CPU is kept (BENCHMARKS: 2.2 GB per-tensor FP8 on the
// 16-core H100 box, --device cpu 0.56-0.61x of cp against 1.61-1.72x for the unpipelined cuda).
// The constants (device_choice.cpp) are measured numbers; tests/bench/gpu_quantize_int4.sh
// prints both paths' times for the lead to check the choice against.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "quant/scheme.h"

namespace ckpt::quant {

struct DeviceInputs {
  Method method = Method::kFp8;
  bool calibrated = false;  // --method gptq|awq (runs on the CPU only)
  uint64_t bytes = 0;       // source bytes of the weights to quantize
  unsigned threads = 1;     // the executor's worker threads
  // Whether a CUDA GPU is usable (and this build has kernels/). Asked only when the estimate
  // favours the GPU: asking starts the CUDA driver (tens to hundreds of ms on a GPU machine), which
  // the default CPU path should not pay for. Null: no GPU.
  std::function<bool()> gpu_usable = nullptr;
};

struct DeviceChoice {
  bool cuda = false;
  std::string reason;  // one line, for -v: "cpu: ...", "cuda: ..."
};

// The model's numbers (see above), exposed for the tests and the -v line.
struct DeviceRates {
  double cpu_bytes_per_s_per_thread = 0;
  double copy_bytes_per_s = 0;
  double start_s = 0;
};
DeviceRates device_rates(Method method);

DeviceChoice choose_device(const DeviceInputs& in);

}  // namespace ckpt::quant
