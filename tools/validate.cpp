// ckpt validate DIR | --from-shm NAME [--shm-root DIR] [--io posix|gds|auto] [--json] [--report FILE] [--batch-sizes 1,2,4,8,16,32] [--gpus LIST] [--cpu-only]
//               [--against SRC [--ids FILE | --text PROMPT | --seq-len N --samples S] [--generate N] [--min-top1 X] [--max-kl Y]]
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "common.h"
#include "interrupt.h"
#include "progress.h"
#include "core/error.h"
#include "commands/stage.h"
#include "core/file_io.h"
#include "subcommands.h"
#include "validate/against.h"
#include "validate/validate.h"
#if CKPT_HAVE_CUDA
#include "gpu_info.h"
#include "cuda_check.h"
#include "gpu_validate.h"
#include "runtime/gpu_step_forward.h"
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
      usage(std::string(option) + " '" + text + "': each item must be an integer in [" +
                                               std::to_string(min) + ", " + std::to_string(max) + "]");
    out.push_back(v);
  }
  if (out.empty()) usage(std::string(option) + " is empty");
  return out;
}

int gpu_count() {
#if CKPT_HAVE_CUDA
  return ckpt::cuda::device_count();
#else
  return 0;
#endif
}

// Where the human text goes: stdout, or stderr when --json keeps stdout for the JSON document.
std::FILE* human(bool json) { return json ? stderr : stdout; }

int finish(const validate::Report& report, TerminalProgress& progress, bool json, const std::string& report_path,
           int code) {
  progress.end();
  std::fputs(report.table().c_str(), human(json));
  for (const auto& f : report.failures())
    std::fprintf(stderr, "ckpt: error: check failed: %s [%s]\n", f.line().c_str(), errc_name(Errc::kCheckFailed));
  const std::string text = report.to_json().dump(2) + "\n";
  if (json) std::fputs(text.c_str(), stdout);
  if (!report_path.empty()) write_report_file(report_path, text);
  return code;
}

void print_comparison(const model::Comparison& c, std::FILE* out) {
  std::fprintf(out, "against: %s\n  thresholds (%s, defaults unless given): %s\n", c.summary().c_str(),
              model::transformation_name(c.transformation), c.thresholds.describe().c_str());
  for (const auto& l : c.layers) {
    std::fprintf(out, "  layer %-3llu hidden cosine %.6f, own-input cosine %.6f; Linear relative error:",
                static_cast<unsigned long long>(l.layer), l.hidden_cosine, l.isolated_cosine);
    for (const auto& lin : l.linears) std::fprintf(out, " %s %.2e", lin.name.c_str(), lin.relative_error);
    std::fprintf(out, "\n");
  }
  for (size_t s = 0; s < c.src_generated.size(); ++s) {
    if (c.src_generated[s].empty()) continue;
    std::fprintf(out, "  greedy %zu: ", s);
    for (size_t g = 0; g < c.src_generated[s].size(); ++g)
      std::fprintf(out, "%s%lld", g ? " " : "", static_cast<long long>(c.src_generated[s][g]));
    if (c.first_divergence[s] < 0) std::fprintf(out, " (identical)\n");
    else {
      std::fprintf(out, " | dst:");
      for (int64_t x : c.dst_generated[s]) std::fprintf(out, " %lld", static_cast<long long>(x));
      std::fprintf(out, " (first differs at %lld)\n", static_cast<long long>(c.first_divergence[s]));
    }
    if (s < c.src_generated_text.size()) {
      std::fprintf(out, "    src text: %s\n", quote(c.src_generated_text[s], model::kContinuationTextBytes).c_str());
      if (c.first_divergence[s] >= 0)
        std::fprintf(out, "    dst text: %s\n", quote(c.dst_generated_text[s], model::kContinuationTextBytes).c_str());
    }
  }
}

}  // namespace

