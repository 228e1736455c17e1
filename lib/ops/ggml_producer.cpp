#include "ops/ggml_producer.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/error.h"
#include "ops/cast.h"

namespace ckpt {

namespace {

// Whether any of the n floats is Inf or NaN (exponent all ones). Written with the compiler's
// generic 16-byte vectors (SSE2 on x86-64, NEON on Arm): GCC's -O2 left the plain loop scalar,
// and it was a third of `ckpt gguf --type q8_0`'s CPU time, more than the Q8_0 encoder.
bool any_non_finite(const float* x, uint64_t n) {
  typedef uint32_t U4 __attribute__((vector_size(16)));
  typedef int32_t I4 __attribute__((vector_size(16)));
  const U4 exp = {0x7F800000u, 0x7F800000u, 0x7F800000u, 0x7F800000u};
  I4 acc = {0, 0, 0, 0};
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    U4 a, b, c, d;
    std::memcpy(&a, x + i, 16);
    std::memcpy(&b, x + i + 4, 16);
    std::memcpy(&c, x + i + 8, 16);
    std::memcpy(&d, x + i + 12, 16);
    acc |= ((a & exp) == exp) | ((b & exp) == exp) | ((c & exp) == exp) | ((d & exp) == exp);
  }
  bool any = (acc[0] | acc[1] | acc[2] | acc[3]) != 0;
  for (; i < n; ++i) any |= !std::isfinite(x[i]);
  return any;
}

}  // namespace

GgmlBlockProducer::GgmlBlockProducer(std::vector<SourceView> pieces, uint64_t row, ops::GgmlType type,
                                     std::string label, std::string tensor)
    : source_(pieces), in_(pieces.at(0).dtype), numel_(0), type_(type), label_(std::move(label)),
      tensor_(std::move(tensor)) {
  for (const auto& p : pieces) numel_ += p.numel();
  const auto& info = ops::ggml_type_info(type);
  if (row == 0 || row % info.block || numel_ % row)
    throw std::logic_error("GgmlBlockProducer: rows are not whole blocks of " + std::string(info.name));
  if (!ops::is_cast_source(in_)) throw std::logic_error("GgmlBlockProducer: source is not a float dtype");
}

uint64_t GgmlBlockProducer::nbytes() const {
  const auto& info = ops::ggml_type_info(type_);
  return numel_ / info.block * info.block_bytes;
}

void GgmlBlockProducer::produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const {
  const auto& info = ops::ggml_type_info(type_);
  const uint64_t in_size = dtype_bits(in_) / 8;
  // Blocks per batch: ~64 Ki elements, so the source, float and encoded buffers stay in cache.
  const uint64_t batch_blocks = std::max<uint64_t>(1, (64u << 10) / info.block);
  thread_local std::vector<uint8_t> raw, encoded;
  thread_local std::vector<float> values;
  const uint64_t first_block = begin / info.block_bytes;
  const uint64_t end_block = (begin + n + info.block_bytes - 1) / info.block_bytes;
  for (uint64_t b = first_block; b < end_block; b += batch_blocks) {
    const uint64_t nb = std::min(batch_blocks, end_block - b);
    const uint64_t elems = nb * info.block;
    raw.resize(elems * in_size);
    values.resize(elems);
    encoded.resize(nb * info.block_bytes);
    source_.produce(src, b * info.block * in_size, elems * in_size, raw.data());
    ops::cast(in_, DType::F32, raw.data(), reinterpret_cast<uint8_t*>(values.data()), elems);
    if (any_non_finite(values.data(), elems))
      for (uint64_t i = 0; i < elems; ++i)
        if (!std::isfinite(values[i]))
          fail(Errc::kInvalidArgument, label_, tensor_,
               "element " + std::to_string(b * info.block + i) + " is not finite; llama.cpp refuses non-finite " +
                   std::string(info.name) + " blocks (ggml_validate_row_data)");
    ops::encode_row(type_, values.data(), encoded.data(), elems);
    // The part of these blocks' bytes that lies in [begin, begin + n).
    const uint64_t lo = std::max(begin, b * info.block_bytes);
    const uint64_t hi = std::min(begin + n, (b + nb) * info.block_bytes);
    std::memcpy(out + (lo - begin), encoded.data() + (lo - b * info.block_bytes), hi - lo);
  }
}

ojson GgmlBlockProducer::describe() const {
  ojson d = source_.describe();
  d["op"] = "ggml " + std::string(dtype_name(in_)) + "->" + std::string(ops::ggml_type_info(type_).name);
  return d;
}

}  // namespace ckpt
