// The GPU phases of ckpt validate from a packed checkpoint (ckpt pack): the loader decodes in its
// reader threads into the staging buffers and the bytes that arrive on the GPU are the unpacked
// file's, at any chunk size (chunks cut at group boundaries); the phases pass as they do on the
// unpacked copy, with the decode rate in the load phase; the manifest inside the container is the
// reference the GPU digests are compared with; a corrupted frame fails the load naming the file,
// the tensor and the frame.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "commands/pack.h"
#include "cuda_check.h"
#include "device_loader.h"
#include "formats/packed_source.h"
#include "gpu_info.h"
#include "gpu_validate.h"
#include "test_support.h"
#include "validate/validate.h"
#include "validate_fixtures.h"

using namespace ckpt;
using namespace ckpt::test;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<validate::Report> run_all(const std::string& dir) {
  auto report = std::make_unique<validate::Report>();
  validate::Prepared prepared = validate::run_cpu_phases(dir, *report, {false, false});
  if (!report->ok()) return report;
  if (prepared.expected.files.empty()) validate::expect_file_digests(prepared, *report);
  cuda::GpuValidateOptions o;
  o.batch_sizes = {1, 4};
  cuda::run_gpu_phases(prepared, *report, o);
  return report;
}

std::optional<validate::Phase> phase(const validate::Report& r, const std::string& name) {
  for (const auto& p : r.phases())
    if (p.name == name) return p;
  return std::nullopt;
}

std::string packed_copy(const std::string& src, const std::string& dst) {
  PackOptions o;
  o.sync = false;
  pack_checkpoint(src, dst, o);
  return dst;
}

// Flips one bit in the middle of the first frame of `tensor`'s first group.
void flip_frame(const std::string& container, const std::string& tensor) {
  uint64_t at = 0;
  {
    auto c = PackedContainer::open(container);
    const PackIndex& idx = c->index();
    for (const auto& m : idx.members)
      for (const auto& r : m.regions)
        if (r.tensor == tensor) {
          const PackFrame& f = idx.frames[idx.groups[r.first_group].first_frame];
          at = f.offset + f.size / 2;
        }
  }
  ASSERT_NE(at, 0u) << tensor;
  std::vector<uint8_t> b = read_file_bytes(container);
  b[at] ^= 0x10;
  fs::remove(container);
  write_file_bytes(container, b);
}

std::vector<uint8_t> device_bytes(const cuda::DeviceBuffer& d) {
  std::vector<uint8_t> h(d.size());
  CKPT_CUDA(cudaMemcpy(h.data(), d.data(), d.size(), cudaMemcpyDeviceToHost));
  return h;
}

}  // namespace

TEST(GpuValidatePacked, LoaderDeliversTheUnpackedBytesAtAnyChunkSize) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  ScratchDir tmp;
  // Tensors that span several 1 MiB groups and sit at odd offsets, so chunks and groups disagree.
  auto ts = llama_fixture(FixtureQuant::kFp8Block);
  ts.push_back(random_tensor("odd.a", DType::F8_E4M3, {7, 13}, 3));
  ts.push_back(random_tensor("odd.b", DType::BF16, {3 << 20}, 4));
  write_fixture(tmp / "m", ts, llama_fixture_config(FixtureQuant::kFp8Block));
  packed_copy(tmp / "m", tmp / "p");
  const Checkpoint ck = open_checkpoint(tmp / "p");
  ASSERT_TRUE(ck.packed);
  const std::vector<uint8_t> want = read_file_bytes(tmp / "m/model.safetensors");
  cuda::LoadRequest request;
  request.paths = {ck.files[0].path};
  for (const char* chunk_mb : {"1", "3", "8"}) {
    setenv("CKPT_LOAD_CHUNK_MB", chunk_mb, 1);
    cuda::LoadTiming timing;
    std::vector<cuda::LoadedFile> files = cuda::load_files_to_device(request, &timing, {});
    EXPECT_TRUE(timing.decoded);
    EXPECT_EQ(timing.bytes, want.size());
    EXPECT_GT(timing.read_thread_s, 0);
    EXPECT_EQ(device_bytes(files[0].bytes), want) << "chunks of " << chunk_mb << " MiB";
  }
  unsetenv("CKPT_LOAD_CHUNK_MB");
}

