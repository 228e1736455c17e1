#include "commands/quantize.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "commands/hf_layout.h"
#include "commands/rechunk.h"
#include "core/error.h"
#include "core/name_pattern.h"
#include "core/sizes.h"
#include "recipes/recipe.h"

namespace ckpt {

const char* fp8_scheme_name(Fp8Scheme s) {
  switch (s) {
    case Fp8Scheme::kTensor: return "tensor";
    case Fp8Scheme::kBlock: return "block";
    case Fp8Scheme::kChannel: return "channel";
  }
  return "?";
}

std::optional<Fp8Scheme> fp8_scheme_from_name(const std::string& name) {
  if (name == "tensor") return Fp8Scheme::kTensor;
  if (name == "block") return Fp8Scheme::kBlock;
  if (name == "channel") return Fp8Scheme::kChannel;
  return std::nullopt;
}

namespace {

const char* format_name(QuantFormat f) { return f == QuantFormat::kNative ? "native" : "compressed-tensors"; }

// What the source's own quantization is, when it has one.
struct SourceQuant {
  std::string what;                    // for messages: "fp8 block 128x128", "gptq"
  std::optional<QuantFormat> format;  // set when it is an FP8 scheme this command writes
  Fp8Scheme scheme = Fp8Scheme::kTensor;
  uint64_t block_rows = 0, block_cols = 0;
};

std::string scheme_text(QuantFormat f, Fp8Scheme s, uint64_t br, uint64_t bc) {
  std::string t = std::string("fp8 ") + format_name(f) + " " + fp8_scheme_name(s);
  if (s == Fp8Scheme::kBlock) t += " " + std::to_string(br) + "x" + std::to_string(bc);
  return t;
}

bool block_pair(const ojson& j, uint64_t& a, uint64_t& b) {
  if (!j.is_array() || j.size() != 2 || !j[0].is_number_unsigned() || !j[1].is_number_unsigned()) return false;
  a = j[0].get<uint64_t>();
  b = j[1].get<uint64_t>();
  return true;
}

std::optional<SourceQuant> source_quantization(const Checkpoint& ck) {
  const ojson* qc = nullptr;
  if (ck.config && ck.config->is_object() && ck.config->contains("quantization_config"))
    qc = &(*ck.config)["quantization_config"];
  if (qc) {
    SourceQuant sq;
    std::string method = qc->is_object() && qc->contains("quant_method") && (*qc)["quant_method"].is_string()
                             ? (*qc)["quant_method"].get<std::string>()
                             : "unknown";
    sq.what = method;
    if (method == "fp8") {
      sq.format = QuantFormat::kNative;
      if (qc->contains("weight_block_size") && !(*qc)["weight_block_size"].is_null()) {
        sq.scheme = Fp8Scheme::kBlock;
        if (!block_pair((*qc)["weight_block_size"], sq.block_rows, sq.block_cols)) sq.format.reset();
      }
    } else if (method == "compressed-tensors") {
      const ojson* groups = qc->contains("config_groups") ? &(*qc)["config_groups"] : nullptr;
      if (groups && groups->is_object() && groups->size() == 1) {
        const ojson& w = groups->begin().value().value("weights", ojson());
        if (w.is_object() && w.value("type", ojson()) == "float" && w.value("num_bits", ojson()) == 8) {
          std::string strategy = w.value("strategy", ojson()).is_string() ? w["strategy"].get<std::string>() : "";
          if (auto s = fp8_scheme_from_name(strategy)) {
            sq.format = QuantFormat::kCompressedTensors;
            sq.scheme = *s;
            if (*s == Fp8Scheme::kBlock && !block_pair(w.value("block_structure", ojson()), sq.block_rows, sq.block_cols))
              sq.format.reset();
          }
        }
      }
    }
    if (sq.format) sq.what = scheme_text(*sq.format, sq.scheme, sq.block_rows, sq.block_cols);
    return sq;
  }
  for (const auto& t : ck.tensors) {
    const std::string& n = t.name;
    auto ends = [&](const std::string& s) { return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0; };
    if (t.dtype() == DType::F8_E4M3 || t.dtype() == DType::F8_E5M2 || ends(".weight_scale") ||
        ends(".weight_scale_inv") || ends(".qweight") || ends(".weight_packed"))
      return SourceQuant{"quantized tensors (" + n + ", " + std::string(dtype_name(t.dtype())) +
                             ") without a quantization_config",
                         std::nullopt};
  }
  return std::nullopt;
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

ojson fp8_quant_args(const char* strategy, ojson block_structure, bool dynamic, ojson group_size,
                     const char* observer) {
  ojson a = ojson::object();
  a["num_bits"] = 8;
  a["type"] = "float";
  a["symmetric"] = true;
  a["group_size"] = std::move(group_size);
  a["strategy"] = strategy;
  a["block_structure"] = std::move(block_structure);
  a["dynamic"] = dynamic;
  a["actorder"] = nullptr;
  a["observer"] = observer ? ojson(observer) : ojson();
  a["observer_kwargs"] = ojson::object();
  return a;
}

// config.json's quantization_config, as each engine expects it (specs/quant_formats.md §1).
ojson quantization_config(QuantFormat format, Fp8Scheme scheme, uint64_t br, uint64_t bc,
                          const std::vector<std::string>& not_converted) {
  ojson q = ojson::object();
  if (format == QuantFormat::kNative) {
    q["quant_method"] = "fp8";
    if (scheme == Fp8Scheme::kBlock) q["fmt"] = "e4m3";
    q["activation_scheme"] = "dynamic";
    if (scheme == Fp8Scheme::kBlock) q["weight_block_size"] = {br, bc};
    // vLLM reads ignored_layers; transformers and SGLang also read modules_to_not_convert.
    q["ignored_layers"] = not_converted;
    q["modules_to_not_convert"] = not_converted;
    return q;
  }
  // llm-compressor's presets: FP8_DYNAMIC (channel weights, dynamic per-token activations),
  // FP8_BLOCK (block weights, dynamic per-group-of-128 activations); tensor weights get the same
  // dynamic per-token activations (no calibration data here for static input scales).
  ojson weights, inputs;
  if (scheme == Fp8Scheme::kBlock) {
    weights = fp8_quant_args("block", {br, bc}, false, nullptr, "minmax");
    inputs = fp8_quant_args("group", nullptr, true, bc, nullptr);
  } else {
    weights = fp8_quant_args(fp8_scheme_name(scheme), nullptr, false, nullptr, "minmax");
    inputs = fp8_quant_args("token", nullptr, true, nullptr, nullptr);
  }
  ojson group = ojson::object();
  group["targets"] = {"Linear"};
  group["weights"] = weights;
  group["input_activations"] = inputs;
  group["output_activations"] = nullptr;
  group["format"] = "float-quantized";
  q["quant_method"] = "compressed-tensors";
  q["format"] = "float-quantized";
  q["quantization_status"] = "compressed";
  q["config_groups"] = {{"group_0", group}};
  q["ignore"] = not_converted;
  q["kv_cache_scheme"] = nullptr;
  q["global_compression_ratio"] = nullptr;
  q["sparsity_config"] = ojson::object();
  q["transform_config"] = ojson::object();
  return q;
}

// config.json with quantization_config set; placed in key order when the file's keys are sorted
// (as transformers writes them), else at the end.
std::string config_with_quantization(const ojson& config, const ojson& qc) {
  ojson out = ojson::object();
  bool sorted = true;
  std::string prev;
  for (const auto& [k, v] : config.items()) {
    if (k < prev) sorted = false;
    prev = k;
  }
  bool placed = false;
  for (const auto& [k, v] : config.items()) {
    if (k == "quantization_config") continue;
    if (sorted && !placed && k > "quantization_config") {
      out["quantization_config"] = qc;
      placed = true;
    }
    out[k] = v;
  }
  if (!placed) out["quantization_config"] = qc;
  return out.dump(2) + "\n";
}

void check_options(const QuantizeOptions& o, QuantFormat format) {
  if (o.scheme == Fp8Scheme::kChannel && format == QuantFormat::kNative)
    fail(Errc::kInvalidArgument, "", "",
         "--scheme channel exists only in --format compressed-tensors (vLLM's native fp8 has no per-channel scales)");
  if (o.scheme == Fp8Scheme::kBlock && (o.block_rows == 0 || o.block_cols == 0))
    fail(Errc::kInvalidArgument, "", "", "--block sizes must be positive");
}

}  // namespace

QuantizePlan plan_quantize(const Checkpoint& ck, const QuantizeOptions& o) {
  const QuantFormat format =
      o.format.value_or(o.scheme == Fp8Scheme::kChannel ? QuantFormat::kCompressedTensors : QuantFormat::kNative);
  check_options(o, format);
  const uint64_t br = o.scheme == Fp8Scheme::kBlock ? o.block_rows : 0;
  const uint64_t bc = o.scheme == Fp8Scheme::kBlock ? o.block_cols : 0;
  const std::string wanted = scheme_text(format, o.scheme, br, bc);

  QuantizePlan qp;
  qp.plan.command = "quantize";
  set_plan_sources(qp.plan, ck);
  qp.bytes_before = ck.total_bytes();
  qp.plan.notes["quantization"] = wanted;

  if (auto sq = source_quantization(ck)) {
    const bool same = sq->format == format && sq->scheme == o.scheme &&
                      (o.scheme != Fp8Scheme::kBlock || (sq->block_rows == br && sq->block_cols == bc));
    if (!same)
      fail(Errc::kUnsupported, ck.path, "",
           "the source is already quantized (" + sq->what + "); refusing to quantize it again as " + wanted);
    qp.copied = true;
    std::vector<OutputTensor> tensors;
    for (const auto& t : ck.tensors) tensors.push_back({t.name, t.dtype(), t.shape(), copy_of(t)});
    add_hf_safetensors_files(qp.plan, std::move(tensors), kDefaultMaxShardBytes);
    add_side_files(qp.plan, ck);
    qp.plan.notes["copied"] = "the source already has this quantization; tensors copied unchanged";
    qp.plan.finalize();
    return qp;
  }
  if (!ck.config || !ck.config->is_object())
    fail(Errc::kUnsupported, ck.path, "", "no config.json next to the weights: it must carry the quantization_config");

  const Recipe recipe = o.recipe_path.empty() ? Recipe::for_checkpoint(ck) : Recipe::load_file(o.recipe_path);
  std::vector<Decision> ds = decide(ck, recipe, o);

  std::vector<OutputTensor> tensors;
  std::set<std::string> listed;
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
    ops::Fp8Grid grid = o.scheme == Fp8Scheme::kTensor    ? ops::Fp8Grid::per_tensor(n, k)
                        : o.scheme == Fp8Scheme::kChannel ? ops::Fp8Grid::per_channel(n, k)
                                                          : ops::Fp8Grid::blocks(n, k, br, bc);
    const DType scale_dtype = format == QuantFormat::kNative ? DType::F32 : t.dtype();
    auto q = std::make_shared<Fp8Quantization>(t.name, t.view, grid, scale_dtype, o.engine);
    qp.quantized.push_back(q);
    tensors.push_back({t.name, DType::F8_E4M3, t.shape(), fp8_codes_producer(q)});
    std::string scale_name = d.module + (format == QuantFormat::kNative && o.scheme == Fp8Scheme::kBlock
                                             ? ".weight_scale_inv"
                                             : ".weight_scale");
    std::vector<uint64_t> scale_shape;
    if (o.scheme == Fp8Scheme::kBlock) scale_shape = {grid.grid_rows(), grid.grid_cols()};
    else if (o.scheme == Fp8Scheme::kChannel) scale_shape = {n, 1};
    else if (format == QuantFormat::kCompressedTensors) scale_shape = {1};  // native: a 0-d scalar
    tensors.push_back({scale_name, scale_dtype, scale_shape, fp8_scales_producer(q)});
  }
  listed.insert("lm_head");  // never quantized by any engine; listed so every loader agrees
  qp.not_converted.assign(listed.begin(), listed.end());
  std::sort(qp.not_converted.begin(), qp.not_converted.end(), natural_less);

