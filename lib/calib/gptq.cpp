#include "calib/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "ops/int4_math.h"

namespace ckpt::calib {

void Hessian::add(const double* x, uint64_t tokens) {
  for (uint64_t t = 0; t < tokens; ++t) {
    const double* xt = x + t * k_;
    for (uint64_t a = 0; a < k_; ++a) {
      const double xa = xt[a];
      if (xa == 0.0) continue;
      double* row = &sum_[a * k_];
      for (uint64_t b = a; b < k_; ++b) row[b] += xa * xt[b];
    }
  }
  n_ += tokens;
}

std::vector<double> Hessian::matrix() const {
  std::vector<double> h(k_ * k_, 0.0);
  if (n_ == 0) return h;
  const double f = 2.0 / static_cast<double>(n_);
  for (uint64_t a = 0; a < k_; ++a)
    for (uint64_t b = a; b < k_; ++b) h[a * k_ + b] = h[b * k_ + a] = f * sum_[a * k_ + b];
  return h;
}

namespace {


// Group parameters of a float32 [n, k] weight (the RTN definition).
ops::Int4Issue params_of(const ops::Int4Scheme& scheme, const float* w, uint64_t n, uint64_t k, Int4Weights* out) {
  out->scheme = scheme;
  out->geo = ops::int4_geometry(scheme, n, k);
  out->params.assign(n * out->geo.groups, {});
  const ops::Int4Source src{reinterpret_cast<const uint8_t*>(w), DType::F32, k, 0, n, 0, k};
  return ops::int4_params_reference(scheme, out->geo, src, out->params.data());
}

// In-place lower Cholesky factor of the symmetric positive definite a [k, k] (upper part
// cleared). False when a pivot is not positive and finite.
bool cholesky_lower(std::vector<double>& a, uint64_t k) {
  for (uint64_t j = 0; j < k; ++j) {
    double d = a[j * k + j];
    for (uint64_t p = 0; p < j; ++p) d -= a[j * k + p] * a[j * k + p];
    if (!(d > 0.0) || !std::isfinite(d)) return false;
    const double l = std::sqrt(d);
    a[j * k + j] = l;
    for (uint64_t i = j + 1; i < k; ++i) {
      double s = a[i * k + j];
      for (uint64_t p = 0; p < j; ++p) s -= a[i * k + p] * a[j * k + p];
      a[i * k + j] = s / l;
    }
  }
  for (uint64_t i = 0; i < k; ++i)
    for (uint64_t j = i + 1; j < k; ++j) a[i * k + j] = 0.0;
  return true;
}

// U, the upper Cholesky factor of H⁻¹ (H⁻¹ = Uᵀ U), from H's lower factor L: H⁻¹ = L⁻ᵀ L⁻¹.
bool upper_factor_of_inverse(const std::vector<double>& l, uint64_t k, std::vector<double>& u) {
  std::vector<double> li(k * k, 0.0);  // L⁻¹, lower triangular
  for (uint64_t j = 0; j < k; ++j) {
    li[j * k + j] = 1.0 / l[j * k + j];
    for (uint64_t i = j + 1; i < k; ++i) {
      double s = 0;
      for (uint64_t p = j; p < i; ++p) s += l[i * k + p] * li[p * k + j];
      li[i * k + j] = -s / l[i * k + i];
    }
  }
  std::vector<double> inv(k * k);  // (L⁻¹)ᵀ L⁻¹
  for (uint64_t a = 0; a < k; ++a)
    for (uint64_t b = a; b < k; ++b) {
      double s = 0;
      for (uint64_t p = b; p < k; ++p) s += li[p * k + a] * li[p * k + b];
      inv[a * k + b] = inv[b * k + a] = s;
    }
  if (!cholesky_lower(inv, k)) return false;
  u.assign(k * k, 0.0);  // U = L2ᵀ
  for (uint64_t i = 0; i < k; ++i)
    for (uint64_t j = i; j < k; ++j) u[i * k + j] = inv[j * k + i];
  return true;
}

void set_code(Int4Weights* out, uint64_t r, uint64_t c, double w) {
  const ops::Int4Params& p = out->params[r * out->geo.groups + c / out->geo.group];
  const uint32_t q = ops::int4_code(static_cast<float>(w), p.scale, p.zero);
  out->codes[r * out->geo.k + c] = static_cast<uint8_t>(q);
  out->dequantized[r * out->geo.k + c] = ops::int4_dequant(q, p.zero, p.scale);
}

}  // namespace

ops::Int4Issue rtn_int4(const ops::Int4Scheme& scheme, const float* w, uint64_t n, uint64_t k, Int4Weights* out) {
  if (ops::Int4Issue issue = params_of(scheme, w, n, k, out)) return issue;
  out->codes.assign(n * k, 0);
  out->dequantized.assign(n * k, 0.0);
  for (uint64_t r = 0; r < n; ++r)
    for (uint64_t c = 0; c < k; ++c) set_code(out, r, c, w[r * k + c]);
  return {};
}

std::vector<uint32_t> gptq_sweep_order(const std::vector<double>& diag, bool act_order) {
  std::vector<uint32_t> perm(diag.size());
  std::iota(perm.begin(), perm.end(), 0u);
  if (act_order) std::stable_sort(perm.begin(), perm.end(), [&](uint32_t a, uint32_t b) { return diag[a] > diag[b]; });
  return perm;
}

std::vector<double> gptq_damping_ladder(double first) {
  std::vector<double> ladder;
  for (double damp = first; damp < 1.0; damp += 0.01) ladder.push_back(damp);
  return ladder;
}

ops::Int4Issue gptq_int4(const ops::Int4Scheme& scheme, const float* w, uint64_t n, uint64_t k,
                         const std::vector<double>& h, const GptqOptions& o, Int4Weights* out, GptqOutcome* outcome) {
  if (h.size() != k * k || o.block == 0) throw std::logic_error("gptq_int4: Hessian is not [k, k] or block is 0");
  *outcome = GptqOutcome{};
  if (ops::Int4Issue issue = params_of(scheme, w, n, k, out)) return issue;
  out->codes.assign(n * k, 0);
  out->dequantized.assign(n * k, 0.0);

  std::vector<double> diag(k);
  for (uint64_t c = 0; c < k; ++c) diag[c] = h[c * k + c];
  const std::vector<uint32_t> perm = gptq_sweep_order(diag, o.act_order);
  // Permuted H and W (W as float64 working copy, rows of k).
  std::vector<double> hp(k * k), wp(n * k);
  for (uint64_t a = 0; a < k; ++a)
    for (uint64_t b = 0; b < k; ++b) hp[a * k + b] = h[perm[a] * k + perm[b]];
  for (uint64_t r = 0; r < n; ++r)
    for (uint64_t c = 0; c < k; ++c) wp[r * k + c] = w[r * k + perm[c]];
  for (uint64_t c = 0; c < k; ++c)
    if (hp[c * k + c] == 0.0) {
      hp[c * k + c] = 1.0;
      for (uint64_t r = 0; r < n; ++r) wp[r * k + c] = 0.0;
      ++outcome->dead_inputs;
    }
  double mean_diag = 0;
  for (uint64_t c = 0; c < k; ++c) mean_diag += hp[c * k + c];
  mean_diag /= static_cast<double>(k);

  std::vector<double> u;
  bool ok = false;
  for (double damp : gptq_damping_ladder(o.damp)) {
    outcome->damp = damp;
    std::vector<double> a = hp;
    for (uint64_t c = 0; c < k; ++c) a[c * k + c] += damp * mean_diag;
    if (cholesky_lower(a, k) && upper_factor_of_inverse(a, k, u)) {
      ok = true;
      break;
    }
  }
  if (!ok || !std::isfinite(mean_diag)) {
    outcome->rtn_fallback = true;
    for (uint64_t r = 0; r < n; ++r)
      for (uint64_t c = 0; c < k; ++c) set_code(out, r, c, w[r * k + c]);
    return {};
  }

  const uint64_t B = o.block;
  std::vector<double> err(n * B);
  for (uint64_t i1 = 0; i1 < k; i1 += B) {
    const uint64_t i2 = std::min(i1 + B, k), cnt = i2 - i1;
    for (uint64_t i = 0; i < cnt; ++i) {
      const uint64_t col = i1 + i;
      const double d = u[col * k + col];
      for (uint64_t r = 0; r < n; ++r) {
        double* wr = &wp[r * k];
        set_code(out, r, perm[col], wr[col]);
        const double diff = wr[col] - out->dequantized[r * k + perm[col]];
        outcome->sweep_loss += diff * diff / (d * d) / 2;
        const double e = diff / d;
        for (uint64_t j = col + 1; j < i2; ++j) wr[j] -= e * u[col * k + j];
        err[r * B + i] = e;
      }
    }
    // Lazy batch update of the trailing columns: W[:, i2:] -= E · U[i1:i2, i2:].
    for (uint64_t r = 0; r < n; ++r) {
      double* wr = &wp[r * k];
      for (uint64_t i = 0; i < cnt; ++i) {
        const double e = err[r * B + i];
        const double* ui = &u[(i1 + i) * k];
        for (uint64_t j = i2; j < k; ++j) wr[j] -= e * ui[j];
      }
    }
  }
  return {};
}

double output_error(const std::vector<double>& h, const float* w, const std::vector<double>& dequantized, uint64_t n,
                    uint64_t k) {
  double total = 0;
  std::vector<double> e(k);
  for (uint64_t r = 0; r < n; ++r) {
    for (uint64_t c = 0; c < k; ++c) e[c] = static_cast<double>(w[r * k + c]) - dequantized[r * k + c];
    for (uint64_t a = 0; a < k; ++a) {
      if (e[a] == 0.0) continue;
      double s = 0;
      for (uint64_t b = 0; b < k; ++b) s += h[a * k + b] * e[b];
      total += e[a] * s;
    }
  }
  return total / 2;
}

std::vector<uint32_t> pack_codes_k(const std::vector<uint8_t>& codes, uint64_t n, uint64_t k) {
  const uint64_t words = (k + 7) / 8;
  std::vector<uint32_t> out(n * words, 0);
  for (uint64_t r = 0; r < n; ++r)
    for (uint64_t c = 0; c < k; ++c) out[r * words + c / 8] |= static_cast<uint32_t>(codes[r * k + c] & 15) << (4 * (c % 8));
  return out;
}

}  // namespace ckpt::calib
