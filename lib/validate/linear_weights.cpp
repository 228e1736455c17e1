#include "validate/linear_weights.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "core/error.h"
#include "commands/marlin.h"
#include "core/file_io.h"
#include "ops/marlin_layout.h"

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
  if (int4) return std::string("int4 ") + ops::int4_format_name(int4->format) + (marlin ? " marlin" : "");
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

namespace {

std::string file_of(const Checkpoint& ck, const TensorRef& t) {
  return t.view.file >= 0 ? ck.files[t.view.file].path : ck.path;
}

// The weight dtype an INT4 Linear computes in: config.json's dtype, else (compressed-tensors,
// whose scales are in it) the scale's dtype, else BF16.
DType int4_weight_dtype(const Checkpoint& ck, const TensorRef* scale) {
  if (ck.config && ck.config->is_object())
    for (const char* key : {"dtype", "torch_dtype"})
      if (ck.config->contains(key) && (*ck.config)[key].is_string())
        if (auto d = dtype_from_torch_name((*ck.config)[key].get<std::string>())) return *d;
  return scale && is_float(scale->dtype()) ? scale->dtype() : DType::BF16;
}

// [N, K] of an INT4 Linear from its codes tensor (GPTQ qweight [K/8, N], AWQ qweight [K, N/8]) or,
// for compressed-tensors, from weight_shape's two values. nullopt after a failure.
std::optional<std::pair<uint64_t, uint64_t>> int4_dims(const Checkpoint& ck, const quant::Scheme& scheme,
                                                       const TensorRef& codes, const TensorRef* shape,
                                                       const FailFn& fail) {
  if (codes.dtype() != DType::I32 || codes.shape().size() != 2) {
    fail("int4", file_of(ck, codes), codes.name,
         std::string(dtype_name(codes.dtype())) + " " + shape_str(codes.shape()) + ": packed INT4 codes are a 2-D I32 tensor");
    return std::nullopt;
  }
  const uint64_t rows = codes.shape()[0], cols = codes.shape()[1];
  if (scheme.format == quant::Format::kGptq) return std::make_pair(cols, rows * 8);
  if (scheme.format == quant::Format::kAwq) return std::make_pair(cols * 8, rows);
  if (!shape) return std::make_pair(rows, cols * 8);  // reported missing by the parts check
  if (shape->dtype() != DType::I64 || shape->shape() != std::vector<uint64_t>{2}) {
    fail("int4", file_of(ck, *shape), shape->name,
         std::string(dtype_name(shape->dtype())) + " " + shape_str(shape->shape()) + ": weight_shape is I64 [2] = {N, K}");
    return std::nullopt;
  }
  int64_t v[2];
  File f = File::open_read(file_of(ck, *shape));
  f.pread_exact(v, sizeof v, shape->view.offset);
  if (v[0] <= 0 || v[1] <= 0) {
    fail("int4", f.path(), shape->name, "weight_shape {" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + "} is not positive");
    return std::nullopt;
  }
  return std::make_pair(static_cast<uint64_t>(v[0]), static_cast<uint64_t>(v[1]));
}

// An INT4 Linear `module` of [n, k] in `scheme` (its INT4 parts still to be taken).
LinearWeight int4_linear_weight(const std::string& module, uint64_t n, uint64_t k, const quant::Scheme& scheme,
                                const ops::Int4Scheme& s4) {
  LinearWeight lw;
  lw.name = module + ".weight";
  lw.n = n;
  lw.k = k;
  lw.layout = scheme.granularity;
  lw.int4 = s4;
  lw.act_order = scheme.act_order;
  return lw;
}

// The tensor called `name`, or null.
const TensorRef* tensor_named(const std::map<std::string, const TensorRef*>& by_name, const std::string& name) {
  auto it = by_name.find(name);
  return it == by_name.end() ? nullptr : it->second;
}

// Each of `parts` of `module` there with its dtype and shape ("what" stores it "for a `weight`"),
// taken into `lw` by its role (the part named `sort_indices`, a second group index, as the
// Marlin sort indices); false after a failure.
bool take_int4_parts(const Checkpoint& ck, const std::string& module, const TensorRef& codes,
                     const std::vector<quant::Part>& parts,
                     const std::function<const TensorRef*(const std::string&)>& find, const std::string& what,
                     const std::string& weight, const FailFn& fail, LinearWeight& lw,
                     const std::string& sort_indices = "") {
  bool ok = true;
  for (const auto& part : parts) {
    const std::string name = module + "." + part.suffix;
    const TensorRef* t = find(name);
    const std::string want = std::string(dtype_name(part.dtype)) + " " + shape_str(part.shape);
    if (!t) {
      fail("int4", file_of(ck, codes), name, "tensor is missing: " + what + " stores " + want + " here for a " + weight);
      ok = false;
      continue;
    }
    if (t->dtype() != part.dtype || t->shape() != part.shape) {
      fail("int4", file_of(ck, *t), name,
           std::string(dtype_name(t->dtype())) + " " + shape_str(t->shape()) + ", but " + what + " stores " + want +
               " for a " + weight);
      ok = false;
      continue;
    }
    lw.owned.push_back(t);
    switch (part.role) {
      case quant::PartRole::kCodes: lw.weight = t; break;
      case quant::PartRole::kScale: lw.scale = t; break;
      case quant::PartRole::kZero: lw.zeros = t; break;
      case quant::PartRole::kGroupIndex: (part.suffix == sort_indices ? lw.sort_indices : lw.g_idx) = t; break;
      default: break;
    }
  }
  return ok;
}

// No tensor of `module` the Linear's scheme could own but `parts` does not list; false after one.
bool no_other_parts(const Checkpoint& ck, const std::string& module, const std::vector<const TensorRef*>& owned,
                    const std::vector<quant::Part>& parts, const std::string& what, const FailFn& fail) {
  bool ok = true;
  for (const TensorRef* t : owned) {
    const std::string suffix = t->name.substr(module.size() + 1);
    if (std::none_of(parts.begin(), parts.end(), [&](const quant::Part& p) { return p.suffix == suffix; })) {
      fail("quant-config", file_of(ck, *t), t->name, "tensor that " + what + " does not have");
      ok = false;
    }
  }
  return ok;
}

// The INT4 Linears of `ck`, keyed by their codes tensor.
std::map<const TensorRef*, LinearWeight> find_int4_linears(const Checkpoint& ck, const quant::Scheme& scheme,
                                                           const std::map<std::string, const TensorRef*>& by_name,
                                                           const FailFn& fail) {
  auto find = [&](const std::string& name) { return tensor_named(by_name, name); };
  // Modules owning a tensor the scheme's Linears own, with those tensors, in tensor order.
  std::vector<std::string> modules;
  std::map<std::string, std::vector<const TensorRef*>> owned;
  for (const auto& t : ck.tensors) {
    const auto dot = t.name.rfind('.');
    if (dot == std::string::npos || !scheme.owns_suffix(t.name.substr(dot + 1))) continue;
    const std::string module = t.name.substr(0, dot);
    if (!owned.count(module)) modules.push_back(module);
    owned[module].push_back(&t);
  }
  // The suffix of each role, from the one model (dimensions do not change names).
  auto suffix_of = [&](quant::PartRole role) -> std::string {
    for (const auto& p : scheme.linear_parts(8, 8, DType::BF16))
      if (p.role == role) return p.suffix;
    return "";
  };
  std::map<const TensorRef*, LinearWeight> out;
  for (const auto& module : modules) {
    const TensorRef* first = owned[module].front();
    const std::string codes_name = module + "." + suffix_of(quant::PartRole::kCodes);
    const TensorRef* codes = find(codes_name);
    if (!codes) {
      fail("int4", file_of(ck, *first), first->name,
           "tensor of an INT4 Linear (" + scheme.describe() + ") whose codes tensor '" + codes_name + "' is missing");
      continue;
    }
    if (scheme.ignores(module)) {
      fail("quant-config", file_of(ck, *codes), codes->name, "INT4 codes of a module quantization_config lists as ignored");
      continue;
    }
    const TensorRef* scale = find(module + "." + suffix_of(quant::PartRole::kScale));
    const TensorRef* shape_t = scheme.format == quant::Format::kCompressedTensors
                                   ? find(module + "." + suffix_of(quant::PartRole::kShape)) : nullptr;
    const auto dims = int4_dims(ck, scheme, *codes, shape_t, fail);
    if (!dims) continue;
    const auto [n, k] = *dims;
    const DType wdt = int4_weight_dtype(ck, scale);
    const ops::Int4Scheme s4 = scheme.int4(wdt);
    LinearWeight lw = int4_linear_weight(module, n, k, scheme, s4);
    const std::string weight = "[" + std::to_string(n) + ", " + std::to_string(k) + "] weight";
    if (std::string why = ops::int4_shape_problem(s4, n, k); !why.empty()) {
      fail("int4", file_of(ck, *codes), codes->name, scheme.describe() + " cannot hold a " + weight + ": " + why);
      continue;
    }
    std::vector<quant::Part> parts = scheme.linear_parts(n, k, wdt);
    bool ok = take_int4_parts(ck, module, *codes, parts, find, scheme.describe() + " (config.json)", weight, fail, lw);
    // compressed-tensors with actorder "group" (llm-compressor's GPTQ) adds weight_g_idx I32 [K],
    // which linear_parts leaves out (ckpt writes none): taken as the Linear's g_idx when it is there.
    if (scheme.format == quant::Format::kCompressedTensors && scheme.act_order) {
      const quant::Part g_idx{"weight_g_idx", quant::PartRole::kGroupIndex, DType::I32, {k}};
      if (const TensorRef* t = find(module + "." + g_idx.suffix)) {
        if (t->dtype() != g_idx.dtype || t->shape() != g_idx.shape) {
          fail("int4", file_of(ck, *t), t->name,
               std::string(dtype_name(t->dtype())) + " " + shape_str(t->shape()) + ", but an act-order g_idx is I32 " +
                   shape_str(g_idx.shape) + " for a " + weight);
          ok = false;
        }
        lw.g_idx = t;
        lw.owned.push_back(t);
        parts.push_back(g_idx);
      }
    }
    ok = no_other_parts(ck, module, owned[module], parts, scheme.describe() + " (config.json's quantization_config)", fail) && ok;
    if (ok) out.emplace(codes, std::move(lw));
  }
  return out;
}

// The INT4 Linears of a `ckpt marlin` output of `scheme`, keyed by their Marlin qweight: every
// tensor vLLM's Marlin layer holds after process_weights_after_loading (commands/marlin.h lists
// them), with its dtype and shape, and none it does not.
std::map<const TensorRef*, LinearWeight> find_marlin_linears(const Checkpoint& ck, const quant::Scheme& scheme,
                                                             const std::map<std::string, const TensorRef*>& by_name,
                                                             const FailFn& fail) {
  auto find = [&](const std::string& name) { return tensor_named(by_name, name); };
  const MarlinTensorNames nm = marlin_tensor_names(scheme.format);
  const bool ct = scheme.format == quant::Format::kCompressedTensors;
  const std::string layout = "the Marlin layout of " + scheme.describe();
  std::vector<std::string> modules;
  std::map<std::string, std::vector<const TensorRef*>> owned;
  for (const auto& t : ck.tensors) {
    const auto dot = t.name.rfind('.');
    if (dot == std::string::npos) continue;
    const std::string last = t.name.substr(dot + 1);
    if (!scheme.owns_suffix(last) && last != nm.sort_indices && last != nm.g_idx) continue;
    const std::string module = t.name.substr(0, dot);
    if (!owned.count(module)) modules.push_back(module);
    owned[module].push_back(&t);
  }
  std::map<const TensorRef*, LinearWeight> out;
  for (const auto& module : modules) {
    const TensorRef* first = owned[module].front();
    const TensorRef* codes = find(module + "." + nm.codes);
    if (!codes) {
      fail("int4", file_of(ck, *first), first->name,
           "tensor of a Marlin Linear (" + layout + ") whose qweight '" + module + "." + nm.codes + "' is missing");
      continue;
    }
    if (scheme.ignores(module)) {
      fail("quant-config", file_of(ck, *codes), codes->name, "Marlin codes of a module quantization_config lists as ignored");
      continue;
    }
    if (codes->dtype() != DType::I32 || codes->shape().size() != 2 || codes->shape()[1] % 128 != 0) {
      fail("int4", file_of(ck, *codes), codes->name,
           std::string(dtype_name(codes->dtype())) + " " + shape_str(codes->shape()) +
               ": a Marlin qweight is I32 [K/16, 2N] with N a multiple of 64");
      continue;
    }
    const uint64_t k = 16 * codes->shape()[0], n = codes->shape()[1] / 2;
    const std::string weight = "[" + std::to_string(n) + ", " + std::to_string(k) + "] weight";
    const TensorRef* scale = find(module + "." + nm.scales);
    const DType wdt = int4_weight_dtype(ck, scale);
    const ops::Int4Scheme s4 = scheme.int4(wdt);
    std::string why = ops::int4_shape_problem(s4, n, k);
    if (why.empty()) why = ops::marlin_kernel_shape_problem(n, k, s4.group_size);
    if (!why.empty()) {
      fail("int4", file_of(ck, *codes), codes->name, layout + " cannot hold a " + weight + ": " + why);
      continue;
    }
    const ops::Int4Geometry geo = ops::int4_geometry(s4, n, k);
    LinearWeight lw = int4_linear_weight(module, n, k, scheme, s4);
    lw.marlin = true;
    // What the layout holds (commands/marlin.h): scales in the source format's scale dtype.
    std::vector<quant::Part> parts = {{nm.codes, quant::PartRole::kCodes, DType::I32, {k / 16, 2 * n}},
                                      {nm.scales, quant::PartRole::kScale, s4.scale_dtype, {geo.groups, n}}};
    if (!scheme.symmetric) parts.push_back({nm.zeros, quant::PartRole::kZero, DType::I32, {geo.groups, n / 8}});
    if (scheme.act_order) {
      parts.push_back({nm.g_idx, quant::PartRole::kGroupIndex, DType::I32, {k}});
      parts.push_back({nm.sort_indices, quant::PartRole::kGroupIndex, DType::I32, {k}});
    }
    if (ct) parts.push_back({"weight_shape", quant::PartRole::kShape, DType::I64, {2}});
    bool ok = take_int4_parts(ck, module, *codes, parts, find, layout, weight, fail, lw, nm.sort_indices);
    // compressed-tensors: weight_shape still names the logical [N, K] (int4_dims reads it).
    if (ok && ct) {
      const auto dims = int4_dims(ck, scheme, *codes, find(module + ".weight_shape"), fail);
      if (!dims) ok = false;
      else if (dims->first != n || dims->second != k) {
        fail("int4", file_of(ck, *codes), module + ".weight_shape",
             "{" + std::to_string(dims->first) + ", " + std::to_string(dims->second) + "}, but the Marlin qweight " +
                 shape_str(codes->shape()) + " holds a " + weight);
        ok = false;
      }
    }
    ok = no_other_parts(ck, module, owned[module], parts, layout, fail) && ok;
    if (ok) out.emplace(codes, std::move(lw));
  }
  return out;
}

}  // namespace

