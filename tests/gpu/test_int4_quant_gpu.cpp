// The CUDA INT4 quantizer (kernels/int4_quant.cu) against the scalar reference, bit for bit: every
// format, symmetry, input dtype, scale dtype and group size (8..128 in tiles, 24 / 256 / -1 through
// the wide-group kernels), odd shapes (N not a multiple of 64, K not of 128, compressed-tensors
// N % 8 != 0), stripes of rows starting inside the weight, the hard cases of int4_hard_weight
// (all-zero groups, exact ties, odd zeros, tiny and subnormal-scale values, outliers), NaN/Inf and
// overflowing scales (the same first problem as the CPU), and the error report; then the engine
// behind `ckpt quantize --int4 --device cuda` (kernels/int4_quant_engine.h, through the staging
// pipeline) against the CPU engine strip for strip, and whole checkpoints through the planner in
// every format, group size and symmetry, --layout marlin and --pad-intermediate giving the CPU
// path's bytes. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "cuda_check.h"
#include "gpu_info.h"
#include "int4_cases.h"
#include "int4_quant.h"
#include "int4_quant_engine.h"
#include "int4_quant_host.h"
#include "ops/int4_math.h"
#include "ops/int4_producers.h"
#include "ops/int4_quant.h"
#include "quantize_run.h"
#include "test_support.h"

using namespace ckpt;
using namespace ckpt::ops;

namespace {

#define SKIP_WITHOUT_GPU() \
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA INT4 quantizer is not tested here"

int in_type(DType d) { return d == DType::BF16 ? 0 : d == DType::F16 ? 1 : 2; }
int scale_type(DType d) { return d == DType::F16 ? kInt4ScaleF16 : d == DType::BF16 ? kInt4ScaleBF16 : kInt4ScaleF32; }
int format_id(Int4Format f) { return f == Int4Format::kGptq ? kInt4Gptq : f == Int4Format::kAwq ? kInt4Awq : kInt4Ct; }

uint64_t numel(const std::vector<uint64_t>& s) {
  uint64_t e = 1;
  for (uint64_t d : s) e *= d;
  return s.empty() ? 0 : e;
}

struct GpuRun {
  test::Int4Arrays arrays;
  cuda::Int4QuantResult result;
  cuda::Int4Status status = cuda::Int4Status::kSuccess;
};

// Quantizes a whole [n, k] weight on the GPU in stripes of `stripe` rows.
GpuRun gpu_quantize(const Int4Scheme& s, DType dt, const std::vector<uint8_t>& w, uint64_t n, uint64_t k,
                    uint64_t stripe, bool stats, uint32_t max_ctas = 0) {
  const Int4Geometry geo = int4_geometry(s, n, k);
  const Int4Shapes sh = int4_shapes(s, n, k);
  const size_t es = dtype_bits(dt) / 8, ss = dtype_bits(s.scale_dtype) / 8;
  cuda::DeviceBuffer in(w.size()), weights(4 * numel(sh.weights)), scales(ss * numel(sh.scales)),
      zeros(4 * std::max<uint64_t>(1, numel(sh.zeros))), g_idx(4 * std::max<uint64_t>(1, numel(sh.g_idx)));
  CKPT_CUDA(cudaMemcpy(in.data(), w.data(), w.size(), cudaMemcpyHostToDevice));
  CKPT_CUDA(cudaMemset(weights.data(), 0xA5, weights.size()));
  CKPT_CUDA(cudaMemset(scales.data(), 0xA5, scales.size()));
  CKPT_CUDA(cudaMemset(zeros.data(), 0xA5, zeros.size()));
  GpuRun run;
  cuda::Int4QuantKernel kernel;
  for (uint64_t r0 = 0; r0 < n; r0 += stripe) {
    cuda::Int4QuantArgs a;
    a.format = format_id(s.format);
    a.in_type = in_type(dt);
    a.scale_type = scale_type(s.scale_dtype);
    a.symmetric = s.symmetric;
    a.zero_offset = s.gptq_zero_offset;
    a.n = n;
    a.k = k;
    a.group = geo.group;
    a.row0 = r0;
    a.rows = std::min(stripe, n - r0);
    a.in = in.data() + r0 * k * es;
    a.weights = weights.as<uint32_t>();
    a.scales = scales.data();
    a.zeros = sh.zeros.empty() ? nullptr : zeros.as<uint32_t>();
    a.g_idx = sh.g_idx.empty() ? nullptr : g_idx.as<int32_t>();
    a.stats = stats;
    a.max_ctas = max_ctas;
    if ((run.status = cuda::Int4QuantKernel::can_implement(a)) != cuda::Int4Status::kSuccess) return run;
    cuda::DeviceBuffer ws(cuda::Int4QuantKernel::get_workspace_size(a));
    if ((run.status = kernel.run(a, ws.data(), nullptr)) != cuda::Int4Status::kSuccess) return run;
    cuda::Int4QuantResult r;
    if ((run.status = kernel.read_result(a, ws.data(), nullptr, &r)) != cuda::Int4Status::kSuccess) return run;
    if (r.issue && !run.result.issue) run.result = r;
    run.result.sum_sq_err += r.sum_sq_err;
    run.result.sum_sq += r.sum_sq;
    run.result.max_abs_err = std::max(run.result.max_abs_err, r.max_abs_err);
  }
  run.arrays.weights.resize(numel(sh.weights));
  run.arrays.scales.resize(scales.size());
  run.arrays.zeros.resize(numel(sh.zeros));
  run.arrays.g_idx.resize(numel(sh.g_idx));
  CKPT_CUDA(cudaMemcpy(run.arrays.weights.data(), weights.data(), weights.size(), cudaMemcpyDeviceToHost));
  CKPT_CUDA(cudaMemcpy(run.arrays.scales.data(), scales.data(), scales.size(), cudaMemcpyDeviceToHost));
  if (!sh.zeros.empty())
    CKPT_CUDA(cudaMemcpy(run.arrays.zeros.data(), zeros.data(), 4 * numel(sh.zeros), cudaMemcpyDeviceToHost));
  if (!sh.g_idx.empty())
    CKPT_CUDA(cudaMemcpy(run.arrays.g_idx.data(), g_idx.data(), 4 * numel(sh.g_idx), cudaMemcpyDeviceToHost));
  return run;
}

template <typename T>
void expect_same(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) FAIL() << what << ": first difference at element " << i << " of " << got.size();
}

}  // namespace

