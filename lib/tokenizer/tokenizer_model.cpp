#include "tokenizer/tokenizer_model.h"

#include <sys/stat.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "checkpoint/dir_files.h"
#include "core/file_io.h"
#include "formats/packed_source.h"
#include "formats/strict_json.h"
#include "tokenizer/sentencepiece_model.h"

namespace ckpt::tok {

namespace {

using value_t = ojson::value_t;

// Tokenizer files are at most tens of MB; anything far larger is refused before it is read.
constexpr uint64_t kMaxTokenizerFileBytes = uint64_t{1} << 30;

// Ids beyond this are refused before anything is sized from them (the largest real vocabularies
// are a few hundred thousand tokens).
constexpr int64_t kMaxTokenId = int64_t{1} << 24;

[[noreturn]] void invalid(const std::string& path, const std::string& rule) {
  fail(Errc::kTokenizerInvalid, path, "", rule);
}
[[noreturn]] void unsupported(const std::string& path, const std::string& rule) {
  fail(Errc::kTokenizerUnsupported, path, "", rule);
}

const char* type_name(value_t t) {
  switch (t) {
    case value_t::string: return "a string";
    case value_t::boolean: return "a boolean";
    case value_t::array: return "an array";
    case value_t::object: return "an object";
    case value_t::number_unsigned: return "a non-negative integer";
    default: return "a JSON value";
  }
}

// The one reader of an object's member in a tokenizer file: obj[key] when present and not null,
// nullptr otherwise; a value of another JSON type than `type` (value_t::discarded: any) is refused
// naming where.key.
const ojson* find_member(const std::string& path, const ojson& obj, const char* key, const std::string& where,
                         value_t type) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  if (type != value_t::discarded && it->type() != type)
    invalid(path, where + "." + key + " is not " + type_name(type));
  return &*it;
}

// The same member, required.
const ojson& member(const std::string& path, const ojson& obj, const char* key, const std::string& where,
                    value_t type = value_t::discarded) {
  const ojson* v = find_member(path, obj, key, where, type);
  if (!v) invalid(path, where + " has no \"" + key + "\"");
  return *v;
}

std::string get_string(const std::string& path, const ojson& obj, const char* key, const std::string& where) {
  return member(path, obj, key, where, value_t::string).get<std::string>();
}

std::optional<std::string> optional_string(const std::string& path, const ojson& obj, const char* key,
                                           const std::string& where) {
  const ojson* v = find_member(path, obj, key, where, value_t::string);
  return v ? std::optional<std::string>(v->get<std::string>()) : std::nullopt;
}

bool get_bool(const std::string& path, const ojson& obj, const char* key, const std::string& where, bool fallback) {
  const ojson* v = find_member(path, obj, key, where, value_t::boolean);
  return v ? v->get<bool>() : fallback;
}

std::string type_of(const std::string& path, const ojson& obj, const std::string& where) {
  if (!obj.is_object()) invalid(path, where + " is not an object");
  return get_string(path, obj, "type", where);
}

// {"String": s} or {"Regex": r}.
void parse_pattern(const std::string& path, const ojson& p, const std::string& where, std::string* text,
                   bool* regex) {
  if (!p.is_object() || p.size() != 1) invalid(path, where + ".pattern is not {\"String\"|\"Regex\": ...}");
  auto it = p.begin();
  if (it.key() != "String" && it.key() != "Regex")
    unsupported(path, where + ".pattern kind \"" + it.key() + "\"");
  if (!it.value().is_string()) invalid(path, where + ".pattern." + it.key() + " is not a string");
  *text = it.value().get<std::string>();
  *regex = it.key() == "Regex";
}

void parse_normalizer(const std::string& path, const ojson& n, std::vector<NormalizerStep>* out) {
  if (n.is_null()) return;
  const std::string where = "normalizer";
  std::string type = type_of(path, n, where);
  if (type == "Sequence") {
    const ojson& list = member(path, n, "normalizers", where, value_t::array);
    for (const ojson& s : list) parse_normalizer(path, s, out);
    return;
  }
  NormalizerStep s;
  if (type == "NFC") s.kind = NormalizerStep::kNfc;
  else if (type == "NFD") s.kind = NormalizerStep::kNfd;
  else if (type == "NFKC") s.kind = NormalizerStep::kNfkc;
  else if (type == "NFKD") s.kind = NormalizerStep::kNfkd;
  else if (type == "Prepend") {
    s.kind = NormalizerStep::kPrepend;
    s.text = get_string(path, n, "prepend", where);
  } else if (type == "Replace") {
    s.kind = NormalizerStep::kReplace;
    parse_pattern(path, member(path, n, "pattern", where), where, &s.text, &s.regex);
    s.content = get_string(path, n, "content", where);
    if (!s.regex && s.text.empty()) invalid(path, "normalizer Replace has an empty pattern");
  } else {
    unsupported(path, "normalizer type \"" + type + "\"");
  }
  out->push_back(std::move(s));
}

SplitBehavior parse_behavior(const std::string& path, const std::string& b) {
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  unsupported(path, "pre_tokenizer Split behavior \"" + b + "\"");
}

// Metaspace's prepend_scheme, or the older add_prefix_space flag it replaced.
PreTokenizerStep::Prepend parse_prepend_scheme(const std::string& path, const ojson& n, const std::string& where) {
  if (auto scheme = optional_string(path, n, "prepend_scheme", where)) {
    const std::string& s = *scheme;
    if (s == "always") return PreTokenizerStep::Prepend::kAlways;
    if (s == "never") return PreTokenizerStep::Prepend::kNever;
    if (s == "first") return PreTokenizerStep::Prepend::kFirst;
    unsupported(path, where + ".prepend_scheme \"" + s + "\"");
  }
  return get_bool(path, n, "add_prefix_space", where, true) ? PreTokenizerStep::Prepend::kAlways
                                                             : PreTokenizerStep::Prepend::kNever;
}

void parse_pre_tokenizer(const std::string& path, const ojson& n, std::vector<PreTokenizerStep>* out) {
  if (n.is_null()) return;
  const std::string where = "pre_tokenizer";
  std::string type = type_of(path, n, where);
  if (type == "Sequence") {
    const ojson& list = member(path, n, "pretokenizers", where, value_t::array);
    for (const ojson& s : list) parse_pre_tokenizer(path, s, out);
    return;
  }
  PreTokenizerStep s;
  if (type == "Split") {
    s.kind = PreTokenizerStep::kSplit;
    parse_pattern(path, member(path, n, "pattern", where), where, &s.pattern, &s.regex);
    s.behavior = parse_behavior(path, get_string(path, n, "behavior", where));
    s.invert = get_bool(path, n, "invert", where, false);
    if (!s.regex && s.pattern.empty()) invalid(path, "pre_tokenizer Split has an empty pattern");
  } else if (type == "ByteLevel") {
    s.kind = PreTokenizerStep::kByteLevel;
    s.add_prefix_space = get_bool(path, n, "add_prefix_space", where, true);
    s.use_regex = get_bool(path, n, "use_regex", where, true);
  } else if (type == "Metaspace") {
    s.kind = PreTokenizerStep::kMetaspace;
    s.replacement = get_string(path, n, "replacement", where);
    s.prepend_scheme = parse_prepend_scheme(path, n, where);
    s.split = get_bool(path, n, "split", where, true);
  } else if (type == "Whitespace") {
    s.kind = PreTokenizerStep::kWhitespace;
  } else if (type == "WhitespaceSplit") {
    s.kind = PreTokenizerStep::kWhitespaceSplit;
  } else if (type == "Digits") {
    s.kind = PreTokenizerStep::kDigits;
    s.individual_digits = get_bool(path, n, "individual_digits", where, false);
  } else {
    unsupported(path, "pre_tokenizer type \"" + type + "\"");
  }
  out->push_back(std::move(s));
}

void parse_decoder(const std::string& path, const ojson& n, std::vector<DecoderStep>* out) {
  if (n.is_null()) return;
  const std::string where = "decoder";
  std::string type = type_of(path, n, where);
  if (type == "Sequence") {
    const ojson& list = member(path, n, "decoders", where, value_t::array);
    for (const ojson& s : list) parse_decoder(path, s, out);
    return;
  }
  DecoderStep s;
  if (type == "ByteLevel") {
    s.kind = DecoderStep::kByteLevel;
  } else if (type == "Replace") {
    s.kind = DecoderStep::kReplace;
    bool regex = false;
    parse_pattern(path, member(path, n, "pattern", where), where, &s.pattern, &regex);
    if (regex) unsupported(path, "decoder Replace with a Regex pattern");
    if (s.pattern.empty()) invalid(path, "decoder Replace has an empty pattern");
    s.content = get_string(path, n, "content", where);
  } else if (type == "ByteFallback") {
    s.kind = DecoderStep::kByteFallback;
  } else if (type == "Fuse") {
    s.kind = DecoderStep::kFuse;
  } else if (type == "Strip") {
    s.kind = DecoderStep::kStrip;
    s.strip_content = get_string(path, n, "content", where);
    const ojson& start = member(path, n, "start", where, value_t::number_unsigned);
    const ojson& stop = member(path, n, "stop", where, value_t::number_unsigned);
    if (start.get<uint64_t>() > 1024 || stop.get<uint64_t>() > 1024)
      invalid(path, "decoder Strip start/stop are larger than 1024");
    s.strip_start = static_cast<int>(start.get<uint64_t>());
    s.strip_stop = static_cast<int>(stop.get<uint64_t>());
  } else if (type == "Metaspace") {
    s.kind = DecoderStep::kMetaspace;
    s.replacement = get_string(path, n, "replacement", where);
    s.prepend_first = parse_prepend_scheme(path, n, where) != PreTokenizerStep::Prepend::kNever;
  } else {
    unsupported(path, "decoder type \"" + type + "\"");
  }
  out->push_back(std::move(s));
}

// TemplateProcessing's "single" template (pair templates are never used by ckpt).
void parse_post_processor(const std::string& path, const ojson& n, std::vector<TemplateItem>* out) {
  if (n.is_null()) return;
  const std::string where = "post_processor";
  std::string type = type_of(path, n, where);
  if (type == "Sequence") {
    const ojson& list = member(path, n, "processors", where, value_t::array);
    for (const ojson& s : list) parse_post_processor(path, s, out);
    return;
  }
  if (type == "ByteLevel") return;  // changes offsets only, never ids
  if (type != "TemplateProcessing") unsupported(path, "post_processor type \"" + type + "\"");
  if (!out->empty()) unsupported(path, "more than one TemplateProcessing post-processor");
  const ojson& specials = member(path, n, "special_tokens", where, value_t::object);
  const ojson& single = member(path, n, "single", where, value_t::array);
  int sequences = 0;
  for (const ojson& item : single) {
    if (!item.is_object() || item.size() != 1) invalid(path, "post_processor.single has a malformed item");
    TemplateItem t;
    if (item.contains("Sequence")) {
      const ojson& seq = item["Sequence"];
      if (!seq.is_object() || get_string(path, seq, "id", "post_processor.single.Sequence") != "A")
        invalid(path, "post_processor.single refers to a sequence other than A");
      t.is_sequence = true;
      ++sequences;
    } else if (item.contains("SpecialToken")) {
      std::string name = get_string(path, item["SpecialToken"], "id", "post_processor.single.SpecialToken");
      auto it = specials.find(name);
      if (it == specials.end()) invalid(path, "post_processor special token \"" + name + "\" is not in special_tokens");
      const ojson& ids = member(path, *it, "ids", "post_processor.special_tokens." + name, value_t::array);
      for (const ojson& id : ids) {
        if (!id.is_number_unsigned() || id.get<uint64_t>() >= static_cast<uint64_t>(kMaxTokenId))
          invalid(path, "post_processor.special_tokens." + name + " has an id out of range");
        t.ids.push_back(static_cast<int32_t>(id.get<uint64_t>()));
      }
    } else {
      invalid(path, "post_processor.single item is neither Sequence nor SpecialToken");
    }
    out->push_back(std::move(t));
  }
  if (sequences != 1) invalid(path, "post_processor.single does not hold the sequence exactly once");
}

int32_t checked_id(const std::string& path, const ojson& v, const std::string& where) {
  if (!v.is_number_unsigned() || v.get<uint64_t>() >= static_cast<uint64_t>(kMaxTokenId))
    invalid(path, where + " is not a token id below " + std::to_string(kMaxTokenId));
  return static_cast<int32_t>(v.get<uint64_t>());
}

void set_token(const std::string& path, TokenizerModel& m, int32_t id, const std::string& token, TokenType type,
               bool in_model) {
  if (static_cast<size_t>(id) >= m.vocab.size()) {
    m.vocab.resize(id + 1);
    m.token_types.resize(id + 1, TokenType::kUnused);
    m.in_model_vocab.resize(id + 1, false);
  }
  if (in_model) m.in_model_vocab[id] = true;
  if (m.token_types[id] != TokenType::kUnused && m.vocab[id] != token)
    invalid(path, "id " + std::to_string(id) + " is both \"" + m.vocab[id] + "\" and \"" + token + "\"");
  m.vocab[id] = token;
  m.token_types[id] = type;
}

// "<0x0A>" style byte pieces: exactly what byte fallback produces.
bool is_byte_piece(const std::string& s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return s.size() == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

void parse_model(const std::string& path, const ojson& model, TokenizerModel& m) {
  const std::string where = "model";
  auto type_it = model.find("type");
  // Files written before "type" was serialized are BPE when they have merges.
  std::string type = type_it != model.end() && type_it->is_string() ? type_it->get<std::string>()
                     : model.contains("merges")                      ? "BPE"
                                                                     : "";
  if (type == "BPE") m.kind = ModelKind::kBpe;
  else if (type == "WordLevel") m.kind = ModelKind::kWordLevel;
  else unsupported(path, "model type \"" + (type.empty() ? std::string("(none)") : type) + "\"");

  m.unk_token = optional_string(path, model, "unk_token", where);
  const ojson& vocab = member(path, model, "vocab", where, value_t::object);
  m.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    int32_t id = checked_id(path, it.value(), "model.vocab[\"" + it.key() + "\"]");
    set_token(path, m, id, it.key(), TokenType::kNormal, true);
  }
  if (m.kind == ModelKind::kWordLevel) return;

  m.byte_fallback = get_bool(path, model, "byte_fallback", where, false);
  m.fuse_unk = get_bool(path, model, "fuse_unk", where, false);
  m.ignore_merges = get_bool(path, model, "ignore_merges", where, false);
  auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() && !(dropout->is_number() && dropout->get<double>() == 0.0))
    unsupported(path, "BPE dropout (encoding would not be deterministic)");
  m.continuing_subword_prefix = optional_string(path, model, "continuing_subword_prefix", where).value_or("");
  m.end_of_word_suffix = optional_string(path, model, "end_of_word_suffix", where).value_or("");
  const ojson& merges = member(path, model, "merges", where, value_t::array);
  m.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const ojson& mg = merges[i];
    std::string a, b;
    if (mg.is_string()) {
      // "a b": exactly one space, as tokenizers' BPE deserializer requires (models/bpe/serialization.rs).
      const std::string& s = mg.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        invalid(path, "model.merges[" + std::to_string(i) + "] is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      a = mg[0].get<std::string>();
      b = mg[1].get<std::string>();
    } else {
      invalid(path, "model.merges[" + std::to_string(i) + "] is neither \"a b\" nor [\"a\", \"b\"]");
    }
    m.merges.emplace_back(std::move(a), std::move(b));
  }
  if (m.byte_fallback) {
    for (size_t id = 0; id < m.vocab.size(); ++id)
      if (m.token_types[id] == TokenType::kNormal && is_byte_piece(m.vocab[id])) m.token_types[id] = TokenType::kByte;
  }
}