std::vector<LinearWeight> find_linear_weights(const Checkpoint& ck, const quant::Scheme& scheme,
                                              const LinearSelector& is_linear, const FailFn& fail, bool marlin) {
  auto file_of = [&](const TensorRef& t) { return ck.files[t.view.file].path; };
  std::map<std::string, const TensorRef*> by_name;
  for (const auto& t : ck.tensors) by_name[t.name] = &t;
  auto find = [&](const std::string& name) { return tensor_named(by_name, name); };
  std::map<const TensorRef*, LinearWeight> int4;
  if (scheme.method == quant::Method::kInt4)
    int4 = marlin ? find_marlin_linears(ck, scheme, by_name, fail) : find_int4_linears(ck, scheme, by_name, fail);

  // A scale needs its FP8 weight (INT4 scales were matched to their codes above).
  for (const auto& t : ck.tensors) {
    if (scheme.method == quant::Method::kInt4) break;
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
    if (auto it = int4.find(&t); it != int4.end()) {
      out.push_back(std::move(it->second));
      continue;
    }
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

Int4SourceArrays marlin_source_arrays(const LinearWeight& lw, const std::function<const uint8_t*(const TensorRef&)>& bytes,
                                      bool with_codes) {
  // The undo functions read 32-bit words: each array is copied into aligned memory first.
  auto words = [&](const TensorRef& t) {
    std::vector<uint32_t> w(t.nbytes() / 4);
    std::memcpy(w.data(), bytes(t), w.size() * 4);
    return w;
  };
  const MarlinLinearGeometry g = marlin_linear_geometry(*lw.int4, lw.n, lw.k);
  Int4SourceArrays a;
  const std::vector<uint32_t> scales = words(*lw.scale);  // 2-byte elements, [G, N] with N even
  a.scales = marlin_source_scales(g, reinterpret_cast<const uint8_t*>(scales.data()), dtype_bits(lw.scale->dtype()) / 8);
  if (lw.zeros) a.zeros = marlin_source_zeros(g, words(*lw.zeros).data());
  std::vector<uint32_t> perm;
  if (lw.act_order) {
    perm = words(*lw.sort_indices);
    const std::vector<uint32_t> sorted = words(*lw.g_idx);
    const std::string why = marlin_source_g_idx(reinterpret_cast<const int32_t*>(sorted.data()),
                                                reinterpret_cast<const int32_t*>(perm.data()), lw.k, a.g_idx);
    if (!why.empty()) fail(Errc::kInvalidArgument, "", lw.sort_indices->name, why);
  }
  if (with_codes)
    a.weights = marlin_source_codes(g, words(*lw.weight).data(), lw.act_order ? reinterpret_cast<const int32_t*>(perm.data()) : nullptr);
  return a;
}

}  // namespace ckpt::validate