TEST(Int4QuantGpu, EveryFormatGroupAndDtypeEqualsTheReference) {
  SKIP_WITHOUT_GPU();
  struct Shape {
    uint64_t n, k;
  };
  // [72, 520]: K % 32 != 0 and N % 32 != 0, the word-store edges of compressed-tensors and AWQ.
  const Shape shapes[] = {{64, 512}, {136, 384}, {200, 1152}, {24, 768}, {72, 520}};
  int cases = 0;
  for (DType dt : {DType::BF16, DType::F16, DType::F32})
    for (Int4Format f : {Int4Format::kGptq, Int4Format::kAwq, Int4Format::kCompressedTensors})
      for (bool sym : {true, false})
        for (int64_t group : {int64_t{8}, int64_t{32}, int64_t{64}, int64_t{128}, int64_t{24}, int64_t{256}, int64_t{-1}})
          for (const Shape& sh : shapes) {
            const Int4Scheme s{f, group, sym, f == Int4Format::kCompressedTensors ? dt : DType::F16};
            if (!int4_shape_problem(s, sh.n, sh.k).empty()) continue;
            const Int4Geometry geo = int4_geometry(s, sh.n, sh.k);
            const auto w = test::int4_hard_weight(sh.n, sh.k, geo.group, dt, static_cast<uint32_t>(++cases));
            const auto want = test::int4_reference_arrays(s, dt, w, sh.n, sh.k);
            const std::string what = std::string(dtype_name(dt)) + " " + int4_format_name(f) + (sym ? " sym" : " asym") +
                                     " g" + std::to_string(group) + " [" + std::to_string(sh.n) + ", " +
                                     std::to_string(sh.k) + "]";
            // Whole, in stripes of 72 rows (AWQ's stripe at row 72 takes word stores), and by 2 CTAs
            // that each walk the persistent loop over many tiles.
            for (auto [stripe, ctas] : {std::pair<uint64_t, uint32_t>{sh.n, 0}, {72, 0}, {sh.n, 2}}) {
              const GpuRun got = gpu_quantize(s, dt, w, sh.n, sh.k, stripe, false, ctas);
              ASSERT_EQ(got.status, cuda::Int4Status::kSuccess) << what;
              EXPECT_EQ(got.result.issue, 0) << what;
              expect_same(got.arrays.weights, want.weights, what + " weights, stripes of " + std::to_string(stripe) + ", CTAs " + std::to_string(ctas));
              expect_same(got.arrays.scales, want.scales, what + " scales");
              expect_same(got.arrays.zeros, want.zeros, what + " zeros");
              expect_same(got.arrays.g_idx, want.g_idx, what + " g_idx");
            }
          }
  EXPECT_GT(cases, 300);
}

