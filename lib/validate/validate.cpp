#include "validate/validate.h"

#include <cstdio>
#include <memory>
#include <stdexcept>

#include "core/error.h"
#include "core/sizes.h"
#include "model/linear.h"
#include "validate/gemm_check.h"

namespace ckpt::validate {

FailFn fail_into(PhaseScope& scope) {
  return [&scope](const std::string& check, const std::string& file, const std::string& tensor,
                  const std::string& message) { scope.fail(check, file, tensor, message); };
}

namespace {

uint64_t weight_bytes(const Layout& layout) {
  uint64_t n = 0;
  for (const auto& t : layout.targets)
    if (t->opened)
      for (const auto& f : t->ck.files) n += f.size;
  return n;
}

bool any_packed(const Layout& layout) {
  for (const auto& t : layout.targets)
    if (t->opened && t->ck.packed) return true;
  return false;
}

void cpu_checksums(Prepared& p, PhaseScope& scope) {
  FailFn fail = fail_into(scope);
  uint64_t files = 0, bytes = 0;
  progress_begin(scope.progress(), scope.phase().name, weight_bytes(p.layout));
  for (const auto& t : p.layout.targets) {
    if (!t->opened) continue;
    const CheckpointBytes file_bytes(t->ck);
    for (size_t i = 0; i < t->ck.files.size(); ++i) {
      const FileDigests* want = p.expected.find(t->ck.files[i].path);
      // A packed file no manifest lists still has a reference: decoding checks every group
      // against the digest its container recorded.
      if (!want && !t->ck.packed) continue;
      FileDigests got;
      try {
        got = compute_file_digests(t->ck, file_bytes, i, scope.workers(), scope.progress());
      } catch (const Error& e) {
        if (e.code() != Errc::kPackCorrupt) throw;
        scope.fail("checksum", e.file(), e.tensor(), e.rule());  // and on to the next file
        p.undecodable.insert(t->ck.files[i].path);
        continue;
      }
      if (want) compare_digests(t->ck.files[i].path, *want, got, "cpu", fail);
      ++files;
      bytes += t->ck.files[i].size;
    }
  }
  scope.phase().summary = count_of(files, "file") + ", " + format_bytes(bytes) + " hashed from the file bytes" +
                          (any_packed(p.layout) ? " (decoded from the packed checkpoint)" : "");
  scope.phase().details["files"] = files;
  scope.phase().details["bytes"] = bytes;
}

void cpu_gemm(Prepared& p, PhaseScope& scope, uint64_t batch) {
  struct Result {
    const Target* target;
    const LinearWeight* lw;
    GemmStats stats;
    std::string error;
  };
  std::vector<Result> results;
  auto undecodable = [&](const Target& t, const TensorRef* r) {
    return r && p.undecodable.count(t.ck.files[r->view.file].path);
  };
  for (const auto& t : p.layout.targets)
    if (t->opened)
      for (const auto& lw : t->linears)
        if (!undecodable(*t, lw.weight) && !undecodable(*t, lw.scale)) results.push_back({t.get(), &lw, {}, {}});
  // Map each file once; weights are checked in parallel.
  std::vector<std::unique_ptr<model::HostTensors>> hosts;
  for (const auto& t : p.layout.targets) hosts.push_back(t->opened ? std::make_unique<model::HostTensors>(t->ck) : nullptr);
  auto host_of = [&](const Target* t) -> const model::HostTensors& {
    for (size_t i = 0; i < p.layout.targets.size(); ++i)
      if (p.layout.targets[i].get() == t) return *hosts[i];
    throw std::logic_error("cpu_gemm: target not in the layout");
  };
  const double tol = relative_tolerance(DType::F32, false);
  parallel_for(results.size(), scope.workers(), [&](size_t i) {
    Result& r = results[i];
    r.stats = cpu_gemm_check(*model::stored_linear(*r.lw, host_of(r.target)), batch);
    r.error = judge(r.stats, tol);
  });
  double worst = 0;
  for (const auto& r : results) {
    worst = std::max(worst, r.stats.relative_error());
    if (!r.error.empty())
      scope.fail("gemm", r.target->ck.files[r.lw->weight->view.file].path, r.lw->name,
                 r.lw->format() + " weight on the CPU: " + r.error);
  }
  char worst_text[32];
  std::snprintf(worst_text, sizeof worst_text, "%.2e", worst);
  scope.phase().summary = count_of(results.size(), "Linear weight") + " x " + count_of(batch, "row") +
                          " vs float64 reference, worst relative error " + worst_text;
  scope.phase().details["weights"] = results.size();
  scope.phase().details["batch"] = batch;
  scope.phase().details["worst_relative_error"] = worst;
  scope.phase().details["tolerance"] = tol;
}

}  // namespace

Prepared run_cpu_phases(const std::string& root, Report& report, const CpuPhaseOptions& options) {
  Prepared p;
  Phase structure = run_phase(report, "structure", "", "structure", [&](PhaseScope& scope) {
    FailFn fail = fail_into(scope);
    p.layout = open_layout(root, fail);
    check_parallel_layout(p.layout, fail);
    size_t tensors = 0, linears = 0, fp8 = 0, int4 = 0;
    for (const auto& t : p.layout.targets) {
      tensors += t->ck.tensors.size();
      linears += t->linears.size();
      for (const auto& lw : t->linears) fp8 += lw.fp8(), int4 += lw.is_int4();
    }
    scope.phase().summary = count_of(p.layout.targets.size(), p.layout.parallel ? "rank" : "directory", "directories") +
                            ", " + count_of(tensors, "tensor") + ", " + count_of(linears, "Linear weight") + " (" +
                            std::to_string(fp8) + " FP8" + (int4 ? ", " + std::to_string(int4) + " INT4" : std::string()) + "), " + format_bytes(weight_bytes(p.layout));
    scope.phase().details["targets"] = p.layout.targets.size();
    scope.phase().details["tensors"] = tensors;
    scope.phase().details["linear_weights"] = linears;
    scope.phase().details["fp8_weights"] = fp8;
    scope.phase().details["int4_weights"] = int4;
    scope.phase().details["bytes"] = weight_bytes(p.layout);
    if (!p.layout.targets.empty()) scope.phase().details["linear_weights_from"] = p.layout.targets.front()->linear_source;
  });
  if (structure.status == PhaseStatus::kFailed) return p;

  run_phase(report, "manifest", "", "manifest", [&](PhaseScope& scope) {
    std::vector<const Checkpoint*> cks;
    for (const auto& t : p.layout.targets) cks.push_back(&t->ck);
    p.expected = load_manifests(root, cks, fail_into(scope));
    scope.phase().summary = p.expected.manifests.empty()
                                ? "no ckpt-manifest.json: file bytes are the only reference"
                                : count_of(p.expected.manifests.size(), "manifest") + ", " +
                                      count_of(p.expected.files.size(), "weight file") + " listed";
    scope.phase().details["manifests"] = p.expected.manifests;
  });
  if (options.file_checksums && (!p.expected.files.empty() || any_packed(p.layout)))
    run_phase(report, "checksums (cpu)", "", "checksum", [&](PhaseScope& scope) { cpu_checksums(p, scope); });
  if (options.gemm_check)
    run_phase(report, "gemm (cpu)", "", "gemm", [&](PhaseScope& scope) { cpu_gemm(p, scope, options.gemm_batch); });
  return p;
}

void expect_file_digests(Prepared& p, Report& report) {
  run_phase(report, "digests (cpu)", "", "checksum", [&](PhaseScope& scope) {
    uint64_t bytes = 0;
    progress_begin(scope.progress(), scope.phase().name, weight_bytes(p.layout));
    for (const auto& t : p.layout.targets) {
      if (!t->opened) continue;
      const CheckpointBytes file_bytes(t->ck);
      for (size_t i = 0; i < t->ck.files.size(); ++i) {
        p.expected.files[t->ck.files[i].path] = {
            "file bytes", compute_file_digests(t->ck, file_bytes, i, scope.workers(), scope.progress())};
        bytes += t->ck.files[i].size;
      }
    }
    scope.phase().summary = "no manifest: " + format_bytes(bytes) + " hashed on the CPU for the GPU to reproduce";
  });
}

}  // namespace ckpt::validate
