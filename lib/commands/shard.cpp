#include "commands/shard.h"

#include <map>

#include "commands/hf_layout.h"
#include "commands/rechunk.h"
#include "commands/shard_layout.h"
#include "core/error.h"
#include "core/file_io.h"
#include "plan/axis_concat.h"

namespace ckpt {

namespace {

struct Item {
  const TensorRef* tensor;
  const RecipeRule* rule;
  uint64_t experts = 0;             // experts in this tensor's MoE layer (expert tensors)
  std::vector<uint64_t> stages;     // the pipeline stages holding it
};

// Experts per MoE layer, keyed by the name part before "experts.<n>.": max id + 1.
std::map<std::string, uint64_t> count_experts(const Checkpoint& ck, const Recipe& recipe) {
  std::map<std::string, uint64_t> counts;
  for (const auto& t : ck.tensors) {
    std::string prefix;
    uint64_t id = 0;
    const RecipeRule* rule = recipe.match(t.name);
    if (rule && rule->expert && parse_expert(t.name, &prefix, &id)) counts[prefix] = std::max(counts[prefix], id + 1);
  }
  return counts;
}

// vLLM's placement: decoder layers by the partition, the embedding on the first stage, the
// final norm and lm_head on the last (which also needs the embedding when lm_head is tied to
// it), and layers past num_hidden_layers (DeepSeek-V3's MTP draft layer) on the last.
std::vector<uint64_t> stages_of(const std::string& name, const std::vector<AxisRange>& parts, bool tied) {
  const uint64_t last = parts.size() - 1;
  int64_t layer = layer_index(name);
  if (layer >= 0) {
    for (uint64_t s = 0; s < parts.size(); ++s)
      if (static_cast<uint64_t>(layer) >= parts[s].begin && static_cast<uint64_t>(layer) < parts[s].begin + parts[s].length)
        return {s};
    return {last};
  }
  if (name.find("embed_tokens") != std::string::npos) {
    if (tied && last != 0) return {0, last};
    return {0};
  }
  return {last};
}

// The first reason `tp` cannot shard the model ("tensor: reason"), or "". With `all_ranks`
// false only the first and last ranks are checked (enough for listing the valid degrees).
std::string first_refusal(const std::vector<Item>& items, const ModelDims& dims, const ShardOptions& o, uint64_t tp,
                          bool all_ranks, std::string* tensor) {
  // Query heads first, then KV heads, then the rest: the reasons users know (vLLM asserts them
  // in that order before anything else).
  auto priority = [](const RecipeRule& r) {
    if (r.role == TensorRole::kQHeads || r.role == TensorRole::kFusedQkv) return 0;
    return r.role == TensorRole::kKvHeads ? 1 : 2;
  };
  std::vector<const Item*> order;
  for (int p = 0; p < 3; ++p)
    for (const auto& it : items)
      if (priority(*it.rule) == p) order.push_back(&it);
  for (const Item* p : order) {
    const Item& it = *p;
    TensorLayout layout = tensor_layout(it.tensor->name, it.tensor->shape(), *it.rule, dims, tp, o.ep);
    if (layout.kind == TensorLayout::Kind::kExpert && it.experts < tp) {
      *tensor = it.tensor->name;
      return "--ep " + std::to_string(tp) + " ranks but the layer has only " + std::to_string(it.experts) + " experts";
    }
    // A block-FP8 weight: every rank's slice must be whole blocks, as vLLM's block-FP8 loader
    // requires of each output partition (block_n) and of a row-parallel input partition (block_k)
    // (vllm/model_executor/layers/quantization/utils/fp8_utils.py, validate_fp8_block_shape).
    const bool block_weight = dims.quant.method == quant::Method::kFp8 &&
                              dims.quant.granularity == quant::Granularity::kBlock && it.tensor->dtype() == DType::F8_E4M3 && layout.kind == TensorLayout::Kind::kAxis;
    const uint64_t block = layout.dim == 0 ? dims.quant.block_n : dims.quant.block_k;
    for (uint64_t r = 0; r < tp; r = (all_ranks || r + 1 == tp || tp == 1) ? r + 1 : tp - 1) {
      RankSlice s = rank_slice(layout, it.tensor->shape(), tp, r, o.vocab_multiple, it.experts);
      if (!s.refusal.empty()) {
        *tensor = it.tensor->name;
        return s.refusal;
      }
      if (block_weight)
        for (const auto& range : s.ranges)
          if (range.begin % block != 0 || range.length % block != 0) {
            *tensor = it.tensor->name;
            return "block-FP8: rank " + std::to_string(r) + "'s slice of " + std::to_string(range.length) +
                   (layout.dim == 0 ? " rows" : " columns") + " is not a multiple of the " + std::to_string(dims.quant.block_n) +
                   "x" + std::to_string(dims.quant.block_k) + " block (vLLM's block-FP8 loader needs whole blocks per rank)";
          }
    }
  }
  return "";
}

std::shared_ptr<Producer> slice_producer(const TensorRef& t, const TensorLayout& layout, const RankSlice& s) {
  if (layout.kind == TensorLayout::Kind::kWhole || layout.kind == TensorLayout::Kind::kExpert) return copy_of(t);
  std::vector<SourceView> pieces;
  for (const auto& r : s.ranges) pieces.push_back(t.view.narrow(layout.dim, r.begin, r.length));
  if (s.pad) {
    SourceView zeros;
    zeros.dtype = t.dtype();
    zeros.shape = t.shape();
    zeros.shape[0] = s.pad;
    pieces.push_back(zeros);
  }
  return concat_views(std::move(pieces), layout.dim);
}

}  // namespace

std::string rank_dir_name(uint64_t pp, uint64_t stage, uint64_t rank) {
  std::string r = "rank-" + std::to_string(rank);
  return pp > 1 ? "stage-" + std::to_string(stage) + "/" + r : r;
}

std::string config_with_block(const std::string& source_text, const ojson& block) {
  size_t close = source_text.rfind('}');
  if (close == std::string::npos) throw std::logic_error("config_with_block: not a JSON object");
  std::string head = source_text.substr(0, close);
  while (!head.empty() && (head.back() == '\n' || head.back() == ' ' || head.back() == '\t' || head.back() == '\r'))
    head.pop_back();
  const bool empty_object = !head.empty() && head.back() == '{';
  return head + (empty_object ? "\n" : ",\n") + "  \"" + kParallelConfigKey + "\": " + block.dump() + "\n}\n";
}

std::string config_without_block(const std::string& rank_text) {
  const std::string key = std::string("\n  \"") + kParallelConfigKey + "\": ";
  size_t at = rank_text.rfind(key);
  if (at == std::string::npos) return rank_text;
  size_t cut = at;
  if (cut > 0 && rank_text[cut - 1] == ',') --cut;
  return rank_text.substr(0, cut) + "\n}\n";
}

std::string parallel_note(const ShardOptions& o, const std::string& recipe) {
  const std::string tp = std::to_string(o.tp), pp = std::to_string(o.pp);
  const std::string dirs = o.pp > 1 ? "`stage-<s>/rank-<r>/`" : "`rank-<r>/`";
  const std::string who = o.pp > 1 ? "tensor-parallel rank r of pipeline stage s" : "tensor-parallel rank r";
  return "# A tensor-parallel checkpoint written by ckpt shard\n"
         "\n"
         "`ckpt shard --tp " + tp + (o.pp > 1 ? " --pp " + pp : "") + (o.ep ? " --ep" : "") + "` (recipe " + recipe +
         "). This directory holds no weights of its own: " + dirs + " is the share of " + who +
         ", a complete Hugging Face directory:\n"
         "\n"
         "- safetensors files of that rank's slices, under the unsharded model's tensor names, split as\n"
         "  vLLM's tensor-parallel layers split them at tp " + tp + " (vocab rows zero-padded to a multiple of " +
         std::to_string(o.vocab_multiple) + ");\n"
         "- config.json: the source's, describing the whole model, with a `" + kParallelConfigKey + "` block\n"
         "  (tp/pp size and rank, layer range, ep, recipe, vocab padding); each file's `__metadata__`\n"
         "  carries tp_size, tp_rank, pp_size and pp_stage.\n"
         "\n"
         "## Loading a rank\n"
         "\n"
         "The process serving " + who + " reads " + dirs + " only and copies every tensor into\n"
         "its parameter as it is: the slicing is done. A loader that slices a full checkpoint itself\n"
         "(transformers' from_pretrained, vLLM's default loader) must not be given a rank directory: its\n"
         "shapes are one rank's share, not what config.json describes. `ckpt validate DIR` checks every\n"
         "rank and runs them together; `ckpt inspect DIR` lists them; `ckpt merge DIR OUT` gives back the\n"
         "unsharded checkpoint, bit for bit, for any stock loader.\n"
         "\n"
         "## What this layout is not\n"
         "\n"
         "It is not vLLM's own pre-sharded format, `--load-format sharded_state` (written by vLLM's\n"
         "examples/offline_inference/save_sharded_state.py, read by\n"
         "vllm/model_executor/model_loader/sharded_state_loader.py): one directory of\n"
         "`model-rank-{rank}-part-{part}.safetensors` files holding each worker's parameters as vLLM\n"
         "holds them after loading (its fused names such as qkv_proj and gate_up_proj, its post-processed\n"
         "quantized layouts), readable only by the vLLM version, quantization and tp size that wrote it.\n"
         "These ranks keep Hugging Face names and formats instead.\n";
}

Plan plan_shard(const Checkpoint& ck, const Recipe& recipe, const ShardOptions& o) {
  if (o.tp == 0 || o.pp == 0) fail(Errc::kInvalidArgument, "", "", "--tp and --pp must be at least 1");
  if (o.vocab_multiple == 0) fail(Errc::kInvalidArgument, "", "", "--vocab-padding must be at least 1");
  if (!ck.config || !ck.config->is_object())
    fail(Errc::kInvalidArgument, ck.path, "", "sharding needs config.json (head counts and layer count)");
  recipe.check_covers(ck);
  const ModelDims dims = ModelDims::from_config(*ck.config, ck.path + "/config.json");
  if (o.pp > dims.layers)
    fail(Errc::kInvalidArgument, ck.path, "", "--pp " + std::to_string(o.pp) + " is more than num_hidden_layers " +
                                                  std::to_string(dims.layers));
  const std::vector<AxisRange> parts = pp_layer_partition(dims.layers, o.pp);
  const bool tied = ck.find("lm_head.weight") == nullptr;

  const auto expert_counts = count_experts(ck, recipe);
  std::vector<Item> items;
  for (const auto& t : ck.tensors) {
    Item it{&t, recipe.match(t.name), 0, stages_of(t.name, parts, tied)};
    std::string prefix;
    uint64_t id = 0;
    if (it.rule->expert && parse_expert(t.name, &prefix, &id)) it.experts = expert_counts.at(prefix);
    items.push_back(it);
  }

  if (o.ep && expert_counts.empty())
    fail(Errc::kInvalidArgument, ck.path, "",
         "--ep distributes MoE experts, and recipe " + recipe.name() + " finds no expert tensors in this model (dense)");

  std::string bad_tensor;
  if (std::string why = first_refusal(items, dims, o, o.tp, true, &bad_tensor); !why.empty()) {
    std::string valid;
    for (uint64_t tp = 1; tp <= 64; ++tp) {
      std::string ignored;
      if (first_refusal(items, dims, o, tp, false, &ignored).empty()) valid += (valid.empty() ? "" : ", ") + std::to_string(tp);
    }
    fail(Errc::kInvalidArgument, ck.path, bad_tensor,
         "cannot shard at --tp " + std::to_string(o.tp) + ": " + why + "; valid --tp for this model" +
             (o.ep ? " with --ep" : "") + ": " + (valid.empty() ? "none up to 64" : valid));
  }

  // The vocab-parallel tensors' real and padded rows, recorded so merge can drop the padding.
  ojson vocab_tensors = ojson::object();
  for (const auto& it : items) {
    TensorLayout layout = tensor_layout(it.tensor->name, it.tensor->shape(), *it.rule, dims, o.tp, o.ep);
    if (layout.kind != TensorLayout::Kind::kVocab) continue;
    VocabSplit v = split_vocab(it.tensor->shape()[0], o.vocab_multiple, o.tp);
    vocab_tensors[it.tensor->name] = {{"rows", it.tensor->shape()[0]}, {"padded_rows", v.padded}};
  }

  std::string source_config;
  for (const auto& s : ck.side_files)
    if (s.name == "config.json") source_config = side_file_text(s);
  if (source_config.empty()) source_config = ck.config->dump(2) + "\n";

  Plan plan;
  plan.command = "shard";
  set_plan_sources(plan, ck);
  for (uint64_t stage = 0; stage < o.pp; ++stage) {
    for (uint64_t rank = 0; rank < o.tp; ++rank) {
      const std::string dir = rank_dir_name(o.pp, stage, rank) + "/";
      std::vector<OutputTensor> tensors;
      for (const auto& it : items) {
        if (std::find(it.stages.begin(), it.stages.end(), stage) == it.stages.end()) continue;
        const TensorRef& t = *it.tensor;
        TensorLayout layout = tensor_layout(t.name, t.shape(), *it.rule, dims, o.tp, o.ep);
        RankSlice s = rank_slice(layout, t.shape(), o.tp, rank, o.vocab_multiple, it.experts);
        if (!s.held) continue;
        tensors.push_back({t.name, t.dtype(), slice_shape(layout, t.shape(), s), slice_producer(t, layout, s)});
      }
      ojson block = ojson::object();
      block["tp_size"] = o.tp;
      block["tp_rank"] = rank;
      block["pp_size"] = o.pp;
      block["pp_stage"] = stage;
      block["layer_range"] = {parts[stage].begin, parts[stage].begin + parts[stage].length};
      block["ep"] = o.ep;
      if (o.ep) block["expert_placement"] = "linear";
      block["recipe"] = recipe.name();
      block["vocab_padding"] = {{"multiple", o.vocab_multiple}, {"tensors", vocab_tensors}};
      const Metadata metadata = {{"format", "pt"},
                                 {"tp_size", std::to_string(o.tp)},
                                 {"tp_rank", std::to_string(rank)},
                                 {"pp_size", std::to_string(o.pp)},
                                 {"pp_stage", std::to_string(stage)}};
      Plan part;
      add_hf_safetensors_files(part, std::move(tensors), o.max_shard_bytes, metadata);
      add_side_files(part, ck, {{"config.json", config_with_block(source_config, block)}});
      if (std::none_of(ck.side_files.begin(), ck.side_files.end(), [](const SideFile& s) { return s.name == "config.json"; }))
        part.extras.push_back({"config.json", config_with_block(source_config, block), std::nullopt});
      for (auto& f : part.files) {
        f.name = dir + f.name;
        plan.files.push_back(std::move(f));
      }
      for (auto& e : part.extras) {
        e.name = dir + e.name;
        plan.extras.push_back(std::move(e));
      }
    }
  }
  plan.extras.push_back({kParallelNoteName, parallel_note(o, recipe.name()), std::nullopt});
  plan.notes["tp"] = o.tp;
  plan.notes["pp"] = o.pp;
  plan.notes["ep"] = o.ep;
  plan.notes["recipe"] = recipe.name();
  plan.notes["vocab_padding"] = o.vocab_multiple;
  plan.finalize();
  return plan;
}

}  // namespace ckpt
