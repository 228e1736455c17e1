#include "validate/against.h"

#include <filesystem>

#include "core/error.h"

namespace ckpt::validate {

std::optional<model::Comparison> run_against_phase(const Prepared& prepared, const AgainstOptions& options, Report& report) {
  std::optional<model::Comparison> result;
  run_phase(report, "against (cpu)", "", "against", [&](PhaseScope& scope) {
    auto src = model::Model::open(options.source);
    auto dst = model::Model::load(prepared.layout);
    model::TokenIds ids = options.ids_file.empty()
                              ? model::seeded_token_ids(src->config().vocab, options.samples, options.seq_len, options.seed)
                              : model::read_token_ids(options.ids_file);
    model::CompareOptions co = options.compare;
    co.workers = scope.workers();
    model::Comparison c = model::compare_models(*src, *dst, ids, co);
    scope.phase().summary = c.summary() + "; thresholds (" + model::transformation_name(c.transformation) +
                            "): " + c.thresholds.describe();
    scope.phase().details = c.to_json();
    scope.phase().details["source"] = options.source;
    scope.phase().details["ids"] = options.ids_file.empty() ? "seeded" : options.ids_file;
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
