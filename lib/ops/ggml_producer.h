// The producer of one GGUF tensor in a ggml block type (Q8_0, Q4_K, ...): the source elements
// (any float dtype, any views: permuted rows, stacked experts) are read for the whole blocks a
// chunk touches, widened to float32 exactly, encoded with ops::encode_row and the chunk's bytes
// copied out. Chunks may start inside a block (the executor cuts at 1 MiB); a block on a chunk
// boundary is encoded by both chunks, with the same bytes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ops/ggml_blocks.h"
#include "plan/plan.h"

namespace ckpt {

class GgmlBlockProducer : public Producer {
 public:
  // `pieces` concatenated in row-major order are the tensor; `row` elements per GGUF row (ne[0]),
  // a multiple of the type's block. `label` and `tensor` name the output in errors.
  GgmlBlockProducer(std::vector<SourceView> pieces, uint64_t row, ops::GgmlType type, std::string label,
                    std::string tensor);
  uint64_t nbytes() const override;
  void produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const override;
  ojson describe() const override;

 private:
  ViewProducer source_;  // the source elements, unconverted
  DType in_;
  uint64_t numel_;
  ops::GgmlType type_;
  std::string label_, tensor_;
};

}  // namespace ckpt
