#include "commands/shard_layout.h"

#include <cctype>

#include "core/error.h"

namespace ckpt {

namespace {

uint64_t config_uint(const ojson& config, const char* key, uint64_t fallback) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_number_unsigned()) return 0;  // caught by the caller's check
  return it->get<uint64_t>();
}

std::string last_component(const std::string& name) {
  size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

uint64_t numel(const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

bool is_column_like(TensorRole r) {
  return r == TensorRole::kColumn || r == TensorRole::kQHeads || r == TensorRole::kKvHeads ||
         r == TensorRole::kFusedQkv || r == TensorRole::kFusedGateUp;
}

std::vector<AxisPiece> pieces_of(TensorRole role, const ModelDims& d) {
  switch (role) {
    case TensorRole::kQHeads: return q_heads_axis(d.heads);
    case TensorRole::kKvHeads: return kv_heads_axis(d.kv_heads);
    case TensorRole::kFusedQkv: return fused_qkv_axis(d.heads, d.kv_heads);
    case TensorRole::kFusedGateUp: return fused_gate_up_axis();
    default: return plain_axis();
  }
}

TensorLayout whole() { return {}; }

TensorLayout axis(size_t dim, std::vector<AxisPiece> pieces, uint64_t unit) {
  TensorLayout l;
  l.kind = TensorLayout::Kind::kAxis;
  l.dim = dim;
  l.pieces = std::move(pieces);
  l.unit = unit;
  return l;
}

}  // namespace

ModelDims ModelDims::from_config(const ojson& config, const std::string& file) {
  ModelDims d;
  d.heads = config_uint(config, "num_attention_heads", 0);
  d.kv_heads = config_uint(config, "num_key_value_heads", d.heads);
  d.layers = config_uint(config, "num_hidden_layers", 0);
  if (d.heads == 0 || d.kv_heads == 0 || d.layers == 0)
    fail(Errc::kInvalidArgument, file, "",
         "config.json needs positive integers num_attention_heads, num_key_value_heads and num_hidden_layers");
  d.quant = quant::read_scheme(&config, file);
  return d;
}

std::string TensorLayout::describe() const {
  switch (kind) {
    case Kind::kWhole: return "whole";
    case Kind::kVocab: return "vocab rows";
    case Kind::kExpert: return "expert " + std::to_string(expert);
    case Kind::kAxis: return "split dim " + std::to_string(dim) + (unit > 1 ? " in units of " + std::to_string(unit) : "");
  }
  return "?";
}

bool parse_expert(const std::string& name, std::string* prefix, uint64_t* id) {
  const std::string key = "experts.";
  for (size_t at = name.find(key); at != std::string::npos; at = name.find(key, at + 1)) {
    if (at > 0 && name[at - 1] != '.') continue;
    size_t p = at + key.size(), q = p;
    while (q < name.size() && std::isdigit(static_cast<unsigned char>(name[q]))) ++q;
    if (q == p || q >= name.size() || name[q] != '.' || q - p > 9) continue;
    *prefix = name.substr(0, at);
    *id = std::stoull(name.substr(p, q - p));
    return true;
  }
  return false;
}

int64_t layer_index(const std::string& name) {
  const std::string key = "model.layers.";
  if (name.compare(0, key.size(), key) != 0) return -1;
  size_t p = key.size(), q = p;
  while (q < name.size() && std::isdigit(static_cast<unsigned char>(name[q]))) ++q;
  if (q == p || q - p > 9 || q >= name.size() || name[q] != '.') return -1;
  return std::stoll(name.substr(p, q - p));
}

TensorLayout tensor_layout(const std::string& name, const std::vector<uint64_t>& shape, const RecipeRule& rule,
                           const ModelDims& dims, uint64_t tp, bool ep) {
  const TensorRole role = rule.role;
  const std::string part = last_component(name);
  auto refuse = [&](const std::string& why) -> TensorLayout {
    fail(Errc::kUnsupported, "", name, "role " + std::string(tensor_role_name(role)) + ": " + why);
  };
  if (role == TensorRole::kReplicated) return whole();
  if (ep && rule.expert) {
    TensorLayout l;
    std::string prefix;
    if (!parse_expert(name, &prefix, &l.expert)) refuse("an expert rule matched a name without experts.<n>.");
    l.kind = TensorLayout::Kind::kExpert;
    return l;
  }
  const quant::Scheme& q = dims.quant;
  const bool int4 = q.method == quant::Method::kInt4, fp8 = q.method == quant::Method::kFp8;
  const bool split_part = part == "weight" || part == "bias" || (int4 && q.owns_suffix(part));
  // Per-tensor scales (input_scale, k_scale, an FP8 per-tensor weight_scale) are copied whole.
  if (!split_part && numel(shape) == 1) return whole();
  if (role == TensorRole::kVocab) {
    const bool per_row = part == "weight" || part == "bias" || (part == "weight_scale" && (shape.size() == 1 || shape[1] == 1));
    if (!per_row || shape.empty()) refuse("only weights, biases and per-row scales can be vocab-parallel");
    TensorLayout l;
    l.kind = TensorLayout::Kind::kVocab;
    return l;
  }
  if (tp == 1) return whole();
  if (!split_part && !(fp8 && q.owns_suffix(part)))
    return refuse("no split rule for a tensor ending in '." + part + "' (quantization: " + q.describe() + ")");
  // FP8 (specs: vLLM fp8.py / compressed_tensors_w8a8_fp8.py): block scales follow the weight in
  // block units, per-channel scales follow its output rows.
  const bool block_scale = fp8 && q.granularity == quant::Granularity::kBlock &&
                           (part == "weight_scale_inv" || part == "weight_scale");
  // INT4 (vLLM gptq.py / awq.py / compressed_tensors_wNa16.py create_weights, and
  // marlin_utils.marlin_repeat_scales_on_all_ranks): packed dims split in units of the pack
  // factor 8; group rows in units of the group size; act-order or channelwise (group -1) scales
  // and zeros of a row-parallel layer stay whole on every rank.
  const uint64_t group = q.granularity == quant::Granularity::kGroup ? q.group_size : 1;
  const bool replicate_groups = q.act_order || q.granularity == quant::Granularity::kChannel;
  const bool ct = q.format == quant::Format::kCompressedTensors;
  if (int4 && (part == "weight_shape" || ((part == "g_idx" || part == "weight_g_idx") && is_column_like(role))))
    return whole();
  if (is_column_like(role)) {
    auto p = pieces_of(role, dims);
    if (part == "weight" || part == "bias") return axis(0, p, 1);
    if (block_scale) return axis(0, p, q.block_n);
    if (fp8) return axis(0, p, 1);  // per-channel [N, 1]
    if (ct) return axis(0, p, part == "weight_zero_point" ? 8 : 1);  // [N, K/8], [N, G], [N/8, G]
    if (part == "qzeros" || (part == "qweight" && q.format == quant::Format::kAwq)) return axis(1, p, 8);
    return axis(1, p, 1);  // GPTQ qweight [K/8, N], scales [G, N]
  } else if (role == TensorRole::kRow) {
    if (part == "bias") return whole();  // only rank 0 adds it (vLLM RowParallelLinear)
    if (part == "weight") {
      if (shape.size() != 2) refuse("a row-parallel weight must be 2-D");
      return axis(1, plain_axis(), 1);
    }
    if (block_scale) return axis(1, plain_axis(), q.block_k);
    if (fp8) return whole();  // per-channel: output rows are not split
    if (part == "g_idx" || part == "weight_g_idx") return axis(0, plain_axis(), 1);
    if (part == "qweight") return axis(0, plain_axis(), q.format == quant::Format::kGptq ? 8 : 1);
    if (part == "weight_packed") return axis(1, plain_axis(), 8);
    // scales / qzeros [G, *], weight_scale / weight_zero_point [*, G]
    if (replicate_groups) return whole();
    return axis(ct ? 1 : 0, plain_axis(), group);
  }
  return refuse("no split rule for a tensor ending in '." + part + "'");
}

RankSlice rank_slice(const TensorLayout& layout, const std::vector<uint64_t>& shape, uint64_t tp, uint64_t rank,
                     uint64_t vocab_multiple, uint64_t experts) {
  RankSlice s;
  switch (layout.kind) {
    case TensorLayout::Kind::kWhole:
      s.held = true;
      return s;
    case TensorLayout::Kind::kExpert: {
      AxisRange mine = ep_experts(experts, tp, rank);
      s.held = layout.expert >= mine.begin && layout.expert < mine.begin + mine.length;
      return s;
    }
    case TensorLayout::Kind::kVocab: {
      VocabSplit v = split_vocab(shape[0], vocab_multiple, tp);
      s.refusal = v.refusal;
      if (!s.refusal.empty()) return s;
      AxisRange real = v.real_rows(rank, shape[0]);
      s.held = true;
      if (real.length) s.ranges.push_back(real);
      s.pad = v.per_rank - real.length;
      return s;
    }
    case TensorLayout::Kind::kAxis: {
      AxisSplit a = split_axis(shape[layout.dim] * layout.unit, layout.pieces, tp, rank, layout.unit);
      s.refusal = a.refusal;
      if (!s.refusal.empty()) return s;
      s.held = true;
      for (const auto& r : a.ranges) s.ranges.push_back({r.begin / layout.unit, r.length / layout.unit});
      return s;
    }
  }
  return s;
}

std::vector<uint64_t> slice_shape(const TensorLayout& layout, const std::vector<uint64_t>& shape,
                                  const RankSlice& slice) {
  if (layout.kind == TensorLayout::Kind::kWhole || layout.kind == TensorLayout::Kind::kExpert) return shape;
  std::vector<uint64_t> out = shape;
  uint64_t n = slice.pad;
  for (const auto& r : slice.ranges) n += r.length;
  out[layout.dim] = n;
  return out;
}

}  // namespace ckpt
