#include "commands/pad_intermediate.h"

#include <regex>

#include "core/error.h"
#include "plan/axis_concat.h"

namespace ckpt {

uint64_t padded_intermediate(uint64_t intermediate, uint64_t multiple) {
  return (intermediate + multiple - 1) / multiple * multiple;
}

namespace {

// `v` followed by zeros along `dim` up to `length`, as the bytes a producer makes (the view a
// pipeline step's output gets: plan/pipeline.cpp).
SourceView zero_padded(const SourceView& v, size_t dim, uint64_t length) {
  SourceView zeros;
  zeros.file = SourceView::kZeros;
  zeros.dtype = v.dtype;
  zeros.shape = v.shape;
  zeros.shape[dim] = length - v.shape[dim];
  SourceView out;
  out.file = SourceView::kProduced;
  out.dtype = v.dtype;
  out.shape = v.shape;
  out.shape[dim] = length;
  out.produced = std::make_shared<ProducedTensor>(concat_views({v, zeros}, dim));
  return out;
}

}  // namespace

std::optional<IntermediatePadding> pad_intermediate(Checkpoint& ck, uint64_t multiple, const std::string& why) {
  const std::string cfg = ck.path + "/config.json";
  if (multiple == 0) throw std::logic_error("pad_intermediate: multiple 0");
  if (!ck.config || !ck.config->is_object() || !ck.config->contains("intermediate_size") ||
      !(*ck.config)["intermediate_size"].is_number_unsigned())
    fail(Errc::kUnsupported, cfg, "", "--pad-intermediate: config.json has no intermediate_size to pad");
  for (const char* moe : {"num_experts", "num_local_experts", "n_routed_experts", "moe_intermediate_size"})
    if (ck.config->contains(moe) && !(*ck.config)[moe].is_null())
      fail(Errc::kUnsupported, cfg, "",
           std::string("--pad-intermediate: config.json declares ") + moe + ": padding MoE experts is not supported");
  IntermediatePadding p;
  p.from = (*ck.config)["intermediate_size"].get<uint64_t>();
  p.multiple = multiple;
  p.to = padded_intermediate(p.from, multiple);
  if (p.to == p.from) return std::nullopt;
  static const std::regex mlp(R"(model\.layers\.\d+\.mlp\.(gate_proj|up_proj|down_proj|gate_up_proj)\.(weight|bias))");
  std::smatch m;
  for (auto& t : ck.tensors) {
    if (!std::regex_match(t.name, m, mlp)) continue;
    const std::string file = t.view.file >= 0 ? ck.files[t.view.file].path : ck.path;
    const std::string proj = m[1], kind = m[2];
    if (proj == "gate_up_proj")
      fail(Errc::kUnsupported, file, t.name, "--pad-intermediate: a fused gate_up_proj would need padding in each half (not supported)");
    if (proj == "down_proj" && kind == "bias") continue;  // [H]
    const size_t dim = proj == "down_proj" ? 1 : 0;
    const bool ok = kind == "weight" ? t.shape().size() == 2 && t.shape()[dim] == p.from
                                     : t.shape() == std::vector<uint64_t>{p.from};
    if (!ok)
      fail(Errc::kUnsupported, file, t.name,
           "--pad-intermediate: shape " + shape_to_string(t.shape()) + " does not have intermediate_size " +
               std::to_string(p.from) + " along dimension " + std::to_string(dim));
    t.view = zero_padded(t.view, dim, p.to);
    ++p.tensors;
  }
  if (p.tensors == 0)
    fail(Errc::kUnsupported, ck.path, "", "--pad-intermediate: no model.layers.<i>.mlp.{gate,up,down}_proj weights to pad");
  (*ck.config)["intermediate_size"] = p.to;
  (*ck.config)["ckpt_intermediate_padding"] = {{"original_intermediate_size", p.from},
                                               {"intermediate_size", p.to},
                                               {"multiple", multiple},
                                               {"why", why},
                                               {"how", "zero rows in gate_proj/up_proj, zero columns in down_proj: "
                                                       "exact for a gated MLP"}};
  return p;
}

}  // namespace ckpt
