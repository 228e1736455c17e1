#include "model/linear.h"

#include <algorithm>

#include "core/error.h"
#include "validate/dequantize.h"

namespace ckpt::model {

HostTensors::HostTensors(const Checkpoint& ck) : ck_(ck), bytes_(ck), decoded_(ck.files.size()) {
  for (size_t i = 0; i < ck.files.size(); ++i) data_.push_back(bytes_.get(static_cast<int>(i), 0, ck.files[i].size, decoded_[i]));
}

const uint8_t* HostTensors::bytes(const TensorRef& t) const {
  if (t.view.file < 0 || static_cast<size_t>(t.view.file) >= data_.size())
    fail(Errc::kUnsupported, ck_.path, t.name, "tensor has no bytes in a file (a zero-filled view)");
  if (!t.view.is_contiguous())
    fail(Errc::kUnsupported, ck_.files[t.view.file].path, t.name,
         "strided tensor view: the runtime reads contiguous tensors (run ckpt convert first)");
  const uint64_t size = ck_.files[t.view.file].size;
  if (t.view.offset > size || t.nbytes() > size - t.view.offset)
    fail(Errc::kIncompleteBuffer, ck_.files[t.view.file].path, t.name, "tensor data runs past the end of the file");
  return data_[t.view.file] + t.view.offset;
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
  std::optional<StoredForm> stored_form() const override { return StoredForm{&lw_, weight_, &scales_, nullptr}; }

 private:
  validate::LinearWeight lw_;
  const uint8_t* weight_;
  std::vector<double> scales_;
};

class Int4Linear final : public LinearWeights {
 public:
  Int4Linear(const ops::Int4Scheme& scheme, uint64_t n, uint64_t k, std::vector<uint8_t> weights,
             std::vector<uint8_t> zeros, std::vector<uint8_t> scales, std::vector<uint8_t> g_idx)
      : weights_(std::move(weights)), zeros_(std::move(zeros)), scales_(std::move(scales)), g_idx_(std::move(g_idx)) {
    form_.scheme = scheme;
    form_.geo = ops::int4_geometry(scheme, n, k);
    const ops::Int4Shapes sh = ops::int4_shapes(scheme, n, k);
    auto numel = [](const std::vector<uint64_t>& s) {
      uint64_t v = s.empty() ? 0 : 1;
      for (uint64_t d : s) v *= d;
      return v;
    };
    auto check = [&](const char* what, const std::vector<uint8_t>& b, uint64_t want) {
      if (b.size() != want)
        fail(Errc::kInvalidArgument, "", what, "INT4 array of " + std::to_string(b.size()) + " bytes where " +
                                                   ops::int4_format_name(scheme.format) + " needs " + std::to_string(want));
    };
    check("weights", weights_, numel(sh.weights) * 4);
    check("zeros", zeros_, zeros_.empty() ? 0 : numel(sh.zeros) * 4);
    check("scales", scales_, numel(sh.scales) * dtype_bits(scheme.scale_dtype) / 8);
    check("g_idx", g_idx_, g_idx_.empty() ? 0 : k * 4);
    form_.arrays.weights = reinterpret_cast<const uint32_t*>(weights_.data());
    form_.arrays.zeros = zeros_.empty() ? nullptr : reinterpret_cast<const uint32_t*>(zeros_.data());
    form_.arrays.scales = scales_.data();
    form_.arrays.g_idx = g_idx_.empty() ? nullptr : reinterpret_cast<const int32_t*>(g_idx_.data());
    for (uint64_t c = 0; form_.arrays.g_idx && c < k; ++c)
      if (form_.arrays.g_idx[c] < 0 || static_cast<uint64_t>(form_.arrays.g_idx[c]) >= form_.geo.groups)
        fail(Errc::kInvalidArgument, "", "g_idx", "group index " + std::to_string(form_.arrays.g_idx[c]) +
                                                      " outside [0, " + std::to_string(form_.geo.groups) + ")");
  }
  WeightKind kind() const override { return WeightKind::kInt4; }
  uint64_t out_features() const override { return form_.geo.n; }
  uint64_t in_features() const override { return form_.geo.k; }
  std::string format() const override { return std::string("int4 ") + ops::int4_format_name(form_.scheme.format); }
  void dequantize_rows(uint64_t begin, uint64_t count, double* out) const override {
    std::vector<float> f(count * form_.geo.k);
    ops::int4_decode(form_.scheme, form_.geo, form_.arrays, begin, begin + count, f.data());  // g_idx checked above
    std::copy(f.begin(), f.end(), out);
  }
  std::optional<StoredForm> stored_form() const override { return StoredForm{nullptr, nullptr, nullptr, &form_}; }

 private:
  std::vector<uint8_t> weights_, zeros_, scales_, g_idx_;  // 4-byte aligned (operator new)
  Int4Form form_;
};

}  // namespace

std::unique_ptr<LinearWeights> int4_linear(const ops::Int4Scheme& scheme, uint64_t n, uint64_t k,
                                           std::vector<uint8_t> weights, std::vector<uint8_t> zeros,
                                           std::vector<uint8_t> scales, std::vector<uint8_t> g_idx) {
  if (std::string why = ops::int4_shape_problem(scheme, n, k); !why.empty()) fail(Errc::kInvalidArgument, "", "", why);
  return std::make_unique<Int4Linear>(scheme, n, k, std::move(weights), std::move(zeros), std::move(scales),
                                      std::move(g_idx));
}

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
