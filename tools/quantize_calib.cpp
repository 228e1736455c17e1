#include "quantize_calib.h"

#include <chrono>
#include <cstdio>

#include "calib/calibrate.h"
#include "core/error.h"

namespace ckpt::cli {

void add_calibration_options(CLI::App* cmd, CalibArgs& a) {
  cmd->add_option("--method", a.method, "--int4: rtn (default), gptq or awq (calibrated; need --calib)");
  cmd->add_option("--calib", a.calib,
                  "--method gptq/awq: calibration token ids (.safetensors/.json/.npy) or text (.txt, blank-line "
                  "separated documents; .jsonl with \"text\"), tokenized with the model's tokenizer");
  cmd->add_option("--samples", a.samples, "--method gptq/awq: calibration sequences (default 128)")->check(int_range(1));
  cmd->add_option("--seq-len", a.seq_len, "--method gptq/awq: tokens per calibration sequence (default 512)")
      ->check(int_range(1));
  cmd->add_option("--act-order", a.act_order,
                  "--method gptq: static (default: sweep by decreasing Hessian diagonal, trivial g_idx) or none");
  cmd->add_option("--damp", a.damp, "--method gptq: damping, fraction of the mean Hessian diagonal (default 0.01)");
  cmd->add_flag("--no-clip", a.no_clip, "--method awq: skip the clipping search");
}

bool calibrated(const CalibArgs& a, bool int4) {
  if (a.method != "rtn" && a.method != "gptq" && a.method != "awq")
    usage("--method must be rtn, gptq or awq, not '" + a.method + "'");
  if (a.method == "rtn") {
    if (!a.calib.empty()) usage("--calib applies to --method gptq or awq");
    return false;
  }
  if (!int4) usage("--method " + a.method + " applies to --int4");
  if (a.calib.empty())
    usage("--method " + a.method +
          " needs calibration data: --calib FILE with token ids (.safetensors/.json/.npy) or text (.txt/.jsonl) "
          "representative of the model's use (nothing is downloaded or invented)");
  if (a.act_order != "static" && a.act_order != "none") usage("--act-order must be static or none, not '" + a.act_order + "'");
  if (!(a.damp > 0 && a.damp < 1)) usage("--damp must be in (0, 1)");
  return true;
}

int run_calibrated(QuantizePlan& qp, const CalibArgs& a, const std::string& src, const std::string& dst,
                   const WriteOptions& w) {
  calib::CalibOptions co;
  co.method = a.method == "awq" ? calib::CalibMethod::kAwq : calib::CalibMethod::kGptq;
  co.damp = a.damp;
  co.act_order = a.act_order == "static";
  co.clip = !a.no_clip;
  const model::TokenIds ids = calib::load_calibration(a.calib, src, a.samples, a.seq_len);
  const bool show = !w.quiet && !w.json;
  const auto start = std::chrono::steady_clock::now();
  auto progress = [&](uint64_t done, uint64_t layers) {
    if (!show) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "\rckpt quantize: %s layer %llu/%llu, %.1f s, ETA %.1f s   ", a.method.c_str(),
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(layers), s,
                 s / static_cast<double>(done) * static_cast<double>(layers - done));
    if (done == layers) std::fprintf(stderr, "\n");
  };
  const calib::Calibrated c = calib::calibrate_int4(src, qp, ids, co, progress);
  calib::apply_calibrated(qp, c);
  const int rc = run_plan(qp.plan, dst, {src}, w, [&] { return calib::calibrated_report(qp, c); });
  if (rc == kExitOk && !w.dry_run && show)
    std::fprintf(stderr, "ckpt quantize: %s\n", calib::calibrated_summary_line(qp, c).c_str());
  return rc;
}

}  // namespace ckpt::cli
