// ckpt quantize SRC DST --fp8|--int4 [--group-size G] [--sym|--asym] [--layout marlin] [--pad-intermediate[=TP]]
//     --int4 [--method rtn|gptq|awq --calib FILE [--samples N] [--seq-len L] [--act-order static|none]
//     [--damp F] [--no-clip]]
//     --fp8 [--scheme tensor|block|channel] [--block 128x128]
//     [--format native|compressed-tensors] [--ignore PATTERN]... [--recipe FILE] [--device auto|cpu|cuda]
#include "commands/quantize.h"

#include <cstdio>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/device_choice.h"
#include "quantize_calib.h"
#include "steps.h"
#include "subcommands.h"
#if defined(CKPT_HAVE_CUDA)
#include "fp8_quant_engine.h"
#include "gpu_info.h"
#include "int4_quant_engine.h"
#endif

namespace ckpt::cli {

namespace {

bool parse_block(const std::string& text, uint64_t& rows, uint64_t& cols) {
  auto x = text.find('x');
  if (x == std::string::npos || x == 0 || x + 1 == text.size()) return false;
  try {
    size_t used = 0;
    rows = std::stoull(text.substr(0, x), &used);
    if (used != x) return false;
    cols = std::stoull(text.substr(x + 1), &used);
    return used == text.size() - x - 1 && rows > 0 && cols > 0;
  } catch (const std::exception&) {
    return false;
  }
}

// The CUDA engines for the method (each fails clearly when no GPU is present).
void use_cuda(QuantizeOptions& o) {
#if defined(CKPT_HAVE_CUDA)
  if (o.method == quant::Method::kInt4) o.int4_engine = cuda_int4_engine();
  else o.engine = cuda_fp8_engine();
#else
  (void)o;  // unreachable: wants_cuda_device refused "cuda" in this build, auto never picks it
#endif
}

bool gpu_usable() {
#if defined(CKPT_HAVE_CUDA)
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

// Source bytes of the weights a plan quantizes.
uint64_t weight_bytes(const QuantizePlan& qp) {
  uint64_t b = 0;
  for (const auto& q : qp.quantized) b += q->view().numel() * (dtype_bits(q->view().dtype) / 8);
  for (const auto& q : qp.int4) b += q->view().numel() * (dtype_bits(q->view().dtype) / 8);
  return b;
}

// A write option's value as the command line gave it (absent in a pipeline step's own options).
template <class T>
T write_option(CLI::App* cmd, const std::string& name, T fallback) {
  const CLI::Option* opt = cmd->get_option_no_throw(name);
  return opt && opt->count() > 0 ? opt->as<T>() : fallback;
}

}  // namespace

MakeStep add_quantize_options(CLI::App* cmd) {
  struct Args {
    std::string scheme = "tensor", block = "128x128", format, recipe, device = "auto", layout;
    bool fp8 = false, int4 = false, sym = false, asym = false;
    int64_t group_size = 128;
    uint64_t pad_tp = 0;
    std::vector<std::string> ignore;
    CalibArgs calib;
  };
  auto a = std::make_shared<Args>();
  cmd->add_flag("--fp8", a->fp8, "FP8 E4M3FN weights with dequantization scales");
  cmd->add_flag("--int4", a->int4, "INT4 W4A16 weights, round to nearest (GPTQ, AWQ or compressed-tensors layout)");
  cmd->add_option("--group-size", a->group_size, "--int4: inputs per scale group: 128 (default), 64, 32, or -1 (per channel)");
  cmd->add_flag("--sym", a->sym, "--int4: symmetric (default for gptq and compressed-tensors)");
  cmd->add_flag("--asym", a->asym, "--int4: asymmetric, with zero points (always for awq)");
  cmd->add_option("--scheme", a->scheme, "Scale granularity: tensor (default), block or channel");
  auto* block = cmd->add_option("--block", a->block, "Block shape for --scheme block, rows x cols of the weight (default 128x128)");
  cmd->add_option("--format", a->format,
                  "--fp8: native (quant_method fp8; default for tensor/block) or compressed-tensors (default for "
                  "channel); --int4: gptq (default), awq or compressed-tensors");
  cmd->add_option("--ignore", a->ignore, "Leave matching modules unquantized ('*' matches any run; repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--recipe", a->recipe, "Recipe JSON naming the Linear weights (default: by architecture)");
  cmd->add_option("--layout", a->layout,
                  "--int4: marlin writes the Linears as vLLM's Marlin repack leaves them (as ckpt marlin does), in the "
                  "same pass");
  cmd->add_option("--device", a->device,
                  "Where the math runs: auto (default), cpu or cuda. auto picks cuda only when a CUDA GPU is usable and "
                  "its estimated time (start-up + copying the weights to it) beats the CPU's estimated math time on "
                  "the worker threads (lib/quant/device_choice.h); -v says which and why. Calibrated --method gptq/awq "
                  "runs on the CPU");
  auto* pad = cmd->add_flag("--pad-intermediate{1}", a->pad_tp,
                "--int4: zero-pad the MLP intermediate size (gate/up rows, down columns: exact) to the next multiple of "
                "TP x lcm(group, 128), so every rank of --pad-intermediate=TP tensor parallelism (default 1) meets the "
                "format's and vLLM Marlin's shape rules; recorded in config.json");
  add_calibration_options(cmd, a->calib);
  return [a, block, pad, cmd] {
    if (a->fp8 == a->int4) usage("choose a quantization: --fp8 or --int4");
    if (a->sym && a->asym) usage("--sym and --asym exclude each other");
    const bool calibrate = calibrated(a->calib, a->int4);
    if (a->calib.method == "awq" && a->format.empty()) a->format = "awq";  // AutoAWQ's own layout
    QuantizeOptions o;
    if (a->int4) {
      o.method = quant::Method::kInt4;
      o.group_size = a->group_size;
      if (a->sym || a->asym) o.symmetric = a->sym;
    }
    if (a->device != "auto" && a->device != "cpu" && a->device != "cuda")
      usage("--device must be auto, cpu or cuda, not '" + a->device + "'");
    const bool automatic = a->device == "auto";
    const bool cuda = !automatic && wants_cuda_device(a->device);  // refused where this build has no CUDA
    if (cuda && calibrate)
      fail(Errc::kUnsupported, "", "",
           "--device cuda: calibrated quantization (--method " + a->calib.method +
               ") runs on the CPU in this build; use --device cpu (or auto)");
    auto granularity = fp8_granularity_from_name(a->scheme);
    if (!granularity) usage("--scheme must be tensor, block or channel, not '" + a->scheme + "'");
    o.granularity = *granularity;
    if (block->count() > 0 && (a->int4 || o.granularity != quant::Granularity::kBlock))
      usage("--block " + a->block + " applies only to --scheme block (the scheme is " +
            (a->int4 ? std::string("int4 groups") : a->scheme) + ")");
    if (!parse_block(a->block, o.block_rows, o.block_cols)) usage("--block '" + a->block + "' is not ROWSxCOLS like 128x128");
    if (a->format == "native") o.format = quant::Format::kFp8Native;
    else if (a->format == "compressed-tensors") o.format = quant::Format::kCompressedTensors;
    else if (a->format == "gptq" && a->int4) o.format = quant::Format::kGptq;
    else if (a->format == "awq" && a->int4) o.format = quant::Format::kAwq;
    else if (!a->format.empty())
      usage("--format must be native or compressed-tensors (--fp8), gptq, awq or compressed-tensors (--int4), not '" +
            a->format + "'");
    if (!a->layout.empty() && a->layout != "marlin") usage("--layout must be marlin, not '" + a->layout + "'");
    o.marlin_layout = !a->layout.empty();
    if (o.marlin_layout && !a->int4) usage("--layout marlin applies only to --int4 (Marlin holds INT4 weights)");
    if (o.marlin_layout && calibrate)
      usage("--layout marlin with --method " + a->calib.method + ": calibrated quantization writes as it goes; run ckpt marlin on its output");
    if (pad->count() > 0 && a->pad_tp == 0) usage("--pad-intermediate=TP needs a tensor-parallel degree >= 1");
    if (a->pad_tp && !a->int4) usage("--pad-intermediate applies only to --int4");
    if (a->pad_tp && calibrate)
      usage("--pad-intermediate with --method " + a->calib.method + ": calibration runs the source's own shapes; quantize with RTN");
    o.pad_intermediate_tp = a->pad_tp;
    o.ignore = a->ignore;
    o.recipe_path = a->recipe;
    if (cuda) use_cuda(o);
    const int threads = write_option<int>(cmd, "--threads", 0);
    const bool verbose = write_option<bool>(cmd, "--verbose", false);
    Step s;
    if (calibrate) {
      if (automatic && verbose)
        std::fprintf(stderr, "ckpt quantize: --device auto chose %s\n",
                     quant::choose_device({.method = o.method, .calibrated = true}).reason.c_str());
      s.run_alone = [o, calib = a->calib](const Checkpoint& ck, const std::string& src, const std::string& dst,
                                          const WriteOptions& w) {
        QuantizePlan qp = plan_quantize(ck, o);
        return run_calibrated(qp, calib, src, dst, w);
      };
      return s;
    }
    auto qp = std::make_shared<QuantizePlan>();
    s.plan = [o, qp, automatic, threads, verbose](const Checkpoint& ck) {
      *qp = plan_quantize(ck, o);
      if (!automatic) return qp->plan;
      // auto: that plan (on the CPU engines; planning reads headers only) measures the weights.
      const quant::DeviceChoice c = quant::choose_device(
          {.method = o.method,
           .bytes = weight_bytes(*qp),
           .threads = static_cast<unsigned>(Workers{.threads = threads}.count()),
           .gpu_usable = gpu_usable});
      if (verbose) std::fprintf(stderr, "ckpt quantize: --device auto chose %s\n", c.reason.c_str());
      if (!c.cuda) return qp->plan;
      QuantizeOptions on_gpu = o;
      use_cuda(on_gpu);
      *qp = plan_quantize(ck, on_gpu);
      return qp->plan;
    };
    s.report = [qp] { return quantize_report(*qp); };
    s.summary = [qp](const WriteOptions& w) {
      if (!w.json) std::fprintf(stderr, "ckpt quantize: %s\n", quantize_summary_line(*qp).c_str());
    };
    return s;
  };
}

void add_quantize(CLI::App& app, std::function<int()>& action) {
  add_step_subcommand(app, action, "quantize",
                      "Quantize Linear weights (FP8 E4M3FN) into a checkpoint vLLM, SGLang and transformers load",
                      "Source checkpoint (file or directory)", "Output directory", &add_quantize_options);
}

}  // namespace ckpt::cli