void parse_added_tokens(const std::string& path, const ojson& list, TokenizerModel& m) {
  if (list.is_null()) return;
  if (!list.is_array()) invalid(path, "added_tokens is not an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    const ojson& t = list[i];
    if (!t.is_object()) invalid(path, where + " is not an object");
    AddedToken a;
    a.id = checked_id(path, member(path, t, "id", where), where + ".id");
    a.content = get_string(path, t, "content", where);
    if (a.content.empty()) invalid(path, where + ".content is empty");
    a.special = get_bool(path, t, "special", where, false);
    a.lstrip = get_bool(path, t, "lstrip", where, false);
    a.rstrip = get_bool(path, t, "rstrip", where, false);
    a.single_word = get_bool(path, t, "single_word", where, false);
    a.normalized = get_bool(path, t, "normalized", where, !a.special);
    bool in_vocab = static_cast<size_t>(a.id) < m.vocab.size() && m.token_types[a.id] != TokenType::kUnused;
    if (in_vocab && m.vocab[a.id] != a.content)
      invalid(path, where + " has id " + std::to_string(a.id) + ", which the vocabulary gives to \"" +
                        m.vocab[a.id] + "\"");
    TokenType type = a.special ? TokenType::kControl : TokenType::kUserDefined;
    if (m.unk_token && a.content == *m.unk_token) type = TokenType::kUnknown;
    if (in_vocab) m.token_types[a.id] = type;
    else set_token(path, m, a.id, a.content, type, false);
    m.added_tokens.push_back(std::move(a));
  }
}

