#include "validate/targets.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "checkpoint/dir_files.h"
#include "checkpoint/hf_cache.h"
#include "checkpoint/parallel_root.h"
#include "commands/marlin.h"
#include "core/error.h"
#include "formats/hf_index.h"
#include "formats/packed_source.h"
#include "validate/checkpoint_bytes.h"
#include "validate/dequantize.h"

namespace fs = std::filesystem;

namespace ckpt::validate {

namespace {

std::optional<std::string> config_dtype(const ojson& config) {
  for (const char* key : {"dtype", "torch_dtype"})
    if (config.contains(key) && config[key].is_string()) return config[key].get<std::string>();
  return std::nullopt;
}

std::optional<uint64_t> config_uint(const ojson& config, const char* key) {
  if (config.contains(key) && config[key].is_number_unsigned()) return config[key].get<uint64_t>();
  return std::nullopt;
}

uint64_t parallel_uint(const ojson& p, const char* key, uint64_t fallback) {
  return p.contains(key) && p[key].is_number_unsigned() ? p[key].get<uint64_t>() : fallback;
}

// The engine rules a readable scheme must also meet before this runtime runs its GEMMs: vLLM's
// Fp8Config requires activation_scheme, and block scales only with dynamic activations
// (vllm model_executor/layers/quantization/fp8.py).
void check_scheme_runs(const quant::Scheme& s, const std::string& label) {
  if (s.format == quant::Format::kFp8Native && s.method == quant::Method::kFp8) {
    if (!s.activation_scheme)
      fail(Errc::kUnsupported, label, "",
           "quantization_config: quant_method fp8 needs activation_scheme (\"static\" or \"dynamic\"), as vLLM requires");
    if (s.granularity == quant::Granularity::kBlock && *s.activation_scheme != "dynamic")
      fail(Errc::kUnsupported, label, "", "quantization_config: weight_block_size needs activation_scheme dynamic (vLLM)");
  }
}

// Where a target's config.json is (or would be), for messages: inside its container when packed.
std::string config_path(const std::string& dir) {
  return locate_checkpoint_file(dir, "config.json").value_or((fs::path(dir) / "config.json").string());
}

void check_stray_shards(const Target& t, const FailFn& fail) {
  if (!t.ck.index_file) return;
  std::set<std::string> listed;
  for (const auto& f : t.ck.files) listed.insert(fs::path(f.path).filename().string());
  for (const std::string& name : checkpoint_file_names(t.dir))
    if (name.size() > 12 && name.ends_with(".safetensors") && !listed.count(name))
      fail("index", *locate_checkpoint_file(t.dir, name), "",
           "safetensors file not listed in " + *t.ck.index_file + " (a loader globbing *.safetensors would read it)");
}

void check_config(const Target& t, uint64_t tp_size, const FailFn& fail) {
  const std::string label = config_path(t.dir);
  if (!t.ck.config) {
    fail("config", label, "", "config.json is missing (engines need it to build the model)");
    return;
  }
  const ojson& c = *t.ck.config;
  if (auto dt = config_dtype(c)) {
    auto want = dtype_from_torch_name(*dt);
    for (const auto& lw : t.linears)
      if (want && !lw.fp8() && !lw.is_int4() && lw.weight->dtype() != *want) {
        fail("config", t.ck.files[lw.weight->view.file].path, lw.name,
             "Linear weight is " + std::string(dtype_name(lw.weight->dtype())) + " but config.json says dtype " + *dt);
        break;  // one line is enough: the cause is the config (or a partial cast)
      }
  }
  for (const auto& tensor : t.ck.tensors) {
    if (tensor.name.find("embed_tokens.weight") == std::string::npos || tensor.shape().size() != 2) continue;
    const std::string file = t.ck.files[tensor.view.file].path;
    if (auto h = config_uint(c, "hidden_size"); h && tensor.shape()[1] != *h)
      fail("config", file, tensor.name, "embedding width " + std::to_string(tensor.shape()[1]) +
                                            " != config hidden_size " + std::to_string(*h));
    if (auto v = config_uint(c, "vocab_size"); v && tensor.shape()[0] * tp_size < *v)
      fail("config", file, tensor.name, std::to_string(tensor.shape()[0]) + " embedding rows x tp " +
                                            std::to_string(tp_size) + " < config vocab_size " + std::to_string(*v));
  }
}

// A whole tensor's bytes, 8-byte aligned (the INT4 decoder reads 32-bit words in place), from
// disk or decoded from a packed checkpoint.
std::vector<uint64_t> read_aligned(const CheckpointBytes& bytes, const TensorRef& x) {
  std::vector<uint64_t> words((x.nbytes() + 7) / 8);
  std::vector<uint8_t> buf;
  std::memcpy(words.data(), bytes.get(x.view.file, x.view.offset, x.nbytes(), buf), x.nbytes());
  return words;
}

// Every scale value must be a usable multiplier: finite and > 0. INT4 arrays must hold what their
// readers can read (ops::int4_check_stored: zero points, padding nibbles, g_idx).
void check_scale_values(const Target& t, const FailFn& fail) {
  std::optional<CheckpointBytes> bytes;  // opened at the first scale
  std::vector<uint8_t> buf;
  for (const auto& lw : t.linears) {
    if (lw.is_int4() && lw.marlin) {
      // The arrays undone into the source format, checked by that format's rules, plus the
      // layout's own: g_idx sorted (marlin_sort_g_idx) and its sort indices a permutation.
      if (!bytes) bytes.emplace(t.ck);
      std::map<const TensorRef*, std::vector<uint64_t>> read;
      auto get = [&](const TensorRef& x) -> const uint8_t* {
        auto& v = read[&x];
        if (v.empty()) v = read_aligned(*bytes, x);
        return reinterpret_cast<const uint8_t*>(v.data());
      };
      Int4SourceArrays a;
      try {
        a = marlin_source_arrays(lw, get, false);
      } catch (const Error& e) {
        fail("int4", t.ck.files[lw.sort_indices->view.file].path, e.tensor(), e.rule());
        continue;
      }
      if (lw.act_order) {
        const int32_t* sorted = reinterpret_cast<const int32_t*>(get(*lw.g_idx));
        for (uint64_t i = 1; i < lw.k; ++i)
          if (sorted[i] < sorted[i - 1]) {
            fail("int4", t.ck.files[lw.g_idx->view.file].path, lw.g_idx->name,
                 "element " + std::to_string(i) + ": the Marlin layout stores g_idx sorted (marlin_sort_g_idx), but " +
                     std::to_string(sorted[i]) + " follows " + std::to_string(sorted[i - 1]));
            break;
          }
      }
      ops::Int4Stored st;
      st.scales = a.scales.data();
      st.zeros = a.zeros.empty() ? nullptr : a.zeros.data();
      st.g_idx = a.g_idx.empty() ? nullptr : a.g_idx.data();
      const ops::Int4ArrayIssue issue = ops::int4_check_stored(*lw.int4, ops::int4_geometry(*lw.int4, lw.n, lw.k), st, lw.act_order);
      if (issue) {
        const TensorRef* x = issue.array == ops::Int4ArrayIssue::kZeros ? lw.zeros
                             : issue.array == ops::Int4ArrayIssue::kScales ? lw.scale
                                                                            : lw.g_idx;
        fail("int4", t.ck.files[x->view.file].path, x->name,
             "element " + std::to_string(issue.index) + " in the source layout (" + ops::int4_format_name(lw.int4->format) +
                 "): " + issue.rule);
      }
      continue;
    }
    if (lw.is_int4()) {
      // The codes matter only where the packing pads a row (compressed-tensors, K % 8): read
      // them only then, so the structure phase does not read the whole model.
      const bool padded_rows = lw.int4->format == ops::Int4Format::kCompressedTensors && lw.k % 8 != 0;
      if (!bytes) bytes.emplace(t.ck);
      const auto codes = padded_rows ? read_aligned(*bytes, *lw.weight) : std::vector<uint64_t>{};
      const auto scales = read_aligned(*bytes, *lw.scale);
      const auto zeros = lw.zeros ? read_aligned(*bytes, *lw.zeros) : std::vector<uint64_t>{};
      const auto g_idx = lw.g_idx ? read_aligned(*bytes, *lw.g_idx) : std::vector<uint64_t>{};
      ops::Int4Stored st;
      st.weights = padded_rows ? reinterpret_cast<const uint32_t*>(codes.data()) : nullptr;
      st.scales = reinterpret_cast<const uint8_t*>(scales.data());
      st.zeros = lw.zeros ? reinterpret_cast<const uint32_t*>(zeros.data()) : nullptr;
      st.g_idx = lw.g_idx ? reinterpret_cast<const int32_t*>(g_idx.data()) : nullptr;
      const ops::Int4ArrayIssue issue = ops::int4_check_stored(*lw.int4, ops::int4_geometry(*lw.int4, lw.n, lw.k), st, lw.act_order);
      if (issue) {
        const TensorRef* x = issue.array == ops::Int4ArrayIssue::kWeights ? lw.weight
                             : issue.array == ops::Int4ArrayIssue::kZeros ? lw.zeros
                             : issue.array == ops::Int4ArrayIssue::kScales ? lw.scale
                                                                            : lw.g_idx;
        fail("int4", t.ck.files[x->view.file].path, x->name, "element " + std::to_string(issue.index) + ": " + issue.rule);
      }
      continue;
    }
    if (!lw.fp8()) continue;
    const TensorRef& s = *lw.scale;
    if (!bytes) bytes.emplace(t.ck);
    std::vector<double> v = decode_all(s.dtype(), bytes->get(s.view.file, s.view.offset, s.nbytes(), buf), s.view.numel());
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v[i]) || !(v[i] > 0)) {
        fail("scale", t.ck.files[s.view.file].path, s.name, "scale element " + std::to_string(i) + " is " + std::to_string(v[i]) +
                                            " (a dequantization multiplier must be finite and > 0)");
        break;
      }
  }
}