TEST(Int4QuantGpu, CompressedTensorsOddRowCount) {
  SKIP_WITHOUT_GPU();
  // N % 8 != 0: the last zero-point word is padded with zero nibbles.
  const Int4Scheme s{Int4Format::kCompressedTensors, 128, false, DType::BF16};
  const auto w = test::int4_hard_weight(203, 512, 128, DType::BF16, 7);
  const auto want = test::int4_reference_arrays(s, DType::BF16, w, 203, 512);
  const GpuRun got = gpu_quantize(s, DType::BF16, w, 203, 512, 203, false);
  ASSERT_EQ(got.status, cuda::Int4Status::kSuccess);
  expect_same(got.arrays.weights, want.weights, "weights");
  expect_same(got.arrays.scales, want.scales, "scales");
  expect_same(got.arrays.zeros, want.zeros, "zeros");
}

TEST(Int4QuantGpu, ProblemsAreTheCpusFirstProblem) {
  SKIP_WITHOUT_GPU();
  for (int64_t group : {int64_t{64}, int64_t{-1}})
    for (DType dt : {DType::BF16, DType::F32}) {
      const uint64_t n = 16, k = 256;
      std::vector<float> x(n * k, 0.25f);
      x[5 * k + 200] = NAN;
      x[5 * k + 130] = INFINITY;  // the first one in row-major order
      x[9 * k + 3] = NAN;
      const Int4Scheme s{Int4Format::kGptq, group, true, DType::F16};
      const auto w = test::encode_floats(x, dt);
      const GpuRun got = gpu_quantize(s, dt, w, n, k, n, false);
      ASSERT_EQ(got.status, cuda::Int4Status::kSuccess);
      EXPECT_EQ(got.result.issue, 1);
      EXPECT_EQ(got.result.row, 5u);
      EXPECT_EQ(got.result.col, 130u);
      if (dt == DType::F32) {
        std::vector<float> y(n * k, 0.25f);
        y[3 * k + 70] = 1e6f;  // no F16 scale holds 1e6 / 7.5
        y[7 * k + 1] = NAN;
        const GpuRun o = gpu_quantize(s, dt, test::encode_floats(y, dt), n, k, n, false);
        const uint64_t g = group > 0 ? 64 : k;
        EXPECT_EQ(o.result.issue, 2);
        EXPECT_EQ(o.result.row, 3u);
        EXPECT_EQ(o.result.col, 70 / g * g);
      }
    }
}

TEST(Int4QuantGpu, SubnormalF32ScalesDivide) {
  SKIP_WITHOUT_GPU();
  // F32 scales below 2^-126 have no finite reciprocal: those groups take the division path.
  for (bool sym : {true, false}) {
    const Int4Scheme s{Int4Format::kCompressedTensors, 32, sym, DType::F32};
    std::vector<float> x(8 * 64);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 13) - 5) * 1e-41f;
    for (size_t i = 256; i < 288; ++i) x[i] = static_cast<float>(i % 7) * 3e-45f;
    const auto w = test::encode_floats(x, DType::F32);
    const auto want = test::int4_reference_arrays(s, DType::F32, w, 8, 64);
    const GpuRun got = gpu_quantize(s, DType::F32, w, 8, 64, 8, false);
    ASSERT_EQ(got.status, cuda::Int4Status::kSuccess);
    expect_same(got.arrays.weights, want.weights, "weights");
    expect_same(got.arrays.scales, want.scales, "scales");
    expect_same(got.arrays.zeros, want.zeros, "zeros");
  }
}

