// `ckpt quantize --int4 --method gptq|awq`: calibrated INT4 of a dense decoder (issue 16), on the
// CPU in float64 — the reference implementation.
//
// Sequential, layer by layer, as the references run it (llm-compressor
// pipelines/sequential/pipeline.py; GPTQModel looper/module_looper.py; AutoAWQ
// awq/quantize/quantizer.py): the calibration sequences are embedded; for each decoder layer the
// layer runs once on the current hidden states while the inputs of its Linears are observed
// (model::ActivationObserver::on_input), the layer's Linears are quantized, and the layer's output
// becomes the next layer's input.
//
// GPTQ (calib/gptq.h for the per-Linear algorithm): one Hessian per DISTINCT input — q/k/v share
// the attention input and gate/up the MLP input, so their Hessians are the same matrix; it is
// accumulated once (the references accumulate one per module: same values, more work). Inside a
// layer all Linears are quantized from one pass over the unquantized layer, NOT true-sequential
// (q/k/v → o → gate/up → down): that is llm-compressor's behaviour, the output vLLM users compare
// against, and it needs one calibration pass per layer instead of four. The layer is then rerun
// with its quantized (dequantized-exactly) weights to produce the next layer's inputs, so later
// layers correct the error of earlier ones (llm-compressor `propagate_error=True`).
//
// AWQ (AutoAWQ awq/quantize/quantizer.py _search_best_scale / _search_best_clip,
// awq/quantize/scale.py apply_scale): per layer, for each smoothing pair of a Llama-style layer —
// input_layernorm → q/k/v; v_proj → o_proj only when v's out_features equal o's in_features
// (never under GQA); post_attention_layernorm → gate/up; up_proj → down_proj — the mean |x| per
// input channel and the group-normalised mean |w| give s = x^r / (w^(1−r) + 1e-4) (clamped at
// 1e-4, divided by sqrt(max·min)) for r = i/18, i = 0..18, plus s = 1 (llm-compressor's 20-point
// duo-scaling grid, modifiers/transform/awq/base.py; AutoAWQ's r = i/20, i = 0..19 lacks s = 1, so
// its choice can score worse than no smoothing); each
// candidate quantizes W·s with the target RTN (divided back by s) and scores it as AutoAWQ does:
// for q/k/v and gate/up the mean squared change of the whole attention / MLP block's output (its
// `module2inspect`), the block rerun on the calibration inputs with the candidate weights and the
// rest unchanged; for the v→o and up→down pairs the block is the Linear itself, whose output
// change is computed exactly through the Gram matrix XᵀX. Every pair's scale is searched on the
// layer as it is, then all are folded (AutoAWQ applies its scales_list after the searches).
// Each best s is folded into the previous op (norm weight / v or up rows divided by s, balance
// columns multiplied), then the clipping search (on by default; not for q/k, as AutoAWQ): per row
// and group, max|w|·(1 − i/20) for i = 0..9, error = mean over ≤ 512 tokens of the group's output
// change, and the weights are clamped to the best range. The result is RTN of the smoothed,
// clipped weights. Next-layer inputs are the unquantized layer's outputs (AutoAWQ and
// llm-compressor both propagate unquantized activations for AWQ).
//
// Memory: the source is memory-mapped and read layer by layer (each Linear's weight is decoded
// when its layer is reached); held at once: the calibration hidden states (samples × seq-len ×
// hidden float64), one layer's observed inputs (AWQ: the attention and MLP inputs of every
// calibration token, and samples of the others) or Hessians (GPTQ, k² float64 per distinct input), the working copies of the Linear being quantized, and the quantized results of every
// Linear so far (the INT4 output, ~¼ of the BF16 source) until the plan writes them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "calib/gptq.h"
#include "commands/quantize.h"
#include "model/model_weights.h"
#include "model/token_ids.h"

