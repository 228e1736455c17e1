#include "model/linear.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "validate/dequantize.h"

namespace ckpt::model {

HostTensors::HostTensors(const Checkpoint& ck) : ck_(ck), bytes_(ck) {}

const uint8_t* HostTensors::bytes(const TensorRef& t) const {
  if (t.view.file < 0 || static_cast<size_t>(t.view.file) >= ck_.files.size())
    fail(Errc::kUnsupported, ck_.path, t.name, "tensor has no bytes in a file (a zero-filled view)");
  if (!t.view.is_contiguous())
    fail(Errc::kUnsupported, ck_.files[t.view.file].path, t.name,
         "strided tensor view: the runtime reads contiguous tensors (run ckpt convert first)");
  const uint64_t size = ck_.files[t.view.file].size;
  if (t.view.offset > size || t.nbytes() > size - t.view.offset)
    fail(Errc::kIncompleteBuffer, ck_.files[t.view.file].path, t.name, "tensor data runs past the end of the file");
  Decoded* d;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = decoded_[&t];
    if (!slot) slot = std::make_unique<Decoded>();
    d = slot.get();
  }
  std::call_once(d->once, [&] { d->data = bytes_.get_parallel(t.view.file, t.view.offset, t.nbytes(), d->buf, Workers{}); });
  return d->data;
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
  StoredLinear(const validate::LinearWeight& lw, const HostTensors& host) : lw_(lw), host_(host) {
    if (lw.fp8()) scales_ = validate::decode_all(lw.scale->dtype(), host.bytes(*lw.scale), lw.scale->view.numel());
  }
  WeightKind kind() const override { return lw_.fp8() ? WeightKind::kFp8 : WeightKind::kDense; }
  uint64_t out_features() const override { return lw_.n; }
  uint64_t in_features() const override { return lw_.k; }
  std::string format() const override { return lw_.format(); }
  void dequantize_rows(uint64_t begin, uint64_t count, double* out) const override {
    validate::dequantize_rows(lw_, host_.bytes(*lw_.weight), scales_, begin, count, out);
  }
  std::optional<StoredForm> stored_form() const override { return StoredForm{&lw_, &host_, &scales_}; }

 private:
  validate::LinearWeight lw_;
  const HostTensors& host_;  // the weight's bytes are read on first use (a runtime may never need them)
  std::vector<double> scales_;
};

