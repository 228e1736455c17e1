// The CUDA FP8 quantizer (kernels/fp8_quant.cu through the --device cuda engine) against the
// scalar reference, bit for bit: every 16-bit input at ~220 scales chosen to break the kernel's
// division by reciprocal (powers of two, whose quotients hit E4M3 ties exactly, the edges of its
// range, denormal and huge scales, reciprocals that round worst), float32 inputs around every E4M3
// rounding boundary, torch's vectors, all three schemes with edge and zero blocks, chunks starting
// anywhere (the kernels' general path), non-finite weights in every mode, and a whole checkpoint
// through the planner giving the CPU path's bytes; the engine's range calls (what a weight's
// producers ask, through the staging pipeline: many pieces in flight, ranges starting and ending
// inside pieces) against the CPU engine's. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "commands/quantize.h"
#include "fp8_quant_engine.h"
#include "gpu_info.h"
#include "ops/float_convert.h"
#include "ops/fp8.h"
#include "ops/fp8_quant.h"
#include "ops/fp8_producers.h"
#include "quantize_run.h"
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

// Every finite value of a 16-bit type, widened to float32.
std::vector<float> finite_values(DType dt) {
  std::vector<float> vals;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = dt == DType::BF16 ? bf16_to_f32(static_cast<uint16_t>(h)) : f16_to_f32(static_cast<uint16_t>(h));
    if (std::isfinite(f)) vals.push_back(f);
  }
  return vals;
}

// Scales that stress the kernel's division (by reciprocal with two corrections for scales in
// [2^-64, 2^65), __fdiv_rn outside): every power of two from 2^-72 to 2^72 (exact quotients, so
// E4M3 ties are hit exactly) and a few far beyond, both edges of the reciprocal range, the smallest
// scale of each scale dtype (denormal in float32 and bf16), huge scales, all-ones significands,
// scales whose float32 reciprocal rounds worst (RN(1/s) nearly half an ulp from 1/s), and random
// ones over the whole range.
std::vector<float> hard_scales() {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> s = {1.0f, 0.0078125f, 3.0e-3f, 1.7f, 1.0f / 448, 1e-30f, 1e-40f, 3e38f,
                          std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                          bf16_to_f32(0x0001), f16_to_f32(0x0001), std::nextafter(1.0f, inf)};
  for (int e = -72; e <= 72; ++e) s.push_back(std::ldexp(1.0f, e));
  for (int e : {-149, -140, -126, -100, 100, 127}) s.push_back(std::ldexp(1.0f, e));
  for (int e : {-64, 65}) s.push_back(std::nextafter(std::ldexp(1.0f, e), 0.0f));
  for (int e : {-11, 0, 3, 64}) s.push_back(std::ldexp(std::nextafter(2.0f, 0.0f), e));
  // 1/b for b in (1, 2) lies in (1/2, 1), where an ulp is 2^-24.
  int worst = 0;
  for (uint32_t m = 1; m < (1u << 23) && worst < 16; ++m) {
    const float b = std::bit_cast<float>(0x3F800000u | m);
    if (std::fabs(static_cast<double>(1.0f / b) - 1.0 / b) > 0.49999 * std::ldexp(1.0, -24))
      s.push_back(std::ldexp(b, (worst++ % 5) * 9 - 20));
  }
  std::mt19937 rng(11);
  for (int i = 0; i < 32; ++i)
    s.push_back(std::ldexp(std::bit_cast<float>(static_cast<uint32_t>(0x3F800000u | (rng() & 0x7FFFFF))), static_cast<int>(rng() % 141) - 70));
  return s;
}

// Counts the codes that differ from want (printing the first few with their inputs).
size_t mismatches(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, const Fp8Grid& g,
                  const std::vector<float>& w, const std::vector<float>& scales, const char* what) {
  size_t bad = 0;
  for (uint64_t i = 0; i < want.size(); ++i) {
    if (got[i] == want[i]) continue;
    if (bad++ < 5)
      ADD_FAILURE() << what << ": x=" << w[i] << " (0x" << std::hex << std::bit_cast<uint32_t>(w[i]) << ") s=" << std::dec
                    << scales[g.group_of(i)] << " (0x" << std::hex << std::bit_cast<uint32_t>(scales[g.group_of(i)])
                    << ") code 0x" << int{got[i]} << ", want 0x" << int{want[i]} << std::dec;
  }
  return bad;
}