namespace ckpt::calib {

// One stored array of an INT4 Linear (ops/int4_quant.h layouts) from its codes and parameters:
// the bytes the quantized checkpoint holds for `role` (codes, scales, zeros, g_idx = k / G, shape).
std::vector<uint8_t> int4_array(const Int4Weights& q, quant::PartRole role);

enum class CalibMethod { kGptq, kAwq };
const char* calib_method_name(CalibMethod m);  // "gptq", "awq"

struct CalibOptions {
  CalibMethod method = CalibMethod::kGptq;
  double damp = 0.01;      // GPTQ --damp
  bool act_order = true;   // GPTQ --act-order static (true) / none
  bool clip = true;        // AWQ clipping search (--no-clip)
};

// Calibration sequences from FILE: token ids (.safetensors / .json / .npy, model/token_ids.h) or
// text — .txt (documents separated by blank lines) or .jsonl (one object per line with a string
// "text") — tokenized with the model's own tokenizer (tokenizer.json / tokenizer.model in
// `model_dir`), special tokens added per document. All ids are concatenated in file order and cut
// into consecutive sequences of `seq_len` (as AutoAWQ's get_calib_dataset and the GPTQ paper's
// C4 blocks), the first `samples` kept. Fewer than one whole sequence is an error; fewer than
// `samples` keeps what there is (the report says how many).
model::TokenIds load_calibration(const std::string& path, const std::string& model_dir, uint64_t samples,
                                 uint64_t seq_len);

// What happened to one Linear.
struct LinearResult {
  std::string module;            // "model.layers.0.self_attn.q_proj"
  Int4Weights q;                 // what is written
  double error = 0;              // ‖(W − Q)X‖² / tokens of the written weights (AWQ: vs the original W)
  double rtn_error = 0;          // the same for plain RTN of the original weights
  double relative_error = 0;     // ‖W − Q‖ / ‖W‖ against the original weights (AWQ: Q unsmoothed)
  GptqOutcome gptq;              // GPTQ only
  // AWQ, from its smoothing pair's scale search: the grid point chosen (ratio -1: no pair; ratio 0
  // without duo: s = 1), its loss and the loss of s = 1 (plain RTN of the pair's Linears, unclipped).
  double awq_ratio = -1;
  bool awq_duo = false;
  double awq_loss = 0, awq_identity_loss = 0;
};

struct Calibrated {
  CalibMethod method = CalibMethod::kGptq;
  uint64_t samples = 0, seq_len = 0;
  std::vector<LinearResult> linears;                    // in layer order
  std::map<std::string, std::vector<double>> tensors;   // AWQ: smoothed norm / Linear weights by tensor
                                                        // name, values as stored (rounded to the dtype)
};

// Quantizes the decoder-layer Linears `qp` plans to quantize (plan_quantize with --int4), with
// the calibration ids. Refuses sources the CPU forward cannot run, tensor/pipeline-parallel
// outputs, MoE layers and fused q/k/v or gate/up Linears. `layer_done(i, layers)` is called after
// each layer (progress).
Calibrated calibrate_int4(const std::string& src, const QuantizePlan& qp, const model::TokenIds& calib,
                          const CalibOptions& options,
                          const std::function<void(uint64_t, uint64_t)>& layer_done = nullptr);

// Replaces the producers of `qp`'s quantized Linears (and the AWQ-smoothed tensors) by the
// calibrated results.
void apply_calibrated(QuantizePlan& qp, const Calibrated& c);

// Installs the dequantized results (and smoothed tensors) into a model opened from the source, so
// that the forward runs exactly what the written checkpoint decodes to (quality measurement).
void install_calibrated(model::Model& m, const Calibrated& c);

// quantize_report(qp) with per-Linear calibrated errors beside RTN's, damping, fallbacks and the
// calibration set's size.
ojson calibrated_report(const QuantizePlan& qp, const Calibrated& c);
std::string calibrated_summary_line(const QuantizePlan& qp, const Calibrated& c);

}  // namespace ckpt::calib