void add_validate(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("validate", "Prove an output loads and runs: structure, checksums, GPU load, a real decode step, CUDA graphs");
  struct Args {
    std::string dir, report, batch_sizes = "1,2,4,8,16,32", gpus, from_shm, shm_root = kDefaultShmRoot, io = "posix";
    bool cpu_only = false, json = false;
    std::string against, ids, text, against_device = "auto";
    uint64_t seq_len = 32, samples = 4, generate = 8;
    std::optional<double> min_top1, max_kl;
  };
  auto a = std::make_shared<Args>();
  auto* dir = cmd->add_option("DIR", a->dir, "Checkpoint directory (or a TP output holding rank-r/ directories)");
  cmd->add_option("--from-shm", a->from_shm, "Validate the copy `ckpt stage` put in shared memory under NAME (instead of DIR)")
      ->excludes(dir);
  cmd->add_option("--shm-root", a->shm_root, "Where staged copies live (default /dev/shm)");
  cmd->add_option("--io", a->io,
                  "How the GPU load reads: posix (pread into pinned buffers, then copies), gds (cuFile, NVMe to GPU; "
                  "falls back to posix with the reason), auto (the faster on a sample, said which)")
      ->check(CLI::IsMember({"posix", "gds", "auto"}));
  cmd->add_flag("--json", a->json, "Print the report as JSON on stdout (the table goes to stderr)");
  cmd->add_option("--report", a->report, "Also write the report as JSON to this file (replaced if it is a file)");
  cmd->add_option("--against", a->against,
                  "Source checkpoint: run both on the same ids and compare logits, perplexity, generations and "
                  "every layer, naming the first layer and Linear that disagree");
  auto* ids_opt = cmd->add_option("--ids", a->ids, "--against: token ids (.safetensors/.json/.npy) instead of seeded ones");
  cmd->add_option("--text", a->text, "--against: a prompt, tokenized by SRC's tokenizer, instead of seeded ids")->excludes(ids_opt);
  cmd->add_option("--seq-len", a->seq_len, "--against: seeded ids per sample (default 32)")->check(int_range(2, 1 << 20));
  cmd->add_option("--samples", a->samples, "--against: seeded sequences (default 4)")->check(int_range(1, 1 << 16));
  cmd->add_option("--generate", a->generate, "--against: greedy tokens each model continues with (default 8)");
  cmd->add_option("--min-top1", a->min_top1, "--against: least top-1 agreement (default per transformation, printed)");
  cmd->add_option("--max-kl", a->max_kl, "--against: largest mean KL(src||dst) in nats (default per transformation)");
  cmd->add_option("--against-device", a->against_device,
                  "--against: where both forwards run: auto (the GPU when there is one, else the CPU reference; "
                  "the environment's CKPT_AGAINST_DEVICE when set), cpu (float64 reference), cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--batch-sizes", a->batch_sizes, "Warm-up batch sizes: a decode step of the model and its CUDA graph each (comma-separated)");
  cmd->add_option("--gpus", a->gpus, "GPU ordinals to use, e.g. 0,1 (ranks spread over them; default 0)");
  cmd->add_flag("--cpu-only", a->cpu_only, "Run only the checks that need no GPU; exit 0 when they pass");
  cmd->callback([&action, a] {
    action = [a] {
      if (a->dir.empty() && a->from_shm.empty()) usage("validate needs DIR (or --from-shm NAME)");
      if (!a->from_shm.empty()) a->dir = find_staged(a->shm_root, a->from_shm);
      if (!a->report.empty()) check_report_path(a->report);
      std::vector<int> batches = parse_int_list(a->batch_sizes, "--batch-sizes", 1, 4096);
      std::vector<int> gpus = a->gpus.empty() ? std::vector<int>{0} : parse_int_list(a->gpus, "--gpus", 0, 1023);
      TerminalProgress progress(stderr_is_tty());
      validate::Report report(workers(0), progress.observer());
      report.set("directory", a->dir);
      // The multi-instance case (a copy in shared memory every process maps) is reported apart.
      if (!a->from_shm.empty()) report.set("from_shm", ojson{{"name", a->from_shm}, {"path", a->dir}});
      const bool gpu = !a->cpu_only && gpu_count() > 0;
      validate::CpuPhaseOptions cpu;
      cpu.file_checksums = !gpu;  // with a GPU, the digests are computed there
      cpu.gemm_check = !gpu;
      validate::Prepared prepared = validate::run_cpu_phases(a->dir, report, cpu);
      if (!report.ok()) return finish(report, progress, a->json, a->report, kExitFailed);
      if (!a->against.empty()) {
        validate::AgainstOptions ao;
        ao.source = a->against;
        ao.ids_file = a->ids;
        ao.text = a->text;
        ao.seq_len = a->seq_len;
        ao.samples = a->samples;
        ao.compare.generate = a->generate;
        ao.compare.min_top1 = a->min_top1;
        ao.compare.max_mean_kl = a->max_kl;
        // auto: the GPU when the GPU phases run (not --cpu-only) and one is present.
        std::string where = a->against_device;
        if (where == "auto") {
          const char* env = std::getenv("CKPT_AGAINST_DEVICE");
          where = env && *env ? env : "auto";
          if (where != "auto" && where != "cpu" && where != "cuda")
            usage("CKPT_AGAINST_DEVICE='" + where + "': must be auto, cpu or cuda");
        }
        if (where == "auto") where = gpu ? "cuda" : "cpu";
        if (where == "cuda") {
          if (gpu_count() == 0) usage("--against-device cuda: no CUDA GPU on this machine");
#if CKPT_HAVE_CUDA
          const int device = gpus.front();
          ao.device_forwards = [device](const model::Model& s, const model::Model& d, uint64_t batch, uint64_t capacity) {
            CKPT_CUDA(cudaSetDevice(device));
            return ckpt::cuda::gpu_compared_forwards(s, d, batch, capacity);
          };
          ao.device_name = "cuda";
#endif
        }
        auto c = validate::run_against_phase(prepared, ao, report);
        if (c) print_comparison(*c, human(a->json));
      }
      if (!report.ok()) return finish(report, progress, a->json, a->report, kExitFailed);
      if (a->cpu_only) return finish(report, progress, a->json, a->report, kExitOk);
      if (!gpu) {
        report.set("gpu", "none");
        // --io names how the GPU load reads; with no GPU there is nothing to read into.
        report.set("io", ojson{{"requested", a->io}, {"used", "none"}, {"reason", "no GPU"}});
        int code = finish(report, progress, a->json, a->report, kExitNoGpu);
        std::fprintf(stderr,
                     "ckpt: no GPU: all CPU checks passed (structure, manifest checksums, CPU GEMM reference); "
                     "the GPU phases (load, integrity, allocate, warm-up, graphs) did not run%s\n",
                     a->io == "posix" ? "" : (", so --io " + a->io + " read nothing (cuFile was not tried)").c_str());
        return code;
      }
#if CKPT_HAVE_CUDA
      for (int g : gpus)
        if (g >= gpu_count())
          usage("--gpus: device " + std::to_string(g) + " does not exist (" +
                                                   std::to_string(gpu_count()) + " GPUs)");
      if (prepared.expected.files.empty()) validate::expect_file_digests(prepared, report);
      ckpt::cuda::GpuValidateOptions options;
      options.batch_sizes = batches;
      options.gpus = gpus;
      options.io = ckpt::cuda::parse_io_mode(a->io);
      options.load_phase = a->from_shm.empty() ? "load" : "load (shm)";
      const ckpt::cuda::GpuPhasesResult gpu_result = ckpt::cuda::run_gpu_phases(prepared, report, options);
      if (report.ok() && !gpu_result.runtime_unsupported.empty()) {
        // Like no GPU: every check that could run passed, but the warm-up (a real decode step)
        // could not run; a distinct exit code, never a pass.
        int code = finish(report, progress, a->json, a->report, kExitNoGpu);
        std::fprintf(stderr,
                     "ckpt: the model runtime cannot run this model (%s): load and integrity passed on the GPU; "
                     "the warm-up and graph phases did not run\n",
                     gpu_result.runtime_unsupported.c_str());
        return code;
      }
#endif
      return finish(report, progress, a->json, a->report, report.ok() ? kExitOk : kExitFailed);
    };
  });
}

}  // namespace ckpt::cli