// Quantizes w (dt) on the GPU and on the CPU reference and compares the codes.
void expect_reference_codes(const Fp8Grid& g, DType dt, const std::vector<float>& w, const std::vector<float>& scales,
                            const std::vector<std::pair<uint64_t, uint64_t>>& chunks, const char* what) {
  const auto in = encode(w, dt);
  std::vector<uint8_t> want(g.numel());
  fp8_quantize_reference(g, dt, in.data(), scales, want.data());
  EXPECT_EQ(mismatches(gpu_codes(g, dt, in, scales, chunks, nullptr), want, g, w, scales, what), 0u)
      << what << " " << dtype_name(dt);
}

}  // namespace

TEST(Fp8QuantGpu, EverySixteenBitInputAtHardScalesAndTorchVectors) {
  SKIP_WITHOUT_GPU();
  const std::vector<float> scales = hard_scales();
  for (DType dt : {DType::BF16, DType::F16}) {
    const std::vector<float> vals = finite_values(dt);  // 65280 or 63488: whole runs of 16
    // One row per scale (per-channel: the run loop, a scale per run).
    {
      const Fp8Grid g = Fp8Grid::per_channel(scales.size(), vals.size());
      std::vector<float> w;
      for (size_t r = 0; r < scales.size(); ++r) w.insert(w.end(), vals.begin(), vals.end());
      expect_reference_codes(g, dt, w, scales, chunks_of(g.numel(), 1 << 20, 0), "per-channel");
    }
    // Blocks of 8 elements, the scales shuffled over them: a run's two vectors divide by different
    // scales, one often inside the reciprocal range and the other outside.
    {
      const Fp8Grid g = Fp8Grid::blocks(4, vals.size(), 1, 8);
      std::vector<float> w, s(g.groups());
      for (int r = 0; r < 4; ++r) w.insert(w.end(), vals.begin(), vals.end());
      for (uint64_t k = 0; k < s.size(); ++k) s[k] = scales[(k * 7) % scales.size()];
      expect_reference_codes(g, dt, w, s, chunks_of(g.numel(), 1 << 20, 0), "8-element blocks");
    }
    // Per-tensor (one reciprocal per thread) in odd-sized chunks (runs, then a tail of single
    // elements), every 6th scale.
    for (size_t k = 0; k < scales.size(); k += 6)
      expect_reference_codes(Fp8Grid::per_tensor(1, vals.size()), dt, vals, {scales[k]},
                             chunks_of(vals.size(), 40003, 0), "per-tensor");
  }
  auto x = test::load_tensor_bytes(test::testdata("numerics/fp8.safetensors"), "x");
  auto want = test::load_tensor_bytes(test::testdata("numerics/fp8.safetensors"), "e4m3fn").bytes;
  const uint64_t n = want.size();
  auto got = gpu_codes(Fp8Grid::per_tensor(1, n), DType::F32, x.bytes, {1.0f}, chunks_of(n, 4096, 3), nullptr);
  EXPECT_EQ(got, want);
}

