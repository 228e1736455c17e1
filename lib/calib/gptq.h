// Calibrated INT4 weight quantization of one Linear: the GPTQ column sweep (Frantar et al.,
// "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers") as
// llm-compressor implements it, on the CPU in float64 (the reference the CUDA path is held to).
//
// Choices where the public implementations differ (each followed source named):
//  - Hessian: H = 2/n · Σ x xᵀ over the n calibration tokens that reach the Linear's input
//    (GPTQModel gptqmodel/quantization/gptq.py normalises per token; llm-compressor
//    modifiers/gptq/gptq_quantize.py per sequence — the scale of H does not change the result, the
//    sweep uses ratios and damping is relative). Summed in float64 in token order (deterministic).
//  - Dead inputs (diag H == 0): H[d, d] = 1 and W[:, d] = 0 before damping (all references).
//  - Damping: λ = damp · mean(diag H) on the diagonal (llm-compressor `dampening_frac` 0.01). When a
//    Cholesky factorisation fails, damp grows by 0.01 and it is retried while damp < 1
//    (GPTQModel's `damp_auto_increment` ladder); after that the Linear falls back to RTN and the
//    report says so — never a NaN.
//  - Inverse route: L = chol(H + λI); H⁻¹ = L⁻ᵀL⁻¹; U = upper Cholesky factor of H⁻¹ (torch
//    cholesky / cholesky_inverse / cholesky(upper=True) in every reference).
//  - Sweep: 128-column blocks with lazy batch updates: inside a block, column by column
//    q = Q(w), e = (w − q)/U[c, c], the block's later columns −= e·U[c, ·]; after the block the
//    trailing columns −= E·U[block, trailing] (llm-compressor gptq_quantize.py quantize_weight;
//    GPTQModel gptq.py quantize; IST-DASLab/gptq gptq.py fasterquant — identical loops).
//  - Group scales: chosen up front from the ORIGINAL weights (llm-compressor: the weight observer
//    runs on module.weight before quantize_weight; GPTQModel/AutoGPTQ `static_groups=True`), with
//    the one RTN definition of ops/int4_quant.h. So GPTQ changes codes only; scales and zeros equal
//    RTN's, in every output format.
//  - Act-order "static" (llm-compressor's default actorder "static"/"weight",
//    modifiers/gptq/base.py): columns are swept in order of decreasing diag(H) — a STABLE sort, so
//    ties keep column order (torch.argsort is not stable: a bit-exactness hazard the references
//    leave open) — while groups stay the contiguous original ones: g_idx is the trivial k / G and
//    Marlin needs no permutation. "none" sweeps in column order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ops/int4_quant.h"

namespace ckpt::calib {

// Accumulates H = 2/n Σ x xᵀ for one Linear input of width k.
class Hessian {
 public:
  explicit Hessian(uint64_t k) : k_(k), sum_(k * k, 0.0) {}
  // x: [tokens, k] row-major.
  void add(const double* x, uint64_t tokens);
  uint64_t width() const { return k_; }
  uint64_t tokens() const { return n_; }
  // The full symmetric [k, k] matrix 2/n Σ x xᵀ (zeros when no token was seen).
  std::vector<double> matrix() const;

 private:
  uint64_t k_, n_ = 0;
  std::vector<double> sum_;  // upper triangle (a <= b) of Σ x xᵀ
};

// One Linear's INT4 weights: group parameters, codes and the values they decode to.
struct Int4Weights {
  ops::Int4Scheme scheme;
  ops::Int4Geometry geo;
  std::vector<ops::Int4Params> params;  // [n * groups]
  std::vector<uint8_t> codes;           // [n * k]
  std::vector<double> dequantized;      // [n * k]: (q - z) · S
};

struct GptqOptions {
  double damp = 0.01;      // fraction of mean(diag H) added to the diagonal
  bool act_order = true;   // "static": sweep in decreasing diag(H) order, groups unchanged
  uint64_t block = 128;    // columns per lazy-batch block
};

struct GptqOutcome {
  double damp = 0;             // the damping fraction that factorised (the last one tried on fallback)
  bool rtn_fallback = false;   // no damping below 1 factorised H: the Linear is RTN
  uint64_t dead_inputs = 0;    // columns whose diag(H) was 0 (weights zeroed, as the references do)
  double sweep_loss = 0;       // Σ (w − q)² / U[c, c]² / 2 (what llm-compressor logs)
};

// The two choices above that the CPU reference and the CUDA twin (kernels/calib/gptq_device.h)
// must make identically, written once:
// The sweep order of the k columns from diag(H): decreasing, stable (act-order static), or column
// order.
std::vector<uint32_t> gptq_sweep_order(const std::vector<double>& diag, bool act_order);
// The damping fractions tried in turn: first, first + 0.01, ... while below 1 (the same additions,
// so the same doubles on every path).
std::vector<double> gptq_damping_ladder(double first);

// RTN of a [n, k] float32 weight (row-major) with the ops/int4_quant.h definition. A NaN/Inf
// weight or an overflowing scale is returned as the issue (out untouched past the parameters).
ops::Int4Issue rtn_int4(const ops::Int4Scheme& scheme, const float* w, uint64_t n, uint64_t k, Int4Weights* out);

// GPTQ of a [n, k] float32 weight against H ([k, k], from Hessian::matrix()). Group parameters
// are RTN's (from `w` as given); codes come from the sweep. Errors as rtn_int4.
ops::Int4Issue gptq_int4(const ops::Int4Scheme& scheme, const float* w, uint64_t n, uint64_t k,
                         const std::vector<double>& h, const GptqOptions& options, Int4Weights* out,
                         GptqOutcome* outcome);

// The mean squared output error per calibration token of replacing w by `dequantized`:
// ‖(W − Q) X‖² / n = ½ Σ_rows eᵀ H e with H = 2/n X Xᵀ (the undamped matrix).
double output_error(const std::vector<double>& h, const float* w, const std::vector<double>& dequantized, uint64_t n,
                    uint64_t k);

// Packs codes [n, k] into K-packed words as ops::int4_quantize_reference writes them:
// words[r * ceil(k / 8) + c / 8] nibble c % 8 = codes[r * k + c] (nibbles past k are 0).
std::vector<uint32_t> pack_codes_k(const std::vector<uint8_t>& codes, uint64_t n, uint64_t k);

}  // namespace ckpt::calib
