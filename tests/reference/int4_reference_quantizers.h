// Plain re-implementations of the three reference INT4 quantizers' numerics and packings, each
// written from its own source with its own arithmetic (not ours), for decoding tests:
//  - GPTQModel / AutoGPTQ: ModelCloud/GPTQModel gptqmodel/quantization/quantizer.py (find_params,
//    quantize: float32 scale, zero = round(-xmin / scale), all-zero rows widened to [-1, 1],
//    symmetric xmin = -absmax only when a value is negative) and nn_modules/qlinear pack_original
//    (qweight |= q[8r + j] << 4j; v1 qzeros = zero - 1, packed along N; scales to float16);
//  - AutoAWQ: casper-hansen/AutoAWQ awq/quantize/quantizer.py pseudo_quantize_tensor (float16
//    arithmetic, raw min/max, range clamped at 1e-5) and awq/modules/linear/gemm.py from_linear
//    (order_map [0, 2, 4, 6, 1, 3, 5, 7] along N);
//  - compressed-tensors: quantization/utils/helpers.py calculate_qparams (in the observed dtype),
//    lifecycle/forward_helpers.py _quantize (round(x / s + zp) in the weight dtype) and
//    compressors/pack_quantized/helpers.py pack_to_int32 (+8 offset; zero points packed along N).
// Each returns the stored arrays and the dequantized values its own kernels would compute.
#pragma once

#include <cstdint>
#include <vector>

namespace ckpt::test::refq {

struct Packed {
  std::vector<uint32_t> weights, zeros;
  std::vector<uint16_t> scales;  // F16 (GPTQ, AWQ) or BF16 (compressed-tensors) bits
  std::vector<uint8_t> codes;    // [N][K] unsigned codes
  std::vector<uint8_t> zero;     // [N][G] unsigned zeros as the readers see them
  std::vector<float> scale;      // [N][G] stored scales as float
  std::vector<float> dequant;    // [N][K] (q - z) * scale, float32
};

// `w` [n][k] float32 values (exact BF16 values for compressed-tensors, exact F16 for AWQ).
Packed gptqmodel_quantize(const std::vector<float>& w, int64_t n, int64_t k, int64_t group, bool sym);
Packed autoawq_quantize(const std::vector<float>& w, int64_t n, int64_t k, int64_t group);
Packed compressed_tensors_quantize(const std::vector<float>& w, int64_t n, int64_t k, int64_t group, bool sym);

}  // namespace ckpt::test::refq
