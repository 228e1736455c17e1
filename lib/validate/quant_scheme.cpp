#include "validate/quant_scheme.h"

#include <regex>

#include "core/error.h"

namespace ckpt::validate {

const char* scale_layout_name(ScaleLayout l) {
  switch (l) {
    case ScaleLayout::kPerTensor: return "per-tensor";
    case ScaleLayout::kPerChannel: return "per-channel";
    case ScaleLayout::kBlock: return "block";
  }
  return "?";
}

bool QuantScheme::ignores(const std::string& module) const {
  const std::string prefixed = "model." + module;
  for (const auto& entry : ignore) {
    if (entry.rfind("re:", 0) == 0) {
      try {
        if (std::regex_match(module, std::regex(entry.substr(3)))) return true;
      } catch (const std::regex_error&) {
        continue;  // reported by parse_quant_scheme
      }
    } else if (entry == module || entry == prefixed || "model." + entry == module) {
      return true;
    }
  }
  return false;
}

namespace {

[[noreturn]] void bad(const std::string& label, const std::string& rule) {
  fail(Errc::kUnsupported, label, "", "quantization_config: " + rule);
}

void read_ignore_list(const ojson& q, const char* key, const std::string& label, QuantScheme& s) {
  if (!q.contains(key) || q[key].is_null()) return;
  if (!q[key].is_array()) bad(label, std::string(key) + " must be a list of module names");
  for (const auto& v : q[key]) {
    if (!v.is_string()) bad(label, std::string(key) + " must be a list of module names");
    std::string name = v.get<std::string>();
    if (name.rfind("re:", 0) == 0) {
      try {
        std::regex re(name.substr(3));
      } catch (const std::regex_error&) {
        bad(label, std::string(key) + " entry '" + name + "' is not a valid regular expression");
      }
    }
    s.ignore.push_back(name);
  }
}

std::pair<uint64_t, uint64_t> read_block(const ojson& v, const std::string& label, const std::string& key) {
  if (!v.is_array() || v.size() != 2 || !v[0].is_number_unsigned() || !v[1].is_number_unsigned() ||
      v[0].get<uint64_t>() == 0 || v[1].get<uint64_t>() == 0)
    bad(label, key + " must be two positive integers [rows, cols]");
  return {v[0].get<uint64_t>(), v[1].get<uint64_t>()};
}

void parse_native_fp8(const ojson& q, const std::string& label, QuantScheme& s) {
  s.method = QuantMethod::kFp8;
  if (!q.contains("activation_scheme") || !q["activation_scheme"].is_string())
    bad(label, "quant_method fp8 needs activation_scheme (\"static\" or \"dynamic\"), as vLLM requires");
  std::string act = q["activation_scheme"].get<std::string>();
  if (act != "static" && act != "dynamic") bad(label, "activation_scheme '" + act + "' is not static or dynamic");
  if (q.contains("weight_block_size") && !q["weight_block_size"].is_null()) {
    auto [bn, bk] = read_block(q["weight_block_size"], label, "weight_block_size");
    if (act != "dynamic") bad(label, "weight_block_size needs activation_scheme dynamic (vLLM)");
    s.layout = ScaleLayout::kBlock;
    s.block_n = bn;
    s.block_k = bk;
  } else {
    s.layout = ScaleLayout::kPerTensor;
  }
  read_ignore_list(q, "ignored_layers", label, s);
  read_ignore_list(q, "modules_to_not_convert", label, s);
}

void parse_compressed_tensors(const ojson& q, const std::string& label, QuantScheme& s) {
  s.method = QuantMethod::kCompressedTensors;
  std::string format = q.contains("format") && q["format"].is_string() ? q["format"].get<std::string>() : "";
  if (format != "float-quantized" && format != "naive-quantized")
    bad(label, "compressed-tensors format '" + format + "' is not float-quantized (only FP8 is validated)");
  if (!q.contains("config_groups") || !q["config_groups"].is_object() || q["config_groups"].empty())
    bad(label, "compressed-tensors needs config_groups");
  for (const auto& [group, g] : q["config_groups"].items()) {
    if (!g.is_object() || !g.contains("weights") || !g["weights"].is_object())
      bad(label, "config_groups." + group + ".weights is missing");
    const ojson& w = g["weights"];
    auto field = [&](const char* k) { return w.contains(k) ? w[k] : ojson(); };
    if (field("num_bits") != 8 || field("type") != "float")
      bad(label, "config_groups." + group + ".weights is not 8-bit float (only FP8 is validated)");
    std::string strategy = field("strategy").is_string() ? field("strategy").get<std::string>() : "";
    ScaleLayout layout;
    if (strategy == "tensor") layout = ScaleLayout::kPerTensor;
    else if (strategy == "channel") layout = ScaleLayout::kPerChannel;
    else if (strategy == "block") layout = ScaleLayout::kBlock;
    else bad(label, "config_groups." + group + ".weights.strategy '" + strategy + "' is not tensor, channel or block");
    if (layout == ScaleLayout::kBlock) {
      auto [bn, bk] = read_block(field("block_structure"), label, "config_groups." + group + ".weights.block_structure");
      if (s.layout == ScaleLayout::kBlock && (s.block_n != bn || s.block_k != bk))
        bad(label, "config groups declare different block structures");
      s.block_n = bn;
      s.block_k = bk;
    }
    if (s.layout && *s.layout != layout) bad(label, "config groups declare different weight strategies");
    s.layout = layout;
  }
  read_ignore_list(q, "ignore", label, s);
}

}  // namespace

QuantScheme parse_quant_scheme(const ojson* config, const std::string& label) {
  QuantScheme s;
  if (!config || !config->is_object() || !config->contains("quantization_config") ||
      (*config)["quantization_config"].is_null())
    return s;
  const ojson& q = (*config)["quantization_config"];
  if (!q.is_object() || !q.contains("quant_method") || !q["quant_method"].is_string())
    bad(label, "quant_method is missing");
  s.method_name = q["quant_method"].get<std::string>();
  if (s.method_name == "fp8") parse_native_fp8(q, label, s);
  else if (s.method_name == "compressed-tensors") parse_compressed_tensors(q, label, s);
  else bad(label, "quant_method '" + s.method_name + "' has no GEMM path in ckpt validate (fp8 and compressed-tensors FP8 do)");
  return s;
}

}  // namespace ckpt::validate
