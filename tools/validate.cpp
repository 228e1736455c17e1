// ckpt validate DIR [--json REPORT] [--batch-sizes 1,2,4,8,16,32] [--gpus LIST] [--cpu-only]
#include <cstdio>
#include <sstream>

#include "common.h"
#include "core/error.h"
#include "core/file_io.h"
#include "subcommands.h"
#include "validate/validate.h"
#if CKPT_HAVE_CUDA
#include "gpu_info.h"
#include "gpu_validate.h"
#endif

namespace ckpt::cli {

namespace {

std::vector<int> parse_int_list(const std::string& text, const char* option, int min, int max) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int v = -1;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || item.empty() || v < min || v > max)
      fail(Errc::kInvalidArgument, "", "", std::string(option) + " '" + text + "': each item must be an integer in [" +
                                               std::to_string(min) + ", " + std::to_string(max) + "]");
    out.push_back(v);
  }
  if (out.empty()) fail(Errc::kInvalidArgument, "", "", std::string(option) + " is empty");
  return out;
}

int gpu_count() {
#if CKPT_HAVE_CUDA
  return ckpt::cuda::device_count();
#else
  return 0;
#endif
}

int finish(const validate::Report& report, const std::string& json_path, int code) {
  std::fputs(report.table().c_str(), stdout);
  for (const auto& f : report.failures()) std::fprintf(stderr, "ckpt: check failed: %s\n", f.line().c_str());
  if (!json_path.empty()) {
    std::string text = report.to_json().dump(2) + "\n";
    if (json_path == "-") std::fputs(text.c_str(), stdout);
    else {
      std::remove(json_path.c_str());
      write_text_file(json_path, text);
    }
  }
  return code;
}

}  // namespace

void add_validate(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("validate", "Prove an output loads and runs: structure, checksums, GPU load, GEMM warm-up, CUDA graphs");
  struct Args {
    std::string dir, json, batch_sizes = "1,2,4,8,16,32", gpus;
    bool cpu_only = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("DIR", a->dir, "Checkpoint directory (or a TP output holding rank-r/ directories)")->required();
  cmd->add_option("--json", a->json, "Also write the report as JSON to this file ('-' for stdout)");
  cmd->add_option("--batch-sizes", a->batch_sizes, "Warm-up batch sizes, one CUDA graph each (comma-separated)");
  cmd->add_option("--gpus", a->gpus, "GPU ordinals to use, e.g. 0,1 (ranks spread over them; default 0)");
  cmd->add_flag("--cpu-only", a->cpu_only, "Run only the checks that need no GPU; exit 0 when they pass");
  cmd->callback([&action, a] {
    action = [a] {
      std::vector<int> batches = parse_int_list(a->batch_sizes, "--batch-sizes", 1, 4096);
      std::vector<int> gpus = a->gpus.empty() ? std::vector<int>{0} : parse_int_list(a->gpus, "--gpus", 0, 1023);
      validate::Report report;
      report.set("directory", a->dir);
      const bool gpu = !a->cpu_only && gpu_count() > 0;
      validate::CpuPhaseOptions cpu;
      cpu.file_checksums = !gpu;  // with a GPU, the digests are computed there
      cpu.gemm_check = !gpu;
      validate::Prepared prepared = validate::run_cpu_phases(a->dir, report, cpu);
      if (!report.ok()) return finish(report, a->json, kExitFailed);
      if (a->cpu_only) return finish(report, a->json, kExitOk);
      if (!gpu) {
        report.set("gpu", "none");
        int code = finish(report, a->json, kExitNoGpu);
        std::fprintf(stderr,
                     "ckpt: no GPU: all CPU checks passed (structure, manifest checksums, CPU GEMM reference); "
                     "the GPU phases (load, integrity, allocate, warm-up, graphs) did not run\n");
        return code;
      }
#if CKPT_HAVE_CUDA
      for (int g : gpus)
        if (g >= gpu_count())
          fail(Errc::kInvalidArgument, "", "", "--gpus: device " + std::to_string(g) + " does not exist (" +
                                                   std::to_string(gpu_count()) + " GPUs)");
      if (prepared.expected.files.empty()) validate::expect_file_digests(prepared, report);
      ckpt::cuda::GpuValidateOptions options;
      options.batch_sizes = batches;
      options.gpus = gpus;
      ckpt::cuda::run_gpu_phases(prepared, report, options);
#endif
      return finish(report, a->json, report.ok() ? kExitOk : kExitFailed);
    };
  });
}

}  // namespace ckpt::cli
