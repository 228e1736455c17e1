#include "validate/linear_weights.h"

#include <map>

#include "core/error.h"

namespace ckpt::validate {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string strip_suffix(const std::string& s, const std::string& suffix) {
  return s.substr(0, s.size() - suffix.size());
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

std::string shape_str(const std::vector<uint64_t>& s) { return shape_to_string(s); }

const char* kScaleSuffixes[] = {".weight_scale", ".weight_scale_inv"};

}  // namespace

const char* scale_layout_name(quant::Granularity g) {
  switch (g) {
    case quant::Granularity::kTensor: return "per-tensor";
    case quant::Granularity::kChannel: return "per-channel";
    case quant::Granularity::kBlock: return "block";
    case quant::Granularity::kGroup: return "group";
  }
  return "?";
}

std::string LinearWeight::format() const {
  if (!fp8()) {
    switch (weight->dtype()) {
      case DType::BF16: return "bf16";
      case DType::F16: return "f16";
      default: return "f32";
    }
  }
  std::string s = std::string("fp8 ") + scale_layout_name(layout);
  if (layout == quant::Granularity::kBlock) s += " " + std::to_string(block_n) + "x" + std::to_string(block_k);
  return s;
}

LinearSelector LinearSelector::for_checkpoint(const Checkpoint& ck, const std::optional<ojson>& parallel) {
  LinearSelector s;
  try {
    if (parallel && parallel->contains("recipe") && (*parallel)["recipe"].is_string())
      s.recipe_ = Recipe::named((*parallel)["recipe"].get<std::string>());
    else
      s.recipe_ = Recipe::for_checkpoint(ck);
    s.source_ = "recipe " + s.recipe_->name();
  } catch (const Error& e) {
    s.source_ = "name rule (" + e.rule() + ")";
  }
  return s;
}

bool LinearSelector::operator()(const TensorRef& t) const {
  if (t.shape().size() != 2) return false;
  if (!is_float(t.dtype()) && t.dtype() != DType::F8_E4M3 && t.dtype() != DType::F8_E5M2) return false;
  if (recipe_) {
    const RecipeRule* rule = recipe_->match(t.name);
    return rule && rule->linear;
  }
  if (!ends_with(t.name, ".weight")) return false;
  for (const char* not_linear : {"embed", "norm", ".wte.", ".wpe."})
    if (t.name.find(not_linear) != std::string::npos) return false;
  return true;
}

std::vector<LinearWeight> find_linear_weights(const Checkpoint& ck, const quant::Scheme& scheme,
                                              const LinearSelector& is_linear, const FailFn& fail) {
  auto file_of = [&](const TensorRef& t) { return ck.files[t.view.file].path; };
  std::map<std::string, const TensorRef*> by_name;
  for (const auto& t : ck.tensors) by_name[t.name] = &t;
  auto find = [&](const std::string& name) -> const TensorRef* {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
  };

  // A scale needs its FP8 weight.
  for (const auto& t : ck.tensors) {
    for (const char* suffix : kScaleSuffixes) {
      if (!ends_with(t.name, suffix)) continue;
      std::string weight = strip_suffix(t.name, suffix) + ".weight";
      const TensorRef* w = find(weight);
      if (!w || w->dtype() != DType::F8_E4M3)
        fail("scale", file_of(t), t.name, "scale tensor without an F8_E4M3 weight '" + weight + "'");
    }
  }

  std::vector<LinearWeight> out;
  for (const auto& t : ck.tensors) {
    if (!is_linear(t)) continue;
    LinearWeight lw;
    lw.name = t.name;
    lw.weight = &t;
    lw.n = t.shape()[0];
    lw.k = t.shape()[1];
    const std::string module = strip_suffix(t.name, ".weight");
    if (t.dtype() == DType::F8_E5M2) {
      fail("quant-config", file_of(t), t.name, "F8_E5M2 weights have no GEMM path here (E4M3 is the weight format)");
      continue;
    }
    if (t.dtype() != DType::F8_E4M3) {
      // An unquantized Linear in a quantized checkpoint must be listed as ignored, or vLLM creates
      // FP8 parameters for it and the load fails. lm_head is never quantized by engines.
      if (scheme.quantized() && module != "lm_head" && !scheme.ignores(module))
        fail("quant-config", file_of(t), t.name,
             std::string(dtype_name(t.dtype())) + " Linear weight in a " + scheme.method_name +
                 " checkpoint, but quantization_config does not list '" + module + "' as ignored");
      out.push_back(std::move(lw));
      continue;
    }
    if (scheme.method != quant::Method::kFp8) {
      fail("quant-config", file_of(t), t.name, "F8_E4M3 weight but config.json declares no FP8 quantization_config");
      continue;
    }
    if (scheme.ignores(module)) {
      fail("quant-config", file_of(t), t.name, "F8_E4M3 weight of a module quantization_config lists as ignored");
      continue;
    }
    lw.layout = scheme.granularity;
    const bool native_block = scheme.format == quant::Format::kFp8Native && lw.layout == quant::Granularity::kBlock;
    const std::string scale_name = module + (native_block ? ".weight_scale_inv" : ".weight_scale");
    const TensorRef* s = find(scale_name);
    if (!s) {
      fail("scale", file_of(t), t.name, "F8_E4M3 weight has no scale tensor '" + scale_name + "'");
      continue;
    }
    std::vector<uint64_t> want;
    switch (lw.layout) {
      case quant::Granularity::kTensor: want = {}; break;
      case quant::Granularity::kChannel: want = {lw.n, 1}; break;
      case quant::Granularity::kGroup:  // not an FP8 granularity (read_scheme never gives it)
      case quant::Granularity::kBlock:
        lw.block_n = scheme.block_n;
        lw.block_k = scheme.block_k;
        want = {ceil_div(lw.n, lw.block_n), ceil_div(lw.k, lw.block_k)};
        break;
    }
    bool shape_ok = lw.layout == quant::Granularity::kTensor
                        ? (s->shape().empty() || (s->shape().size() == 1 && s->shape()[0] == 1))
                        : s->shape() == want;
    if (!shape_ok) {
      fail("scale", file_of(*s), s->name,
           std::string(scale_layout_name(lw.layout)) + " scale of weight " + shape_str(t.shape()) + " must have shape " +
               (lw.layout == quant::Granularity::kTensor ? std::string("[] or [1]") : shape_str(want)) + ", not " +
               shape_str(s->shape()));
      continue;
    }
    // vLLM's fp8 method stores float32 scales; compressed-tensors stores the weight's own dtype.
    bool dtype_ok = scheme.format == quant::Format::kFp8Native ? (s->dtype() == DType::F32 || (native_block && s->dtype() == DType::BF16))
                                                        : is_float(s->dtype());
    if (!dtype_ok) {
      fail("scale", file_of(*s), s->name, std::string("scale dtype ") + std::string(dtype_name(s->dtype())) +
                                              " is not accepted by " + scheme.method_name + " loaders");
      continue;
    }
    lw.scale = s;
    out.push_back(std::move(lw));
  }
  return out;
}

}  // namespace ckpt::validate
