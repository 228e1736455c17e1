// A decoder forward taken one layer at a time, as compare_models (lib/model/compare.h) steps two
// models in lockstep, behind one interface so that the comparison is written once for every
// backend: the CPU reference (cpu_step_forward.h) and the CUDA forward
// (kernels/runtime/gpu_step_forward.h). The hidden state and the recorded Linear outputs stay
// where the backend computes them (host doubles, device floats); the comparison sees them only
// through diff(), which reduces two of them to the few sums it judges, and logits(), which it
// reads in chunks of rows.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/activation_diff.h"

namespace ckpt::model {

// An activation [rows][width] held by a backend.
class Activation {
 public:
  virtual ~Activation() = default;
  virtual uint64_t rows() const = 0;
  virtual uint64_t width() const = 0;
};

// What a layer showed its observer (the names of ActivationObserver, cpu_forward.h: each Linear's
// logical output, MoE router logits and experts, and "output"), in computation order.
using Recording = std::vector<std::pair<std::string, std::unique_ptr<Activation>>>;

class StepForward {
 public:
  virtual ~StepForward() = default;
  // As CpuForward: embed the step's ids ([batch][tokens]), run every layer on the hidden state
  // (keys and values written at [length, length + tokens)), commit(tokens), then the logits.
  virtual std::unique_ptr<Activation> embed(const std::vector<int64_t>& ids) = 0;
  virtual std::unique_ptr<Activation> copy(const Activation& hidden) = 0;
  // Layer i on `hidden`, in place; `record` (when given) gets the layer's observed activations.
  virtual void layer(uint64_t i, Activation& hidden, uint64_t tokens, Recording* record) = 0;
  virtual void commit(uint64_t tokens) = 0;
  // Final norm + lm_head of rows [first, first + rows) of `hidden`: [rows][vocab].
  virtual std::vector<double> logits(const Activation& hidden, uint64_t first, uint64_t rows) = 0;
  // A whole step (greedy continuation): `tokens` new ids per sequence; logits [batch * tokens][vocab].
  virtual std::vector<double> forward(const std::vector<int64_t>& ids, uint64_t tokens) = 0;
  // `other` against `ref`, two activations of this backend of the same shape.
  virtual ActivationDiff diff(const Activation& ref, const Activation& other, bool rescale) = 0;
  // The relative error two computations of the same Linear may show from this backend's
  // arithmetic alone (0 for the float64 reference): the bound a Linear is judged by is never
  // set below it, or float32 rounding would read as a fault.
  virtual double linear_error_floor() const = 0;
};

// The three forwards of a comparison: the source, the destination on its own path, and the
// destination's layers run on the source's hidden states ("isolated": each layer is called before
// dst's own call of the same layer, and its cache entries are not read by dst afterwards).
struct ComparedForwards {
  std::string device;  // "cpu", "cuda"
  std::unique_ptr<StepForward> src, dst, isolated;
};

}  // namespace ckpt::model