// A token named in tokenizer_config.json: a string, or an AddedToken object with "content".
std::optional<std::string> config_token(const std::string& path, const ojson& cfg, const char* key) {
  const ojson* v = find_member(path, cfg, key, "tokenizer_config.json", value_t::discarded);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) return get_string(path, *v, "content", std::string("tokenizer_config.json.") + key);
  invalid(path, std::string("tokenizer_config.json ") + key + " is neither a string nor {\"content\": ...}");
}

void apply_config(const std::string& cfg_path, const ojson& cfg, TokenizerModel& m) {
  if (!cfg.is_object()) invalid(cfg_path, "tokenizer_config.json is not an object");
  auto lookup = [&](const char* key) -> std::optional<int32_t> {
    auto name = config_token(cfg_path, cfg, key);
    if (!name) return std::nullopt;
    auto id = m.id_of(*name);
    if (!id) invalid(cfg_path, std::string(key) + " \"" + *name + "\" is not in the vocabulary");
    return id;
  };
  if (auto id = lookup("bos_token")) m.bos_id = id;
  if (auto id = lookup("eos_token")) m.eos_id = id;
  if (auto id = lookup("unk_token")) m.unk_id = id;
  if (auto id = lookup("pad_token")) m.pad_id = id;
  auto tmpl = cfg.find("chat_template");
  if (tmpl != cfg.end() && !tmpl->is_null()) {
    if (tmpl->is_string()) {
      m.chat_template = tmpl->get<std::string>();
    } else if (tmpl->is_array()) {  // [{"name": ..., "template": ...}]: the "default" one
      for (const ojson& t : *tmpl)
        if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
          m.chat_template = t["template"].get<std::string>();
    } else {
      invalid(cfg_path, "chat_template is neither a string nor a list of named templates");
    }
  }
  m.tokenizer_class = optional_string(cfg_path, cfg, "tokenizer_class", "tokenizer_config.json").value_or("");

  // add_bos_token / add_eos_token rebuild the single template as transformers'
  // LlamaTokenizerFast.update_post_processor does (models/llama/tokenization_llama_fast.py):
  // bos? $A eos?. A key that is absent leaves that end of the file's template as it is.
  auto flag = [&](const char* key) -> std::optional<bool> {
    const ojson* v = find_member(cfg_path, cfg, key, "tokenizer_config.json", value_t::boolean);
    return v ? std::optional<bool>(v->get<bool>()) : std::nullopt;
  };
  std::optional<bool> add_bos = flag("add_bos_token"), add_eos = flag("add_eos_token");
  if (!add_bos && !add_eos) return;
  std::vector<TemplateItem> before, after;
  bool seen = false;
  for (auto& t : m.post_template) {
    if (t.is_sequence) seen = true;
    else (seen ? after : before).push_back(t);
  }
  if (m.post_template.empty()) seen = true;
  if (add_bos) {
    before.clear();
    if (*add_bos && m.bos_id) before.push_back({false, {*m.bos_id}});
  }
  if (add_eos) {
    after.clear();
    if (*add_eos && m.eos_id) after.push_back({false, {*m.eos_id}});
  }
  m.post_template.clear();
  for (auto& t : before) m.post_template.push_back(t);
  m.post_template.push_back({true, {}});
  for (auto& t : after) m.post_template.push_back(t);
}

