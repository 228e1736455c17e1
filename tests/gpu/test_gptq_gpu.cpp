// GPTQ of one Linear on the GPU (kernels/calib/gptq_device.h) held to the float64 CPU reference
// (lib/calib/gptq.h): the device Hessian against calib::Hessian within the float32 summation
// bound; the sweep on three shapes x group sizes 128 / 32 / -1 x sym / asym x act-order on / off,
// against a Hessian of correlated activations with one dead input — equal group parameters, codes
// agreeing on >= 99.5 % of elements, output error within 1 %; the damping ladder (one rung up, and
// the RTN fallback) as the CPU climbs it; NaN and overflowing weights refused with the CPU's issue.
// Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "calib/gptq.h"
#include "calib/gptq_device.h"
#include "cuda_check.h"
#include "core/error.h"
#include "gpu_info.h"
#include "int4_cases.h"
#include "lazy_library.h"
#include "ops/float_convert.h"

using namespace ckpt;

namespace {

#define SKIP_WITHOUT_GPU() \
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine: GPTQ on the GPU is not tested here"

template <class T>
cuda::DeviceBuffer upload(const std::vector<T>& v) {
  cuda::DeviceBuffer d(v.size() * sizeof(T));
  CKPT_CUDA(cudaMemcpy(d.data(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

std::vector<float> download_floats(const void* d, size_t count) {
  std::vector<float> v(count);
  CKPT_CUDA(cudaMemcpy(v.data(), d, count * sizeof(float), cudaMemcpyDeviceToHost));
  return v;
}

// Correlated activations X = Z · A [tokens, k]: Z ~ N(0, 1), A a random mixing matrix (so XᵀX has
// a Marchenko–Pastur spread of eigenvalues, not a near-identity), each column then scaled by a
// log-uniform factor in [1/4, 4] (a spread diagonal for act-order to sort), and column `dead`
// never non-zero. Float32 values.
std::vector<float> correlated_activations(uint64_t tokens, uint64_t k, uint64_t dead, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(-std::log(4.0), std::log(4.0));
  std::vector<double> mix(k * k), scale(k), z(k);
  for (double& v : mix) v = nd(rng) / std::sqrt(static_cast<double>(k));
  for (double& v : scale) v = std::exp(ud(rng));
  std::vector<float> x(tokens * k);
  std::vector<double> row(k);
  for (uint64_t t = 0; t < tokens; ++t) {
    for (double& v : z) v = nd(rng);
    std::fill(row.begin(), row.end(), 0.0);
    for (uint64_t i = 0; i < k; ++i) {
      const double zi = z[i];
      const double* a = &mix[i * k];
      for (uint64_t c = 0; c < k; ++c) row[c] += zi * a[c];
    }
    for (uint64_t c = 0; c < k; ++c) x[t * k + c] = c == dead ? 0.0f : static_cast<float>(row[c] * scale[c]);
  }
  return x;
}

std::vector<double> cpu_hessian(const std::vector<float>& x, uint64_t tokens, uint64_t k) {
  const std::vector<double> xd(x.begin(), x.end());
  calib::Hessian h(k);
  h.add(xd.data(), tokens);
  return h.matrix();
}

ops::Int4Scheme scheme_of(int64_t group, bool symmetric) {
  // Symmetric as GPTQ (F16 scales); asymmetric as compressed-tensors with BF16 scales, so both
  // scale types and both zero-group conventions are exercised.
  if (symmetric) return {ops::Int4Format::kGptq, group, true, DType::F16, 1};
  return {ops::Int4Format::kCompressedTensors, group, false, DType::BF16, 1};
}

struct Compared {
  double code_agreement = 0, gpu_error = 0, cpu_error = 0;
};

// Runs both and asserts what must be exact: no issue, the same parameters and ladder outcome.
Compared compare(const ops::Int4Scheme& s, const std::vector<float>& w, uint64_t n, uint64_t k,
                 const std::vector<double>& h, const cuda::DeviceBuffer& w_dev, const cuda::DeviceBuffer& h_dev,
                 const calib::GptqOptions& o, const std::string& what, calib::Int4Weights* cpu_out = nullptr,
                 calib::Int4Weights* gpu_out = nullptr) {
  calib::Int4Weights cq, gq;
  calib::GptqOutcome co, go;
  EXPECT_FALSE(calib::gptq_int4(s, w.data(), n, k, h, o, &cq, &co)) << what;
  EXPECT_FALSE(cuda::gptq_int4_device(s, w_dev.as<float>(), n, k, h_dev.as<float>(), o, &gq, &go, nullptr)) << what;
  Compared c;
  EXPECT_EQ(gq.params.size(), cq.params.size()) << what;
  EXPECT_EQ(gq.codes.size(), cq.codes.size()) << what;
  if (gq.params.size() != cq.params.size() || gq.codes.size() != cq.codes.size()) return c;
  uint64_t param_diffs = 0;
  for (size_t i = 0; i < cq.params.size(); ++i)
    param_diffs += !(gq.params[i].scale == cq.params[i].scale && gq.params[i].zero == cq.params[i].zero);
  EXPECT_EQ(param_diffs, 0u) << what << ": group parameters differ from the CPU's";
  EXPECT_EQ(go.rtn_fallback, co.rtn_fallback) << what;
  EXPECT_EQ(go.damp, co.damp) << what;
  EXPECT_EQ(go.dead_inputs, co.dead_inputs) << what;
  uint64_t same = 0;
  for (size_t i = 0; i < cq.codes.size(); ++i) same += gq.codes[i] == cq.codes[i];
  c.code_agreement = static_cast<double>(same) / static_cast<double>(cq.codes.size());
  c.cpu_error = calib::output_error(h, w.data(), cq.dequantized, n, k);
  c.gpu_error = calib::output_error(h, w.data(), gq.dequantized, n, k);
  std::printf("%-44s codes agree %.5f  output error cpu %.6g gpu %.6g (%+.3f%%)  sweep loss cpu %.6g gpu %.6g\n",
              what.c_str(), c.code_agreement, c.cpu_error, c.gpu_error,
              100.0 * (c.gpu_error - c.cpu_error) / c.cpu_error, co.sweep_loss, go.sweep_loss);
  if (!co.rtn_fallback) {
    EXPECT_NEAR(go.sweep_loss, co.sweep_loss, 0.02 * co.sweep_loss) << what;
  }
  if (cpu_out) *cpu_out = std::move(cq);
  if (gpu_out) *gpu_out = std::move(gq);
  return c;
}

}  // namespace

// The loader cuBLAS and cuSOLVER share (kernels/lazy_library.h), and the cuSOLVER check: host only,
// runs without a GPU. The soname carries the major version; a missing library resolves nothing
// and says which file it looked for.
TEST(GptqGpuHost, LazyLibraryLoadsBySonameAndSaysWhyNot) {
  cuda::LazyLibrary libm("libm", 6);
  EXPECT_NE(libm.resolve("cos"), nullptr);
  EXPECT_EQ(libm.resolve("ckpt_no_such_symbol"), nullptr);
  EXPECT_EQ(libm.load_error(), "");
  cuda::LazyLibrary missing("libckpt_no_such_library", 7);
  EXPECT_EQ(missing.resolve("anything"), nullptr);
  EXPECT_EQ(missing.load_error().rfind("cannot load libckpt_no_such_library.so.7: ", 0), 0u) << missing.load_error();
  try {
    CKPT_CUSOLVER(CUSOLVER_STATUS_INVALID_VALUE);
    FAIL() << "a failed cuSOLVER status did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuSOLVER error in CUSOLVER_STATUS_INVALID_VALUE: CUSOLVER_STATUS_INVALID_VALUE (3)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(CKPT_CUSOLVER(CUSOLVER_STATUS_SUCCESS));
  // Without a GPU the solver refuses with one checked error, never a crash.
  if (cuda::device_count() == 0) {
    EXPECT_THROW(cuda::DeviceGptq g(nullptr), Error);
    EXPECT_THROW(cuda::DeviceHessian h(8, nullptr), Error);
  }
}

// (a) The device Hessian (float32 GEMM accumulation) equals calib::Hessian (float64) within the
// worst-case bound of a float32 sum in any order (Higham, "Accuracy and Stability of Numerical
// Algorithms", §3.1 / §4.2): every entry of Σ x xᵀ over n tokens is off by at most γ_n·Σ|x_a x_b|
// with γ_n ≈ n·u, u = 2^-24, plus one rounding for each float32 product (exact for BF16 inputs)
// and one for the 2/n scale: |ΔH_ab| ≤ (n + 3)·u·(2/n)·Σ_t |x_ta x_tb|. BF16 inputs run on the
// tensor cores, whose float32 accumulation truncates instead of rounding to nearest (Fasi, Higham,
// Mikaitis, Pranesh, "Numerical behavior of NVIDIA tensor cores", PeerJ Computer Science 2021):
// 2u per addition there, so twice the bound. A wrong transpose, scale or a lost add() misses it by
// orders of magnitude; the dead column's row must be exactly 0.
TEST(GptqGpu, DeviceHessianEqualsCpuWithinFloat32Bound) {
  SKIP_WITHOUT_GPU();
  const uint64_t k = 320, dead = 77;
  const uint64_t parts[] = {100, 257, 700};
  const uint64_t tokens = 1057;
  const std::vector<float> x = correlated_activations(tokens, k, dead, 11);
  for (bool bf16 : {false, true}) {
    std::vector<float> xv = x;  // the values the GPU sees
    std::vector<uint16_t> xb(x.size());
    if (bf16)
      for (size_t i = 0; i < x.size(); ++i) {
        xb[i] = ops::f32_to_bf16(x[i]);
        xv[i] = ops::bf16_to_f32(xb[i]);
      }
    const cuda::DeviceBuffer xd = bf16 ? upload(xb) : upload(xv);
    cuda::DeviceHessian dh(k, nullptr);
    uint64_t t0 = 0;
    for (uint64_t p : parts) {
      dh.add(xd.data() + t0 * k * (bf16 ? 2 : 4), bf16 ? cuda::DeviceHessian::Input::kBF16 : cuda::DeviceHessian::Input::kF32, p);
      t0 += p;
    }
    ASSERT_EQ(dh.tokens(), tokens);
    const cuda::DeviceBuffer hd = dh.matrix();
    const std::vector<float> got = download_floats(hd.data(), k * k);
    const std::vector<double> want = cpu_hessian(xv, tokens, k);
    std::vector<double> abs_sum(k * k, 0.0);
    for (uint64_t t = 0; t < tokens; ++t)
      for (uint64_t a = 0; a < k; ++a) {
        const double xa = std::fabs(static_cast<double>(xv[t * k + a]));
        for (uint64_t b = 0; b < k; ++b) abs_sum[a * k + b] += xa * std::fabs(static_cast<double>(xv[t * k + b]));
      }
    const double u = std::ldexp(1.0, -24), scale = 2.0 / static_cast<double>(tokens);
    double worst = 0;
    uint64_t over = 0, asym = 0;
    for (uint64_t a = 0; a < k; ++a)
      for (uint64_t b = 0; b < k; ++b) {
        const double bound = (bf16 ? 2 : 1) * (static_cast<double>(tokens) + 3) * u * scale * abs_sum[a * k + b];
        const double err = std::fabs(static_cast<double>(got[a * k + b]) - want[a * k + b]);
        over += !(err <= bound);
        if (bound > 0) worst = std::max(worst, err / bound);
        asym += got[a * k + b] != got[b * k + a];
      }
    std::printf("DeviceHessian %s: k %llu, %llu tokens in 3 adds: worst |error| / bound %.4f\n", bf16 ? "bf16" : "f32",
                static_cast<unsigned long long>(k), static_cast<unsigned long long>(tokens), worst);
    EXPECT_EQ(over, 0u) << (bf16 ? "bf16" : "f32") << ": entries outside the float32 accumulation bound";
    EXPECT_EQ(asym, 0u) << "matrix() is not exactly symmetric";
    for (uint64_t b = 0; b < k; ++b) EXPECT_EQ(got[dead * k + b], 0.0f) << "dead input row, column " << b;
  }
  // No token seen: zeros, as calib::Hessian.
  cuda::DeviceHessian empty(8, nullptr);
  const cuda::DeviceBuffer z = empty.matrix();
  for (float v : download_floats(z.data(), 64)) EXPECT_EQ(v, 0.0f);
}

// (b) The sweep against the CPU. Exact: group parameters (chosen from the original weights by the
// shared ops/int4_math.h definition), the ladder outcome, the dead-input count. Statistical: the
// GPU runs in float32, the CPU in float64, so a weight that lands within float32 rounding of a
// code boundary can round the other way, and the differing error then feeds the row's later
// columns; >= 99.5 % of codes must agree, and the output error ½ Σ eᵀHe (what GPTQ minimises) be
// within 1 % of the CPU's — a sweep that is wrong (a wrong U, a missing trailing update, a wrong
// permutation) misses both by far, and is also above RTN's error.
TEST(GptqGpu, SweepMatchesCpuReference) {
  SKIP_WITHOUT_GPU();
  struct Shape {
    uint64_t n, k;
  };
  const Shape shapes[] = {{64, 256}, {256, 512}, {96, 1024}};
  uint32_t seed = 100;
  for (const Shape& sh : shapes) {
    const uint64_t n = sh.n, k = sh.k, dead = k / 3, tokens = 2 * k;
    const std::vector<float> x = correlated_activations(tokens, k, dead, seed++);
    const std::vector<double> h = cpu_hessian(x, tokens, k);
    const std::vector<float> hf(h.begin(), h.end());
    const std::vector<float> w = test::normal_weight(n, k, seed++);
    const cuda::DeviceBuffer w_dev = upload(w), h_dev = upload(hf);
    for (int64_t group : {int64_t{128}, int64_t{32}, int64_t{-1}})
      for (bool sym : {true, false})
        for (bool act : {true, false}) {
          char what[96];
          std::snprintf(what, sizeof what, "n %llu k %llu g %lld %s %s", static_cast<unsigned long long>(n),
                        static_cast<unsigned long long>(k), static_cast<long long>(group), sym ? "sym" : "asym",
                        act ? "act-order" : "in order");
          const ops::Int4Scheme s = scheme_of(group, sym);
          calib::Int4Weights gq;
          const Compared c = compare(s, w, n, k, h, w_dev, h_dev, {0.01, act, 128}, what, nullptr, &gq);
          EXPECT_GE(c.code_agreement, 0.995) << what;
          EXPECT_LE(std::fabs(c.gpu_error - c.cpu_error), 0.01 * c.cpu_error) << what;
          calib::Int4Weights rtn;
          ASSERT_FALSE(calib::rtn_int4(s, w.data(), n, k, &rtn));
          EXPECT_LT(c.gpu_error, calib::output_error(h, w.data(), rtn.dequantized, n, k)) << what << ": not below RTN";
          if (gq.dequantized.size() == n * k) {
            for (uint64_t r = 0; r < n; ++r) EXPECT_EQ(gq.dequantized[r * k + dead], 0.0) << what << " dead input";
          }
        }
  }
}

// Lazy-batch blocks narrower than 128 and not dividing k walk the same algorithm.
TEST(GptqGpu, OtherBlockWidthsMatchCpuReference) {
  SKIP_WITHOUT_GPU();
  const uint64_t n = 64, k = 256, tokens = 512;
  const std::vector<float> x = correlated_activations(tokens, k, 5, 7);
  const std::vector<double> h = cpu_hessian(x, tokens, k);
  const std::vector<float> hf(h.begin(), h.end()), w = test::normal_weight(n, k, 8);
  const cuda::DeviceBuffer w_dev = upload(w), h_dev = upload(hf);
  for (uint64_t block : {uint64_t{48}, uint64_t{1}}) {
    const std::string what = "block " + std::to_string(block);
    const Compared c = compare(scheme_of(32, true), w, n, k, h, w_dev, h_dev, {0.01, true, block}, what);
    EXPECT_GE(c.code_agreement, 0.995) << what;
    EXPECT_LE(std::fabs(c.gpu_error - c.cpu_error), 0.01 * c.cpu_error) << what;
  }
}

// (c) The damping ladder. H = Qᵀ diag(λ) Q (Q a random orthogonal matrix) with its smallest
// eigenvalue −0.015·mean(diag H): damp 0.01 leaves it at −0.005·mean (Cholesky fails, in float32
// as in float64: that is 1000x the float32 perturbation of H), 0.02 makes it +0.005·mean. Both climb
// to the same rung (the CPU's double ladder values, compared exactly). With −1.5·mean nothing
// below 1 factorises: both fall back to RTN, codes equal bit for bit.
TEST(GptqGpu, DampingLadderMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const uint64_t n = 32, k = 128;
  std::mt19937 rng(21);
  std::normal_distribution<double> nd;
  std::vector<double> q(k * k);  // rows orthonormal (modified Gram–Schmidt)
  for (double& v : q) v = nd(rng);
  for (uint64_t i = 0; i < k; ++i) {
    for (uint64_t j = 0; j < i; ++j) {
      double d = 0;
      for (uint64_t c = 0; c < k; ++c) d += q[i * k + c] * q[j * k + c];
      for (uint64_t c = 0; c < k; ++c) q[i * k + c] -= d * q[j * k + c];
    }
    double nrm = 0;
    for (uint64_t c = 0; c < k; ++c) nrm += q[i * k + c] * q[i * k + c];
    for (uint64_t c = 0; c < k; ++c) q[i * k + c] /= std::sqrt(nrm);
  }
  std::uniform_real_distribution<double> ud(0.5, 2.0);
  std::vector<double> ev(k);
  double rest = 0;
  for (uint64_t i = 1; i < k; ++i) rest += (ev[i] = ud(rng));
  const std::vector<float> w = test::normal_weight(n, k, 22);
  const cuda::DeviceBuffer w_dev = upload(w);
  for (double c : {0.015, 1.5}) {
    // ev0 = −c·mean(ev) with mean = (rest + ev0) / k.
    ev[0] = -c * rest / (static_cast<double>(k) + c);
    std::vector<double> h(k * k, 0.0);
    for (uint64_t a = 0; a < k; ++a)
      for (uint64_t b = 0; b < k; ++b) {
        double s = 0;
        for (uint64_t i = 0; i < k; ++i) s += q[i * k + a] * ev[i] * q[i * k + b];
        h[a * k + b] = s;
      }
    for (uint64_t a = 0; a < k; ++a)
      for (uint64_t b = 0; b < a; ++b) h[a * k + b] = h[b * k + a];  // exactly symmetric
    const std::vector<float> hf(h.begin(), h.end());
    const cuda::DeviceBuffer h_dev = upload(hf);
    const std::string what = "smallest eigenvalue -" + std::to_string(c) + " mean";
    calib::Int4Weights cq, gq;
    calib::GptqOutcome co;
    ASSERT_FALSE(calib::gptq_int4(scheme_of(32, true), w.data(), n, k, h, {}, &cq, &co));
    const Compared cmp = compare(scheme_of(32, true), w, n, k, h, w_dev, h_dev, {}, what, nullptr, &gq);
    if (c < 1) {
      EXPECT_FALSE(co.rtn_fallback);
      EXPECT_EQ(co.damp, 0.01 + 0.01) << "the CPU did not climb exactly one rung: the case is mis-built";
      EXPECT_GE(cmp.code_agreement, 0.995) << what;
    } else {
      EXPECT_TRUE(co.rtn_fallback) << "the CPU did not fall back: the case is mis-built";
      EXPECT_EQ(gq.codes, cq.codes) << what << ": RTN fallback codes differ";
      EXPECT_EQ(gq.dequantized, cq.dequantized) << what;
    }
  }
}

// (d) A NaN (or Inf) weight is refused with the CPU's issue; so is a group whose scale overflows
// F16, and when both occur the first in row-major group order is named, as on the CPU.
TEST(GptqGpu, BadWeightsRefusedAsTheCpu) {
  SKIP_WITHOUT_GPU();
  const uint64_t n = 16, k = 128;
  const std::vector<float> x = correlated_activations(256, k, 9, 31);
  const std::vector<double> h = cpu_hessian(x, 256, k);
  const std::vector<float> hf(h.begin(), h.end());
  const cuda::DeviceBuffer h_dev = upload(hf);
  struct Case {
    const char* what;
    uint64_t nan_row, nan_col;
    float nan_value;
    int64_t big_row;  // -1: none; else a 1e6 (scale above F16's range) at column 40 of that row
  };
  const Case cases[] = {{"NaN", 5, 17, std::numeric_limits<float>::quiet_NaN(), -1},
                        {"-Inf", 9, 100, -std::numeric_limits<float>::infinity(), -1},
                        {"overflow before NaN", 5, 17, std::numeric_limits<float>::quiet_NaN(), 3},
                        {"NaN before overflow", 2, 64, std::numeric_limits<float>::quiet_NaN(), 11}};
  for (const Case& cs : cases) {
    std::vector<float> w = test::normal_weight(n, k, 32);
    w[cs.nan_row * k + cs.nan_col] = cs.nan_value;
    if (cs.big_row >= 0) w[static_cast<uint64_t>(cs.big_row) * k + 40] = 1e6f;
    const cuda::DeviceBuffer w_dev = upload(w);
    calib::Int4Weights cq, gq;
    calib::GptqOutcome co, go;
    const ops::Int4Issue ci = calib::gptq_int4(scheme_of(32, true), w.data(), n, k, h, {}, &cq, &co);
    const ops::Int4Issue gi =
        cuda::gptq_int4_device(scheme_of(32, true), w_dev.as<float>(), n, k, h_dev.as<float>(), {}, &gq, &go, nullptr);
    ASSERT_TRUE(ci) << cs.what << ": the CPU accepted it";
    ASSERT_TRUE(gi) << cs.what << ": the GPU accepted it";
    EXPECT_EQ(gi.kind, ci.kind) << cs.what;
    EXPECT_EQ(gi.row, ci.row) << cs.what;
    EXPECT_EQ(gi.col, ci.col) << cs.what;
    EXPECT_TRUE(gi.value == ci.value || (std::isnan(gi.value) && std::isnan(ci.value))) << cs.what;
    EXPECT_TRUE(gq.codes.empty()) << cs.what << ": results written for a refused weight";
  }
}
