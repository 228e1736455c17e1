#include "commands/merge.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "checkpoint/checkpoint.h"
#include "commands/hf_layout.h"
#include "commands/shard.h"
#include "commands/shard_layout.h"
#include "core/error.h"
#include "core/file_io.h"
#include "plan/axis_concat.h"

namespace fs = std::filesystem;

namespace ckpt {

namespace {

struct Block {
  uint64_t tp = 0, pp = 0, tp_rank = 0, pp_stage = 0, vocab_multiple = 0;
  bool ep = false;
  std::string recipe;
  std::map<std::string, uint64_t> vocab_rows;
};

uint64_t block_uint(const ojson& b, const char* key, const std::string& file) {
  auto it = b.find(key);
  if (it == b.end() || !it->is_number_unsigned())
    fail(Errc::kInvalidArgument, file, "", std::string(kParallelConfigKey) + "." + key + " must be a non-negative integer");
  return it->get<uint64_t>();
}

Block read_block(const Checkpoint& ck, const std::string& file) {
  if (!ck.config || !ck.config->is_object() || !ck.config->contains(kParallelConfigKey) ||
      !(*ck.config)[kParallelConfigKey].is_object())
    fail(Errc::kInvalidArgument, file, "", std::string("no \"") + kParallelConfigKey + "\" block: not written by ckpt shard");
  const ojson& b = (*ck.config)[kParallelConfigKey];
  Block out;
  out.tp = block_uint(b, "tp_size", file);
  out.pp = block_uint(b, "pp_size", file);
  out.tp_rank = block_uint(b, "tp_rank", file);
  out.pp_stage = block_uint(b, "pp_stage", file);
  if (!b.contains("ep") || !b["ep"].is_boolean() || !b.contains("recipe") || !b["recipe"].is_string())
    fail(Errc::kInvalidArgument, file, "", std::string(kParallelConfigKey) + " needs ep (bool) and recipe (string)");
  out.ep = b["ep"].get<bool>();
  out.recipe = b["recipe"].get<std::string>();
  auto v = b.find("vocab_padding");
  if (v == b.end() || !v->is_object() || !v->contains("tensors") || !(*v)["tensors"].is_object())
    fail(Errc::kInvalidArgument, file, "", std::string(kParallelConfigKey) + ".vocab_padding must be an object with tensors");
  out.vocab_multiple = block_uint(*v, "multiple", file);
  for (const auto& [name, t] : (*v)["tensors"].items()) {
    if (!t.is_object()) fail(Errc::kInvalidArgument, file, name, "vocab_padding entry must be an object");
    out.vocab_rows[name] = block_uint(t, "rows", file);
  }
  if (out.tp == 0 || out.pp == 0 || out.vocab_multiple == 0 || out.tp > 4096 || out.pp > 4096)
    fail(Errc::kInvalidArgument, file, "", "tp_size, pp_size and vocab_padding.multiple must be in 1..4096");
  return out;
}

// One rank's opened directory and where its files start in the merge plan's sources.
struct RankInput {
  Checkpoint ck;
  int file_base = 0;
  SourceView view_of(const TensorRef& t) const {
    SourceView v = t.view;
    if (v.file != SourceView::kZeros) v.file += file_base;
    return v;
  }
};

struct Piece {
  uint64_t begin, length;  // in the merged tensor, along the split dim
  uint64_t rank, offset;   // where it lies in that rank's tensor
};

}  // namespace

Plan plan_merge(const std::string& shard_dir, const MergeOptions& options) {
  const bool staged = fs::is_directory(fs::path(shard_dir) / "stage-0" / "rank-0");
  if (!staged && !fs::is_directory(fs::path(shard_dir) / "rank-0"))
    fail(Errc::kNoCheckpoint, shard_dir, "", "neither rank-0/ nor stage-0/rank-0/ is here: not a ckpt shard output");
  const std::string first_dir = (fs::path(shard_dir) / (staged ? "stage-0/rank-0" : "rank-0")).string();
  Checkpoint first = open_checkpoint(first_dir);
  const Block b0 = read_block(first, first_dir + "/config.json");
  if (staged != (b0.pp > 1))
    fail(Errc::kInvalidArgument, first_dir, "", "the directory layout does not match pp_size " + std::to_string(b0.pp));

  Plan plan;
  plan.command = "merge";
  std::vector<std::vector<RankInput>> ranks(b0.pp);
  for (uint64_t s = 0; s < b0.pp; ++s) {
    for (uint64_t r = 0; r < b0.tp; ++r) {
      const std::string dir = (fs::path(shard_dir) / rank_dir_name(b0.pp, s, r)).string();
      if (!fs::is_directory(dir)) fail(Errc::kNoCheckpoint, dir, "", "missing rank directory (tp_size " + std::to_string(b0.tp) + ")");
      RankInput in{open_checkpoint(dir), static_cast<int>(plan.sources.size())};
      const Block b = read_block(in.ck, dir + "/config.json");
      if (b.tp != b0.tp || b.pp != b0.pp || b.tp_rank != r || b.pp_stage != s || b.ep != b0.ep || b.recipe != b0.recipe ||
          b.vocab_multiple != b0.vocab_multiple || b.vocab_rows != b0.vocab_rows)
        fail(Errc::kInvalidArgument, dir, "", "its ckpt_parallel block does not belong at stage " + std::to_string(s) +
                                                  ", rank " + std::to_string(r) + " of this output");
      for (const auto& f : in.ck.files) {
        // A loader refuses a file of the wrong rank; so does merge.
        auto has = [&](const char* key, uint64_t want) {
          if (!f.metadata) return false;
          for (const auto& [k, v] : *f.metadata)
            if (k == key) return v == std::to_string(want);
          return false;
        };
        if (!has("tp_size", b0.tp) || !has("tp_rank", r) || !has("pp_size", b0.pp) || !has("pp_stage", s))
          fail(Errc::kInvalidArgument, f.path, "", "its __metadata__ tp_size/tp_rank/pp_size/pp_stage do not match rank " +
                                                       std::to_string(r) + " of stage " + std::to_string(s));
        plan.sources.push_back(f.path);
      }
      ranks[s].push_back(std::move(in));
    }
  }

  const Recipe recipe = options.recipe_path.empty() ? Recipe::named(b0.recipe) : Recipe::load_file(options.recipe_path);
  const ModelDims dims = ModelDims::from_config(*first.config, first_dir + "/config.json");

  // Every name, in order of first appearance, with the stage that holds it first.
  std::vector<std::pair<std::string, uint64_t>> names;
  std::map<std::string, uint64_t> seen;
  for (uint64_t s = 0; s < b0.pp; ++s)
    for (const auto& in : ranks[s])
      for (const auto& t : in.ck.tensors)
        if (seen.emplace(t.name, s).second) names.emplace_back(t.name, s);

  std::vector<OutputTensor> tensors;
  for (const auto& [name, stage] : names) {
    const auto& group = ranks[stage];
    std::vector<const TensorRef*> held(b0.tp, nullptr);
    uint64_t holder = b0.tp;
    for (uint64_t r = 0; r < b0.tp; ++r) {
      held[r] = group[r].ck.find(name);
      if (held[r] && holder == b0.tp) holder = r;
    }
    const TensorRef& any = *held[holder];
    const RecipeRule* rule = recipe.match(name);
    if (!rule) fail(Errc::kUnsupported, recipe.path(), name, "no rule of recipe '" + recipe.name() + "' matches it");
    TensorLayout layout = tensor_layout(name, any.shape(), *rule, dims, b0.tp, b0.ep);
    if (layout.kind == TensorLayout::Kind::kWhole || layout.kind == TensorLayout::Kind::kExpert) {
      // Replicated (or an expert held whole by its owner): the first copy is the tensor.
      tensors.push_back({name, any.dtype(), any.shape(), copy_of({name, group[holder].view_of(any)})});
      continue;
    }
    for (uint64_t r = 0; r < b0.tp; ++r)
      if (!held[r]) fail(Errc::kInvalidArgument, group[r].ck.path, name, "a split tensor is missing on this rank");
    std::vector<uint64_t> full = any.shape();
    if (layout.kind == TensorLayout::Kind::kVocab) {
      auto it = b0.vocab_rows.find(name);
      if (it == b0.vocab_rows.end()) fail(Errc::kInvalidArgument, first_dir, name, "vocab_padding lists no rows for it");
      full[0] = it->second;
    } else {
      auto len = unsplit_axis_length(any.shape()[layout.dim] * layout.unit, layout.pieces, b0.tp);
      if (!len || *len % layout.unit) fail(Errc::kInvalidArgument, first_dir, name, "rank slices do not fit the recipe's layout");
      full[layout.dim] = *len / layout.unit;
    }
    // Where every range of the merged tensor lies, by re-running the split the shard used.
    std::vector<Piece> pieces;
    for (uint64_t r = 0; r < b0.tp; ++r) {
      RankSlice s = rank_slice(layout, full, b0.tp, r, b0.vocab_multiple, 0);
      if (!s.refusal.empty() || slice_shape(layout, full, s) != held[r]->shape() || held[r]->dtype() != any.dtype())
        fail(Errc::kInvalidArgument, group[r].ck.path, name, "its shape or dtype is not this rank's slice of the recipe's layout");
      uint64_t offset = 0;
      for (const auto& range : s.ranges) {
        pieces.push_back({range.begin, range.length, r, offset});
        offset += range.length;
      }
    }
    std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.begin < b.begin; });
    std::vector<SourceView> views;
    uint64_t pos = 0;
    for (const auto& p : pieces) {
      if (p.begin < pos) continue;  // a replica (a KV head held by several ranks): taken once
      if (p.begin > pos) fail(Errc::kInvalidArgument, first_dir, name, "the ranks leave a gap in the tensor");
      views.push_back(group[p.rank].view_of(*held[p.rank]).narrow(layout.dim, p.offset, p.length));
      pos = p.begin + p.length;
    }
    if (pos != full[layout.dim]) fail(Errc::kInvalidArgument, first_dir, name, "the ranks do not cover the tensor");
    tensors.push_back({name, any.dtype(), full, concat_views(std::move(views), layout.dim)});
  }

  add_hf_safetensors_files(plan, std::move(tensors), options.max_shard_bytes);
  std::string config;
  for (const auto& s : first.side_files)
    if (s.name == "config.json") config = config_without_block(side_file_text(s));
  add_side_files(plan, first, {{"config.json", config}});
  plan.notes["tp"] = b0.tp;
  plan.notes["pp"] = b0.pp;
  plan.notes["recipe"] = recipe.name();
  plan.finalize();
  return plan;
}

}  // namespace ckpt