// Float32 inputs placed on and around every E4M3 rounding boundary (the midpoints between codes,
// 2^-10 between 0 and the smallest subnormal, 464 between 448 and the NaN code) and on every code,
// at each hard scale: x = RN(b·s) and the 4 floats either side, both signs. Then random finite
// float32 bit patterns (denormals, quotients that overflow) at random hard scales.
TEST(Fp8QuantGpu, Float32InputsAroundEveryRoundingBoundary) {
  SKIP_WITHOUT_GPU();
  const std::vector<float> scales = hard_scales();
  std::vector<double> points;
  for (int c = 0; c < 0x7E; ++c) {
    const double lo = e4m3fn_to_f32(static_cast<uint8_t>(c)), hi = e4m3fn_to_f32(static_cast<uint8_t>(c + 1));
    points.push_back(lo), points.push_back((lo + hi) / 2);
  }
  points.push_back(448), points.push_back(464);
  const uint64_t cols = (points.size() * 2 * 9 + 15) / 16 * 16;
  std::vector<float> w;
  for (float s : scales) {
    std::vector<float> row;
    for (double p : points)
      for (double sign : {1.0, -1.0}) {
        float x = static_cast<float>(sign * p * s);
        if (!std::isfinite(x)) x = std::copysign(std::numeric_limits<float>::max(), x);
        for (int k = 0; k < 4; ++k) x = std::nextafter(x, 0.0f);
        for (int k = 0; k < 9; ++k, x = std::nextafter(x, std::copysign(std::numeric_limits<float>::infinity(), x)))
          row.push_back(x);
      }
    row.resize(cols, 0.0f);
    w.insert(w.end(), row.begin(), row.end());
  }
  expect_reference_codes(Fp8Grid::per_channel(scales.size(), cols), DType::F32, w, scales,
                         chunks_of(w.size(), 1 << 20, 0), "boundaries");

  std::mt19937 rng(3);
  const Fp8Grid g = Fp8Grid::per_channel(256, 4096);
  std::vector<float> r(g.numel()), rs(g.groups());
  for (auto& x : r) do x = std::bit_cast<float>(static_cast<uint32_t>(rng())); while (!std::isfinite(x));
  for (auto& s : rs) s = scales[rng() % scales.size()];
  expect_reference_codes(g, DType::F32, r, rs, chunks_of(g.numel(), 1 << 20, 0), "random f32");
}