void open_target(Target& t, uint64_t tp_size, const FailFn& fail) {
  try {
    t.ck = open_checkpoint(t.dir);
  } catch (const Error& e) {
    fail("structure", e.file(), e.tensor(), e.rule());
    return;
  }
  for (const auto& f : t.ck.files)
    if (f.format != SourceFormat::kSafetensors) {
      fail("structure", f.path, "", "not safetensors: validate checks deployment outputs (run ckpt convert first)");
      return;
    }
  t.opened = true;
  if (t.ck.config && t.ck.config->contains("ckpt_parallel")) t.parallel = (*t.ck.config)["ckpt_parallel"];
  const std::string config_label = config_path(t.dir);
  try {
    // A `ckpt marlin` output: its Linears are checked as the Marlin layout of the source format.
    t.marlin = is_marlin_config(t.ck.config ? &*t.ck.config : nullptr);
    t.scheme = t.marlin ? marlin_source_scheme(*t.ck.config, config_label)
                        : quant::read_scheme(t.ck.config ? &*t.ck.config : nullptr, config_label);
    check_scheme_runs(t.scheme, config_label);
  } catch (const Error& e) {
    fail("quant-config", e.file(), e.tensor(), e.rule());
  }
  LinearSelector selector = LinearSelector::for_checkpoint(t.ck, t.parallel);
  t.linear_source = selector.source();
  t.linears = find_linear_weights(t.ck, t.scheme, selector, fail, t.marlin);
  check_stray_shards(t, fail);
  check_config(t, tp_size, fail);
  try {
    check_scale_values(t, fail);
  } catch (const Error& e) {
    fail("scale", e.file(), e.tensor(), e.rule());
  }
}

}  // namespace

