// The one host <-> device staging pipeline of the engines behind `ckpt quantize --device cuda`
// (FP8: fp8_quant_engine.cpp, INT4: int4_quant_engine.cpp). A weight's work is a list of jobs;
// each job's input is written by the calling thread into pinned host memory, copied to the GPU,
// run through the job's kernels, and its output copied back into pinned memory. kSlots jobs are in
// flight, each slot with its own stream, pinned and device buffers and completion event, so the
// copy in of job j + 1, the kernels of job j and the copy out of job j - 1 overlap (the two copy
// engines and the SMs work at once) while the thread reads the source for the next slot; a job's
// output is handed back (drained) in job order once its event has fired.
//
// Why: copying each chunk from pageable memory and waiting for it (the engines' first form) left
// the GPU idle during every read and every copy and ran pageable copies through the driver's own
// bounce buffers; `--fp8 --device cuda` took 1.61x the time of cp of the source where the CPU path
// took 0.56x (BENCHMARKS "quantize --fp8", 16-core H100 box).
//
// One pipeline per thread (the executor runs producers on several threads, each of which owns
// its pipeline, as ThreadWorkspace does for the element-wise ops); buffers grow to the largest job
// and live as long as the thread. Every CUDA call is checked (cuda_check.h); when a job throws, the
// jobs still in flight are waited for before the exception leaves run(), so no copy outlives it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "cuda_check.h"

namespace ckpt::cuda {

class StagingPipeline {
 public:
  static constexpr size_t kSlots = 3;

  // What a job moves, in bytes.
  struct Sizes {
    size_t in = 0;          // written by fill, copied host -> device before the kernels
    size_t device_out = 0;  // device memory the kernels may use (outputs first, then any workspace)
    size_t out = 0;         // the leading bytes of it copied device -> host after the kernels
  };
  // The buffers of one job.
  struct Slot {
    cudaStream_t stream = nullptr;
    uint8_t* host_in = nullptr;   // pinned, Sizes::in
    uint8_t* host_out = nullptr;  // pinned, Sizes::out
    uint8_t* dev_in = nullptr;    // device, Sizes::in (256-byte aligned)
    uint8_t* dev_out = nullptr;   // device, Sizes::device_out (256-byte aligned)
    size_t index = 0;             // which of the kSlots slots (per-slot state a job keeps)
  };
  struct Job {
    std::function<Sizes(size_t job)> sizes;
    std::function<void(size_t job, uint8_t* host_in)> fill;      // on the calling thread
    std::function<void(size_t job, const Slot& slot)> launch;    // enqueue the kernels on slot.stream
    std::function<void(size_t job, const Slot& slot)> drain;     // host_out holds the output, host_in
                                                                 // still the input
  };

  // The calling thread's pipeline.
  static StagingPipeline& mine();

  // Runs jobs 0 .. count-1 through the slots; drains them in order. Exceptions from the callbacks
  // and CUDA errors propagate (after the in-flight jobs have finished).
  void run(size_t count, const Job& job);

 private:
  StagingPipeline();
  struct Buffers {
    Stream stream;
    Event done;
    PinnedBuffer host_in, host_out;
    DeviceBuffer dev_in, dev_out;
  };
  std::array<Buffers, kSlots> slots_;
};

}  // namespace ckpt::cuda
