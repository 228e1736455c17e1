// The GPU XXH3-64 against the xxHash library (core/hash.h's hash_bytes), bit for bit: every length 0..240 (the short paths),
// lengths around the 1 KiB block and the 64-byte stripe edges, random lengths up to 1 MiB + 1 and
// exactly 1 MiB, at every misalignment; then whole-file digests on the GPU against the CPU's.
#include <gtest/gtest.h>

#include <random>

#include "core/hash.h"
#include "cuda_check.h"
#include "device_loader.h"
#include "gpu_digests.h"
#include "gpu_info.h"
#include "hash_kernels.h"
#include "test_support.h"
#include "validate/validate.h"
#include "validate_fixtures.h"

using namespace ckpt;
using namespace ckpt::cuda;

namespace {

bool have_gpu() { return device_count() > 0; }

}  // namespace

TEST(GpuXxh3, MatchesTheLibraryOnEveryPath) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine";
  std::mt19937_64 rng(7);
  const size_t buffer = (3u << 20) + 4096;
  std::vector<uint8_t> host(buffer);
  for (auto& b : host) b = static_cast<uint8_t>(rng());
  std::vector<std::pair<uint64_t, uint64_t>> cases;  // (offset, length)
  for (uint64_t len = 0; len <= 240; ++len) cases.push_back({len % 8, len});
  for (uint64_t len : {241, 255, 256, 1023, 1024, 1025, 1087, 1088, 1089, 2047, 2048, 2049, 4096, 65536, 1048575,
                       1048576, 1048577})
    for (uint64_t off : {0, 1, 3, 7, 8, 13}) cases.push_back({off, len});
  for (int i = 0; i < 400; ++i) cases.push_back({rng() % 64, 241 + rng() % (1u << 20)});
  for (int i = 0; i < 50; ++i) cases.push_back({rng() % 16, rng() % 241});

  DeviceBuffer data(buffer), out(cases.size() * 8);
  CKPT_CUDA(cudaMemcpy(data.data(), host.data(), buffer, cudaMemcpyHostToDevice));
  std::vector<HashSegment> segs;
  for (size_t i = 0; i < cases.size(); ++i)
    segs.push_back({data.data() + cases[i].first, cases[i].second, out.as<uint64_t>() + i});
  DeviceBuffer d_segs(segs.size() * sizeof(HashSegment));
  CKPT_CUDA(cudaMemcpy(d_segs.data(), segs.data(), segs.size() * sizeof(HashSegment), cudaMemcpyHostToDevice));
  prepare_gpu_hashing();
  CKPT_CUDA(xxh3_hash_segments(d_segs.as<HashSegment>(), segs.size(), 0));
  std::vector<uint64_t> got(cases.size());
  CKPT_CUDA(cudaMemcpy(got.data(), out.data(), got.size() * 8, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < cases.size(); ++i)
    ASSERT_EQ(got[i], hash_bytes(host.data() + cases[i].first, cases[i].second))  // the xxHash library
        << "offset " << cases[i].first << " length " << cases[i].second;
}

TEST(GpuXxh3, FileDigestsEqualTheCpuAndTheManifest) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine";
  test::ScratchDir tmp;
  // Odd-sized FP8 tensors put later tensors at odd offsets; a 3 MiB tensor spans several blocks.
  auto ts = test::llama_fixture(test::FixtureQuant::kFp8Block);
  ts.push_back(test::random_tensor("odd.a", DType::F8_E4M3, {7, 13}, 3));
  ts.push_back(test::random_tensor("odd.b", DType::F8_E4M3, {3 << 20}, 4));
  ts.push_back(test::random_tensor("odd.empty", DType::F8_E4M3, {0}, 5));
  test::write_fixture(tmp / "m", ts, test::llama_fixture_config(test::FixtureQuant::kFp8Block));
  Checkpoint ck = open_checkpoint(tmp / "m");
  LoadTiming timing;
  LoadRequest request;
  request.paths = {ck.files[0].path};
  std::vector<LoadedFile> files = load_files_to_device(request, &timing, {});
  EXPECT_EQ(timing.bytes, ck.files[0].size);
  double seconds = 0;
  auto gpu = gpu_file_digests(ck, files, &seconds);
  auto cpu = validate::compute_file_digests(ck, validate::CheckpointBytes(ck), 0);
  ASSERT_EQ(gpu.size(), 1u);
  EXPECT_EQ(gpu[0].header, cpu.header);
  EXPECT_EQ(gpu[0].tensors, cpu.tensors);
  validate::Report report;
  validate::Prepared p = validate::run_cpu_phases(tmp / "m", report, {false, false});
  ASSERT_TRUE(report.ok()) << report.table();
  std::vector<std::string> problems;
  validate::compare_digests(ck.files[0].path, *p.expected.find(ck.files[0].path), gpu[0], "gpu",
                            [&](auto&, auto&, auto& t, auto& m) { problems.push_back(t + ": " + m); });
  EXPECT_TRUE(problems.empty()) << problems[0];
}
