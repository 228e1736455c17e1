// Tensors whose bytes are already on the device. validate's load puts every weight file of a
// target on the GPU (device_loader.h) and checks those bytes against the manifest; the runtime
// (GpuForward, DeviceLinear) then copies each stored dense / FP8 weight from there, device to
// device, instead of reading it again on the host and uploading it a second time — which cost an
// 8B-shaped bf16 model 3.7 s of validate's allocate phase and a packed one 22.6 s (a second decode;
// BENCHMARKS.md, 2026-12-07 23:31). So the runtime also runs exactly the bytes that were verified.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "device_loader.h"

namespace ckpt::cuda {

class ResidentTensors {
 public:
  // Takes the files of `ck` loaded on the current device: files[i] holds ck.files[i] whole. The
  // tensors are found later by address: `ck` must outlive this object's use.
  void add(const Checkpoint& ck, std::vector<LoadedFile> files);
  // The device address of t's bytes (counted as reused), or null where t is not resident: another
  // checkpoint's tensor, a strided view or one without bytes in a file.
  const uint8_t* find(const TensorRef& t);
  uint64_t held_bytes() const { return held_; }
  uint64_t reused_bytes() const { return reused_; }
  // Frees the device copies (the runtime holds its own); find() returns null afterwards.
  void release();

 private:
  std::vector<LoadedFile> files_;
  std::unordered_map<const TensorRef*, const uint8_t*> at_;
  uint64_t held_ = 0, reused_ = 0;
};

}  // namespace ckpt::cuda
