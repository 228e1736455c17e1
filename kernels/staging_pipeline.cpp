#include "staging_pipeline.h"

namespace ckpt::cuda {

namespace {

// An event the host can wait on without spinning a core (the executor's other threads are
// reading and writing meanwhile), and without timing (cheaper to record).
Event blocking_event() {
  Event e;
  CKPT_CUDA(cudaEventCreateWithFlags(e.out(), cudaEventDisableTiming | cudaEventBlockingSync));
  return e;
}

}  // namespace

StagingPipeline::StagingPipeline() {
  for (Buffers& b : slots_) {
    b.stream = new_stream();
    b.done = blocking_event();
  }
}

StagingPipeline& StagingPipeline::mine() {
  thread_local StagingPipeline p;
  return p;
}

void StagingPipeline::run(size_t count, const Job& job) {
  std::array<Slot, kSlots> slot{};
  size_t drained = 0;  // jobs [drained, next) are in flight, job j in slot j % kSlots
  // On the way out by an exception, let the copies and kernels in flight finish before their
  // buffers are reused or freed (errors ignored: one is already on its way).
  struct Settle {
    StagingPipeline* p;
    bool armed = true;
    ~Settle() {
      if (armed)
        for (Buffers& b : p->slots_) (void)cudaStreamSynchronize(b.stream.get());
    }
  } settle{this};
  auto drain_next = [&] {
    Buffers& b = slots_[drained % kSlots];
    CKPT_CUDA(cudaEventSynchronize(b.done.get()));
    job.drain(drained, slot[drained % kSlots]);
    ++drained;
  };
  for (size_t j = 0; j < count; ++j) {
    if (j - drained == kSlots) drain_next();  // frees job j's slot (it held job j - kSlots)
    Buffers& b = slots_[j % kSlots];
    const Sizes s = job.sizes(j);
    b.host_in.reserve(s.in);
    b.host_out.reserve(s.out);
    b.dev_in.reserve(s.in);
    b.dev_out.reserve(s.device_out);
    Slot& sl = slot[j % kSlots];
    sl = Slot{b.stream.get(), b.host_in.data(), b.host_out.data(), b.dev_in.data(), b.dev_out.data(), j % kSlots};
    job.fill(j, sl.host_in);
    if (s.in) CKPT_CUDA(cudaMemcpyAsync(sl.dev_in, sl.host_in, s.in, cudaMemcpyHostToDevice, sl.stream));
    job.launch(j, sl);
    if (s.out) CKPT_CUDA(cudaMemcpyAsync(sl.host_out, sl.dev_out, s.out, cudaMemcpyDeviceToHost, sl.stream));
    CKPT_CUDA(cudaEventRecord(b.done.get(), sl.stream));
  }
  while (drained < count) drain_next();
  settle.armed = false;
}

}  // namespace ckpt::cuda
