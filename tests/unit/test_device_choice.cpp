// `ckpt quantize --device auto` (quant/device_choice.h): the CPU without a usable GPU or for the
// calibrated methods; with a GPU, cuda exactly when its estimated time (start-up + copies) beats
// the CPU's estimated math time on the worker threads — large inputs on few threads — and the
// reason line says which and why; the GPU is looked for only when it would win.
#include <gtest/gtest.h>

#include <functional>

#include "quant/device_choice.h"

namespace ckpt::quant {
namespace {

constexpr uint64_t kGB = 1000000000ull;

bool yes() { return true; }
bool no() { return false; }

TEST(DeviceChoice, NoGpuMeansCpuWhateverTheInput) {
  for (Method m : {Method::kFp8, Method::kInt4})
    for (uint64_t bytes : {uint64_t{0}, 100 * kGB})
      for (unsigned threads : {1u, 64u})
        for (auto probe : {std::function<bool()>(no), std::function<bool()>()}) {
          const DeviceChoice c = choose_device({.method = m, .bytes = bytes, .threads = threads, .gpu_usable = probe});
          EXPECT_FALSE(c.cuda) << c.reason;
          EXPECT_EQ(c.reason.rfind("cpu: ", 0), 0u) << c.reason;
        }
  // Where the estimate favours the GPU, the reason says there is none.
  const DeviceChoice c = choose_device({.method = Method::kInt4, .bytes = 100 * kGB, .threads = 1, .gpu_usable = no});
  EXPECT_EQ(c.reason.rfind("cpu: no usable CUDA GPU (100.00 GB of weights", 0), 0u) << c.reason;
}

// The GPU is looked for only when the estimate favours it (looking starts the CUDA driver).
TEST(DeviceChoice, TheGpuIsAskedForOnlyWhenItWouldWin) {
  int asked = 0;
  auto probe = [&asked] {
    ++asked;
    return true;
  };
  EXPECT_FALSE(choose_device({.method = Method::kInt4, .bytes = 1000, .threads = 1, .gpu_usable = probe}).cuda);
  EXPECT_FALSE(choose_device({.method = Method::kFp8, .bytes = 100 * kGB, .threads = 64, .gpu_usable = probe}).cuda);
  EXPECT_FALSE(choose_device({.method = Method::kInt4, .calibrated = true, .bytes = 100 * kGB, .threads = 1,
                              .gpu_usable = probe}).cuda);
  EXPECT_EQ(asked, 0);
  EXPECT_TRUE(choose_device({.method = Method::kInt4, .bytes = 100 * kGB, .threads = 1, .gpu_usable = probe}).cuda);
  EXPECT_EQ(asked, 1);
}

TEST(DeviceChoice, CalibratedQuantizationStaysOnTheCpu) {
  const DeviceChoice c =
      choose_device({.method = Method::kInt4, .calibrated = true, .bytes = 100 * kGB, .threads = 1, .gpu_usable = yes});
  EXPECT_FALSE(c.cuda);
  EXPECT_NE(c.reason.find("calibrated"), std::string::npos) << c.reason;
}

TEST(DeviceChoice, SmallInputsDoNotPayTheGpuStartUp) {
  // 10 MB on one thread: milliseconds of CPU math against the GPU's fixed start-up.
  const DeviceChoice c = choose_device({.method = Method::kInt4, .bytes = 10000000, .threads = 1, .gpu_usable = yes});
  EXPECT_FALSE(c.cuda) << c.reason;
  EXPECT_EQ(c.reason.rfind("cpu: ", 0), 0u) << c.reason;
}

TEST(DeviceChoice, LargeInputsOnFewThreadsGoToTheGpu) {
  const DeviceChoice c = choose_device({.method = Method::kInt4, .bytes = 20 * kGB, .threads = 1, .gpu_usable = yes});
  EXPECT_TRUE(c.cuda) << c.reason;
  EXPECT_EQ(c.reason.rfind("cuda: 20.00 GB of weights", 0), 0u) << c.reason;
}

TEST(DeviceChoice, ManyCoresKeepTheCpu) {
  // 16 threads quantize faster than the source crosses PCIe (the 16-core H100 box's measurement).
  for (Method m : {Method::kFp8, Method::kInt4}) {
    const DeviceChoice c = choose_device({.method = m, .bytes = 100 * kGB, .threads = 16, .gpu_usable = yes});
    EXPECT_FALSE(c.cuda) << c.reason;
  }
}

// The choice is the rule's inequality, at every size and thread count around its crossings.
TEST(DeviceChoice, FollowsTheStatedRule) {
  for (Method m : {Method::kFp8, Method::kInt4}) {
    const DeviceRates r = device_rates(m);
    for (unsigned threads : {0u, 1u, 2u, 3u, 4u, 8u})
      for (uint64_t mb = 1; mb <= 64000; mb *= 2) {
        const uint64_t bytes = mb * 1000000;
        const double t_cpu = static_cast<double>(bytes) / (std::max(1u, threads) * r.cpu_bytes_per_s_per_thread);
        const double t_gpu = r.start_s + static_cast<double>(bytes) / r.copy_bytes_per_s;
        const DeviceChoice c = choose_device({.method = m, .bytes = bytes, .threads = threads, .gpu_usable = yes});
        EXPECT_EQ(c.cuda, t_gpu < t_cpu) << c.reason;
      }
  }
}

}  // namespace
}  // namespace ckpt::quant
