// Does an output compute the same model as its source? Both run on the same token ids and are
// compared where users notice (top-1 agreement, top-5 overlap, KL(src||dst), max |delta logit|,
// perplexity, greedy continuations) and where a fault can be located: layer by layer, in
// lockstep, the destination's layer is also run on the source's own input, and each Linear's
// output is compared with the source's, so the first layer and the first Linear (in computation
// order) whose agreement drops are named — a broken shard or a bad quantization is located, not
// only detected. The comparison is written once, over model::StepForward (step_forward.h): the
// CPU reference runs it in float64, the CUDA forward (kernels/runtime/gpu_step_forward.h) in
// float32 with the activations compared on the device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "formats/strict_json.h"
#include "model/model_weights.h"
#include "model/step_forward.h"
#include "model/token_ids.h"

namespace ckpt::model {

// What the destination is relative to the source, which sets the default thresholds.
enum class Transformation { kSame, kCast, kFp8, kInt4 };
const char* transformation_name(Transformation t);
// kFp8 when dst has FP8 Linears the source has not, kCast when Linear dtypes differ, kSame else.
Transformation detect_transformation(const Model& src, const Model& dst);

struct Thresholds {
  double min_top1 = 0;          // fraction of positions whose argmax agrees
  double max_mean_kl = 0;       // mean KL(src || dst) over positions, nats
  double max_linear_error = 0;  // a Linear's relative error ||y_dst - y_src|| / ||y_src|| on the source's input
  std::string describe() const;
};
Thresholds default_thresholds(Transformation t);

struct LinearAgreement {
  std::string name;         // "self_attn.q_proj"
  double relative_error = 0;
  double cosine = 1;
  std::string worst_rank;   // for a column-parallel Linear of a TP output: the rank holding the worst output
};

struct LayerAgreement {
  uint64_t layer = 0;
  double hidden_cosine = 1;       // end to end: each model on its own path, min over tokens
  double isolated_cosine = 1;     // the dst layer on the source's input, min over tokens
  std::vector<LinearAgreement> linears;  // in computation order
};

struct Comparison {
  std::string device;  // the forwards' backend: "cpu" (float64 reference) or "cuda" (float32 activations)
  Transformation transformation = Transformation::kSame;
  Thresholds thresholds;
  uint64_t positions = 0;
  double top1 = 0, top5_overlap = 0, mean_kl = 0, max_kl = 0, max_abs_logit_delta = 0;
  double src_perplexity = 0, dst_perplexity = 0;
  std::vector<LayerAgreement> layers;
  // The first layer / Linear over the thresholds (-1 / "" when none).
  int64_t first_bad_layer = -1;
  std::string first_bad_linear;
  std::vector<std::vector<int64_t>> src_generated, dst_generated;  // greedy continuations per sequence
  // The continuations as text, decoded by the source's tokenizer (empty when it ships none).
  std::vector<std::string> src_generated_text, dst_generated_text;
  std::vector<int64_t> first_divergence;  // per sequence: index of the first differing token, -1 none
  std::vector<std::string> failures;      // one line per threshold broken
  // Where the time went: the forwards' layers (embedding included), the activation comparisons,
  // the logits (read back and judged), the greedy continuations.
  struct Seconds {
    double layers = 0, diffs = 0, logits = 0, generate = 0;
  } seconds;
  ojson to_json() const;
  std::string summary() const;  // a few human lines
};

struct CompareOptions {
  uint64_t generate = 0;
  Workers workers;  // threads of the forwards, and their cancellation
  std::optional<double> min_top1, max_mean_kl;  // override the defaults
};

// Fails (Errc::kInvalidArgument) unless dst has src's vocabulary, width, depth and family.
void check_comparable(const Model& src, const Model& dst);

// On the CPU reference forward.
Comparison compare_models(const Model& src, const Model& dst, const TokenIds& ids, const CompareOptions& options);
// On the given forwards (cpu_compared_forwards, or the CUDA ones of
// kernels/runtime/gpu_step_forward.h): src and dst with KV caches of ids.length + generate tokens,
// for ids.sequences sequences. The one implementation of the comparison, whatever the backend.
Comparison compare_models(const Model& src, const Model& dst, const TokenIds& ids, const CompareOptions& options,
                          ComparedForwards& forwards);

// Perplexity the way llama.cpp's `perplexity` tool measures it: the ids (rows concatenated) cut
// into non-overlapping chunks of `chunk` tokens, the first token of each chunk replaced by BOS
// when the model has one, and only the second half of each chunk scored (each of its tokens
// predicted from everything before it in the chunk). Tokens past the last whole chunk are left out.
struct PerplexityResult {
  double perplexity = 0, mean_nll = 0;
  uint64_t chunks = 0, scored_tokens = 0;
  std::vector<double> chunk_perplexity;  // running perplexity after each chunk, as llama.cpp prints
};
PerplexityResult perplexity(const Model& m, const TokenIds& ids, uint64_t chunk, const Workers& workers = {});

// Seeded ids in [0, vocab) (the default evaluation set of validate --against).
TokenIds seeded_token_ids(uint64_t vocab, uint64_t sequences, uint64_t length, uint64_t seed);

}  // namespace ckpt::model
