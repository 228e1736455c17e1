#include "commands/cast.h"

#include <algorithm>

#include "commands/hf_layout.h"
#include "commands/rechunk.h"
#include "core/error.h"
#include "core/name_pattern.h"
#include "ops/cast.h"
#include "ops/cast_op.h"
#include "quant/scheme.h"
#include "recipes/recipe.h"

namespace ckpt {

namespace {

// Every pattern must match some tensor: a typo in --keep must not silently cast what it meant to keep.
std::vector<NamePattern> patterns_matching(const Checkpoint& ck, const std::vector<std::string>& texts, const char* option) {
  std::vector<NamePattern> patterns = parse_name_patterns(texts, option);
  for (const auto& p : patterns) {
    bool hit = std::any_of(ck.tensors.begin(), ck.tensors.end(), [&](const TensorRef& t) { return p.matches(t.name); });
    if (!hit) fail(Errc::kInvalidArgument, ck.path, "", std::string(option) + " '" + p.text() + "' matches no tensor");
  }
  return patterns;
}

bool keys_sorted(const ojson& o) {
  std::string prev;
  bool first = true;
  for (const auto& [k, v] : o.items()) {
    if (!first && k < prev) return false;
    prev = k;
    first = false;
  }
  return true;
}

// Sets `key` in place when present, else inserts it (in sorted position when the keys are sorted).
ojson with_key(const ojson& o, const std::string& key, const ojson& value) {
  if (o.contains(key)) {
    ojson out = o;
    out[key] = value;
    return out;
  }
  const bool sorted = keys_sorted(o);
  ojson out = ojson::object();
  bool placed = false;
  for (const auto& [k, v] : o.items()) {
    if (sorted && !placed && k > key) {
      out[key] = value;
      placed = true;
    }
    out[k] = v;
  }
  if (!placed) out[key] = value;
  return out;
}

}  // namespace

std::string config_with_dtype(const ojson& config, const std::string& torch_name) {
  ojson out = with_key(config, "torch_dtype", torch_name);
  if (out.contains("dtype")) out["dtype"] = torch_name;
  for (auto& [k, v] : out.items()) {
    if (!v.is_object()) continue;
    for (const char* key : {"torch_dtype", "dtype"})
      if (v.contains(key) && v[key].is_string()) v[key] = torch_name;
  }
  return out.dump(2) + "\n";
}

Plan plan_cast(const Checkpoint& ck, const CastOptions& o) {
  if (!ops::is_cast_target(o.dtype))
    fail(Errc::kInvalidArgument, "", "", "cast target must be bf16, f16 or f32, not " + std::string(dtype_name(o.dtype)));
  const std::vector<NamePattern> only = patterns_matching(ck, o.only, "--only");
  const std::vector<NamePattern> keep = patterns_matching(ck, o.keep, "--keep");
  const CastOpFactory make_op = o.make_op ? o.make_op : [](DType in, DType out) -> std::shared_ptr<const ElementOp> {
    return std::make_shared<ops::CastOp>(in, out);
  };

  // Scales, packed ints and zero points of quantized Linears are part of their format (vLLM reads
  // GPTQ/AWQ scales as F16, fp8's as F32, compressed-tensors' in the checkpoint's dtype): a cast
  // converts only unquantized tensors and lists the quantization tensors it kept.
  const quant::Scheme scheme = quant::read_scheme(ck.config ? &*ck.config : nullptr, ck.path + "/config.json");
  auto quantization_part = [&](const std::string& name) {
    const size_t dot = name.rfind('.');
    return scheme.owns_suffix(dot == std::string::npos ? name : name.substr(dot + 1));
  };
  ojson quant_kept = ojson::array();

  Plan plan;
  plan.command = "cast";
  set_plan_sources(plan, ck);
  std::vector<OutputTensor> tensors;
  ojson cast = ojson::array(), kept = ojson::array();
  for (const auto& t : ck.tensors) {
    const bool quant_part = quantization_part(t.name);
    if (quant_part && ops::is_cast_source(t.dtype()) && t.dtype() != o.dtype) quant_kept.push_back(t.name);
    const bool selected = ops::is_cast_source(t.dtype()) && !quant_part && (only.empty() || matches_any(only, t.name)) &&
                          !matches_any(keep, t.name);
    if (!selected || t.dtype() == o.dtype) {
      if (ops::is_cast_source(t.dtype()) && t.dtype() != o.dtype && !quant_part) kept.push_back(t.name);
      tensors.push_back({t.name, t.dtype(), t.shape(), copy_of(t)});
      continue;
    }
    cast.push_back(t.name);
    auto producer = std::make_shared<ViewProducer>(std::vector<SourceView>{t.view}, make_op(t.dtype(), o.dtype));
    tensors.push_back({t.name, o.dtype, t.shape(), producer});
  }
  add_hf_safetensors_files(plan, std::move(tensors), o.max_shard_bytes);

  const std::string torch_name(dtype_info(o.dtype).torch_name);
  std::map<std::string, std::string> replaced;
  if (ck.config && ck.config->is_object()) replaced["config.json"] = config_with_dtype(*ck.config, torch_name);
  add_side_files(plan, ck, replaced);
  if (!replaced.empty() &&
      std::none_of(ck.side_files.begin(), ck.side_files.end(), [](const SideFile& s) { return s.name == "config.json"; }))
    plan.extras.push_back({"config.json", replaced["config.json"], std::nullopt});

  plan.notes["dtype"] = std::string(dtype_name(o.dtype));
  plan.notes["cast_tensors"] = cast.size();
  plan.notes["kept_float_tensors"] = kept;
  if (scheme.quantized()) {
    plan.notes["quantization"] = scheme.describe();
    plan.notes["kept_quantization_tensors"] = quant_kept;
  }
  plan.finalize();
  return plan;
}

}  // namespace ckpt
