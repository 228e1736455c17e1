// The GPU load's ways of reading (kernels/device_loader.h): cuFile (gds; compatibility mode where
// the nvidia-fs driver is absent) and posix must put the same bytes on the GPU, equal to the
// file's digests computed on the CPU; auto must choose one and say which; the first layer's
// arrival must be timed within the load. Skips without a GPU, and the gds cases skip (naming why)
// where libcufile cannot be loaded.
#include <gtest/gtest.h>

#include "cuda_check.h"
#include "device_loader.h"
#include "gds_reader.h"
#include "gpu_digests.h"
#include "gpu_info.h"
#include "test_support.h"
#include "validate/checkpoint_bytes.h"
#include "validate/digests.h"
#include "validate_fixtures.h"

using namespace ckpt;
using namespace ckpt::cuda;

namespace {

struct Fixture {
  test::ScratchDir tmp;
  Checkpoint ck;
  LoadRequest request(IoMode io) const {
    LoadRequest r;
    r.io = io;
    r.paths = {ck.files[0].path};
    r.first_layer.emplace_back();
    for (const auto& e : validate::file_tensors(ck, 0))
      if (e.name.rfind("model.layers.0.", 0) == 0) r.first_layer.back().emplace_back(e.offset, e.offset + e.nbytes);
    return r;
  }
};

// A model of a few MiB, so that the 8 MiB chunks split it when the chunk is set to 1 MiB.
std::unique_ptr<Fixture> make_fixture() {
  auto f = std::make_unique<Fixture>();
  auto ts = test::llama_fixture(test::FixtureQuant::kNone);
  ts.push_back(test::random_tensor("z.big", DType::BF16, {3 << 20}, 9));
  test::write_fixture(f->tmp / "m", ts, test::llama_fixture_config(test::FixtureQuant::kNone));
  f->ck = open_checkpoint(f->tmp / "m");
  return f;
}

validate::FileDigests load_digests(const Fixture& f, IoMode io, LoadTiming* timing) {
  std::vector<LoadedFile> files = load_files_to_device(f.request(io), timing, {});
  double seconds = 0;
  auto got = gpu_file_digests(f.ck, files, &seconds);
  EXPECT_EQ(got.size(), 1u);
  return got.at(0);
}

void expect_same(const validate::FileDigests& a, const validate::FileDigests& b) {
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.header, b.header);
  EXPECT_EQ(a.tensors, b.tensors);
}

}  // namespace

TEST(GpuLoadIo, GdsAndPosixLoadTheSameBytes) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";
  ::setenv("CKPT_LOAD_CHUNK_MB", "1", 1);  // several chunks, several reader threads
  auto f = make_fixture();
  const validate::FileDigests cpu = validate::compute_file_digests(f->ck, validate::CheckpointBytes(f->ck), 0);
  ASSERT_FALSE(cpu.tensors.empty());

  LoadTiming posix;
  expect_same(load_digests(*f, IoMode::kPosix, &posix), cpu);
  EXPECT_EQ(posix.io, "posix");
  EXPECT_GT(posix.first_layer_bytes, 0u);
  EXPECT_GE(posix.first_layer_s, 0);
  EXPECT_LE(posix.first_layer_s, posix.wall_s);

  const cufile::Api& api = cufile::api();
  if (!api.loaded()) GTEST_SKIP() << "gds not tested: " << api.error;
  LoadTiming gds;
  expect_same(load_digests(*f, IoMode::kGds, &gds), cpu);
  // With the library present cuFile reads the bytes, unless it refuses the file: without the
  // nvidia-fs driver its compatibility mode still needs a file system it knows (the H100/H200 machines
  // here: "unable to get volume attributes", CU_FILE_HANDLE_NOT_REGISTERED). Then the load falls
  // back to posix and must say why.
  if (gds.io.rfind("gds", 0) != 0) {
    EXPECT_EQ(gds.io, "posix");
    EXPECT_NE(gds.io_note.find("gds unavailable, read with posix: "), std::string::npos) << gds.io_note;
    EXPECT_NE(gds.io_note.find("cuFile"), std::string::npos) << gds.io_note;
  }
  EXPECT_GE(gds.first_layer_s, 0);
  EXPECT_LE(gds.first_layer_s, gds.wall_s);
  std::printf("gds: %s (%s), library %s; %s\n", gds.io.c_str(), nvidia_fs_loaded() ? "nvidia-fs loaded" : "no nvidia-fs",
              api.library.c_str(), gds.io_note.c_str());

  LoadTiming automatic;
  expect_same(load_digests(*f, IoMode::kAuto, &automatic), cpu);
  EXPECT_NE(automatic.io_note.find("auto chose " + std::string(automatic.io.rfind("gds", 0) == 0 ? "gds" : "posix")),
            std::string::npos)
      << automatic.io_note;
  ::unsetenv("CKPT_LOAD_CHUNK_MB");
}