TEST(Int4QuantGpu, ErrorReportMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const Int4Scheme s{Int4Format::kAwq, 128, false, DType::F16};
  const uint64_t n = 128, k = 1024;
  const auto w = test::int4_hard_weight(n, k, 128, DType::BF16, 3);
  const Int4Geometry geo = int4_geometry(s, n, k);
  std::vector<Int4Params> p(n * geo.groups);
  std::vector<uint32_t> words(n * k / 8);
  Fp8ErrorStats cpu;
  ASSERT_FALSE(int4_quantize_reference(s, geo, {w.data(), DType::BF16, k, 0, n, 0, k}, 0, k, p.data(), words.data(), k / 8, &cpu));
  const GpuRun got = gpu_quantize(s, DType::BF16, w, n, k, n, true);
  EXPECT_NEAR(got.result.sum_sq_err, cpu.sum_sq_err, 1e-5 * cpu.sum_sq_err);
  EXPECT_NEAR(got.result.sum_sq, cpu.sum_sq, 1e-5 * cpu.sum_sq);
  EXPECT_NEAR(got.result.max_abs_err, cpu.max_abs_err, 1e-6 * cpu.max_abs_err);
  // Partials are kept per tile, so 3 persistent CTAs give the very same sums.
  const GpuRun few = gpu_quantize(s, DType::BF16, w, n, k, n, true, 3);
  EXPECT_EQ(few.result.sum_sq_err, got.result.sum_sq_err);
  EXPECT_EQ(few.result.sum_sq, got.result.sum_sq);
  EXPECT_EQ(few.result.max_abs_err, got.result.max_abs_err);
}

TEST(Int4QuantGpu, RefusesWhatItCannotTake) {
  cuda::Int4QuantArgs a;
  a.n = 64;
  a.k = 100;  // K % 8
  a.group = 100;
  EXPECT_EQ(cuda::Int4QuantKernel::can_implement(a), cuda::Int4Status::kInvalidProblem);
  EXPECT_STREQ(cuda::int4_status_name(cuda::Int4Status::kInvalidProblem), "invalid problem");
}

TEST(Int4QuantGpu, HostAdapterGivesTheCpuIssue) {
  // No GPU needed: the adapter's mapping and the issue recovery from a reported position.
  const uint64_t n = 8, k = 64;
  std::vector<float> x(n * k, 0.5f);
  x[3 * k + 40] = 1e6f;
  const auto w = test::encode_floats(x, DType::F32);
  const Int4Scheme s{Int4Format::kGptq, 32, true, DType::F16};
  const Int4Geometry geo = int4_geometry(s, n, k);
  const auto a = cuda::int4_kernel_args(s, DType::F32, geo, 0, n, w.data(), nullptr, nullptr, nullptr, nullptr, false);
  EXPECT_EQ(a.in_type, 2);
  EXPECT_EQ(a.group, 32u);
  cuda::Int4QuantResult r;
  r.issue = 2;
  r.row = 3;
  r.col = 32;
  const Int4Issue i = cuda::int4_issue_of(r, s, DType::F32, geo, 0, w.data());
  EXPECT_EQ(i.kind, Int4Issue::kScaleOverflow);
  EXPECT_EQ(i.row, 3u);
  EXPECT_EQ(i.col, 32u);
  EXPECT_EQ(i.value, 1e6f);
}