Layout open_layout(const std::string& given, const FailFn& fail) {
  const std::string root = resolve_model_path(given, [](const char* n) { return std::getenv(n); });
  Layout layout;
  layout.root = root;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) fail_errno(root, "not a directory");
  auto add = [&](std::string label, std::string dir, int stage, int rank) {
    auto t = std::make_unique<Target>();
    t->label = std::move(label);
    t->dir = std::move(dir);
    t->stage = stage;
    t->rank = rank;
    layout.targets.push_back(std::move(t));
  };
  const std::vector<RankDir> ranks = parallel_rank_dirs(root);
  layout.parallel = !ranks.empty();
  for (const auto& r : ranks) add(r.label, r.dir, r.stage, r.rank);
  if (!layout.parallel) add("", root, 0, 0);
  for (auto& t : layout.targets) {
    uint64_t tp = 1;
    // The vocab rule needs the tp size before the block is parsed: read it from the config text.
    if (layout.parallel) {
      if (auto cfg = locate_checkpoint_file(t->dir, "config.json")) {
        StrictJsonResult r = parse_strict_json(read_source_text(*cfg));
        if (r.ok && r.value.contains("ckpt_parallel")) tp = std::max<uint64_t>(1, parallel_uint(r.value["ckpt_parallel"], "tp_size", 1));
      }
    }
    open_target(*t, tp, fail);
  }
  return layout;
}

