#include "validate/against.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "model/cpu_step_forward.h"

namespace ckpt::validate {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

std::optional<model::Comparison> run_against_phase(const Prepared& prepared, const AgainstOptions& options, Report& report) {
  std::optional<model::Comparison> result;
  const std::string device = options.device_forwards ? options.device_name : "cpu";
  run_phase(report, "against (" + device + ")", "", "against", [&](PhaseScope& scope) {
    auto t = std::chrono::steady_clock::now();
    auto src = model::Model::open(options.source);
    const double load_src_s = seconds_since(t);
    t = std::chrono::steady_clock::now();
    auto dst = model::Model::load(prepared.layout);
    const double load_dst_s = seconds_since(t);
    model::check_comparable(*src, *dst);
    // The source's tokenizer, when it ships one, reads the prompt and writes the continuations.
    std::optional<tok::Tokenizer> tokenizer = options.text.empty() ? tok::Tokenizer::load_if_present(options.source)
                                                                   : tok::Tokenizer::load(options.source);
    const uint64_t vocab = src->config().vocab;
    model::TokenIds ids = !options.ids_file.empty() ? model::read_token_ids(options.ids_file)
                          : !options.text.empty()   ? model::text_token_ids(*tokenizer, options.text, vocab, "--text")
                                                    : model::seeded_token_ids(vocab, options.samples, options.seq_len, options.seed);
    model::CompareOptions co = options.compare;
    co.workers = scope.workers();
    // The forwards: on the device where given and buildable, else the CPU reference.
    t = std::chrono::steady_clock::now();
    const uint64_t capacity = ids.length + co.generate;
    std::optional<model::ComparedForwards> forwards;
    std::string fallback;
    if (options.device_forwards) {
      try {
        forwards = options.device_forwards(*src, *dst, ids.sequences, capacity);
      } catch (const Error& e) {
        if (e.code() == Errc::kInterrupted) throw;
        fallback = options.device_name + " forwards could not be built (" + e.rule() + "); ran on the CPU reference";
        scope.phase().name = "against (cpu)";
      }
    }
    if (!forwards) forwards = model::cpu_compared_forwards(*src, *dst, ids.sequences, capacity, ids.length, co.workers);
    const double forwards_s = seconds_since(t);
    t = std::chrono::steady_clock::now();
    model::Comparison c = model::compare_models(*src, *dst, ids, co, *forwards);
    const double compare_s = seconds_since(t);
    forwards.reset();
    if (tokenizer) {
      for (const auto& g : c.src_generated) c.src_generated_text.push_back(model::token_ids_text(*tokenizer, g));
      for (const auto& g : c.dst_generated) c.dst_generated_text.push_back(model::token_ids_text(*tokenizer, g));
    }
    char timing[320];
    std::snprintf(timing, sizeof timing,
                  "; on %s: load src %.2f s, dst %.2f s, forwards %.2f s, layers %.2f s, diffs %.2f s, logits %.2f s, "
                  "generate %.2f s",
                  c.device.c_str(), load_src_s, load_dst_s, forwards_s, c.seconds.layers, c.seconds.diffs,
                  c.seconds.logits, c.seconds.generate);
    scope.phase().summary = c.summary() + "; thresholds (" + model::transformation_name(c.transformation) +
                            "): " + c.thresholds.describe() + timing + (fallback.empty() ? "" : "; " + fallback);
    scope.phase().details = c.to_json();
    // Where the whole phase's time went (the comparison's own split is in details.seconds too).
    scope.phase().details["seconds"]["load_src"] = load_src_s;
    scope.phase().details["seconds"]["load_dst"] = load_dst_s;
    scope.phase().details["seconds"]["forwards"] = forwards_s;  // the forwards built: weights uploaded, caches allocated
    scope.phase().details["seconds"]["compare"] = compare_s;
    if (!fallback.empty()) scope.phase().details["device_fallback"] = fallback;
    scope.phase().details["source"] = options.source;
    scope.phase().details["ids"] = !options.ids_file.empty() ? options.ids_file : !options.text.empty() ? "text" : "seeded";
    std::string located;
    std::string file = prepared.layout.root;
    if (c.first_bad_layer >= 0) {
      // A Linear names its weight; an expert (mlp.experts.3) names the module.
      located = "model.layers." + std::to_string(c.first_bad_layer) + "." + c.first_bad_linear;
      if (c.first_bad_linear.find(".experts.") == std::string::npos) located += ".weight";
      for (const auto& lin : c.layers[c.first_bad_layer].linears)
        if (lin.name == c.first_bad_linear && !lin.worst_rank.empty())
          file = (std::filesystem::path(prepared.layout.root) / lin.worst_rank).string();
    }
    for (const auto& f : c.failures) scope.fail("against", file, located, f + " (vs " + options.source + ")");
    result = std::move(c);
  });
  return result;
}

}  // namespace ckpt::validate