class Int4Linear final : public LinearWeights {
 public:
  // The arrays in place where they are 4-byte aligned (a mapped file), else copied into `owned`
  // (the decoder reads 32-bit words); `owned` may already hold them.
  Int4Linear(const ops::Int4Scheme& scheme, uint64_t n, uint64_t k, const uint8_t* weights, const uint8_t* zeros,
             const uint8_t* scales, const uint8_t* g_idx, std::array<std::vector<uint8_t>, 4> owned)
      : owned_(std::move(owned)) {
    form_.scheme = scheme;
    form_.geo = ops::int4_geometry(scheme, n, k);
    const ops::Int4Shapes sh = ops::int4_shapes(scheme, n, k);
    auto numel = [](const std::vector<uint64_t>& s) {
      uint64_t v = s.empty() ? 0 : 1;
      for (uint64_t d : s) v *= d;
      return v;
    };
    const uint8_t* given[4] = {weights, zeros, scales, g_idx};
    const char* what[4] = {"weights", "zeros", "scales", "g_idx"};
    const uint64_t want[4] = {numel(sh.weights) * 4, zeros ? numel(sh.zeros) * 4 : 0,
                              numel(sh.scales) * dtype_bits(scheme.scale_dtype) / 8, g_idx ? k * 4 : 0};
    const uint8_t* at[4];
    for (int i = 0; i < 4; ++i) {
      const bool required = i == 0 || i == 2;  // weights and scales; zeros and g_idx may be absent
      if ((!owned_[i].empty() && owned_[i].size() != want[i]) || (required && !given[i]))
        fail(Errc::kInvalidArgument, "", what[i], "INT4 array of " + std::to_string(owned_[i].size()) + " bytes where " +
                                                      ops::int4_format_name(scheme.format) + " needs " + std::to_string(want[i]));
      if (owned_[i].empty() && given[i] && reinterpret_cast<uintptr_t>(given[i]) % 4 != 0)
        owned_[i].assign(given[i], given[i] + want[i]);
      at[i] = owned_[i].empty() ? given[i] : owned_[i].data();
    }
    form_.arrays.weights = reinterpret_cast<const uint32_t*>(at[0]);
    form_.arrays.zeros = reinterpret_cast<const uint32_t*>(at[1]);
    form_.arrays.scales = at[2];
    form_.arrays.g_idx = reinterpret_cast<const int32_t*>(at[3]);
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
  std::array<std::vector<uint8_t>, 4> owned_;  // weights, zeros, scales, g_idx; 4-byte aligned (operator new)
  Int4Form form_;
};

// A Marlin weight: stored as the Marlin arrays (the CUDA runtime runs the Marlin GEMM on them),
// decoded on the CPU through the source format's arrays, undone once, on first use.
class MarlinLinear final : public LinearWeights {
 public:
  MarlinLinear(const validate::LinearWeight& lw, const HostTensors& host) : lw_(lw), host_(host) {
    form_.n = lw.n;
    form_.k = lw.k;
    form_.group_size = lw.int4->group_size <= 0 ? -1 : lw.int4->group_size;
    form_.groups = ops::int4_geometry(*lw.int4, lw.n, lw.k).groups;
    form_.scale_dtype = lw.scale->dtype();
    form_.qweight = host.bytes(*lw.weight);
    form_.scales = host.bytes(*lw.scale);
    form_.zeros = lw.zeros ? host.bytes(*lw.zeros) : nullptr;
    form_.g_idx = lw.act_order ? host.bytes(*lw.g_idx) : nullptr;
    form_.perm = lw.act_order ? host.bytes(*lw.sort_indices) : nullptr;
  }
  WeightKind kind() const override { return WeightKind::kInt4; }
  uint64_t out_features() const override { return lw_.n; }
  uint64_t in_features() const override { return lw_.k; }
  std::string format() const override { return lw_.format(); }
  void dequantize_rows(uint64_t begin, uint64_t count, double* out) const override {
    std::call_once(once_, [&] {
      validate::Int4SourceArrays a =
          validate::marlin_source_arrays(lw_, [&](const TensorRef& t) { return host_.bytes(t); }, true);
      auto bytes = [](const auto& v) {
        std::vector<uint8_t> b(v.size() * sizeof(v[0]));
        if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
        return b;
      };
      source_ = int4_linear(*lw_.int4, lw_.n, lw_.k, bytes(a.weights), bytes(a.zeros), std::move(a.scales), bytes(a.g_idx));
    });
    source_->dequantize_rows(begin, count, out);
  }
  std::optional<StoredForm> stored_form() const override { return StoredForm{nullptr, nullptr, nullptr, nullptr, &form_}; }

 private:
  validate::LinearWeight lw_;
  const HostTensors& host_;
  MarlinForm form_;
  mutable std::once_flag once_;
  mutable std::unique_ptr<LinearWeights> source_;  // the source format's arrays
};

}  // namespace

std::unique_ptr<LinearWeights> int4_linear(const ops::Int4Scheme& scheme, uint64_t n, uint64_t k,
                                           std::vector<uint8_t> weights, std::vector<uint8_t> zeros,
                                           std::vector<uint8_t> scales, std::vector<uint8_t> g_idx) {
  if (std::string why = ops::int4_shape_problem(scheme, n, k); !why.empty()) fail(Errc::kInvalidArgument, "", "", why);
  const uint8_t* w = weights.empty() ? nullptr : weights.data();
  const uint8_t* z = zeros.empty() ? nullptr : zeros.data();
  const uint8_t* s = scales.empty() ? nullptr : scales.data();
  const uint8_t* g = g_idx.empty() ? nullptr : g_idx.data();
  return std::make_unique<Int4Linear>(scheme, n, k, w, z, s, g,
                                      std::array<std::vector<uint8_t>, 4>{std::move(weights), std::move(zeros),
                                                                          std::move(scales), std::move(g_idx)});
}

std::unique_ptr<LinearWeights> stored_linear(const validate::LinearWeight& lw, const HostTensors& host) {
  if (lw.marlin) return std::make_unique<MarlinLinear>(lw, host);
  if (lw.is_int4())
    return std::make_unique<Int4Linear>(*lw.int4, lw.n, lw.k, host.bytes(*lw.weight),
                                        lw.zeros ? host.bytes(*lw.zeros) : nullptr, host.bytes(*lw.scale),
                                        lw.g_idx && lw.act_order ? host.bytes(*lw.g_idx) : nullptr,  // else k / G, as vLLM
                                        std::array<std::vector<uint8_t>, 4>{});
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