void check_parallel_layout(const Layout& layout, const FailFn& fail) {
  if (!layout.parallel) return;
  const Target* first = nullptr;
  for (const auto& t : layout.targets) {
    if (!t->opened) continue;
    if (!t->parallel || !t->parallel->is_object()) {
      fail("tp-layout", config_path(t->dir), "", "rank directory's config.json has no \"ckpt_parallel\" block");
      continue;
    }
    if (!first) first = t.get();
  }
  if (!first) {
    if (layout.targets.empty()) fail("tp-layout", layout.root, "", "no rank directories");
    return;
  }
  const ojson& p0 = *first->parallel;
  const uint64_t tp = parallel_uint(p0, "tp_size", 0), pp = parallel_uint(p0, "pp_size", 1);
  const std::string first_cfg = config_path(first->dir);
  if (tp == 0) {
    fail("tp-layout", first_cfg, "", "ckpt_parallel.tp_size is missing or not a positive integer");
    return;
  }
  // Every (stage, rank) present once.
  const bool staged = layout.targets.front()->label.rfind("stage-", 0) == 0;
  std::set<std::pair<int, int>> present;
  for (const auto& t : layout.targets) present.insert({t->stage, t->rank});
  for (uint64_t s = 0; s < (staged ? pp : 1); ++s)
    for (uint64_t r = 0; r < tp; ++r)
      if (!present.count({int(s), int(r)})) {
        std::string dir = (staged ? "stage-" + std::to_string(s) + "/" : "") + "rank-" + std::to_string(r);
        fail("tp-layout", (fs::path(layout.root) / dir).string(), "",
             "rank directory is missing (" + first_cfg + " says tp_size " + std::to_string(tp) +
                 (staged ? ", pp_size " + std::to_string(pp) : "") + ")");
      }
  // Each rank agrees with the first, and with its own position.
  ojson base_config = *first->ck.config;
  base_config.erase("ckpt_parallel");
  std::map<int, const Target*> stage_reference;
  for (const auto& t : layout.targets) {
    if (!t->opened || !t->parallel || !t->parallel->is_object()) continue;
    const ojson& p = *t->parallel;
    const std::string cfg = config_path(t->dir);
    if (parallel_uint(p, "tp_size", 0) != tp)
      fail("tp-layout", cfg, "", "ckpt_parallel.tp_size " + json_excerpt(p.value("tp_size", ojson())) + " but " + first_cfg +
                                     " says " + std::to_string(tp));
    if (int(t->rank) >= int(tp)) fail("tp-layout", t->dir, "", "rank directory beyond tp_size " + std::to_string(tp));
    if (parallel_uint(p, "tp_rank", UINT64_MAX) != uint64_t(t->rank))
      fail("tp-layout", cfg, "", "ckpt_parallel.tp_rank " + json_excerpt(p.value("tp_rank", ojson())) + " in directory rank-" +
                                     std::to_string(t->rank));
    if (parallel_uint(p, "pp_size", 1) != pp)
      fail("tp-layout", cfg, "", "ckpt_parallel.pp_size differs from " + first_cfg);
    if (staged && parallel_uint(p, "pp_stage", UINT64_MAX) != uint64_t(t->stage))
      fail("tp-layout", cfg, "", "ckpt_parallel.pp_stage does not match its stage directory");
    for (const char* key : {"recipe", "ep", "vocab_padding"})
      if (p.value(key, ojson()) != p0.value(key, ojson()))
        fail("tp-layout", cfg, "", std::string("ckpt_parallel.") + key + " differs from " + first_cfg);
    ojson cfg_rest = *t->ck.config;
    cfg_rest.erase("ckpt_parallel");
    if (cfg_rest != base_config) fail("tp-layout", cfg, "", "config.json differs from " + first_cfg + " (beyond ckpt_parallel)");
    for (const auto& f : t->ck.files) {
      auto meta = [&](const char* key) -> std::optional<std::string> {
        if (!f.metadata) return std::nullopt;
        for (const auto& [k, v] : *f.metadata)
          if (k == key) return v;
        return std::nullopt;
      };
      if (meta("tp_size") != std::to_string(tp) || meta("tp_rank") != std::to_string(t->rank))
        fail("tp-layout", f.path, "", "safetensors __metadata__ tp_size/tp_rank are " + meta("tp_size").value_or("absent") +
                                          "/" + meta("tp_rank").value_or("absent") + ", expected " +
                                          std::to_string(tp) + "/" + std::to_string(t->rank));
    }
    // Same tensors, dtypes and shapes as the stage's first rank (whole experts differ under --ep).
    const ojson ep = p.value("ep", ojson());
    const bool expert_parallel = (ep.is_number() && ep.get<double>() > 1) || ep.is_object() || ep == true;
    auto [it, first_of_stage] = stage_reference.try_emplace(t->stage, t.get());
    if (first_of_stage) continue;
    const Target& ref = *it->second;
    auto skip = [&](const std::string& name) { return expert_parallel && name.find(".experts.") != std::string::npos; };
    for (const auto& tensor : t->ck.tensors) {
      if (skip(tensor.name)) continue;
      const TensorRef* other = ref.ck.find(tensor.name);
      const std::string file = t->ck.files[tensor.view.file].path;
      if (!other) fail("tp-agreement", file, tensor.name, "tensor is not in " + ref.label);
      else if (other->dtype() != tensor.dtype() || other->shape() != tensor.shape())
        fail("tp-agreement", file, tensor.name,
             std::string(dtype_name(tensor.dtype())) + " " + shape_to_string(tensor.shape()) + " but " + ref.label +
                 " has " + std::string(dtype_name(other->dtype())) + " " + shape_to_string(other->shape()));
    }
    for (const auto& tensor : ref.ck.tensors)
      if (!skip(tensor.name) && !t->ck.find(tensor.name))
        fail("tp-agreement", t->dir, tensor.name, "tensor of " + ref.label + " is missing in " + t->label);
  }
}

}  // namespace ckpt::validate
