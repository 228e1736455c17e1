#include "calib/gptq_device.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>

#include "calib/gptq_kernels.h"
#include "ops/int4_math.h"

namespace ckpt::cuda {

namespace {

int scale_type_of(DType t) {
  return t == DType::F16 ? ops::kInt4ScaleF16 : t == DType::BF16 ? ops::kInt4ScaleBF16 : ops::kInt4ScaleF32;
}
int format_of(ops::Int4Format f) {
  return f == ops::Int4Format::kGptq ? ops::kInt4Gptq : f == ops::Int4Format::kAwq ? ops::kInt4Awq : ops::kInt4Ct;
}

template <class T>
void download_async(std::vector<T>& host, const void* device, uint64_t count, cudaStream_t stream) {
  host.resize(count);
  if (count) CKPT_CUDA(cudaMemcpyAsync(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
}

}  // namespace

// --- the Hessian ------------------------------------------------------------------------------

DeviceHessian::DeviceHessian(uint64_t k, cudaStream_t stream) : k_(k), stream_(stream), sum_(k * k * sizeof(float)) {
  if (k > static_cast<uint64_t>(INT_MAX)) throw std::logic_error("DeviceHessian: width above INT_MAX");
  CKPT_CUBLAS(cublasCreate(blas_.out()));
  CKPT_CUBLAS(cublasSetStream(blas_, stream_));
  CKPT_CUDA(cudaMemsetAsync(sum_.data(), 0, k * k * sizeof(float), stream_));
}

void DeviceHessian::add(const void* x, Input type, uint64_t tokens) {
  const cudaDataType dt = type == Input::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
  const uint64_t esize = type == Input::kBF16 ? 2 : 4;
  const float one = 1.0f;
  const int k = static_cast<int>(k_);
  // Σ x xᵀ += Xᵀ X: X row-major [tokens, k] is column-major Xᵀ [k, tokens] (ld k), so the product is
  // M·Mᵀ with M that view (opA N, opB T). Chunks keep the inner dimension an int.
  for (uint64_t t0 = 0; t0 < tokens && k_ > 0;) {
    const uint64_t chunk = std::min<uint64_t>(tokens - t0, 1u << 30);
    const void* xp = static_cast<const uint8_t*>(x) + t0 * k_ * esize;
    CKPT_CUBLAS(cublasGemmEx(blas_, CUBLAS_OP_N, CUBLAS_OP_T, k, k, static_cast<int>(chunk), &one, xp, dt, k, xp, dt,
                             k, &one, sum_.data(), CUDA_R_32F, k, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    t0 += chunk;
  }
  n_ += tokens;
}

void DeviceHessian::matrix(float* out) const {
  if (n_ == 0) {
    CKPT_CUDA(cudaMemsetAsync(out, 0, k_ * k_ * sizeof(float), stream_));
    return;
  }
  const float f = static_cast<float>(2.0 / static_cast<double>(n_));
  CKPT_CUDA(gptq::launch_scale_symmetric(sum_.as<float>(), k_, f, out, stream_));
}

DeviceBuffer DeviceHessian::matrix() const {
  DeviceBuffer out(k_ * k_ * sizeof(float));
  matrix(out.as<float>());
  return out;
}

// --- the sweep --------------------------------------------------------------------------------

DeviceGptq::DeviceGptq(cudaStream_t stream) : stream_(stream) {
  CKPT_CUBLAS(cublasCreate(blas_.out()));
  CKPT_CUBLAS(cublasSetStream(blas_, stream_));
  CKPT_CUSOLVER(cusolverDnCreate(solver_.out()));
  CKPT_CUSOLVER(cusolverDnSetStream(solver_, stream_));
}

ops::Int4Issue DeviceGptq::run(const ops::Int4Scheme& scheme, const float* w, uint64_t n, uint64_t k, const float* h,
                               const calib::GptqOptions& o, calib::GptqOutcome* outcome) {
  if (o.block == 0 || o.block > static_cast<uint64_t>(gptq::kMaxBlock))
    throw std::logic_error("gptq_int4_device: block must be 1.." + std::to_string(gptq::kMaxBlock));
  if (n > static_cast<uint64_t>(INT_MAX) || k > static_cast<uint64_t>(INT_MAX))
    throw std::logic_error("gptq_int4_device: a dimension above INT_MAX");
  *outcome = calib::GptqOutcome{};
  scheme_ = scheme;
  geo_ = ops::int4_geometry(scheme, n, k);
  const uint64_t G = geo_.groups;
  cudaStream_t s = stream_;

  // Group parameters from the original weights (the RTN definition; lib/calib/gptq.h says why).
  scales_.reserve(n * G * sizeof(float));
  zeros_.reserve(n * G);
  flags_.reserve(sizeof(unsigned));
  CKPT_CUDA(cudaMemsetAsync(flags_.data(), 0, sizeof(unsigned), s));
  gptq::ParamsArgs pa;
  pa.w = w;
  pa.n = n;
  pa.k = k;
  pa.group = geo_.group;
  pa.groups = G;
  pa.symmetric = scheme.symmetric;
  pa.scale_type = scale_type_of(scheme.scale_dtype);
  pa.format = format_of(scheme.format);
  pa.scales = scales_.as<float>();
  pa.zeros = zeros_.as<uint8_t>();
  pa.flags = flags_.as<unsigned>();
  CKPT_CUDA(gptq::launch_params(pa, s));
  unsigned flags = 0;
  CKPT_CUDA(cudaMemcpyAsync(&flags, flags_.data(), sizeof flags, cudaMemcpyDeviceToHost, s));
  CKPT_CUDA(cudaStreamSynchronize(s));
  if (flags) {
    // A bad weight: the CPU reference names the first problem, in its order, as calib::gptq_int4.
    std::vector<float> hw;
    download_async(hw, w, n * k, s);
    CKPT_CUDA(cudaStreamSynchronize(s));
    std::vector<ops::Int4Params> params(n * G);
    const ops::Int4Source src{reinterpret_cast<const uint8_t*>(hw.data()), DType::F32, k, 0, n, 0, k};
    if (ops::Int4Issue issue = ops::int4_params_reference(scheme, geo_, src, params.data())) return issue;
    throw std::logic_error("gptq_int4_device: the device flagged a weight the reference accepts");
  }
  codes_.reserve(n * k);
  deq_.reserve(n * k * sizeof(float));
  if (n == 0 || k == 0) return {};

  // Sweep order from diag(H), chosen as the CPU chooses it (calib::gptq_sweep_order).
  std::vector<float> diag(k);
  CKPT_CUDA(cudaMemcpy2DAsync(diag.data(), sizeof(float), h, (k + 1) * sizeof(float), sizeof(float), k,
                              cudaMemcpyDeviceToHost, s));
  CKPT_CUDA(cudaStreamSynchronize(s));
  const std::vector<uint32_t> perm = calib::gptq_sweep_order(std::vector<double>(diag.begin(), diag.end()), o.act_order);
  double mean_diag = 0;
  for (uint64_t c = 0; c < k; ++c) {
    const float d = diag[perm[c]];
    if (d == 0.0f) ++outcome->dead_inputs;  // H[d, d] = 1 and W[:, d] = 0 (launch_permute)
    mean_diag += d == 0.0f ? 1.0 : static_cast<double>(d);
  }
  mean_diag /= static_cast<double>(k);
  perm_.reserve(k * sizeof(uint32_t));
  CKPT_CUDA(cudaMemcpyAsync(perm_.data(), perm.data(), k * sizeof(uint32_t), cudaMemcpyHostToDevice, s));
  hp_.reserve(k * k * sizeof(float));
  wp_.reserve(n * k * sizeof(float));
  a_.reserve(k * k * sizeof(float));
  CKPT_CUDA(gptq::launch_permute(h, w, perm_.as<uint32_t>(), n, k, hp_.as<float>(), wp_.as<float>(), s));

  // The damping ladder: L = chol(H + λI) (lower, column-major: H is symmetric, so the row-major
  // buffer is the same matrix), H⁻¹ = L⁻ᵀL⁻¹ (potri), then the lower factor L2 of H⁻¹, whose
  // column-major storage read row-major is U = L2ᵀ, the upper factor GPTQ sweeps with (only
  // U[c, j >= c] is read below). A rung's statuses and diagonal checks come back after the first
  // factorisation (a failed rung stops there, as the CPU's &&) and after the last.
  const int ki = static_cast<int>(k);
  float* a = a_.as<float>();
  int lw_potrf = 0, lw_potri = 0;
  CKPT_CUSOLVER(cusolverDnSpotrf_bufferSize(solver_, CUBLAS_FILL_MODE_LOWER, ki, a, ki, &lw_potrf));
  CKPT_CUSOLVER(cusolverDnSpotri_bufferSize(solver_, CUBLAS_FILL_MODE_LOWER, ki, a, ki, &lw_potri));
  const int lwork = std::max({lw_potrf, lw_potri, 1});
  work_.reserve(static_cast<size_t>(lwork) * sizeof(float));
  info_.reserve(5 * sizeof(int));
  int* info = info_.as<int>();
  // Whether the first `count` statuses are all 0.
  const auto passed = [&](int count) {
    int got[5] = {};
    CKPT_CUDA(cudaMemcpyAsync(got, info, count * sizeof(int), cudaMemcpyDeviceToHost, s));
    CKPT_CUDA(cudaStreamSynchronize(s));
    return std::all_of(got, got + count, [](int v) { return v == 0; });
  };
  bool ok = false;
  for (double damp : calib::gptq_damping_ladder(o.damp)) {
    outcome->damp = damp;
    if (!std::isfinite(mean_diag)) continue;
    CKPT_CUDA(cudaMemsetAsync(info, 0, 5 * sizeof(int), s));
    CKPT_CUDA(gptq::launch_damped_copy(hp_.as<float>(), k, static_cast<float>(damp * mean_diag), a, s));
    CKPT_CUSOLVER(cusolverDnSpotrf(solver_, CUBLAS_FILL_MODE_LOWER, ki, a, ki, work_.as<float>(), lwork, info + 0));
    CKPT_CUDA(gptq::launch_check_diagonal(a, k, info + 1, s));
    if (!passed(2)) continue;
    CKPT_CUSOLVER(cusolverDnSpotri(solver_, CUBLAS_FILL_MODE_LOWER, ki, a, ki, work_.as<float>(), lwork, info + 2));
    CKPT_CUSOLVER(cusolverDnSpotrf(solver_, CUBLAS_FILL_MODE_LOWER, ki, a, ki, work_.as<float>(), lwork, info + 3));
    CKPT_CUDA(gptq::launch_check_diagonal(a, k, info + 4, s));
    if (passed(5)) {
      ok = true;
      break;
    }
  }
  if (!ok || !std::isfinite(mean_diag)) {
    outcome->rtn_fallback = true;
    CKPT_CUDA(gptq::launch_rtn(w, n, k, geo_.group, G, scales_.as<float>(), zeros_.as<uint8_t>(),
                               codes_.as<uint8_t>(), deq_.as<float>(), s));
    CKPT_CUDA(cudaStreamSynchronize(s));
    return {};
  }

  // The sweep: per block, the in-block column loop (one kernel), then the lazy batch update of
  // the trailing columns, W[:, i2:] −= E · U[i1:i2, i2:], as one float32 GEMM (CUBLAS_COMPUTE_32F,
  // never TF32: its 10-bit products would move codes). In cuBLAS's column-major terms:
  // C = W[:, i2:]ᵀ (ld k) −= U[i1:i2, i2:]ᵀ (ld k) · Eᵀ (ld kMaxBlock).
  err_.reserve(n * gptq::kMaxBlock * sizeof(float));
  loss_.reserve(n * sizeof(double));
  CKPT_CUDA(cudaMemsetAsync(loss_.data(), 0, n * sizeof(double), s));
  const float minus_one = -1.0f, one = 1.0f;
  for (uint64_t i1 = 0; i1 < k; i1 += o.block) {
    const uint64_t i2 = std::min(i1 + o.block, k), cnt = i2 - i1;
    gptq::SweepArgs sa;
    sa.wp = wp_.as<float>();
    sa.u = a;
    sa.perm = perm_.as<uint32_t>();
    sa.scales = scales_.as<float>();
    sa.zeros = zeros_.as<uint8_t>();
    sa.n = n;
    sa.k = k;
    sa.group = geo_.group;
    sa.groups = G;
    sa.i1 = i1;
    sa.cnt = static_cast<int>(cnt);
    sa.err = err_.as<float>();
    sa.codes = codes_.as<uint8_t>();
    sa.dequantized = deq_.as<float>();
    sa.loss = loss_.as<double>();
    CKPT_CUDA(gptq::launch_sweep_block(sa, s));
    if (i2 == k) break;
    CKPT_CUBLAS(cublasGemmEx(blas_, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(k - i2), static_cast<int>(n),
                             static_cast<int>(cnt), &minus_one, a + i1 * k + i2, CUDA_R_32F, ki, err_.data(),
                             CUDA_R_32F, gptq::kMaxBlock, &one, wp_.as<float>() + i2, CUDA_R_32F, ki,
                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  std::vector<double> loss;
  download_async(loss, loss_.data(), n, s);
  CKPT_CUDA(cudaStreamSynchronize(s));
  for (double l : loss) outcome->sweep_loss += l;  // row order: deterministic
  return {};
}

void DeviceGptq::download(calib::Int4Weights* out) const {
  const uint64_t n = geo_.n, k = geo_.k, P = n * geo_.groups;
  std::vector<float> scales, deq;
  std::vector<uint8_t> zeros;
  download_async(scales, scales_.data(), P, stream_);
  download_async(zeros, zeros_.data(), P, stream_);
  download_async(out->codes, codes_.data(), n * k, stream_);
  download_async(deq, deq_.data(), n * k, stream_);
  CKPT_CUDA(cudaStreamSynchronize(stream_));
  out->scheme = scheme_;
  out->geo = geo_;
  out->params.resize(P);
  for (uint64_t i = 0; i < P; ++i) out->params[i] = {scales[i], zeros[i]};
  out->dequantized.assign(deq.begin(), deq.end());
}

ops::Int4Issue gptq_int4_device(const ops::Int4Scheme& scheme, const float* w, uint64_t n, uint64_t k, const float* h,
                                const calib::GptqOptions& options, calib::Int4Weights* out,
                                calib::GptqOutcome* outcome, cudaStream_t stream) {
  DeviceGptq g(stream);
  if (ops::Int4Issue issue = g.run(scheme, w, n, k, h, options, outcome)) return issue;
  g.download(out);
  return {};
}

}  // namespace ckpt::cuda
