#include "quant/scheme.h"

#include <algorithm>
#include <regex>

#include "core/error.h"

namespace ckpt::quant {

const char* format_name(Format f) {
  switch (f) {
    case Format::kFp8Native: return "native";
    case Format::kCompressedTensors: return "compressed-tensors";
    case Format::kGptq: return "gptq";
    case Format::kAwq: return "awq";
  }
  return "?";
}

const char* granularity_name(Granularity g) {
  switch (g) {
    case Granularity::kTensor: return "tensor";
    case Granularity::kChannel: return "channel";
    case Granularity::kGroup: return "group";
    case Granularity::kBlock: return "block";
  }
  return "?";
}

bool Scheme::ignores(const std::string& module) const {
  const std::string prefixed = "model." + module;
  for (const auto& entry : ignore) {
    if (entry.rfind("re:", 0) == 0) {
      try {
        if (std::regex_match(module, std::regex(entry.substr(3)))) return true;
      } catch (const std::regex_error&) {
        continue;  // refused by read_scheme
      }
    } else if (entry == module || entry == prefixed || "model." + entry == module) {
      return true;
    }
  }
  return false;
}

std::string Scheme::describe() const {
  if (method == Method::kNone) return "none";
  std::string t = std::string(method == Method::kFp8 ? "fp8 " : "int4 ") + format_name(format) + " ";
  if (method == Method::kInt4) t += symmetric ? "sym " : "asym ";
  t += granularity_name(granularity);
  if (granularity == Granularity::kBlock) t += " " + std::to_string(block_n) + "x" + std::to_string(block_k);
  if (granularity == Granularity::kGroup) t += " " + std::to_string(group_size);
  if (act_order) t += " act-order";
  if (format == Format::kGptq && gptq_v2) t += " (gptq_v2 zeros)";
  return t;
}

ops::Int4Scheme Scheme::int4(DType weight_dtype) const {
  ops::Int4Scheme s;
  s.format = format == Format::kGptq  ? ops::Int4Format::kGptq
             : format == Format::kAwq ? ops::Int4Format::kAwq
                                      : ops::Int4Format::kCompressedTensors;
  s.group_size = granularity == Granularity::kGroup ? static_cast<int64_t>(group_size) : -1;
  s.symmetric = symmetric;
  s.scale_dtype = format == Format::kCompressedTensors ? weight_dtype : DType::F16;
  s.gptq_zero_offset = gptq_v2 ? 0 : 1;
  return s;
}

std::vector<Part> Scheme::linear_parts(uint64_t n, uint64_t k, DType weight_dtype) const {
  auto cdiv = [](uint64_t a, uint64_t b) { return (a + b - 1) / b; };
  std::vector<Part> parts;
  if (method == Method::kFp8) {
    parts.push_back({"weight", PartRole::kCodes, DType::F8_E4M3, {n, k}});
    const bool native = format == Format::kFp8Native;
    const DType sd = native ? DType::F32 : weight_dtype;
    switch (granularity) {
      case Granularity::kTensor:
        parts.push_back({"weight_scale", PartRole::kScale, sd, native ? std::vector<uint64_t>{} : std::vector<uint64_t>{1}});
        break;
      case Granularity::kChannel: parts.push_back({"weight_scale", PartRole::kScale, sd, {n, 1}}); break;
      case Granularity::kBlock:
      case Granularity::kGroup:
        parts.push_back({native ? "weight_scale_inv" : "weight_scale", PartRole::kScale, sd,
                         {cdiv(n, block_n), cdiv(k, block_k)}});
        break;
    }
    return parts;
  }
  if (method != Method::kInt4) return parts;
  const ops::Int4Scheme s4 = int4(weight_dtype);
  const ops::Int4Shapes sh = ops::int4_shapes(s4, n, k);
  if (format == Format::kCompressedTensors) {
    parts.push_back({"weight_packed", PartRole::kCodes, DType::I32, sh.weights});
    parts.push_back({"weight_scale", PartRole::kScale, s4.scale_dtype, sh.scales});
    parts.push_back({"weight_shape", PartRole::kShape, DType::I64, sh.shape});
    if (!symmetric) parts.push_back({"weight_zero_point", PartRole::kZero, DType::I32, sh.zeros});
    return parts;
  }
  parts.push_back({"qweight", PartRole::kCodes, DType::I32, sh.weights});
  parts.push_back({"qzeros", PartRole::kZero, DType::I32, sh.zeros});
  parts.push_back({"scales", PartRole::kScale, DType::F16, sh.scales});
  if (format == Format::kGptq) parts.push_back({"g_idx", PartRole::kGroupIndex, DType::I32, sh.g_idx});
  return parts;
}

bool Scheme::owns_suffix(const std::string& last) const {
  switch (method) {
    case Method::kNone: return false;
    case Method::kFp8:
      return last == "weight_scale" || last == "weight_scale_inv" || last == "input_scale";
    case Method::kInt4:
      if (format == Format::kCompressedTensors)
        return last == "weight_packed" || last == "weight_scale" || last == "weight_shape" ||
               last == "weight_zero_point" || last == "weight_g_idx";
      return last == "qweight" || last == "qzeros" || last == "scales" || last == "g_idx";
  }
  return false;
}

namespace {

[[noreturn]] void bad(const std::string& label, const std::string& rule) {
  fail(Errc::kUnsupported, label, "", "quantization_config: " + rule);
}

const ojson* field(const ojson& o, const char* key) {
  auto it = o.find(key);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

bool read_bool(const ojson& o, const char* key, bool fallback, const std::string& label) {
  const ojson* v = field(o, key);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(label, std::string(key) + " must be true or false");
  return v->get<bool>();
}

void read_ignore_list(const ojson& q, const char* key, const std::string& label, Scheme& s) {
  const ojson* list = field(q, key);
  if (!list) return;
  if (!list->is_array()) bad(label, std::string(key) + " must be a list of module names");
  for (const auto& v : *list) {
    if (!v.is_string()) bad(label, std::string(key) + " must be a list of module names");
    std::string name = v.get<std::string>();
    if (name.rfind("re:", 0) == 0) {
      try {
        std::regex re(name.substr(3));
      } catch (const std::regex_error&) {
        bad(label, std::string(key) + " entry '" + name + "' is not a valid regular expression");
      }
    }
    if (std::find(s.ignore.begin(), s.ignore.end(), name) == s.ignore.end()) s.ignore.push_back(name);
  }
}

std::pair<uint64_t, uint64_t> read_block(const ojson* v, const std::string& label, const std::string& key) {
  if (!v || !v->is_array() || v->size() != 2 || !(*v)[0].is_number_unsigned() || !(*v)[1].is_number_unsigned() ||
      (*v)[0].get<uint64_t>() == 0 || (*v)[1].get<uint64_t>() == 0)
    bad(label, key + " must be two positive integers [rows, cols]");
  return {(*v)[0].get<uint64_t>(), (*v)[1].get<uint64_t>()};
}

// group_size as the INT4 formats write it: a positive integer, or -1 for one group spanning K.
void read_group_size(const ojson* v, const std::string& label, const std::string& key, Scheme& s) {
  if (!v || !v->is_number_integer() || (v->get<int64_t>() <= 0 && v->get<int64_t>() != -1))
    bad(label, key + " must be a positive integer or -1");
  if (v->get<int64_t>() == -1) {
    s.granularity = Granularity::kChannel;
  } else {
    s.granularity = Granularity::kGroup;
    s.group_size = v->get<uint64_t>();
  }
}

void read_native_fp8(const ojson& q, const std::string& label, Scheme& s) {
  s.method = Method::kFp8;
  s.format = Format::kFp8Native;
  if (const ojson* a = field(q, "activation_scheme")) {
    if (!a->is_string()) bad(label, "activation_scheme must be \"static\" or \"dynamic\"");
    s.activation_scheme = a->get<std::string>();
    if (*s.activation_scheme != "static" && *s.activation_scheme != "dynamic")
      bad(label, "activation_scheme '" + *s.activation_scheme + "' is not static or dynamic");
  }
  if (const ojson* b = field(q, "weight_block_size")) {
    auto [bn, bk] = read_block(b, label, "weight_block_size");
    s.granularity = Granularity::kBlock;
    s.block_n = bn;
    s.block_k = bk;
  }
  read_ignore_list(q, "ignored_layers", label, s);
  read_ignore_list(q, "modules_to_not_convert", label, s);
}

void read_compressed_tensors(const ojson& q, const std::string& label, Scheme& s) {
  s.format = Format::kCompressedTensors;
  const ojson* f = field(q, "format");
  const std::string format = f && f->is_string() ? f->get<std::string>() : "";
  if (format == "float-quantized" || format == "naive-quantized") s.method = Method::kFp8;
  else if (format == "pack-quantized") s.method = Method::kInt4;
  else bad(label, "compressed-tensors format '" + format + "' is not float-quantized or pack-quantized");
  const ojson* groups = field(q, "config_groups");
  if (!groups || !groups->is_object() || groups->empty()) bad(label, "compressed-tensors needs config_groups");
  bool first = true;
  for (const auto& [group, g] : groups->items()) {
    const std::string where = "config_groups." + group + ".weights";
    if (!g.is_object() || !field(g, "weights") || !g["weights"].is_object()) bad(label, where + " is missing");
    const ojson& w = g["weights"];
    const ojson* bits = field(w, "num_bits");
    const ojson* type = field(w, "type");
    const bool fp8 = bits && *bits == 8 && type && *type == "float";
    const bool int4 = bits && *bits == 4 && type && *type == "int";
    if (s.method == Method::kFp8 && !fp8) bad(label, where + " is not 8-bit float (format " + format + ")");
    if (s.method == Method::kInt4 && !int4) bad(label, where + " is not 4-bit int (format " + format + ")");
    const ojson* st = field(w, "strategy");
    const std::string strategy = st && st->is_string() ? st->get<std::string>() : "";
    Scheme g_s;
    if (strategy == "tensor" && s.method == Method::kFp8) {
      g_s.granularity = Granularity::kTensor;
    } else if (strategy == "channel") {
      g_s.granularity = Granularity::kChannel;
    } else if (strategy == "block" && s.method == Method::kFp8) {
      g_s.granularity = Granularity::kBlock;
      std::tie(g_s.block_n, g_s.block_k) = read_block(field(w, "block_structure"), label, where + ".block_structure");
    } else if (strategy == "group" && s.method == Method::kInt4) {
      const ojson* gs = field(w, "group_size");
      if (!gs || !gs->is_number_unsigned() || gs->get<uint64_t>() == 0)
        bad(label, where + ".group_size must be a positive integer for strategy group");
      g_s.granularity = Granularity::kGroup;
      g_s.group_size = gs->get<uint64_t>();
    } else {
      bad(label, where + ".strategy '" + strategy + "' is not one " + format + " supports here" +
                     (s.method == Method::kFp8 ? " (tensor, channel or block)" : " (group or channel)"));
    }
    g_s.symmetric = read_bool(w, "symmetric", true, label);
    if (s.method == Method::kFp8 && !g_s.symmetric) bad(label, where + ": FP8 weights are symmetric");
    if (const ojson* ao = field(w, "actorder")) {
      if (!ao->is_string() || (*ao != "static" && *ao != "group" && *ao != "weight"))
        bad(label, where + ".actorder must be null, \"static\", \"weight\" or \"group\"");
      g_s.act_order = *ao == "group";  // static/weight orderings keep g_idx trivial (not stored)
    }
    if (!first && (g_s.granularity != s.granularity || g_s.block_n != s.block_n || g_s.block_k != s.block_k ||
                   g_s.group_size != s.group_size || g_s.symmetric != s.symmetric || g_s.act_order != s.act_order))
      bad(label, "config groups declare different weight schemes (ckpt handles one scheme per checkpoint)");
    s.granularity = g_s.granularity;
    s.block_n = g_s.block_n;
    s.block_k = g_s.block_k;
    s.group_size = g_s.group_size;
    s.symmetric = g_s.symmetric;
    s.act_order = g_s.act_order;
    first = false;
  }
  read_ignore_list(q, "ignore", label, s);
}

void read_bits_4(const ojson& q, const std::string& label, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (const ojson* b = field(q, k)) {
      if (*b != 4) bad(label, std::string(k) + " " + b->dump() + ": ckpt handles 4-bit GPTQ/AWQ only");
      return;
    }
  bad(label, std::string(*keys.begin()) + " is missing (4-bit GPTQ/AWQ)");
}

void read_gptq(const ojson& q, const std::string& label, Scheme& s) {
  s.method = Method::kInt4;
  s.format = Format::kGptq;
  read_bits_4(q, label, {"bits"});
  read_group_size(field(q, "group_size"), label, "gptq group_size", s);
  s.act_order = read_bool(q, "desc_act", false, label) && s.granularity == Granularity::kGroup;  // vLLM: ignored for -1
  // AutoGPTQ's BaseQuantizeConfig and GPTQModel's QuantizeConfig default sym to True.
  s.symmetric = read_bool(q, "sym", true, label);
  const ojson* cf = field(q, "checkpoint_format");
  if (!cf) cf = field(q, "format");  // GPTQModel's in-code alias
  const std::string fmt = cf && cf->is_string() ? cf->get<std::string>() : "gptq";
  if (fmt == "gptq_v2") s.gptq_v2 = true;
  else if (fmt != "gptq") bad(label, "checkpoint_format '" + fmt + "' is not gptq or gptq_v2");
  // GPTQModel's dynamic overrides: "-:<regex>" keys skip the matching modules (re.match).
  if (const ojson* dyn = field(q, "dynamic")) {
    if (!dyn->is_object()) bad(label, "dynamic must be an object of module patterns");
    for (const auto& [key, v] : dyn->items()) {
      if (key.rfind("-:", 0) != 0) bad(label, "dynamic override '" + key + "' changes a module's scheme (not supported)");
      const std::string re = "re:" + key.substr(2) + ".*";
      try {
        std::regex check(re.substr(3));
      } catch (const std::regex_error&) {
        bad(label, "dynamic key '" + key + "' is not a valid regular expression");
      }
      s.ignore.push_back(re);
    }
  }
}

void read_awq(const ojson& q, const std::string& label, Scheme& s) {
  s.method = Method::kInt4;
  s.format = Format::kAwq;
  read_bits_4(q, label, {"bits", "w_bit"});
  const ojson* gs = field(q, "group_size");
  read_group_size(gs ? gs : field(q, "q_group_size"), label, "awq group_size", s);
  s.symmetric = !read_bool(q, "zero_point", true, label);
  if (s.symmetric) bad(label, "zero_point false: AWQ GEMM checkpoints without zero points are not supported");
  if (const ojson* v = field(q, "version")) {
    std::string ver = v->is_string() ? v->get<std::string>() : "";
    std::transform(ver.begin(), ver.end(), ver.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ver != "gemm") bad(label, "AWQ version '" + v->dump() + "' is not gemm (the packing vLLM reads)");
  }
  read_ignore_list(q, "modules_to_not_convert", label, s);
}

}  // namespace

Scheme read_scheme(const ojson* config, const std::string& label) {
  Scheme s;
  if (!config || !config->is_object()) return s;
  const ojson* q = field(*config, "quantization_config");
  if (!q) return s;
  if (!q->is_object() || !field(*q, "quant_method") || !(*q)["quant_method"].is_string())
    bad(label, "quant_method is missing");
  s.method_name = (*q)["quant_method"].get<std::string>();
  if (s.method_name == "fp8") read_native_fp8(*q, label, s);
  else if (s.method_name == "compressed-tensors") read_compressed_tensors(*q, label, s);
  else if (s.method_name == "gptq") read_gptq(*q, label, s);
  else if (s.method_name == "awq") read_awq(*q, label, s);
  else if (s.method_name == "ckpt_marlin")  // lib/commands/marlin.h: tiles no other command can split or read
    bad(label, "quant_method 'ckpt_marlin': the weights are in vLLM's Marlin layout; run `ckpt marlin --undo` first "
               "(to shard, shard the INT4 source and relayout each rank)");
  else bad(label, "quant_method '" + s.method_name + "' is not one ckpt understands (fp8, compressed-tensors, gptq, awq)");
  return s;
}

namespace {

// One compressed-tensors QuantizationArgs object, every field as llm-compressor serializes it.
ojson ct_args(int bits, const char* type, bool symmetric, ojson group_size, const char* strategy,
              ojson block_structure, bool dynamic, const char* observer) {
  ojson a = ojson::object();
  a["num_bits"] = bits;
  a["type"] = type;
  a["symmetric"] = symmetric;
  a["group_size"] = std::move(group_size);
  a["strategy"] = strategy;
  a["block_structure"] = std::move(block_structure);
  a["dynamic"] = dynamic;
  a["actorder"] = nullptr;
  a["observer"] = observer ? ojson(observer) : ojson();
  a["observer_kwargs"] = ojson::object();
  return a;
}

ojson compressed_tensors_config(const Scheme& s, const std::vector<std::string>& not_converted) {
  ojson weights, inputs;
  const char* format;
  if (s.method == Method::kFp8) {
    // llm-compressor's presets: FP8_DYNAMIC (channel weights, dynamic per-token activations),
    // FP8_BLOCK (block weights, dynamic per-group-of-bk activations); tensor weights get the same
    // dynamic per-token activations (no calibration data here for static input scales).
    format = "float-quantized";
    if (s.granularity == Granularity::kBlock) {
      weights = ct_args(8, "float", true, nullptr, "block", {s.block_n, s.block_k}, false, "minmax");
      inputs = ct_args(8, "float", true, s.block_k, "group", nullptr, true, nullptr);
    } else {
      weights = ct_args(8, "float", true, nullptr, granularity_name(s.granularity), nullptr, false, "minmax");
      inputs = ct_args(8, "float", true, nullptr, "token", nullptr, true, nullptr);
    }
  } else {
    // W4A16 / W4A16_ASYM (compressed_tensors/quantization/quant_scheme.py): weights only.
    format = "pack-quantized";
    const bool group = s.granularity == Granularity::kGroup;
    weights = ct_args(4, "int", s.symmetric, group ? ojson(s.group_size) : ojson(), group ? "group" : "channel",
                      nullptr, false, "minmax");
    inputs = nullptr;
  }
  ojson g = ojson::object();
  g["targets"] = {"Linear"};
  g["weights"] = weights;
  g["input_activations"] = inputs;
  g["output_activations"] = nullptr;
  g["format"] = format;
  ojson q = ojson::object();
  q["quant_method"] = "compressed-tensors";
  q["format"] = format;
  q["quantization_status"] = "compressed";
  q["config_groups"] = {{"group_0", g}};
  q["ignore"] = not_converted;
  q["kv_cache_scheme"] = nullptr;
  q["global_compression_ratio"] = nullptr;
  q["sparsity_config"] = ojson::object();
  q["transform_config"] = ojson::object();
  return q;
}

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string(".^$|()[]{}*+?\\").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

ojson quantization_config(const Scheme& s, const std::vector<std::string>& not_converted) {
  if (s.format == Format::kCompressedTensors) return compressed_tensors_config(s, not_converted);
  ojson q = ojson::object();
  const int64_t group = s.granularity == Granularity::kGroup ? static_cast<int64_t>(s.group_size) : -1;
  switch (s.format) {
    case Format::kFp8Native:
      q["quant_method"] = "fp8";
      if (s.granularity == Granularity::kBlock) q["fmt"] = "e4m3";
      q["activation_scheme"] = s.activation_scheme.value_or("dynamic");
      if (s.granularity == Granularity::kBlock) q["weight_block_size"] = {s.block_n, s.block_k};
      // vLLM reads ignored_layers; transformers and SGLang also read modules_to_not_convert.
      q["ignored_layers"] = not_converted;
      q["modules_to_not_convert"] = not_converted;
      return q;
    case Format::kGptq: {
      // GPTQModel's QuantizeConfig.to_dict (gptqmodel/quantization/config.py): the same object
      // goes to quantize_config.json. Modules left unquantized are "-:" dynamic overrides (vLLM
      // gptq_utils.get_dynamic_override skips a module whose name re.match-es one). lm_head is
      // covered by "lm_head": false.
      q["bits"] = 4;
      ojson dyn = ojson::object();
      for (const auto& m : not_converted)
        if (m != "lm_head") dyn["-:" + regex_escape(m) + "$"] = ojson::object();
      if (!dyn.empty()) q["dynamic"] = dyn;
      q["group_size"] = group;
      q["desc_act"] = s.act_order;
      q["sym"] = s.symmetric;
      q["lm_head"] = false;
      q["quant_method"] = "gptq";
      q["checkpoint_format"] = s.gptq_v2 ? "gptq_v2" : "gptq";
      q["pack_dtype"] = "int32";
      q["meta"] = {{"quantizer", {"ckpt"}}, {"method", "rtn"}};
      return q;
    }
    case Format::kAwq:
      // AutoAWQ's AwqConfig.to_transformers_dict (awq/models/_config.py).
      q["quant_method"] = "awq";
      q["zero_point"] = !s.symmetric;
      q["group_size"] = group;
      q["bits"] = 4;
      q["version"] = "gemm";
      q["modules_to_not_convert"] = not_converted.empty() ? ojson() : ojson(not_converted);
      return q;
    case Format::kCompressedTensors: break;
  }
  return q;
}

std::optional<std::string> quantize_config_file(const Scheme& s, const std::vector<std::string>& not_converted) {
  if (s.method != Method::kInt4 || s.format != Format::kGptq) return std::nullopt;
  return quantization_config(s, not_converted).dump(2) + "\n";
}

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

}  // namespace ckpt::quant