TEST(Fp8QuantGpu, EverySchemeEqualsTheReference) {
  SKIP_WITHOUT_GPU();
  auto engine = cuda_fp8_engine();
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  // Rows of 136 and 1032 elements (whole vectors, not whole runs of 16), of 256 (a warp's span
  // covering two rows) and of 16 (8-wide blocks: one block column continuing down the rows)
  // exercise the vector kernels' lookups per vector and the amax merging of adjacent lanes.
  for (auto [rows, cols] : std::vector<std::pair<uint64_t, uint64_t>>{{1, 1},     {7, 13},   {128, 128},
                                                                      {130, 300}, {300, 129}, {64, 136},
                                                                      {33, 1032}, {256, 256}, {40, 16},
                                                                      {1000, 4096}}) {
    for (int scheme = 0; scheme < 5; ++scheme) {
      Fp8Grid g = scheme == 0 ? Fp8Grid::per_tensor(rows, cols)
                  : scheme == 1 ? Fp8Grid::per_channel(rows, cols)
                  : scheme == 2 ? Fp8Grid::blocks(rows, cols, 128, 128)
                  : scheme == 3 ? Fp8Grid::blocks(rows, cols, 16, 24)
                                : Fp8Grid::blocks(rows, cols, 16, 8);
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
        // Aligned chunks (the fast kernels), chunks starting 8 elements off a run (a vector apart) and
        // at odd offsets (the general kernels).
        for (auto chunks : {chunks_of(g.numel(), 1 << 20, 0), chunks_of(g.numel(), 40000, 8), chunks_of(g.numel(), 40000, 5)}) {
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

// A NaN or ±Inf weight makes its block's amax +Inf in every kernel: general (2x2 blocks), aligned
// (16x32 blocks: runs) and per-tensor (runs and a tail).
TEST(Fp8QuantGpu, NonFiniteWeightsAreDetected) {
  SKIP_WITHOUT_GPU();
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (Fp8Grid g : {Fp8Grid::blocks(4, 4, 2, 2), Fp8Grid::blocks(32, 64, 16, 32), Fp8Grid::per_tensor(33, 65)}) {
    for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
      // In a run, and the last element (per-tensor: the one element after the runs).
      for (auto [at, bad] : {std::pair{g.numel() / 2, nan}, std::pair{g.numel() - 1, -inf}}) {
        std::vector<float> w(g.numel(), 0.5f);
        w[at] = bad;
        auto in = encode(w, dt);
        std::vector<float> amax(g.groups(), 0.0f);
        cuda_fp8_engine()->amax(g, dt, in.data(), 0, g.numel(), amax.data());
        for (uint64_t k = 0; k < g.groups(); ++k) {
          if (k == g.group_of(at)) EXPECT_TRUE(std::isinf(amax[k]) && amax[k] > 0) << dtype_name(dt) << " " << amax[k];
          else EXPECT_EQ(amax[k], 0.5f) << dtype_name(dt);
        }
      }
    }
  }
}

TEST(Fp8QuantGpu, WholeCheckpointMatchesTheCpuBytes) {
  SKIP_WITHOUT_GPU();
  for (quant::Granularity scheme : {quant::Granularity::kTensor, quant::Granularity::kBlock, quant::Granularity::kChannel}) {
    test::ScratchDir d;
    std::vector<std::string> outs;
    for (bool gpu : {false, true}) {
      QuantizeOptions o;
      o.granularity = scheme;
      if (gpu) o.engine = cuda_fp8_engine();
      outs.push_back(d / (gpu ? "gpu" : "cpu"));
      test::quantize_into(test::testdata("qwen3-moe"), o, outs.back());
    }
    EXPECT_EQ(test::read_file_bytes(outs[0] + "/model.safetensors"), test::read_file_bytes(outs[1] + "/model.safetensors"))
        << quant::granularity_name(scheme);
  }
}

// amax_range and quantize_range, the calls Fp8Quantization makes: pieces cut at multiples of the
// step, more of them than the pipeline has slots, ranges starting and ending mid-piece, every
// scheme; the GPU engine gives the CPU engine's amax, codes and (within float tolerance) errors.
TEST(Fp8QuantGpu, RangesThroughThePipelineEqualTheCpuEngine) {
  SKIP_WITHOUT_GPU();
  const uint64_t rows = 1000, cols = 1032;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> w(rows * cols);
  for (auto& v : w) v = nd(rng);
  w[12345] = 300.0f;
  for (DType dt : {DType::BF16, DType::F32}) {
    test::ScratchDir d;
    const auto bytes = encode(w, dt);
    const std::string path = d / "model.safetensors";
    test::write_raw_safetensors(path,
                                std::string("{\"w\":{\"dtype\":\"") + std::string(dtype_name(dt)) + "\",\"shape\":[" +
                                    std::to_string(rows) + "," + std::to_string(cols) + "],\"data_offsets\":[0," +
                                    std::to_string(bytes.size()) + "]}}",
                                bytes);
    Checkpoint ck = open_checkpoint(path);
    SourceReader src({path});
    const SourceElements elements(src, ck.tensors[0].view);
    for (Fp8Grid g : {Fp8Grid::per_tensor(rows, cols), Fp8Grid::per_channel(rows, cols), Fp8Grid::blocks(rows, cols, 128, 128)}) {
      std::vector<float> cpu_amax(g.groups(), 0.0f), gpu_amax(g.groups(), 0.0f);
      cpu_fp8_engine()->amax_range(g, dt, elements, 0, g.numel(), 100000, cpu_amax.data());
      cuda_fp8_engine()->amax_range(g, dt, elements, 0, g.numel(), 100000, gpu_amax.data());
      ASSERT_EQ(gpu_amax, cpu_amax) << dtype_name(dt);
      std::vector<float> scales;
      for (float a : cpu_amax) scales.push_back(fp8_scale_for_amax(a, DType::F32));
      for (auto [first, count] : {std::pair<uint64_t, uint64_t>{0, g.numel()}, {70001, 500000}, {5, 65536 * 3 + 17}}) {
        const uint64_t step = 65536, pieces = piece_count(first, count, step);
        std::vector<uint8_t> cpu(count, 0xAA), gpu(count, 0x55);
        std::vector<Fp8ErrorStats> cs(pieces), gs(pieces);
        cpu_fp8_engine()->quantize_range(g, dt, elements, first, count, step, scales.data(), cpu.data(), cs.data());
        cuda_fp8_engine()->quantize_range(g, dt, elements, first, count, step, scales.data(), gpu.data(), gs.data());
        ASSERT_EQ(gpu, cpu) << dtype_name(dt) << " [" << first << ", +" << count << ")";
        for (uint64_t i = 0; i < pieces; ++i) {
          EXPECT_NEAR(gs[i].sum_sq, cs[i].sum_sq, 1e-4 * cs[i].sum_sq) << i;
          EXPECT_NEAR(gs[i].sum_sq_err, cs[i].sum_sq_err,
                      1e-4 * cs[i].sum_sq_err + 3e-7 * std::sqrt(cs[i].sum_sq_err * cs[i].sum_sq) + 1e-12 * cs[i].sum_sq)
              << i;
        }
      }
    }
  }
}