  add_hf_safetensors_files(qp.plan, std::move(tensors), kDefaultMaxShardBytes);
  const ojson qc = quantization_config(format, o.scheme, br, bc, qp.not_converted);
  const std::string config = config_with_quantization(*ck.config, qc);
  add_side_files(qp.plan, ck, {{"config.json", config}});
  if (std::none_of(ck.side_files.begin(), ck.side_files.end(), [](const SideFile& s) { return s.name == "config.json"; }))
    qp.plan.extras.push_back({"config.json", config, std::nullopt});
  qp.plan.notes["recipe"] = recipe.name();
  qp.plan.notes["quantized_tensors"] = qp.quantized.size();
  qp.plan.notes["not_converted"] = qp.not_converted;
  if (!kept.empty()) qp.plan.notes["kept"] = kept;
  qp.plan.notes["engine"] = o.engine ? o.engine->name() : "cpu";
  qp.plan.finalize();
  qp.plan.notes["bytes_before"] = qp.bytes_before;
  qp.plan.notes["bytes_after"] = qp.plan.tensor_bytes();
  return qp;
}

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
  r["tensors"] = ts;
  return r;
}

std::string quantize_summary_line(const QuantizePlan& qp) {
  if (qp.copied) return "source already has this quantization: tensors copied unchanged";
  const Fp8Quantization* worst = nullptr;
  double worst_err = -1;
  for (const auto& q : qp.quantized) {
    double e = q->stats().relative_error();
    if (e > worst_err) worst_err = e, worst = q.get();
  }
  std::string s = std::to_string(qp.quantized.size()) + " weights quantized (" +
                  qp.plan.notes["quantization"].get<std::string>() + "), " + format_bytes(qp.bytes_before) + " -> " +
                  format_bytes(qp.plan.tensor_bytes()) + ", " + std::to_string(qp.not_converted.size()) +
                  " modules left unquantized";
  if (worst) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f%%", 100 * worst_err);
    s += "; worst relative error " + std::string(buf) + " (" + worst->tensor() + ")";
  }
  return s;
}

}  // namespace ckpt
