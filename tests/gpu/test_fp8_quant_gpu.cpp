// The CUDA FP8 quantizer (kernels/fp8_quant.cu through the --device cuda engine) against the
// scalar reference, bit for bit: every 16-bit input, torch's vectors, ties, all three schemes with
// edge and zero blocks, chunks starting anywhere (the kernels' general path), and a whole
// checkpoint through the planner giving the CPU path's bytes. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "commands/quantize.h"
#include "fp8_quant_engine.h"
#include "gpu_info.h"
#include "ops/float_convert.h"
#include "ops/fp8.h"
#include "ops/fp8_quant.h"
#include "plan/executor.h"
#include "tensor_bytes.h"
#include "test_support.h"

using namespace ckpt;
using namespace ckpt::ops;

namespace {

#define SKIP_WITHOUT_GPU() \
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine: the CUDA FP8 quantizer is not tested here"

std::vector<uint8_t> encode(const std::vector<float>& v, DType dt) {
  std::vector<uint8_t> b(v.size() * dtype_bits(dt) / 8);
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::F32) {
      std::memcpy(&b[4 * i], &v[i], 4);
    } else {
      uint16_t h = dt == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      std::memcpy(&b[2 * i], &h, 2);
    }
  }
  return b;
}

// Quantizes a whole tensor on the GPU in chunks [e, e + k) and returns the codes.
std::vector<uint8_t> gpu_codes(const Fp8Grid& g, DType dt, const std::vector<uint8_t>& in, const std::vector<float>& scales,
                               const std::vector<std::pair<uint64_t, uint64_t>>& chunks, Fp8ErrorStats* stats) {
  auto engine = cuda_fp8_engine();
  const unsigned es = dtype_bits(dt) / 8;
  std::vector<uint8_t> out(g.numel(), 0xAA);
  for (auto [e, k] : chunks) engine->quantize(g, dt, in.data() + es * e, e, k, scales.data(), out.data() + e, stats);
  return out;
}

std::vector<std::pair<uint64_t, uint64_t>> chunks_of(uint64_t n, uint64_t step, uint64_t offset) {
  std::vector<std::pair<uint64_t, uint64_t>> c;
  uint64_t e = 0;
  if (offset && offset < n) c.push_back({0, offset}), e = offset;
  for (; e < n; e += step) c.push_back({e, std::min(step, n - e)});
  return c;
}

}  // namespace

TEST(Fp8QuantGpu, EverySixteenBitInputAndTorchVectors) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::BF16, DType::F16}) {
    std::vector<float> vals;
    for (uint32_t h = 0; h < 65536; ++h) {
      float f = dt == DType::BF16 ? bf16_to_f32(static_cast<uint16_t>(h)) : f16_to_f32(static_cast<uint16_t>(h));
      if (std::isfinite(f)) vals.push_back(f);
    }
    const auto in = encode(vals, dt);
    for (float s : {1.0f, 0.0078125f, 3.0e-3f, 1.7f, 1e-30f}) {
      const Fp8Grid g = Fp8Grid::per_tensor(1, vals.size());
      auto got = gpu_codes(g, dt, in, {s}, chunks_of(vals.size(), 1 << 20, 0), nullptr);
      for (size_t i = 0; i < vals.size(); ++i)
        ASSERT_EQ(got[i], fp8_quantize_value(vals[i], s)) << dtype_name(dt) << " x=" << vals[i] << " s=" << s;
    }
  }
  auto x = test::load_tensor_bytes(test::testdata("numerics/fp8.safetensors"), "x");
  auto want = test::load_tensor_bytes(test::testdata("numerics/fp8.safetensors"), "e4m3fn").bytes;
  const uint64_t n = want.size();
  auto got = gpu_codes(Fp8Grid::per_tensor(1, n), DType::F32, x.bytes, {1.0f}, chunks_of(n, 4096, 3), nullptr);
  EXPECT_EQ(got, want);
}