void apply_config_text(const std::string& model_path, const std::string& config_json, TokenizerModel& m) {
  if (config_json.empty()) return;
  std::string cfg_path = model_path.substr(0, model_path.find_last_of('/') + 1) + "tokenizer_config.json";
  StrictJsonResult cfg = parse_strict_json(config_json);
  if (!cfg.ok) invalid(cfg_path, cfg.error);
  apply_config(cfg_path, cfg.value, m);
}

void finish(TokenizerModel& m) {
  m.add_bos = false;
  m.add_eos = false;
  if (!m.post_template.empty()) {
    const TemplateItem& first = m.post_template.front();
    const TemplateItem& last = m.post_template.back();
    m.add_bos = !first.is_sequence && m.bos_id && first.ids == std::vector<int32_t>{*m.bos_id};
    m.add_eos = !last.is_sequence && m.eos_id && last.ids == std::vector<int32_t>{*m.eos_id};
  }
  if (!m.unk_id && m.unk_token) m.unk_id = m.id_of(*m.unk_token);
  for (size_t id = 0; id < m.vocab.size(); ++id)
    if (m.unk_id && static_cast<int32_t>(id) == *m.unk_id && m.token_types[id] == TokenType::kNormal)
      m.token_types[id] = TokenType::kUnknown;
}