namespace {

// One engine's words, parameters, stats and issue for the strips of a weight held in memory.
struct EngineRun {
  std::vector<uint32_t> words;
  std::vector<Int4Params> params;
  std::vector<Fp8ErrorStats> stats;
  Int4Issue issue;
};

EngineRun run_engine(const Int4Engine& e, const Int4Scheme& s, DType dt, const std::vector<uint8_t>& w, uint64_t n,
                     uint64_t k, const std::vector<Int4Engine::Strip>& strips) {
  const Int4Geometry geo = int4_geometry(s, n, k);
  const uint64_t es = dtype_bits(dt) / 8;
  EngineRun r;
  r.words.assign(n * ((k + 7) / 8), 0xA5A5A5A5u);
  r.params.assign(n * geo.groups, Int4Params{-1.0f, 99});
  r.stats.resize(strips.size());
  // The weight as a checkpoint's only tensor: the engines read it through a SourceReader.
  test::ScratchDir d;
  const std::string path = d / "model.safetensors";
  test::write_raw_safetensors(path,
                              std::string("{\"w\":{\"dtype\":\"") + std::string(dtype_name(dt)) + "\",\"shape\":[" +
                                  std::to_string(n) + "," + std::to_string(k) + "],\"data_offsets\":[0," +
                                  std::to_string(n * k * es) + "]}}",
                              w);
  const Checkpoint ck = open_checkpoint(path);
  const SourceReader src({path});
  r.issue = e.quantize_strips(s, geo, strips, SourceElements(src, ck.tensors[0].view), r.words.data(), r.params.data(),
                              r.stats.data());
  return r;
}

// Strips of `rows` rows over [0, n), every `every`-th one (a thread's claim may skip strips that
// others took).
std::vector<Int4Engine::Strip> strips_of(uint64_t n, uint64_t rows, uint64_t every) {
  std::vector<Int4Engine::Strip> v;
  for (uint64_t r = 0, i = 0; r < n; r += rows, ++i)
    if (i % every == 0) v.push_back({r, std::min(rows, n - r)});
  return v;
}

void expect_same_run(const EngineRun& got, const EngineRun& want, const std::vector<Int4Engine::Strip>& strips,
                     uint64_t k, uint64_t groups, const std::string& what) {
  const uint64_t W = (k + 7) / 8;
  for (const auto& st : strips) {
    for (uint64_t r = st.row0; r < st.row0 + st.rows; ++r) {
      for (uint64_t j = 0; j < W; ++j)
        ASSERT_EQ(got.words[r * W + j], want.words[r * W + j]) << what << ": word (" << r << ", " << j << ")";
      for (uint64_t g = 0; g < groups; ++g) {
        ASSERT_EQ(got.params[r * groups + g].scale, want.params[r * groups + g].scale) << what << ": scale (" << r << ", " << g << ")";
        ASSERT_EQ(got.params[r * groups + g].zero, want.params[r * groups + g].zero) << what << ": zero (" << r << ", " << g << ")";
      }
    }
  }
  // The error report (float32 terms summed in other orders on each device): close, not equal.
  for (size_t i = 0; i < strips.size(); ++i) {
    EXPECT_NEAR(got.stats[i].sum_sq_err, want.stats[i].sum_sq_err, 1e-4 * want.stats[i].sum_sq_err + 1e-30) << what;
    EXPECT_NEAR(got.stats[i].sum_sq, want.stats[i].sum_sq, 1e-4 * want.stats[i].sum_sq + 1e-30) << what;
    EXPECT_NEAR(got.stats[i].max_abs_err, want.stats[i].max_abs_err, 1e-5 * want.stats[i].max_abs_err + 1e-30) << what;
  }
}

}  // namespace

// The engine's strips (more than the pipeline's slots, a short last strip, claims that skip
// strips) give the CPU engine's words and parameters in every format, symmetry, dtype and group.
TEST(Int4QuantGpu, EngineStripsEqualTheCpuEngine) {
  SKIP_WITHOUT_GPU();
  const auto gpu = cuda_int4_engine();
  const auto cpu = cpu_int4_engine();
  const uint64_t n = 1000, k = 768;
  int cases = 0;
  for (DType dt : {DType::BF16, DType::F16, DType::F32})
    for (Int4Format f : {Int4Format::kGptq, Int4Format::kAwq, Int4Format::kCompressedTensors})
      for (bool sym : {true, false})
        for (int64_t group : {int64_t{32}, int64_t{64}, int64_t{128}, int64_t{256}, int64_t{-1}}) {
          const Int4Scheme s{f, group, sym, f == Int4Format::kCompressedTensors ? dt : DType::F16};
          if (!int4_shape_problem(s, n, k).empty()) continue;
          const Int4Geometry geo = int4_geometry(s, n, k);
          const auto w = test::int4_hard_weight(n, k, geo.group, dt, static_cast<uint32_t>(++cases));
          for (auto strips : {strips_of(n, 64, 1), strips_of(n, 136, 2), strips_of(n, n, 1)}) {
            const std::string what = std::string(dtype_name(dt)) + " " + int4_format_name(f) + (sym ? " sym" : " asym") +
                                     " g" + std::to_string(group) + ", " + std::to_string(strips.size()) + " strips";
            const EngineRun want = run_engine(*cpu, s, dt, w, n, k, strips);
            const EngineRun got = run_engine(*gpu, s, dt, w, n, k, strips);
            ASSERT_FALSE(want.issue) << what;
            ASSERT_FALSE(got.issue) << what;
            expect_same_run(got, want, strips, k, geo.groups, what);
          }
        }
  EXPECT_GT(cases, 60);
}

