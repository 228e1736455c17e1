// The arithmetic of tensor, pipeline and expert parallelism, as vLLM does it, on plain integers:
// which part of a split axis each rank holds (whole heads, GQA replication, fused pieces), vocab
// padding, vLLM's default layer partition and its linear expert placement. No tensors here;
// shard.cpp and merge.cpp turn these ranges into views.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ckpt {

struct AxisRange {
  uint64_t begin = 0, length = 0;
  bool operator==(const AxisRange&) const = default;
};

// One logical piece of a split axis. A fused axis (Phi-3 qkv_proj: q ++ k ++ v) has several; a
// plain one has one. The axis length is u * Σ parts, where u is the size of one part (a head's
// rows for head pieces).
struct AxisPiece {
  uint64_t parts = 1;  // this piece's share of the axis, in parts
  uint64_t heads = 0;  // 0: split evenly; else split by whole heads (parts == heads)
  bool replicate = false;  // heads may be replicated when tp > heads (KV heads under GQA)
  std::string what;        // named in refusals ("num_attention_heads", "num_key_value_heads")
};

// The axis layouts of the recipe roles (nh query heads, nkv KV heads).
std::vector<AxisPiece> plain_axis();
std::vector<AxisPiece> q_heads_axis(uint64_t nh);
std::vector<AxisPiece> kv_heads_axis(uint64_t nkv);
std::vector<AxisPiece> fused_qkv_axis(uint64_t nh, uint64_t nkv);
std::vector<AxisPiece> fused_gate_up_axis();

// The ranges of [0, length) rank `rank` of `tp` holds, in the order they are concatenated, each
// a multiple of `unit` (a GPTQ pack factor or an FP8 block, in axis elements). Returns the
// reason when the axis cannot be split (tp does not divide it, heads, unit alignment).
struct AxisSplit {
  std::vector<AxisRange> ranges;
  std::string refusal;  // non-empty: not splittable
};
AxisSplit split_axis(uint64_t length, const std::vector<AxisPiece>& pieces, uint64_t tp, uint64_t rank,
                     uint64_t unit = 1);
// The inverse: the axis length whose rank slices are `rank_length` long (nullopt if none).
std::optional<uint64_t> unsplit_axis_length(uint64_t rank_length, const std::vector<AxisPiece>& pieces, uint64_t tp);

// vLLM's vocab-parallel layout: the vocab padded up to a multiple of `multiple`, tp equal
// blocks of rows, rows past the real vocab zero-filled.
struct VocabSplit {
  uint64_t padded = 0, per_rank = 0;
  std::string refusal;
  // Real rows [begin, begin + real) of rank r, followed by per_rank - real zero rows.
  AxisRange real_rows(uint64_t rank, uint64_t vocab) const;
};
VocabSplit split_vocab(uint64_t vocab, uint64_t multiple, uint64_t tp);

// vLLM's get_pp_indices: L/P layers per stage, the remainder one each to stages P-2, P-3, ...
// (the last stage never gets an extra one). Returns [first, last_exclusive) per stage.
std::vector<AxisRange> pp_layer_partition(uint64_t layers, uint64_t pp);

// vLLM's linear expert placement: E/ep experts per rank, the first E%ep ranks one more.
AxisRange ep_experts(uint64_t experts, uint64_t ep, uint64_t rank);

}  // namespace ckpt
