#include "validate/against.h"

#include <filesystem>

#include "core/error.h"

namespace ckpt::validate {

std::optional<model::Comparison> run_against_phase(const Prepared& prepared, const AgainstOptions& options, Report& report) {
  std::optional<model::Comparison> result;
  run_phase(report, "against (cpu)", "", "against", [&](PhaseScope& scope) {
    auto src = model::Model::open(options.source);
    auto dst = model::Model::load(prepared.layout);
    // The source's tokenizer, when it ships one, reads the prompt and writes the continuations.
    std::optional<tok::Tokenizer> tokenizer = options.text.empty() ? tok::Tokenizer::load_if_present(options.source)
                                                                   : tok::Tokenizer::load(options.source);
    const uint64_t vocab = src->config().vocab;
    model::TokenIds ids = !options.ids_file.empty() ? model::read_token_ids(options.ids_file)
                          : !options.text.empty()   ? model::text_token_ids(*tokenizer, options.text, vocab, "--text")
                                                    : model::seeded_token_ids(vocab, options.samples, options.seq_len, options.seed);
    model::CompareOptions co = options.compare;
    co.workers = scope.workers();
    model::Comparison c = model::compare_models(*src, *dst, ids, co);
    if (tokenizer) {
      for (const auto& g : c.src_generated) c.src_generated_text.push_back(model::token_ids_text(*tokenizer, g));
      for (const auto& g : c.dst_generated) c.dst_generated_text.push_back(model::token_ids_text(*tokenizer, g));
    }
    scope.phase().summary = c.summary() + "; thresholds (" + model::transformation_name(c.transformation) +
                            "): " + c.thresholds.describe();
    scope.phase().details = c.to_json();
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