// What the kernel does not take (compressed-tensors with K % 8 != 0) goes to the CPU engine.
TEST(Int4QuantGpu, EngineTakesOddKThroughTheCpu) {
  SKIP_WITHOUT_GPU();
  const uint64_t n = 40, k = 100;
  const Int4Scheme s{Int4Format::kCompressedTensors, -1, false, DType::BF16};
  ASSERT_EQ(int4_shape_problem(s, n, k), "");
  const auto w = test::int4_hard_weight(n, k, k, DType::BF16, 11);
  const auto strips = strips_of(n, 16, 1);
  const EngineRun want = run_engine(*cpu_int4_engine(), s, DType::BF16, w, n, k, strips);
  const EngineRun got = run_engine(*cuda_int4_engine(), s, DType::BF16, w, n, k, strips);
  expect_same_run(got, want, strips, k, 1, "compressed-tensors K 100");
}

// A NaN and an overflowing scale in later strips: the same first problem as the CPU engine.
TEST(Int4QuantGpu, EngineReportsTheCpuEnginesIssue) {
  SKIP_WITHOUT_GPU();
  const uint64_t n = 512, k = 256;
  for (int kind : {1, 2}) {
    std::vector<float> x(n * k, 0.25f);
    if (kind == 1) x[300 * k + 77] = NAN, x[420 * k + 3] = INFINITY;
    else x[200 * k + 129] = 1e6f, x[450 * k] = NAN;
    const auto w = test::encode_floats(x, DType::F32);
    const Int4Scheme s{Int4Format::kGptq, 128, true, DType::F16};
    const auto strips = strips_of(n, 64, 1);
    const EngineRun want = run_engine(*cpu_int4_engine(), s, DType::F32, w, n, k, strips);
    const EngineRun got = run_engine(*cuda_int4_engine(), s, DType::F32, w, n, k, strips);
    ASSERT_TRUE(want.issue);
    EXPECT_EQ(got.issue.kind, want.issue.kind);
    EXPECT_EQ(got.issue.row, want.issue.row);
    EXPECT_EQ(got.issue.col, want.issue.col);
    EXPECT_TRUE(got.issue.value == want.issue.value || (std::isnan(got.issue.value) && std::isnan(want.issue.value)));
  }
}

// The whole command's path: plan_quantize + execute with the CUDA engine writes the CPU's files.
TEST(Int4QuantGpu, WholeCheckpointMatchesTheCpuBytes) {
  SKIP_WITHOUT_GPU();
  struct Case {
    quant::Format format;
    bool sym;
    int64_t group;
    bool marlin;
    uint64_t pad_tp;
  };
  const Case cases[] = {
      {quant::Format::kGptq, true, 128, false, 0},   {quant::Format::kGptq, false, 128, false, 0},
      {quant::Format::kGptq, true, 32, false, 0},    {quant::Format::kGptq, true, -1, false, 0},
      {quant::Format::kAwq, false, 128, false, 0},   {quant::Format::kAwq, false, 64, false, 0},
      {quant::Format::kCompressedTensors, true, 128, false, 0},
      {quant::Format::kCompressedTensors, false, 32, false, 0},
      {quant::Format::kCompressedTensors, true, -1, false, 0},
      {quant::Format::kGptq, true, 128, true, 0},    {quant::Format::kAwq, false, 128, true, 0},
      {quant::Format::kCompressedTensors, true, 128, true, 0},
      {quant::Format::kGptq, true, 128, false, 4},
  };
  for (const Case& c : cases) {
    test::ScratchDir d;
    const std::string what = std::string(quant::format_name(c.format)) + (c.sym ? " sym" : " asym") + " g" +
                             std::to_string(c.group) + (c.marlin ? " marlin" : "") +
                             (c.pad_tp ? " pad " + std::to_string(c.pad_tp) : "");
    std::vector<std::string> outs;
    for (bool gpu : {false, true}) {
      QuantizeOptions o;
      o.method = quant::Method::kInt4;
      o.format = c.format;
      o.symmetric = c.sym;
      o.group_size = c.group;
      o.marlin_layout = c.marlin;
      o.pad_intermediate_tp = c.pad_tp;
      if (gpu) o.int4_engine = cuda_int4_engine();
      outs.push_back(d / (gpu ? "gpu" : "cpu"));
      test::quantize_into(test::testdata("llama-trained"), o, outs.back());
    }
    for (const auto& entry : std::filesystem::directory_iterator(outs[0])) {
      const std::string name = entry.path().filename().string();
      if (name == "ckpt-manifest.json") continue;  // holds the command line
      EXPECT_EQ(test::read_file_bytes(outs[0] + "/" + name), test::read_file_bytes(outs[1] + "/" + name))
          << what << ": " << name;
    }
  }
}