bool is_directory(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

std::optional<int32_t> TokenizerModel::id_of(const std::string& token) const {
  for (const AddedToken& a : added_tokens)
    if (a.content == token) return a.id;
  for (size_t id = 0; id < vocab.size(); ++id)
    if (token_types[id] != TokenType::kUnused && vocab[id] == token) return static_cast<int32_t>(id);
  return std::nullopt;
}

TokenizerModel parse_tokenizer_json(const std::string& path, const std::string& tokenizer_json,
                                    const std::string& config_json) {
  StrictJsonResult doc = parse_strict_json(tokenizer_json);
  if (!doc.ok) invalid(path, doc.error);
  const ojson& root = doc.value;
  if (!root.is_object()) invalid(path, "not a JSON object");
  TokenizerModel m;
  m.path = path;
  for (const char* key : {"truncation", "padding"}) {
    auto it = root.find(key);
    if (it != root.end() && !it->is_null())
      unsupported(path, std::string(key) + " (ckpt encodes whole texts; remove it from tokenizer.json)");
  }
  parse_model(path, member(path, root, "model", "tokenizer.json"), m);
  auto get = [&](const char* key) -> const ojson& {
    static const ojson null_value;
    auto it = root.find(key);
    return it == root.end() ? null_value : *it;
  };
  parse_added_tokens(path, get("added_tokens"), m);
  parse_normalizer(path, get("normalizer"), &m.normalizer);
  parse_pre_tokenizer(path, get("pre_tokenizer"), &m.pre_tokenizer);
  m.pre_tokenizer_json = get("pre_tokenizer").dump();
  parse_post_processor(path, get("post_processor"), &m.post_template);
  parse_decoder(path, get("decoder"), &m.decoder);
  m.byte_level = std::any_of(m.pre_tokenizer.begin(), m.pre_tokenizer.end(),
                             [](const PreTokenizerStep& s) { return s.kind == PreTokenizerStep::kByteLevel; });
  for (const TemplateItem& t : m.post_template)
    for (int32_t id : t.ids)
      if (static_cast<size_t>(id) >= m.vocab.size() || m.token_types[id] == TokenType::kUnused)
        invalid(path, "post_processor adds id " + std::to_string(id) + ", which is not in the vocabulary");
  apply_config_text(path, config_json, m);
  finish(m);
  return m;
}

std::string read_tokenizer_file(const std::string& path) {
  if (open_source_bytes(path)->size() > kMaxTokenizerFileBytes)
    invalid(path, "larger than 1 GiB (tokenizer files are a few MB)");
  return read_source_text(path);
}

namespace {

// The tokenizer in `file` (its bytes `data`), with the other files of its model from `read`.
TokenizerModel tokenizer_from_files(const std::string& file, const std::string& data, const ModelFileReader& read) {
  const std::string config = read("tokenizer_config.json").value_or("");
  TokenizerModel m;
  if (file.size() >= 6 && file.compare(file.size() - 6, 6, ".model") == 0) {
    m = parse_sentencepiece_model(file, data);
    apply_config_text(file, config, m);
    finish(m);
  } else {
    m = parse_tokenizer_json(file, data, config);
  }
  if (m.chat_template.empty())
    if (auto t = read("chat_template.jinja")) m.chat_template = std::move(*t);
  return m;
}

}  // namespace

std::optional<TokenizerModel> load_tokenizer_model_from(const std::string& dir, const ModelFileReader& read) {
  for (const char* name : {"tokenizer.json", "tokenizer.model"})
    if (auto data = read(name)) return tokenizer_from_files(dir + "/" + name, *data, read);
  return std::nullopt;
}

TokenizerModel load_tokenizer_model(const std::string& model) {
  if (is_directory(model)) {
    std::optional<TokenizerModel> m = load_tokenizer_model_from(model, directory_file_reader(model));
    if (!m) fail(Errc::kTokenizerInvalid, model, "", "no tokenizer.json or tokenizer.model in this directory");
    return std::move(*m);
  }
  const size_t slash = model.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : model.substr(0, slash);
  return tokenizer_from_files(model, read_tokenizer_file(model), directory_file_reader(dir));
}

ModelFileReader directory_file_reader(const std::string& dir) {
  return [dir](const std::string& name) -> std::optional<std::string> {
    const std::optional<std::string> path = locate_checkpoint_file(dir, name);
    if (!path) return std::nullopt;
    return read_tokenizer_file(*path);
  };
}

}  // namespace ckpt::tok
