#include "runtime/device_linear.h"

#include <algorithm>
#include <stdexcept>

#include "core/error.h"
#include "runtime/forward_kernels.h"

namespace ckpt::cuda {

namespace {

template <class T>
DeviceBuffer upload_vector(const std::vector<T>& v) {
  DeviceBuffer b(std::max<size_t>(v.size(), 1) * sizeof(T));
  if (!v.empty()) CKPT_CUDA(cudaMemcpy(b.data(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}

// Rows [first, first + count) of `w` as a Linear of their own (gate_up's gate and up halves, for
// the fused gate/up launch): f32 / f16 / bf16 rows, whose slices need no scales; false for the
// formats the skinny kernel does not fuse (linear_kernels.h skinny_fusable).
bool row_slice(const LinearView& w, uint64_t first, uint64_t count, LinearView* out) {
  if (w.elem != WeightElem::kF32 && w.elem != WeightElem::kF16 && w.elem != WeightElem::kBF16) return false;
  LinearView v = w;
  v.w = static_cast<const uint8_t*>(w.w) + first * w.row_bytes;
  v.n = count;
  *out = v;
  return true;
}

// Rows per host-side conversion chunk: about 4M elements, so the host buffers stay small.
uint64_t chunk_rows(uint64_t k) { return std::max<uint64_t>(1, (uint64_t{1} << 22) / std::max<uint64_t>(k, 1)); }

}  // namespace

DeviceLinear::DeviceLinear(const model::LinearWeights& w, const std::vector<double>& bias, ResidentTensors* resident) {
  const std::optional<model::StoredForm> s = w.stored_form();
  if (s && s->marlin) {
    const DType t = s->marlin->scale_dtype;
    if (t == DType::F16 || t == DType::BF16) upload_marlin(*s->marlin);
    else upload_values(w);  // the kernel takes 16-bit scales only
  } else if (s && s->int4) {
    upload_int4(*s->int4);
  } else if (s && s->linear) {
    const DType t = s->linear->weight->dtype();
    const bool elem_ok = t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F8_E4M3;
    const bool scale_ok = !s->linear->fp8() || s->linear->layout != quant::Granularity::kGroup;
    if (elem_ok && scale_ok) upload_dense(*s, resident);
    else upload_values(w);
  } else {
    upload_values(w);
  }
  if (!bias.empty()) bias_ = upload_vector(std::vector<float>(bias.begin(), bias.end()));
}

// Dequantized by the CPU reference (LinearWeights::dequantize_rows), rounded to float32.
void DeviceLinear::upload_values(const model::LinearWeights& w) {
  const uint64_t n = w.out_features(), k = w.in_features();
  data_ = DeviceBuffer(std::max<uint64_t>(n * k, 1) * sizeof(float));
  std::vector<double> rows;
  std::vector<float> f;
  for (uint64_t r = 0; r < n; r += chunk_rows(k)) {
    const uint64_t count = std::min(chunk_rows(k), n - r);
    rows.resize(count * k);
    w.dequantize_rows(r, count, rows.data());
    f.assign(rows.begin(), rows.end());
    CKPT_CUDA(cudaMemcpy(data_.as<float>() + r * k, f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  view_ = LinearView{};
  view_.w = data_.data();
  view_.elem = WeightElem::kF32;
  view_.n = n;
  view_.k = k;
  view_.row_bytes = k * sizeof(float);
  bytes_ = n * k * sizeof(float);
  format_ = "f32 values";
}

void DeviceLinear::upload_dense(const model::StoredForm& s, ResidentTensors* resident) {
  const validate::LinearWeight& lw = *s.linear;
  const std::vector<double>& scales = *s.scales;
  const DType t = lw.weight->dtype();
  const uint64_t es = dtype_bits(t) / 8, total = lw.n * lw.k * es;
  data_ = DeviceBuffer(std::max<uint64_t>(total, 1));
  if (const uint8_t* on_device = resident ? resident->find(*lw.weight) : nullptr) {
    if (total) CKPT_CUDA(cudaMemcpy(data_.data(), on_device, total, cudaMemcpyDeviceToDevice));
  } else if (total) {
    CKPT_CUDA(cudaMemcpy(data_.data(), s.host_bytes(), total, cudaMemcpyHostToDevice));
  }
  view_ = LinearView{};
  view_.w = data_.data();
  view_.elem = t == DType::F32 ? WeightElem::kF32 : t == DType::F16 ? WeightElem::kF16
             : t == DType::BF16 ? WeightElem::kBF16 : WeightElem::kE4M3;
  view_.n = lw.n;
  view_.k = lw.k;
  view_.row_bytes = lw.k * es;
  bytes_ = total;
  format_ = std::string(dtype_name(t));
  if (lw.fp8()) {
    scale_ = upload_vector(std::vector<float>(scales.begin(), scales.end()));  // f32/f16/bf16 values: exact
    view_.scale = scale_.as<float>();
    view_.scale_kind = lw.layout == quant::Granularity::kTensor ? ScaleKind::kTensor
                     : lw.layout == quant::Granularity::kChannel ? ScaleKind::kChannel : ScaleKind::kBlock;
    view_.block_n = lw.block_n;
    view_.block_k = lw.block_k;
    bytes_ += scales.size() * sizeof(float);
    format_ = std::string("fp8 ") + validate::scale_layout_name(lw.layout);
  }
}

// The formats' arrays decoded by ops::int4_unpack (codes, zeros as their readers see them, scales
// as float32) and repacked into the runtime's layout, a chunk of rows at a time.
void DeviceLinear::upload_int4(const model::Int4Form& f) {
  const uint64_t n = f.geo.n, k = f.geo.k, G = f.geo.groups;
  const uint64_t words = ((k + 7) / 8 + 3) / 4 * 4;  // rows of whole 16-byte loads
  data_ = DeviceBuffer(std::max<uint64_t>(n * words, 1) * 4);
  scale_ = DeviceBuffer(std::max<uint64_t>(n * G, 1) * sizeof(float));
  zero_ = DeviceBuffer(std::max<uint64_t>(n * G, 1));
  std::vector<uint8_t> codes, zeros;
  std::vector<float> scales;
  std::vector<uint32_t> packed;
  for (uint64_t r = 0; r < n; r += chunk_rows(k)) {
    const uint64_t count = std::min(chunk_rows(k), n - r);
    codes.resize(count * k);
    zeros.resize(count * G);
    scales.resize(count * G);
    ops::int4_unpack(f.scheme, f.geo, f.arrays, r, r + count, codes.data(), zeros.data(), scales.data());
    packed.assign(count * words, 0);
    for (uint64_t i = 0; i < count; ++i)
      for (uint64_t c = 0; c < k; ++c) packed[i * words + c / 8] |= uint32_t{codes[i * k + c]} << (4 * (c % 8));
    CKPT_CUDA(cudaMemcpy(data_.as<uint32_t>() + r * words, packed.data(), packed.size() * 4, cudaMemcpyHostToDevice));
    CKPT_CUDA(cudaMemcpy(scale_.as<float>() + r * G, scales.data(), scales.size() * sizeof(float), cudaMemcpyHostToDevice));
    CKPT_CUDA(cudaMemcpy(zero_.data() + r * G, zeros.data(), zeros.size(), cudaMemcpyHostToDevice));
  }
  view_ = LinearView{};
  view_.w = data_.data();
  view_.elem = WeightElem::kInt4;
  view_.n = n;
  view_.k = k;
  view_.row_bytes = words * 4;
  view_.group_scale = scale_.as<float>();
  view_.group_zero = zero_.data();
  view_.group = f.geo.group;
  view_.groups = G;
  bytes_ = n * words * 4 + n * G * (sizeof(float) + 1);
  // Act-order g_idx is kept only where it is not the plain k / G (then the skinny kernel reads
  // element by element).
  bool plain = true;
  for (uint64_t c = 0; f.arrays.g_idx && c < k; ++c) plain = plain && uint64_t(f.arrays.g_idx[c]) == c / f.geo.group;
  if (!plain) {
    g_idx_ = upload_vector(std::vector<int32_t>(f.arrays.g_idx, f.arrays.g_idx + k));
    view_.g_idx = g_idx_.as<int32_t>();
    bytes_ += k * 4;
  }
  format_ = "int4";
}

// The Marlin tensors copied as they are; the GEMM's arguments but the per-call ones fixed here.
void DeviceLinear::upload_marlin(const model::MarlinForm& f) {
  auto copy = [](const uint8_t* host, uint64_t bytes) {
    DeviceBuffer b(std::max<uint64_t>(bytes, 1));
    if (bytes) CKPT_CUDA(cudaMemcpy(b.data(), host, bytes, cudaMemcpyHostToDevice));
    return b;
  };
  const uint64_t n = f.n, k = f.k, G = f.groups;
  data_ = copy(f.qweight, k / 16 * 2 * n * 4);
  scale_ = copy(f.scales, G * n * 2);
  bytes_ = k / 16 * 2 * n * 4 + G * n * 2;
  marlin_args_ = MarlinGemmArgs{};
  marlin_args_.dtype = f.scale_dtype == DType::F16 ? 0 : 1;
  marlin_args_.n = n;
  marlin_args_.k = k;
  marlin_args_.group_size = f.group_size;
  marlin_args_.b = data_.as<uint32_t>();
  marlin_args_.scales = scale_.data();
  if (f.zeros) {
    zero_ = copy(f.zeros, G * n / 8 * 4);
    marlin_args_.zeros = zero_.as<uint32_t>();
    bytes_ += G * n / 8 * 4;
  }
  if (f.g_idx) {
    g_idx_ = copy(f.g_idx, k * 4);
    perm_ = copy(f.perm, k * 4);
    marlin_args_.g_idx = g_idx_.as<int32_t>();
    marlin_args_.perm = perm_.as<int32_t>();
    bytes_ += 2 * k * 4;
  }
  view_ = LinearView{};
  view_.w = data_.data();
  view_.n = n;
  view_.k = k;
  marlin_ = true;
  format_ = "marlin";
}

uint64_t DeviceLinear::marlin_scratch_bytes(uint64_t n, uint64_t k, uint64_t rows, int sm_count) {
  MarlinGemmArgs a;
  a.m = rows;
  a.n = n;
  a.k = k;
  a.sm_count = sm_count;
  auto align = [](uint64_t b) { return (b + 255) / 256 * 256; };
  return align(rows * k * 2) + align(rows * n * 2) + MarlinGemm::get_workspace_size(a);
}

void DeviceLinear::apply_marlin(const float* x, uint64_t rows, float* y, const LinearContext& ctx, bool accumulate) const {
  const uint64_t n = view_.n, k = view_.k;
  if (ctx.marlin_scratch_bytes < marlin_scratch_bytes(n, k, rows, ctx.sm_count))
    throw std::logic_error("DeviceLinear::apply: Marlin scratch too small");
  uint8_t* a16 = ctx.marlin_scratch;
  uint8_t* c16 = a16 + (rows * k * 2 + 255) / 256 * 256;
  uint8_t* workspace = c16 + (rows * n * 2 + 255) / 256 * 256;
  CKPT_CUDA(f32_to_half(x, rows * k, marlin_args_.dtype, a16, ctx.stream));
  MarlinGemmArgs a = marlin_args_;
  a.m = rows;
  a.a = a16;
  a.c = c16;
  a.sm_count = ctx.sm_count;
  MarlinGemm gemm;
  const Int4Status st = gemm.run(a, workspace, ctx.stream);
  if (st != Int4Status::kSuccess)
    fail(Errc::kUnsupported, "", "",
         std::string("Marlin GEMM [") + std::to_string(rows) + ", " + std::to_string(n) + ", " + std::to_string(k) +
             "] group " + std::to_string(a.group_size) + ": " + int4_status_name(st) +
             (st == Int4Status::kCudaError ? std::string(" (") + cudaGetErrorString(gemm.last_error()) + ")" : ""));
  CKPT_CUDA(half_to_f32_add(c16, marlin_args_.dtype, rows, n, bias_.size() ? bias_.as<float>() : nullptr, accumulate, y,
                            ctx.stream));
}

void DeviceLinear::apply(const float* x, uint64_t rows, float* y, const LinearContext& ctx, bool accumulate,
                         bool gemm) const {
  if (!present()) throw std::logic_error("DeviceLinear::apply on an absent Linear");
  if (marlin_) return apply_marlin(x, rows, y, ctx, accumulate);
  const float* b = bias_.size() ? bias_.as<float>() : nullptr;
  if (!gemm && rows <= kSkinnyMaxRows) {
    CKPT_CUDA(linear_skinny(view_, x, rows, y, b, accumulate, ctx.stream));
    return;
  }
  const float* w = static_cast<const float*>(view_.w);
  if (view_.elem != WeightElem::kF32) {
    if (ctx.scratch_elems < view_.n * view_.k) throw std::logic_error("DeviceLinear::apply: GEMM scratch too small");
    CKPT_CUDA(dequantize_linear(view_, ctx.scratch, ctx.stream));
    w = ctx.scratch;
  }
  // y^T (n x rows, column-major) = W (k x n column-major, transposed) x^T: float32 compute, no TF32.
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  CKPT_CUBLAS(cublasGemmEx(ctx.blas, CUBLAS_OP_T, CUBLAS_OP_N, int(view_.n), int(rows), int(view_.k), &one, w,
                           CUDA_R_32F, int(view_.k), x, CUDA_R_32F, int(view_.k), &beta, y, CUDA_R_32F, int(view_.n),
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  if (b) CKPT_CUDA(add_bias(y, b, rows, view_.n, ctx.stream));
}

void DeviceLinear::apply_same_input(const std::vector<std::pair<const DeviceLinear*, float*>>& outs, const float* x,
                                    uint64_t rows, const LinearContext& ctx) {
  const bool any_marlin = std::any_of(outs.begin(), outs.end(), [](const auto& o) { return o.first->marlin_; });
  if (rows > kSkinnyMaxRows || outs.size() > static_cast<size_t>(kSkinnyMaxJobs) || any_marlin) {
    for (const auto& [l, y] : outs) l->apply(x, rows, y, ctx);
    return;
  }
  std::vector<SkinnyJob> jobs;
  for (const auto& [l, y] : outs) {
    if (!l->present()) throw std::logic_error("DeviceLinear::apply_same_input on an absent Linear");
    jobs.push_back({l->view_, y, l->bias_.size() ? l->bias_.as<float>() : nullptr});
  }
  CKPT_CUDA(linear_skinny_jobs(jobs.data(), static_cast<int>(jobs.size()), x, rows, false, ctx.stream));
}

bool DeviceLinear::apply_normed(const std::vector<std::pair<const DeviceLinear*, float*>>& outs, const float* hid,
                                const float* norm, float eps, uint64_t rows, const LinearContext& ctx) {
  if (rows > kSkinnyMaxRows || outs.empty() || outs.size() > static_cast<size_t>(kSkinnyMaxJobs)) return false;
  std::vector<SkinnyJob> jobs;
  for (const auto& [l, y] : outs) {
    if (!l->present()) throw std::logic_error("DeviceLinear::apply_normed on an absent Linear");
    if (l->marlin_) return false;
    jobs.push_back({l->view_, y, l->bias()});
  }
  const SkinnyFusion fuse{norm, eps, false};
  if (!skinny_fusable(jobs.data(), static_cast<int>(jobs.size()), hid, fuse)) return false;
  CKPT_CUDA(linear_skinny_fused(jobs.data(), static_cast<int>(jobs.size()), hid, rows, fuse, ctx.stream));
  return true;
}

bool DeviceLinear::apply_gated(const DeviceLinear& gate, const DeviceLinear* up, const float* hid, const float* norm,
                               float eps, uint64_t rows, float* act, const LinearContext& ctx) {
  if (!gate.present() || (up && !up->present())) throw std::logic_error("DeviceLinear::apply_gated on an absent Linear");
  if (rows > kSkinnyMaxRows || gate.marlin_ || (up && up->marlin_)) return false;
  SkinnyJob jobs[2];
  if (up) {
    jobs[0] = {gate.view_, act, gate.bias()};
    jobs[1] = {up->view_, nullptr, up->bias()};
  } else {
    const uint64_t n = gate.view_.n / 2;
    if (gate.view_.n % 2 != 0 || !row_slice(gate.view_, 0, n, &jobs[0].w) || !row_slice(gate.view_, n, n, &jobs[1].w))
      return false;
    jobs[0].y = act;
    jobs[0].bias = gate.bias();
    jobs[1].bias = gate.bias() ? gate.bias() + n : nullptr;
  }
  const SkinnyFusion fuse{norm, eps, true};
  if (!skinny_fusable(jobs, 2, hid, fuse)) return false;
  CKPT_CUDA(linear_skinny_fused(jobs, 2, hid, rows, fuse, ctx.stream));
  return true;
}

}  // namespace ckpt::cuda