TEST(GpuValidatePacked, PhasesPassAsOnTheUnpackedCopy) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  for (auto q : {FixtureQuant::kNone, FixtureQuant::kFp8Tensor}) {
    ScratchDir tmp;
    write_fixture(tmp / "m", llama_fixture(q), llama_fixture_config(q));
    packed_copy(tmp / "m", tmp / "p");
    auto plain = run_all(tmp / "m");
    auto packed = run_all(tmp / "p");
    ASSERT_TRUE(plain->ok()) << plain->table();
    ASSERT_TRUE(packed->ok()) << packed->table();
    std::cout << packed->table();
    const auto load = phase(*packed, "load");
    ASSERT_TRUE(load);
    EXPECT_EQ(load->details["packed"], true);
    EXPECT_GT(load->details["decode_gbps"].get<double>(), 0);
    EXPECT_GT(load->details["decode_gbps_per_thread"].get<double>(), 0);
    EXPECT_NE(load->summary.find("decode busy"), std::string::npos) << load->summary;
    EXPECT_EQ(phase(*plain, "load")->details["packed"], false);
    EXPECT_EQ(load->details["bytes"], phase(*plain, "load")->details["bytes"]);
    // The manifest inside the container is what the GPU digests are checked against.
    EXPECT_EQ(phase(*packed, "integrity (gpu)")->details["reference"], "manifest");
    EXPECT_EQ(phase(*packed, "allocate")->details["formats"], phase(*plain, "allocate")->details["formats"]);
    // The runtime's weights come from the load's device copy, not from a second decode.
    EXPECT_GT(phase(*packed, "allocate")->details["reused_bytes"].get<uint64_t>(), 0u);
    EXPECT_EQ(phase(*packed, "allocate")->details["reused_bytes"], phase(*plain, "allocate")->details["reused_bytes"]);
    EXPECT_EQ(phase(*packed, "graphs")->details["graphs"].size(), phase(*plain, "graphs")->details["graphs"].size());
  }
}

TEST(GpuValidatePacked, TensorParallelRootPacked) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  ScratchDir tmp;
  write_tp_fixture(tmp / "tp", FixtureQuant::kFp8Tensor, 2);
  packed_copy(tmp / "tp", tmp / "p");
  ASSERT_TRUE(fs::is_regular_file(tmp / "p/rank-1/checkpoint.ckptpack"));
  auto r = run_all(tmp / "p");
  ASSERT_TRUE(r->ok()) << r->table();
  size_t loads = 0, graphs = 0;
  for (const auto& p : r->phases()) loads += p.name == "load", graphs += p.name == "graphs";
  EXPECT_EQ(loads, 2u) << r->table();   // each rank loaded and checked
  EXPECT_EQ(graphs, 1u) << r->table();  // then the decode step of the one model they make
}

TEST(GpuValidatePacked, ChangedBytesAndCorruptedFramesAreNamed) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  // Bytes changed before packing: the container is consistent, the manifest inside it is not.
  ScratchDir tmp;
  write_fixture(tmp / "m", llama_fixture(FixtureQuant::kFp8Tensor), llama_fixture_config(FixtureQuant::kFp8Tensor));
  flip_tensor_byte(tmp / "m/model.safetensors", "model.layers.0.mlp.down_proj.weight", 4321);
  packed_copy(tmp / "m", tmp / "p");
  auto r = run_all(tmp / "p");
  bool named = false;
  for (const auto& f : r->failures())
    named |= f.check == "checksum" && f.tensor == "model.layers.0.mlp.down_proj.weight" &&
             f.message.find("computed on the gpu") != std::string::npos;
  EXPECT_TRUE(named) << r->table();
  // A corrupted frame: the load fails naming the file, the tensor and the frame.
  ScratchDir tmp2;
  write_fixture(tmp2 / "m", llama_fixture(FixtureQuant::kNone), llama_fixture_config(FixtureQuant::kNone));
  packed_copy(tmp2 / "m", tmp2 / "p");
  flip_frame(tmp2 / "p/checkpoint.ckptpack", "model.layers.1.self_attn.o_proj.weight");
  auto r2 = run_all(tmp2 / "p");
  ASSERT_FALSE(r2->ok());
  // failures() returns a copy: keep it, a reference into the temporary would dangle.
  const std::vector<validate::Failure> failures = r2->failures();
  ASSERT_EQ(failures.size(), 1u) << r2->table();
  const auto& f = failures[0];
  EXPECT_EQ(f.check, "load") << r2->table();
  EXPECT_EQ(f.file, tmp2 / "p/checkpoint.ckptpack/model.safetensors");
  EXPECT_EQ(f.tensor, "model.layers.1.self_attn.o_proj.weight");
  EXPECT_NE(f.message.find("frame 0"), std::string::npos) << f.message;
}
