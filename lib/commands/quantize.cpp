#include "commands/quantize.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "commands/hf_layout.h"
#include "commands/marlin.h"
#include "commands/rechunk.h"
#include "core/error.h"
#include "core/name_pattern.h"
#include "core/sizes.h"
#include "plan/pipeline.h"
#include "recipes/recipe.h"

namespace ckpt {

std::optional<quant::Granularity> fp8_granularity_from_name(const std::string& name) {
  if (name == "tensor") return quant::Granularity::kTensor;
  if (name == "block") return quant::Granularity::kBlock;
  if (name == "channel") return quant::Granularity::kChannel;
  return std::nullopt;
}

namespace {

// Bytes of INT4 group parameters the plan keeps between a weight's codes and its scales/zeros
// (16 MB per GB of BF16 weights at g128); past it, scales and zeros re-read their groups.
constexpr uint64_t kInt4KeepBytes = 128ull << 20;
// Idle INT4 cache arrays kept for the next weights (ops/int4_producers.h Int4BufferPool): room
// for the caches of a few 7B-class Linears (14336 x 4096: 29 MB of words, 3.7 MB of parameters).
constexpr uint64_t kInt4PoolBytes = 96ull << 20;

// Tensors that look quantized in a checkpoint whose config.json declares no quantization.
std::optional<std::string> undeclared_quantized_tensor(const Checkpoint& ck) {
  for (const auto& t : ck.tensors) {
    const std::string& n = t.name;
    auto ends = [&](const std::string& s) { return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0; };
    if (t.dtype() == DType::F8_E4M3 || t.dtype() == DType::F8_E5M2 || ends(".weight_scale") ||
        ends(".weight_scale_inv") || ends(".qweight") || ends(".weight_packed"))
      return "quantized tensors (" + n + ", " + std::string(dtype_name(t.dtype())) + ") without a quantization_config";
  }
  return std::nullopt;
}

// Whether two schemes write the same tensors and config facts.
bool same_scheme(const quant::Scheme& a, const quant::Scheme& b) {
  return a.method == b.method && a.format == b.format && a.granularity == b.granularity && a.block_n == b.block_n &&
         a.block_k == b.block_k && a.group_size == b.group_size && a.symmetric == b.symmetric &&
         a.act_order == b.act_order && a.gptq_v2 == b.gptq_v2;
}

std::string module_of(const std::string& tensor) {
  const std::string suffix = ".weight";
  if (tensor.size() > suffix.size() && tensor.compare(tensor.size() - suffix.size(), suffix.size(), suffix) == 0)
    return tensor.substr(0, tensor.size() - suffix.size());
  return "";
}

std::string parent_of(const std::string& module) {
  auto dot = module.rfind('.');
  return dot == std::string::npos ? "" : module.substr(0, dot);
}

// Per-tensor decision.
struct Decision {
  const TensorRef* tensor;
  std::string module;      // "" when the tensor is not a <module>.weight
  bool quantize = false;
  bool list = false;       // a Linear (or unknown 2-D) weight left unquantized: named in the config
  std::string reason;      // why a candidate stays unquantized
  std::string group_key;   // fused-module group
};

std::vector<Decision> decide(const Checkpoint& ck, const Recipe& recipe, const QuantizeOptions& o) {
  std::vector<Decision> ds;
  const std::vector<NamePattern> ignore = parse_name_patterns(o.ignore, "--ignore");
  std::vector<bool> ignore_hit(ignore.size(), false);
  for (const auto& t : ck.tensors) {
    Decision d;
    d.tensor = &t;
    d.module = module_of(t.name);
    bool ignored = false;
    for (size_t i = 0; i < ignore.size(); ++i)
      if ((!d.module.empty() && ignore[i].matches(d.module)) || ignore[i].matches(t.name)) ignored = ignore_hit[i] = true;
    const RecipeRule* rule = recipe.match(t.name);
    const bool two_d = t.shape().size() == 2;
    if (rule && rule->quantize && !d.module.empty()) {
      if (ignored) d.reason = "--ignore";
      else if (!two_d) d.reason = "not a 2-D weight";
      else if (!ops::fp8_input_dtype_ok(t.dtype())) d.reason = "dtype " + std::string(dtype_name(t.dtype()));
      else if (t.view.numel() == 0) d.reason = "empty";
      d.quantize = d.reason.empty();
      if (!rule->group.empty()) d.group_key = parent_of(d.module) + "#" + rule->group;
    }
    d.list = !d.quantize && !d.module.empty() && ((rule && rule->linear) || (!rule && two_d));
    ds.push_back(std::move(d));
  }
  // A pattern that matches nothing is a typo that would quantize what it meant to keep.
  for (size_t i = 0; i < ignore.size(); ++i)
    if (!ignore_hit[i])
      fail(Errc::kInvalidArgument, ck.path, "", "--ignore '" + ignore[i].text() + "' matches no module or tensor");
  // Fused engine modules (q/k/v, gate/up) must be all quantized or all not.
  std::map<std::string, std::string> blocked;  // group key -> first member left unquantized
  for (const auto& d : ds)
    if (!d.group_key.empty() && !d.quantize && !blocked.count(d.group_key)) blocked[d.group_key] = d.module;
  for (auto& d : ds) {
    auto it = blocked.find(d.group_key);
    if (d.group_key.empty() || !d.quantize || it == blocked.end()) continue;
    d.quantize = false;
    d.list = true;
    d.reason = "fused with " + it->second + ", which stays unquantized";
  }
  return ds;
}

// The scheme the options ask for.
quant::Scheme int4_target(const QuantizeOptions& o) {
  quant::Scheme s;
  s.method = quant::Method::kInt4;
  s.format = o.format.value_or(quant::Format::kGptq);
  if (s.format == quant::Format::kFp8Native)
    fail(Errc::kInvalidArgument, "", "", "--int4 formats are gptq, awq and compressed-tensors, not native");
  if (o.group_size == -1) {
    s.granularity = quant::Granularity::kChannel;
  } else if (o.group_size > 0) {
    s.granularity = quant::Granularity::kGroup;
    s.group_size = static_cast<uint64_t>(o.group_size);
  } else {
    fail(Errc::kInvalidArgument, "", "", "--group-size must be positive or -1, not " + std::to_string(o.group_size));
  }
  if (s.format == quant::Format::kAwq) {
    if (o.symmetric.value_or(false))
      fail(Errc::kInvalidArgument, "", "", "--format awq has zero points (AutoAWQ GEMM, vLLM awq/awq_marlin): use --asym");
    s.symmetric = false;
  } else {
    s.symmetric = o.symmetric.value_or(true);
  }
  s.gptq_v2 = s.format == quant::Format::kGptq && !s.symmetric;
  s.method_name = s.format == quant::Format::kCompressedTensors ? "compressed-tensors" : quant::format_name(s.format);
  return s;
}

quant::Scheme target_scheme(const QuantizeOptions& o) {
  if (o.method == quant::Method::kInt4) return int4_target(o);
  quant::Scheme s;
  s.method = quant::Method::kFp8;
  s.granularity = o.granularity;
  s.format = o.format.value_or(o.granularity == quant::Granularity::kChannel ? quant::Format::kCompressedTensors
                                                                             : quant::Format::kFp8Native);
  if (s.format != quant::Format::kFp8Native && s.format != quant::Format::kCompressedTensors)
    fail(Errc::kInvalidArgument, "", "", std::string("--fp8 has no --format ") + quant::format_name(s.format));
  if (s.granularity == quant::Granularity::kChannel && s.format == quant::Format::kFp8Native)
    fail(Errc::kInvalidArgument, "", "",
         "--scheme channel exists only in --format compressed-tensors (vLLM's native fp8 has no per-channel scales)");
  if (s.granularity == quant::Granularity::kBlock) {
    if (o.block_rows == 0 || o.block_cols == 0) fail(Errc::kInvalidArgument, "", "", "--block sizes must be positive");
    s.block_n = o.block_rows;
    s.block_k = o.block_cols;
  }
  if (s.format == quant::Format::kFp8Native) s.method_name = "fp8";
  else s.method_name = "compressed-tensors";
  return s;
}

}  // namespace

// The plan in the format's own layout (plan_quantize adds --layout marlin on top).
static QuantizePlan plan_in_source_layout(const Checkpoint& ck, const QuantizeOptions& o) {
  const quant::Scheme target = target_scheme(o);
  const std::string wanted = target.describe();

  QuantizePlan qp;
  qp.plan.command = "quantize";
  set_plan_sources(qp.plan, ck);
  qp.bytes_before = ck.total_bytes();
  qp.plan.notes["quantization"] = wanted;

  const quant::Scheme source = quant::read_scheme(ck.config ? &*ck.config : nullptr, ck.path + "/config.json");
  if (source.quantized()) {
    if (!same_scheme(source, target))
      fail(Errc::kUnsupported, ck.path, "",
           "the source is already quantized (" + source.describe() + "); refusing to quantize it again as " + wanted);
    qp.copied = true;
    std::vector<OutputTensor> tensors;
    for (const auto& t : ck.tensors) tensors.push_back({t.name, t.dtype(), t.shape(), copy_of(t)});
    add_hf_safetensors_files(qp.plan, std::move(tensors), kDefaultMaxShardBytes);
    add_side_files(qp.plan, ck);
    qp.plan.notes["copied"] = "the source already has this quantization; tensors copied unchanged";
    qp.plan.finalize();
    return qp;
  }
  if (auto what = undeclared_quantized_tensor(ck))
    fail(Errc::kUnsupported, ck.path, "",
         "the source is already quantized (" + *what + "); refusing to quantize it again as " + wanted);
  if (!ck.config || !ck.config->is_object())
    fail(Errc::kUnsupported, ck.path, "", "no config.json next to the weights: it must carry the quantization_config");

  const Recipe recipe = o.recipe_path.empty() ? Recipe::for_checkpoint(ck) : Recipe::load_file(o.recipe_path);
  std::vector<Decision> ds = decide(ck, recipe, o);

  std::vector<OutputTensor> tensors;
  std::set<std::string> listed;
  // INT4 group parameters kept from a weight's codes to its scales/zeros (ops/int4_producers.h).
  const auto keep = std::make_shared<Int4KeepBudget>(kInt4KeepBytes);
  const auto pool = std::make_shared<Int4BufferPool>(kInt4PoolBytes);
  ojson kept = ojson::array();
  for (const auto& d : ds) {
    const TensorRef& t = *d.tensor;
    if (d.list) listed.insert(d.module);
    if (!d.reason.empty()) kept.push_back({{"tensor", t.name}, {"reason", d.reason}});
    if (!d.quantize) {
      tensors.push_back({t.name, t.dtype(), t.shape(), copy_of(t)});
      continue;
    }
    const uint64_t n = t.shape()[0], k = t.shape()[1];
    const std::vector<quant::Part> parts = target.linear_parts(n, k, t.dtype());
    const RecipeRule* rule = recipe.match(t.name);
    qp.linears.push_back({d.module, n, k, !(rule && rule->role == TensorRole::kRow)});
    if (target.method == quant::Method::kInt4) {
      const ops::Int4Scheme s4 = target.int4(t.dtype());
      const std::string why = ops::int4_shape_problem(s4, n, k);
      if (!why.empty())
        fail(Errc::kUnsupported, t.view.file >= 0 ? ck.files[t.view.file].path : ck.path, t.name,
             "cannot quantize to " + wanted + ": " + why + " (--ignore the module to keep it unquantized)");
      const std::shared_ptr<const Int4Engine>& engine = o.int4_engine ? o.int4_engine : cpu_int4_engine();
      auto q = std::make_shared<const Int4Quantization>(
          t.name, t.view, s4,
          Int4CacheOptions{.keep = keep, .pool = pool, .strip_bytes = engine->strip_bytes(), .engine = engine});
      qp.int4.push_back(q);
      for (const auto& part : parts) {
        std::shared_ptr<Producer> p;
        switch (part.role) {
          case quant::PartRole::kCodes: p = int4_codes_producer(q); break;
          case quant::PartRole::kScale: p = int4_scales_producer(q); break;
          case quant::PartRole::kZero: p = int4_zeros_producer(q); break;
          case quant::PartRole::kGroupIndex: p = int4_g_idx_producer(q); break;
          case quant::PartRole::kShape: p = int4_weight_shape_producer(q); break;
          case quant::PartRole::kInputScale: throw std::logic_error("int4 has no input scales");
        }
        tensors.push_back({d.module + "." + part.suffix, part.dtype, part.shape, p});
      }
      continue;
    }
    const quant::Part& scale = parts[1];
    ops::Fp8Grid grid = target.granularity == quant::Granularity::kTensor    ? ops::Fp8Grid::per_tensor(n, k)
                        : target.granularity == quant::Granularity::kChannel ? ops::Fp8Grid::per_channel(n, k)
                                                                             : ops::Fp8Grid::blocks(n, k, target.block_n, target.block_k);
    auto q = std::make_shared<Fp8Quantization>(t.name, t.view, grid, scale.dtype, o.engine);
    qp.quantized.push_back(q);
    tensors.push_back({t.name, parts[0].dtype, parts[0].shape, fp8_codes_producer(q)});
    tensors.push_back({d.module + "." + scale.suffix, scale.dtype, scale.shape, fp8_scales_producer(q)});
  }
  listed.insert("lm_head");  // never quantized by any engine; listed so every loader agrees
  qp.not_converted.assign(listed.begin(), listed.end());
  std::sort(qp.not_converted.begin(), qp.not_converted.end(), natural_less);

  add_hf_safetensors_files(qp.plan, std::move(tensors), kDefaultMaxShardBytes);
  const std::string config = quant::config_with_quantization(*ck.config, quant::quantization_config(target, qp.not_converted));
  std::map<std::string, std::string> replaced = {{"config.json", config}};
  const std::optional<std::string> qcfile = quant::quantize_config_file(target, qp.not_converted);
  if (qcfile) replaced["quantize_config.json"] = *qcfile;
  add_side_files(qp.plan, ck, replaced);
  if (qcfile && std::none_of(ck.side_files.begin(), ck.side_files.end(),
                             [](const SideFile& s) { return s.name == "quantize_config.json"; }))
    qp.plan.extras.push_back({"quantize_config.json", *qcfile, std::nullopt});
  if (std::none_of(ck.side_files.begin(), ck.side_files.end(), [](const SideFile& s) { return s.name == "config.json"; }))
    qp.plan.extras.push_back({"config.json", config, std::nullopt});
  qp.plan.notes["recipe"] = recipe.name();
  qp.scheme = target;
  qp.plan.notes["quantized_tensors"] = qp.quantized.size() + qp.int4.size();
  qp.plan.notes["not_converted"] = qp.not_converted;
  if (!kept.empty()) qp.plan.notes["kept"] = kept;
  qp.plan.notes["engine"] = target.method == quant::Method::kInt4 ? (o.int4_engine ? o.int4_engine->name() : "cpu")
                                                                  : (o.engine ? o.engine->name() : "cpu");
  qp.plan.finalize();
  qp.plan.notes["bytes_before"] = qp.bytes_before;
  qp.plan.notes["bytes_after"] = qp.plan.tensor_bytes();
  return qp;
}

namespace {

// The multiple --pad-intermediate pads to: tp ranks of lcm(group, 128) inputs each (128: vLLM
// marlin_utils GPTQ_MARLIN_MIN_THREAD_K, a multiple of MIN_THREAD_N 64 and of the packing's 8).
uint64_t pad_multiple(const QuantizeOptions& o) {
  uint64_t unit = 128;
  if (o.group_size > 0) unit = std::lcm<uint64_t>(unit, static_cast<uint64_t>(o.group_size));
  return unit * o.pad_intermediate_tp;
}

}  // namespace

QuantizePlan plan_quantize(const Checkpoint& source, const QuantizeOptions& o) {
  if (o.marlin_layout && o.method != quant::Method::kInt4)
    fail(Errc::kInvalidArgument, source.path, "", "--layout marlin applies only to --int4");
  if (o.pad_intermediate_tp && o.method != quant::Method::kInt4)
    fail(Errc::kInvalidArgument, source.path, "", "--pad-intermediate applies only to --int4");
  // --pad-intermediate: the plan runs over the source with its MLP tensors seen zero-padded.
  Checkpoint padded;
  std::optional<IntermediatePadding> padding;
  if (o.pad_intermediate_tp) {
    padded = source;
    const uint64_t multiple = pad_multiple(o);
    padding = pad_intermediate(padded, multiple,
                               "--pad-intermediate " + std::to_string(o.pad_intermediate_tp) + ": every rank of tp " +
                                   std::to_string(o.pad_intermediate_tp) + " gets a multiple of " +
                                   std::to_string(multiple / o.pad_intermediate_tp) +
                                   " inputs (the group size and vLLM Marlin's 128)");
  }
  const Checkpoint& ck = padding ? padded : source;
  QuantizePlan qp = plan_in_source_layout(ck, o);
  qp.padding = padding;
  if (o.pad_intermediate_tp) {
    const uint64_t from = padding ? padding->from : (*source.config)["intermediate_size"].get<uint64_t>();
    qp.plan.notes["intermediate_padding"] = {{"from", from},
                                             {"to", padding ? padding->to : from},
                                             {"multiple", pad_multiple(o)},
                                             {"tensors", padding ? padding->tensors : 0}};
  }
  if (!o.marlin_layout) return qp;
  // ckpt marlin planned over the checkpoint this plan's output would open as, its tensors made on
  // demand by this plan's producers (as `ckpt run` composes two steps): one pass, and the bytes of
  // `ckpt quantize` then `ckpt marlin`.
  Plan tiles = plan_marlin(checkpoint_of_plan(qp.plan, ck, "the quantized checkpoint"), MarlinOptions{}).plan;
  tiles.command = qp.plan.command;
  tiles.notes = qp.plan.notes;
  tiles.notes["layout"] = "marlin";
  tiles.notes["bytes_after"] = tiles.tensor_bytes();
  qp.plan = std::move(tiles);
  return qp;
}

namespace {

// vLLM marlin_utils.py: GPTQ_MARLIN_MIN_THREAD_N = 64, GPTQ_MARLIN_MIN_THREAD_K = 128, and
// verify_marlin_supports_shape's group check (K/tp % group when group < K).
ojson marlin_tp_table(const QuantizePlan& qp) {
  ojson table = ojson::array();
  const uint64_t group = qp.scheme.granularity == quant::Granularity::kGroup ? qp.scheme.group_size : 0;
  for (uint64_t tp : {1, 2, 4, 8}) {
    std::string first, why;
    for (const auto& l : qp.linears) {
      const uint64_t n = l.column ? l.n / tp : l.n, k = l.column ? l.k : l.k / tp;
      const uint64_t split = l.column ? l.n : l.k;
      auto num = [](uint64_t v) { return std::to_string(v); };
      if (split % tp != 0) why = (l.column ? "out_features " : "in_features ") + num(split) + " is not divisible by " + num(tp);
      else if (n % 64 != 0) why = "out_features per rank " + num(n) + " is not a multiple of 64";
      else if (k % 128 != 0) why = "in_features per rank " + num(k) + " is not a multiple of 128";
      else if (group && group < l.k && k % group != 0)
        why = "in_features per rank " + num(k) + " is not a multiple of the group size " + num(group);
      if (!why.empty()) {
        first = l.name;
        break;
      }
    }
    ojson row = {{"tp", tp}, {"marlin_ok", why.empty()}};
    if (!why.empty()) row["first_failure"] = {{"module", first}, {"reason", why}};
    table.push_back(row);
  }
  return table;
}

}  // namespace

ojson quantize_report(const QuantizePlan& qp) {
  ojson r = ojson::object();
  r["bytes_before"] = qp.bytes_before;
  r["bytes_after"] = qp.plan.tensor_bytes();
  r["copied"] = qp.copied;
  r["not_converted"] = qp.not_converted;
  ojson ts = ojson::array();
  for (const auto& q : qp.quantized) {
    const auto& sc = q->scales();
    const ops::Fp8ErrorStats st = q->stats();
    ojson j = ojson::object();
    j["tensor"] = q->tensor();
    j["shape"] = {q->grid().rows, q->grid().cols};
    if (sc.size() == 1) {
      j["scale"] = sc[0];
    } else if (!sc.empty()) {
      j["scales"] = sc.size();
      j["scale_min"] = *std::min_element(sc.begin(), sc.end());
      j["scale_max"] = *std::max_element(sc.begin(), sc.end());
    }
    j["relative_error"] = st.relative_error();
    j["max_abs_error"] = st.max_abs_err;
    ts.push_back(j);
  }
  for (const auto& q : qp.int4) {
    const ops::Fp8ErrorStats st = q->stats();
    ts.push_back({{"tensor", q->tensor()},
                  {"shape", {q->geometry().n, q->geometry().k}},
                  {"relative_error", st.relative_error()},
                  {"max_abs_error", st.max_abs_err}});
  }
  r["tensors"] = ts;
  if (qp.scheme.method == quant::Method::kInt4) r["tp_compatibility"] = marlin_tp_table(qp);
  if (qp.plan.notes.contains("intermediate_padding")) r["intermediate_padding"] = qp.plan.notes["intermediate_padding"];
  return r;
}

std::string quantize_summary_line(const QuantizePlan& qp) {
  if (qp.copied) return "source already has this quantization: tensors copied unchanged";
  double worst_err = -1;
  std::string worst_name;
  for (const auto& q : qp.quantized) {
    double e = q->stats().relative_error();
    if (e > worst_err) worst_err = e, worst_name = q->tensor();
  }
  for (const auto& q : qp.int4) {
    double e = q->stats().relative_error();
    if (e > worst_err) worst_err = e, worst_name = q->tensor();
  }
  std::string s = std::to_string(qp.quantized.size() + qp.int4.size()) + " weights quantized (" +
                  qp.plan.notes["quantization"].get<std::string>() + "), " + format_bytes(qp.bytes_before) + " -> " +
                  format_bytes(qp.plan.tensor_bytes()) + ", " + std::to_string(qp.not_converted.size()) +
                  " modules left unquantized";
  if (qp.padding)
    s += "; intermediate_size " + std::to_string(qp.padding->from) + " zero-padded to " + std::to_string(qp.padding->to);
  if (!worst_name.empty()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f%%", 100 * worst_err);
    s += "; worst relative error " + std::string(buf) + " (" + worst_name + ")";
  }
  return s;
}

}  // namespace ckpt
