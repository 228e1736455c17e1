#include "model/linear.h"

#include "core/error.h"
#include "validate/dequantize.h"

namespace ckpt::model {

HostTensors::HostTensors(const Checkpoint& ck) : ck_(ck) {
  for (const auto& f : ck.files) {
    files_.push_back(File::open_read(f.path));
    maps_.emplace_back(files_.back());
  }
}

const uint8_t* HostTensors::bytes(const TensorRef& t) const {
  if (t.view.file < 0 || static_cast<size_t>(t.view.file) >= maps_.size())
    fail(Errc::kUnsupported, ck_.path, t.name, "tensor has no bytes in a file (a zero-filled view)");
  if (!t.view.is_contiguous())
    fail(Errc::kUnsupported, ck_.files[t.view.file].path, t.name,
         "strided tensor view: the runtime reads contiguous tensors (run ckpt convert first)");
  const MappedFile& m = maps_[t.view.file];
  if (t.view.offset > m.size() || t.nbytes() > m.size() - t.view.offset)
    fail(Errc::kIncompleteBuffer, ck_.files[t.view.file].path, t.name, "tensor data runs past the end of the file");
  return m.data() + t.view.offset;
}

std::vector<double> decode_vector(const HostTensors& host, const TensorRef& t) {
  const DType d = t.dtype();
  if (d != DType::F32 && d != DType::F16 && d != DType::BF16)
    fail(Errc::kUnsupported, host.checkpoint().files[t.view.file].path, t.name,
         std::string(dtype_name(d)) + " tensor where the runtime needs f32, f16 or bf16 values");
  return validate::decode_all(d, host.bytes(t), t.view.numel());
}

namespace {

class StoredLinear final : public LinearWeights {
 public:
  StoredLinear(const validate::LinearWeight& lw, const HostTensors& host)
      : lw_(lw), weight_(host.bytes(*lw.weight)) {
    if (lw.fp8()) scales_ = validate::decode_all(lw.scale->dtype(), host.bytes(*lw.scale), lw.scale->view.numel());
  }
  WeightKind kind() const override { return lw_.fp8() ? WeightKind::kFp8 : WeightKind::kDense; }
  uint64_t out_features() const override { return lw_.n; }
  uint64_t in_features() const override { return lw_.k; }
  std::string format() const override { return lw_.format(); }
  void dequantize_rows(uint64_t begin, uint64_t count, double* out) const override {
    validate::dequantize_rows(lw_, weight_, scales_, begin, count, out);
  }
  const validate::LinearWeight& stored() const override { return lw_; }

 private:
  validate::LinearWeight lw_;
  const uint8_t* weight_;
  std::vector<double> scales_;
};

}  // namespace

std::unique_ptr<LinearWeights> stored_linear(const validate::LinearWeight& lw, const HostTensors& host) {
  return std::make_unique<StoredLinear>(lw, host);
}

void linear_forward(const LinearWeights& w, const double* x, uint64_t tokens, double* y, const Workers& workers) {
  const uint64_t n = w.out_features(), k = w.in_features();
  constexpr uint64_t kRowsPerBlock = 16;
  const uint64_t blocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
  // Threads only where the work repays starting them (tiny models run faster on one); each takes
  // one contiguous range of row blocks with its own dequantization buffer.
  const bool parallel = n * k * std::max<uint64_t>(tokens, 1) >= (1u << 22);
  const uint64_t parts = parallel ? std::min<uint64_t>(static_cast<uint64_t>(workers.count()), blocks) : 1;
  parallel_for(parts, workers, [&](size_t part) {
    std::vector<double> rows(kRowsPerBlock * k);
    for (uint64_t b = blocks * part / parts; b < blocks * (part + 1) / parts; ++b) {
      const uint64_t begin = b * kRowsPerBlock;
      const uint64_t count = std::min(kRowsPerBlock, n - begin);
      w.dequantize_rows(begin, count, rows.data());
      for (uint64_t t = 0; t < tokens; ++t) {
        const double* xt = x + t * k;
        for (uint64_t r = 0; r < count; ++r) {
          const double* wr = rows.data() + r * k;
          double acc = 0;
          for (uint64_t c = 0; c < k; ++c) acc += wr[c] * xt[c];
          y[t * n + begin + r] = acc;
        }
      }
    }
  });
}

}  // namespace ckpt::model
