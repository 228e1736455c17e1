#include "commands/inspect.h"

#include <cstdio>
#include <map>

#include "checkpoint/dir_files.h"
#include "checkpoint/parallel_root.h"
#include "commands/marlin.h"
#include "commands/pack.h"
#include "commands/shard.h"
#include "core/error.h"
#include "core/sizes.h"
#include "formats/packed_source.h"
#include "quant/scheme.h"

namespace ckpt {

ojson inspect_report(const Checkpoint& ck) {
  ojson r = ojson::object();
  r["path"] = ck.path;
  r["architecture"] = ck.architecture();
  if (ck.index_file) r["index"] = *ck.index_file;
  // The quantization scheme (quant/scheme.h); inspect shows a config it cannot read instead of failing.
  // A `ckpt marlin` output is described as the Marlin layout of the INT4 scheme its tensors come
  // from, read as validate reads it.
  try {
    const std::string label = ck.path + "/config.json";
    if (ck.config && is_marlin_config(&*ck.config))
      r["quantization"] = "vLLM Marlin layout (ckpt marlin) of " + marlin_source_scheme(*ck.config, label).describe();
    else
      r["quantization"] = quant::read_scheme(ck.config ? &*ck.config : nullptr, label).describe();
  } catch (const Error& e) {
    r["quantization"] = "unreadable: " + e.rule();
  }
  ojson files = ojson::array();
  std::vector<size_t> per_file(ck.files.size(), 0);
  for (const auto& t : ck.tensors) ++per_file[static_cast<size_t>(t.view.file)];
  for (size_t i = 0; i < ck.files.size(); ++i) {
    ojson f = ojson::object();
    f["path"] = ck.files[i].path;
    f["format"] = source_format_name(ck.files[i].format);
    f["size"] = ck.files[i].size;
    f["tensors"] = per_file[i];
    if (ck.files[i].metadata) {
      ojson md = ojson::object();
      for (const auto& [k, v] : *ck.files[i].metadata) md[k] = v;
      f["metadata"] = md;
    }
    files.push_back(f);
  }
  r["files"] = files;
  ojson tensors = ojson::array();
  struct Totals {
    uint64_t tensors = 0, bytes = 0, params = 0;
  };
  std::map<int, Totals> by_dtype;
  uint64_t params = 0, bytes = 0;
  for (const auto& t : ck.tensors) {
    ojson jt = ojson::object();
    jt["name"] = t.name;
    jt["dtype"] = std::string(dtype_name(t.dtype()));
    jt["shape"] = t.shape();
    jt["bytes"] = t.nbytes();
    jt["file"] = ck.files[static_cast<size_t>(t.view.file)].path;
    tensors.push_back(jt);
    Totals& tot = by_dtype[static_cast<int>(t.dtype())];
    ++tot.tensors;
    tot.bytes += t.nbytes();
    tot.params += t.view.numel();
    params += t.view.numel();
    bytes += t.nbytes();
  }
  r["tensors"] = tensors;
  ojson dt = ojson::object();
  for (const auto& [d, tot] : by_dtype) {
    ojson j = ojson::object();
    j["tensors"] = tot.tensors;
    j["bytes"] = tot.bytes;
    j["parameters"] = tot.params;
    dt[std::string(dtype_name(static_cast<DType>(d)))] = j;
  }
  r["dtypes"] = dt;
  r["tensor_count"] = ck.tensors.size();
  r["tensor_bytes"] = bytes;
  r["parameter_count"] = params;
  ojson sides = ojson::array();
  for (const auto& s : ck.side_files) sides.push_back(s.name);
  r["side_files"] = sides;
  if (!ck.aliases.empty()) {
    ojson al = ojson::object();
    for (const auto& [dropped, kept] : ck.aliases) al[dropped] = kept;
    r["aliases"] = al;
  }
  // A packed checkpoint: original and packed bytes per dtype and per tensor class.
  if (ck.packed) r["packed"] = pack_ratios_json(pack_ratios(PackedContainer::open(*ck.packed)->index()));
  return r;
}

ojson inspect_path(const std::string& path, const OpenOptions& options) {
  const std::vector<RankDir> ranks = parallel_rank_dirs(path);
  if (ranks.empty()) return inspect_report(open_checkpoint(path, options));
  ojson r = ojson::object();
  r["path"] = path;
  ojson list = ojson::array();
  uint64_t tensors = 0, bytes = 0;
  for (const auto& rd : ranks) {
    const Checkpoint ck = open_checkpoint(rd.dir, options);
    ojson one = inspect_report(ck);
    if (list.empty()) {
      r["architecture"] = one["architecture"];
      r["quantization"] = one["quantization"];
      ojson sizes = ojson::object();
      if (ck.config && ck.config->contains(kParallelConfigKey) && (*ck.config)[kParallelConfigKey].is_object())
        for (const char* key : {"tp_size", "pp_size", "ep", "recipe"})
          if ((*ck.config)[kParallelConfigKey].contains(key)) sizes[key] = (*ck.config)[kParallelConfigKey][key];
      r["parallel"] = sizes;
    }
    one["label"] = rd.label;
    one["stage"] = rd.stage;
    one["rank"] = rd.rank;
    tensors += one["tensor_count"].get<uint64_t>();
    bytes += one["tensor_bytes"].get<uint64_t>();
    list.push_back(std::move(one));
  }
  r["ranks"] = std::move(list);
  r["tensor_count"] = tensors;
  r["tensor_bytes"] = bytes;
  // The root's note, on disk or in the root's own container (`pack` of a TP/PP root).
  if (auto note = locate_checkpoint_file(path, kParallelNoteName)) r["note"] = *note;
  return r;
}

namespace {

// The path (with `what_it_is` after it), architecture and quantization lines both reports begin with.
std::string model_lines(const ojson& r, const std::string& what_it_is) {
  const std::string arch = r["architecture"].get<std::string>();
  return "checkpoint   " + r["path"].get<std::string>() + what_it_is + "\n" + "architecture " +
         (arch.empty() ? std::string("(unknown: no config.json architectures)") : arch) + "\n" + "quantization " +
         r["quantization"].get<std::string>() + "\n";
}

// A TP/PP output root: one line per rank, then what they hold together.
std::string parallel_text(const ojson& r) {
  std::string out;
  char line[512];
  auto add = [&](const std::string& s) { out += s + "\n"; };
  const ojson& p = r["parallel"];
  std::string sizes;
  for (const char* key : {"tp_size", "pp_size"})
    if (p.contains(key)) sizes += std::string(sizes.empty() ? "" : ", ") + key + " " + p[key].dump();
  out += model_lines(r, "  (a tensor/pipeline-parallel output" + (sizes.empty() ? std::string("") : ": " + sizes) + ")");
  add("ranks");
  for (const auto& k : r["ranks"]) {
    std::snprintf(line, sizeof line, "  %-16s %10s  %s, %s, %s", k["label"].get<std::string>().c_str(),
                  format_bytes(k["tensor_bytes"].get<uint64_t>()).c_str(),
                  count_of(k["files"].size(), "file").c_str(), count_of(k["tensor_count"].get<uint64_t>(), "tensor").c_str(),
                  count_of(k["parameter_count"].get<uint64_t>(), "parameter").c_str());
    add(line);
  }
  std::snprintf(line, sizeof line, "total        %s in %s, %s stored", count_of(r["tensor_count"].get<uint64_t>(), "tensor").c_str(),
                count_of(r["ranks"].size(), "rank").c_str(), format_bytes(r["tensor_bytes"].get<uint64_t>()).c_str());
  add(line);
  if (r.contains("note")) add("loading      " + r["note"].get<std::string>() + " (how a rank is loaded)");
  add("each rank    ckpt inspect " + r["path"].get<std::string>() + "/" + r["ranks"][0]["label"].get<std::string>() +
      " lists its tensors");
  return out;
}

}  // namespace

std::string inspect_text(const ojson& r) {
  if (r.contains("ranks")) return parallel_text(r);
  std::string out;
  char line[512];
  auto add = [&](const std::string& s) { out += s + "\n"; };
  out += model_lines(r, "");
  add("files");
  for (const auto& f : r["files"]) {
    std::snprintf(line, sizeof line, "  %-12s %10s %6llu tensors  %s", f["format"].get<std::string>().c_str(),
                  format_bytes(f["size"].get<uint64_t>()).c_str(),
                  static_cast<unsigned long long>(f["tensors"].get<uint64_t>()), f["path"].get<std::string>().c_str());
    add(line);
  }
  add("tensors");
  for (const auto& t : r["tensors"]) {
    std::string shape = "[";
    for (size_t i = 0; i < t["shape"].size(); ++i) shape += (i ? ", " : "") + std::to_string(t["shape"][i].get<uint64_t>());
    shape += "]";
    std::snprintf(line, sizeof line, "  %-60s %-12s %-20s %10s", t["name"].get<std::string>().c_str(),
                  t["dtype"].get<std::string>().c_str(), shape.c_str(), format_bytes(t["bytes"].get<uint64_t>()).c_str());
    add(line);
  }
  add("by dtype");
  for (auto it = r["dtypes"].begin(); it != r["dtypes"].end(); ++it) {
    std::snprintf(line, sizeof line, "  %-12s %6llu tensors %14llu parameters %10s", it.key().c_str(),
                  static_cast<unsigned long long>((*it)["tensors"].get<uint64_t>()),
                  static_cast<unsigned long long>((*it)["parameters"].get<uint64_t>()),
                  format_bytes((*it)["bytes"].get<uint64_t>()).c_str());
    add(line);
  }
  std::snprintf(line, sizeof line, "total        %s, %s, %s", count_of(r["tensor_count"].get<uint64_t>(), "tensor").c_str(),
                count_of(r["parameter_count"].get<uint64_t>(), "parameter").c_str(),
                format_bytes(r["tensor_bytes"].get<uint64_t>()).c_str());
  add(line);
  if (!r["side_files"].empty()) {
    std::string s = "side files  ";
    for (const auto& f : r["side_files"]) s += " " + f.get<std::string>();
    add(s);
  }
  if (r.contains("packed")) {
    const ojson& p = r["packed"];
    auto ratio_line = [&](const std::string& label, const ojson& t) {
      std::snprintf(line, sizeof line, "  %-12s %10s -> %10s  %.3fx", label.c_str(),
                    format_bytes(t["original_bytes"].get<uint64_t>()).c_str(),
                    format_bytes(t["packed_bytes"].get<uint64_t>()).c_str(), t["ratio"].get<double>());
      add(line);
    };
    add("packed, by dtype");
    for (auto it = p["by_dtype"].begin(); it != p["by_dtype"].end(); ++it) ratio_line(it.key(), *it);
    add("packed, by tensor class");
    for (auto it = p["by_class"].begin(); it != p["by_class"].end(); ++it) ratio_line(it.key(), *it);
    ratio_line("total", p["total"]);
  }
  return out;
}

}  // namespace ckpt