TEST(Fp8QuantGpu, EverySchemeEqualsTheReference) {
  SKIP_WITHOUT_GPU();
  auto engine = cuda_fp8_engine();
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  for (auto [rows, cols] : std::vector<std::pair<uint64_t, uint64_t>>{{1, 1}, {7, 13}, {128, 128}, {130, 300}, {300, 129}, {1000, 4096}}) {
    for (int scheme = 0; scheme < 4; ++scheme) {
      Fp8Grid g = scheme == 0 ? Fp8Grid::per_tensor(rows, cols)
                  : scheme == 1 ? Fp8Grid::per_channel(rows, cols)
                  : scheme == 2 ? Fp8Grid::blocks(rows, cols, 128, 128)
                                : Fp8Grid::blocks(rows, cols, 16, 24);
      for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
        std::vector<float> w(g.numel());
        for (auto& v : w) v = nd(rng);
        if (w.size() > 4) w[w.size() - 1] = 448.0f, w[w.size() / 2] = -1e4f, w[1] = 1.0625f;
        if (g.groups() > 1)  // an all-zero first block
          for (uint64_t r = 0; r < std::min(rows, g.block_rows); ++r)
            for (uint64_t c = 0; c < std::min(cols, g.block_cols); ++c) w[r * cols + c] = 0.0f;
        const auto in = encode(w, dt);
        std::vector<float> ref_amax;
        ASSERT_TRUE(fp8_amax_reference(g, dt, in.data(), ref_amax));
        // Aligned chunks (the fast kernels) and chunks starting at odd offsets (the general ones).
        for (auto chunks : {chunks_of(g.numel(), 1 << 20, 0), chunks_of(g.numel(), 40000, 5)}) {
          std::vector<float> amax(g.groups(), 0.0f);
          const unsigned es = dtype_bits(dt) / 8;
          for (auto [e, k] : chunks) engine->amax(g, dt, in.data() + es * e, e, k, amax.data());
          ASSERT_EQ(amax, ref_amax) << rows << "x" << cols << " scheme " << scheme << " " << dtype_name(dt);
          for (DType sdt : {DType::F32, dt}) {
            std::vector<float> scales;
            for (float a : ref_amax) scales.push_back(fp8_scale_for_amax(a, sdt));
            std::vector<uint8_t> want(g.numel());
            fp8_quantize_reference(g, dt, in.data(), scales, want.data());
            Fp8ErrorStats gs, cs;
            auto got = gpu_codes(g, dt, in, scales, chunks, &gs);
            ASSERT_EQ(got, want) << rows << "x" << cols << " scheme " << scheme << " " << dtype_name(dt);
            std::vector<uint8_t> cpu(g.numel());
            fp8_quantize_fast(g, dt, in.data(), 0, g.numel(), scales.data(), cpu.data(), &cs);
            // The report's error terms (the CPU's in the scaled domain, summed in float32 tiles;
            // the GPU's float32 per thread): equal within a tolerance that scales with the weights.
            double wmax = 0;
            for (float a : ref_amax) wmax = std::max(wmax, static_cast<double>(a));
            EXPECT_NEAR(gs.sum_sq_err, cs.sum_sq_err,
                        1e-5 * cs.sum_sq_err + 3e-7 * std::sqrt(cs.sum_sq_err * cs.sum_sq) + 1e-12 * cs.sum_sq);
            EXPECT_NEAR(gs.sum_sq, cs.sum_sq, 1e-5 * cs.sum_sq);
            EXPECT_NEAR(gs.max_abs_err, cs.max_abs_err, 2e-5 * cs.max_abs_err + 1e-7 * wmax);
          }
        }
      }
    }
  }
}

TEST(Fp8QuantGpu, NonFiniteWeightsAreDetected) {
  SKIP_WITHOUT_GPU();
  const Fp8Grid g = Fp8Grid::blocks(4, 4, 2, 2);
  for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
    std::vector<float> w(16, 0.5f);
    w[11] = std::numeric_limits<float>::quiet_NaN();
    auto in = encode(w, dt);
    std::vector<float> amax(g.groups(), 0.0f);
    cuda_fp8_engine()->amax(g, dt, in.data(), 0, 16, amax.data());
    EXPECT_TRUE(std::isinf(amax[3])) << dtype_name(dt);
    EXPECT_EQ(amax[0], 0.5f);
  }
}

TEST(Fp8QuantGpu, WholeCheckpointMatchesTheCpuBytes) {
  SKIP_WITHOUT_GPU();
  for (Fp8Scheme scheme : {Fp8Scheme::kTensor, Fp8Scheme::kBlock, Fp8Scheme::kChannel}) {
    test::ScratchDir d;
    std::vector<std::string> outs;
    for (bool gpu : {false, true}) {
      QuantizeOptions o;
      o.scheme = scheme;
      if (gpu) o.engine = cuda_fp8_engine();
      Checkpoint ck = open_checkpoint(test::testdata("qwen3-moe"));
      QuantizePlan qp = plan_quantize(ck, o);
      ExecOptions eo;
      eo.threads = 4;
      outs.push_back(d / (gpu ? "gpu" : "cpu"));
      execute(qp.plan, outs.back(), eo);
    }
    EXPECT_EQ(test::read_file_bytes(outs[0] + "/model.safetensors"), test::read_file_bytes(outs[1] + "/model.safetensors"))
        << fp8_scheme_name(scheme);
  }
}
