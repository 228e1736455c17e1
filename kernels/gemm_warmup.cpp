#include "gemm_warmup.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "core/sizes.h"
#include "gemm_kernels.h"
#include "ops/int4_math.h"
#include "validate/activations.h"
#include "validate/gemm_check.h"

namespace ckpt::cuda {

namespace {

using validate::LinearWeight;

constexpr size_t kWorkspaceBytes = 32ull << 20;
constexpr uint64_t kKvContext = 2048;  // tokens per sequence the KV cache holds
constexpr int kReplays = 5;

enum class Path { kCublas, kLtFp8, kDequantCublas };

const char* path_name(Path p) {
  switch (p) {
    case Path::kCublas: return "cublas";
    case Path::kLtFp8: return "cublaslt-fp8";
    case Path::kDequantCublas: return "dequant+cublas";
  }
  return "?";
}

size_t elem_size(Elem e) { return e == Elem::kF32 ? 4 : e == Elem::kE4M3 ? 1 : 2; }

cudaDataType_t cuda_type(Elem e) {
  switch (e) {
    case Elem::kF32: return CUDA_R_32F;
    case Elem::kF16: return CUDA_R_16F;
    case Elem::kBF16: return CUDA_R_16BF;
    case Elem::kE4M3: return CUDA_R_8F_E4M3;
  }
  return CUDA_R_32F;
}

Elem elem_of(DType t) {
  switch (t) {
    case DType::F32: return Elem::kF32;
    case DType::F16: return Elem::kF16;
    case DType::BF16: return Elem::kBF16;
    default: return Elem::kE4M3;
  }
}

DType dtype_of(Elem e) { return e == Elem::kF32 ? DType::F32 : e == Elem::kF16 ? DType::F16 : DType::BF16; }

size_t align256(size_t n) { return (n + 255) & ~size_t{255}; }

// The largest power of two (at most 256) dividing a pointer: what cuBLASLt may assume of it.
uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct LtShape {
  LtLayout b, c;
  cublasLtMatmulAlgo_t algo{};
};

struct WeightRun {
  const LinearWeight* lw = nullptr;
  Path path = Path::kCublas;
  std::string note;
  Elem act = Elem::kBF16, out = Elem::kBF16;
  const uint8_t* w = nullptr;  // device bytes of the weight as the GEMM reads them
  DeviceBuffer realigned;      // when the file offset breaks cuBLASLt's 16-byte alignment
  DequantArgs dq{};
  size_t scale_slot = 0;       // float index into the scale array, 16-byte aligned (kLtFp8)
  size_t out_off = 0, ref_off = 0;
  LtMatmulDesc op;
  LtLayout a;
  std::vector<LtShape> lt;  // per batch size index
  std::string file;
};

Elem model_activation_type(const validate::Target& t) {
  if (t.ck.config)
    for (const char* key : {"dtype", "torch_dtype"})
      if (t.ck.config->contains(key) && (*t.ck.config)[key] == "float16") return Elem::kF16;
  return Elem::kBF16;
}

}  // namespace

DequantArgs dequant_args(const LinearWeight& lw, const std::function<const void*(const TensorRef&)>& device) {
  DequantArgs a{};
  a.weight = device(*lw.weight);
  a.weight_type = elem_of(lw.weight->dtype());
  a.n = lw.n;
  a.k = lw.k;
  a.scale_kind = ScaleKind::kNone;
  if (lw.is_int4()) {
    a.scale_kind = ScaleKind::kInt4;
    a.int4_format = lw.int4->format == ops::Int4Format::kGptq  ? ops::kInt4Gptq
                    : lw.int4->format == ops::Int4Format::kAwq ? ops::kInt4Awq
                                                               : ops::kInt4Ct;
    a.int4_zero_offset = lw.int4->gptq_zero_offset;
    a.scale = device(*lw.scale);
    a.scale_type = elem_of(lw.scale->dtype());
    a.zeros = lw.zeros ? device(*lw.zeros) : nullptr;
    a.g_idx = lw.g_idx && lw.act_order ? device(*lw.g_idx) : nullptr;  // without act-order vLLM reads k / G
    const ops::Int4Geometry geo = ops::int4_geometry(*lw.int4, lw.n, lw.k);
    a.group = geo.group;
    a.groups = geo.groups;
  } else if (lw.fp8()) {
    a.scale = device(*lw.scale);
    a.scale_type = elem_of(lw.scale->dtype());
    a.block_n = lw.block_n;
    a.block_k = lw.block_k;
    a.scale_kind = lw.layout == quant::Granularity::kTensor    ? ScaleKind::kTensor
                   : lw.layout == quant::Granularity::kChannel ? ScaleKind::kChannel
                                                               : ScaleKind::kBlock;
  }
  return a;
}

// Activations live in one [max_batch, max_k] pool per dtype; a weight with K columns reads its
// rows with stride K (every GEMM and its reference read the same elements, and cuBLASLt FP8
// keeps its leading-dimension rule satisfied whenever K is).
struct GemmWarmup::Impl {
  const validate::Target& target;
  std::vector<int> batches;
  int max_batch = 1;
  // cuBLASLt FP8 has algorithms only for batch (N) dimensions that are multiples of 16, so FP8
  // GEMMs run on the batch rounded up, as serving engines pad it; activation pools and output
  // slots are sized for that, and only the first `batch` columns are compared and reported.
  static int lt_batch(int b) { return (b + 15) / 16 * 16; }
  int pool_batch() const { return lt_batch(max_batch); }
  std::vector<WeightRun> runs;
  Stream stream;
  BlasHandle blas;
  LtHandle lt;
  DeviceBuffer workspace, lt_workspace, kv_cache, out_arena, ref_arena, w64, dequant_scratch, scales, stats;
  std::map<Elem, DeviceBuffer> x;
  std::map<Elem, DeviceBuffer> x_ref;
  uint64_t max_k = 0;

  Impl(const validate::Target& t, const std::vector<LoadedFile>& files, std::vector<int> b) : target(t) {
    std::set<int> uniq(b.begin(), b.end());
    batches.assign(uniq.begin(), uniq.end());
    max_batch = batches.back();
    const Elem model_act = model_activation_type(t);
    for (const auto& lw : t.linears) {
      WeightRun r;
      r.lw = &lw;
      r.file = t.ck.files[lw.weight->view.file].path;
      r.w = files[lw.weight->view.file].bytes.data() + lw.weight->view.offset;
      r.dq = dequant_args(lw, [&](const TensorRef& x) -> const void* {
        return files[x.view.file].bytes.data() + x.view.offset;
      });
      if (lw.is_int4()) {
        // Dequantized from the loaded bytes in the stored layout to float32 (exact: (q - z) * S
        // has at most 16 significant bits), then a float32 cuBLAS GEMM.
        r.path = Path::kDequantCublas;
        r.act = r.out = Elem::kF32;
      } else if (!lw.fp8()) {
        r.path = Path::kCublas;
        r.act = r.out = elem_of(lw.weight->dtype());
      } else {
        r.out = model_act;
        if (lw.layout == quant::Granularity::kTensor) {
          r.path = Path::kLtFp8;
          r.act = Elem::kE4M3;
        } else {
          r.path = Path::kDequantCublas;
          r.act = model_act;
          r.note = std::string("cuBLASLt FP8 takes per-tensor scales here; ") + validate::scale_layout_name(lw.layout) +
                   " scales are dequantized first";
        }
      }
      max_k = std::max(max_k, lw.k);
      runs.push_back(std::move(r));
    }
  }

  // cuBLASLt FP8 for a per-tensor weight: descriptors and an algorithm for every batch size, or
  // the reason there is none (then the weight takes the dequantize + cuBLAS path).
  std::string setup_lt(WeightRun& r) {
    const uint64_t n = r.lw->n, k = r.lw->k;
    if (reinterpret_cast<uintptr_t>(r.w) % 16 != 0) {
      r.realigned = DeviceBuffer(n * k);
      CKPT_CUDA(cudaMemcpy(r.realigned.data(), r.w, n * k, cudaMemcpyDeviceToDevice));
      r.w = r.realigned.data();
    }
    CKPT_CUBLAS(cublasLtMatmulDescCreate(r.op.out(), CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t t = CUBLAS_OP_T, nt = CUBLAS_OP_N;
    CKPT_CUBLAS(cublasLtMatmulDescSetAttribute(r.op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
    CKPT_CUBLAS(cublasLtMatmulDescSetAttribute(r.op, CUBLASLT_MATMUL_DESC_TRANSB, &nt, sizeof nt));
    float* a_scale = scales.as<float>() + r.scale_slot;
    float* b_scale = scales.as<float>();  // slot 0: the activation scale
    CKPT_CUBLAS(cublasLtMatmulDescSetAttribute(r.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale, sizeof a_scale));
    CKPT_CUBLAS(cublasLtMatmulDescSetAttribute(r.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale, sizeof b_scale));
    CKPT_CUBLAS(cublasLtMatrixLayoutCreate(r.a.out(), CUDA_R_8F_E4M3, k, n, k));
    LtPreference pref;
    CKPT_CUBLAS(cublasLtMatmulPreferenceCreate(pref.out()));
    const size_t ws = kWorkspaceBytes;
    CKPT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    // The heuristic assumes 256-byte aligned operands unless told; a weight inside a file buffer
    // is often aligned less, and an algorithm chosen for more would be refused at run time.
    void* y = out_arena.data() + r.out_off;
    const void* xq = x.at(Elem::kE4M3).data();
    const uint32_t align_a = alignment_of(r.w), align_b = alignment_of(xq), align_cd = alignment_of(y);
    CKPT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof align_a));
    CKPT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof align_b));
    CKPT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_cd, sizeof align_cd));
    CKPT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_cd, sizeof align_cd));
    std::string why;
    const float one = 1.0f, zero = 0.0f;
    for (int b : batches) {
      LtShape s;
      const int pb = lt_batch(b);
      CKPT_CUBLAS(cublasLtMatrixLayoutCreate(s.b.out(), CUDA_R_8F_E4M3, k, pb, k));
      CKPT_CUBLAS(cublasLtMatrixLayoutCreate(s.c.out(), cuda_type(r.out), n, pb, n));
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, r.op, r.a, s.b, s.c, s.c, pref, 1, &result, &found);
      s.algo = result.algo;
      r.lt.push_back(std::move(s));
      const LtShape& placed = r.lt.back();
      if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
        why = "cuBLASLt FP8 has no algorithm for [" + std::to_string(n) + "," + std::to_string(k) + "] at batch " +
              std::to_string(b) + " (padded to " + std::to_string(pb) + "); dequantized first";
        break;
      }
      // One trial run before any graph capture: a refusal here is a fallback, not a failure.
      st = cublasLtMatmul(lt, r.op, &one, r.w, r.a, xq, placed.b, &zero, y, placed.c, y, placed.c, &placed.algo,
                          lt_workspace.data(), kWorkspaceBytes, stream);
      if (st != CUBLAS_STATUS_SUCCESS) {
        why = std::string("cuBLASLt FP8 matmul refused [") + std::to_string(n) + "," + std::to_string(k) + "] at batch " +
              std::to_string(b) + " (" + cublasGetStatusString(st) + "); dequantized first";
        break;
      }
    }
    CKPT_CUDA(cudaStreamSynchronize(stream));
    return why;
  }

  void enqueue(WeightRun& r, size_t batch_index) {
    const int b = batches[batch_index];
    const int n = static_cast<int>(r.lw->n), k = static_cast<int>(r.lw->k);
    void* y = out_arena.data() + r.out_off;
    const float one = 1.0f, zero = 0.0f;
    if (r.path == Path::kLtFp8) {
      const LtShape& s = r.lt[batch_index];
      CKPT_CUBLAS(cublasLtMatmul(lt, r.op, &one, r.w, r.a, x.at(Elem::kE4M3).data(), s.b, &zero, y, s.c, y, s.c,
                                 &s.algo, lt_workspace.data(), kWorkspaceBytes, stream));
      return;
    }
    const void* w = r.w;
    Elem w_type = elem_of(r.lw->weight->dtype());
    if (r.path == Path::kDequantCublas) {
      CKPT_CUDA(dequantize_to(r.dq, r.act, dequant_scratch.data(), stream));
      w = dequant_scratch.data();
      w_type = r.act;
    }
    CKPT_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, b, k, &one, w, cuda_type(w_type), k,
                             x.at(r.act).data(), cuda_type(r.act), k, &zero, y, cuda_type(r.out), n,
                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  unsigned long long* stats_slot(size_t weight, size_t pass) {
    return stats.as<unsigned long long>() + 3 * (pass * runs.size() + weight);
  }

  // Reads back the stats of `pass` and records a failure for every weight out of bounds.
  double judge_pass(validate::PhaseScope& scope, size_t pass, const std::string& check, const std::string& what) {
    std::vector<unsigned long long> host(3 * runs.size());
    CKPT_CUDA(cudaMemcpy(host.data(), stats_slot(0, pass), host.size() * 8, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (size_t i = 0; i < runs.size(); ++i) {
      validate::GemmStats s;
      std::memcpy(&s.max_abs_err, &host[3 * i], 8);
      std::memcpy(&s.max_abs_ref, &host[3 * i + 1], 8);
      s.nonfinite = host[3 * i + 2];
      const double tol = validate::relative_tolerance(dtype_of(runs[i].out), runs[i].path == Path::kDequantCublas);
      std::string why = validate::judge(s, tol);
      worst = std::max(worst, s.relative_error());
      if (!why.empty())
        scope.fail(check, runs[i].file, runs[i].lw->name,
                   runs[i].lw->format() + " via " + path_name(runs[i].path) + " " + what + ": " + why);
    }
    return worst;
  }
};

GemmWarmup::GemmWarmup(const validate::Target& target, const std::vector<LoadedFile>& files, std::vector<int> batch_sizes)
    : impl_(std::make_unique<Impl>(target, files, std::move(batch_sizes))) {}

GemmWarmup::~GemmWarmup() = default;

void GemmWarmup::allocate(validate::PhaseScope& scope) {
  Impl& m = *impl_;
  m.stream = new_stream();
  CKPT_CUBLAS(cublasCreate(m.blas.out()));
  CKPT_CUBLAS(cublasLtCreate(m.lt.out()));
  CKPT_CUBLAS(cublasSetStream(m.blas, m.stream));
  m.workspace = DeviceBuffer(kWorkspaceBytes);
  m.lt_workspace = DeviceBuffer(kWorkspaceBytes);
  // cuBLAS must not allocate while a graph is being captured.
  CKPT_CUBLAS(cublasSetWorkspace(m.blas, m.workspace.data(), kWorkspaceBytes));

  // FP8 scales as float32: slot 0 is the activation scale, then one per per-tensor weight. Each
  // slot starts a 16-byte line: cuBLASLt's FP8 kernels refuse a scale pointer aligned less
  // ("not supported" from cublasLtMatmul although the heuristic offered the algorithm; seen on the
  // H100 with cuBLASLt 13.1, where only the weights whose packed slot happened to fall on 16 bytes
  // ran).
  constexpr size_t kFloatsPerSlot = 16 / sizeof(float);
  size_t slots = 1;
  for (auto& r : m.runs)
    if (r.path == Path::kLtFp8) r.scale_slot = kFloatsPerSlot * slots++;
  m.scales = DeviceBuffer(slots * kFloatsPerSlot * sizeof(float));
  const float act_scale = validate::kFp8ActivationScale;
  CKPT_CUDA(cudaMemcpy(m.scales.data(), &act_scale, sizeof act_scale, cudaMemcpyHostToDevice));
  for (auto& r : m.runs)
    if (r.path == Path::kLtFp8) CKPT_CUDA(scale_to_f32(r.dq.scale, r.dq.scale_type, m.scales.as<float>() + r.scale_slot, m.stream));
  // Activations in every dtype some path reads, with their float64 values for the reference.
  std::set<Elem> acts;
  uint64_t out_bytes = 0, ref_elems = 0, max_nk = 0, dequant_bytes = 0;
  for (auto& r : m.runs) {
    acts.insert(r.act);
    acts.insert(r.out);  // a cuBLASLt weight may fall back to dequantize + GEMM in the output dtype
    r.out_off = out_bytes;
    r.ref_off = ref_elems;
    out_bytes += align256(uint64_t(m.pool_batch()) * r.lw->n * elem_size(r.out));
    ref_elems += m.max_batch * r.lw->n;
    max_nk = std::max(max_nk, r.lw->n * r.lw->k);
    // FP8 falls back to the activation dtype (2 bytes), INT4 dequantizes to float32.
    if (r.lw->fp8() || r.lw->is_int4())
      dequant_bytes = std::max(dequant_bytes, r.lw->n * r.lw->k * (r.lw->is_int4() ? 4 : 2));
  }
  uint64_t act_bytes = 0;
  for (Elem e : acts) {
    const uint64_t elems = uint64_t(m.pool_batch()) * m.max_k;
    m.x[e] = DeviceBuffer(align256(elems * elem_size(e)));
    m.x_ref[e] = DeviceBuffer(elems * sizeof(double));
    CKPT_CUDA(make_activations(m.pool_batch(), m.max_k, e, m.x[e].data(), m.x_ref[e].as<double>(), m.stream));
    act_bytes += elems * (elem_size(e) + sizeof(double));
  }
  m.out_arena = DeviceBuffer(std::max<uint64_t>(out_bytes, 256));
  m.ref_arena = DeviceBuffer(std::max<uint64_t>(ref_elems, 1) * sizeof(double));
  m.w64 = DeviceBuffer(std::max<uint64_t>(max_nk, 1) * sizeof(double));
  m.dequant_scratch = DeviceBuffer(std::max<uint64_t>(dequant_bytes, 256));
  m.stats = DeviceBuffer(3 * 8 * m.runs.size() * (1 + m.batches.size()) + 8);
  CKPT_CUDA(cudaMemsetAsync(m.stats.data(), 0, m.stats.size(), m.stream));
  CKPT_CUDA(cudaStreamSynchronize(m.stream));

  // cuBLASLt FP8 for per-tensor weights, each tried once per batch size; a weight it refuses
  // takes the dequantize + cuBLAS path, and the report says why.
  size_t lt_count = 0, fallback = 0;
  for (auto& r : m.runs) {
    if (r.path != Path::kLtFp8) continue;
    std::string why = m.setup_lt(r);
    if (why.empty()) {
      ++lt_count;
      continue;
    }
    r.path = Path::kDequantCublas;
    r.act = r.out;
    r.note = why;
    ++fallback;
  }

  // The KV cache a decode step at the largest batch would use: layers x {K, V} x batch x
  // context x local KV heads x head dim, in the activation dtype.
  uint64_t kv_bytes = 0;
  std::string kv_note = "no KV cache: config.json lacks the attention shape";
  if (const auto& c = m.target.ck.config) {
    auto num = [&](const char* key) -> uint64_t { return c->contains(key) && (*c)[key].is_number_unsigned() ? (*c)[key].get<uint64_t>() : 0; };
    std::set<std::string> layers;
    for (const auto& t : m.target.ck.tensors) {
      auto p = t.name.find("layers.");
      if (p != std::string::npos) layers.insert(t.name.substr(0, t.name.find('.', p + 7)));
    }
    const uint64_t heads = num("num_attention_heads"), kv = num("num_key_value_heads") ? num("num_key_value_heads") : heads;
    const uint64_t head_dim = num("head_dim") ? num("head_dim") : (heads ? num("hidden_size") / heads : 0);
    uint64_t tp = 1;
    if (m.target.parallel && m.target.parallel->contains("tp_size") && (*m.target.parallel)["tp_size"].is_number_unsigned())
      tp = std::max<uint64_t>(1, (*m.target.parallel)["tp_size"].get<uint64_t>());
    const uint64_t kv_local = std::max<uint64_t>(1, kv / tp);
    const uint64_t ctx = std::min<uint64_t>(kKvContext, num("max_position_embeddings") ? num("max_position_embeddings") : kKvContext);
    if (!layers.empty() && kv && head_dim) {
      kv_bytes = layers.size() * 2 * m.max_batch * ctx * kv_local * head_dim * 2;
      m.kv_cache = DeviceBuffer(kv_bytes);
      CKPT_CUDA(cudaMemsetAsync(m.kv_cache.data(), 0, kv_bytes, m.stream));
      kv_note = std::to_string(layers.size()) + " layers x 2 x batch " + std::to_string(m.max_batch) + " x " +
                std::to_string(ctx) + " tokens x " + std::to_string(kv_local) + " KV heads x " + std::to_string(head_dim);
    }
  }
  CKPT_CUDA(cudaStreamSynchronize(m.stream));
  size_t free_b = 0, total_b = 0;
  CKPT_CUDA(cudaMemGetInfo(&free_b, &total_b));
  const uint64_t total = 2 * kWorkspaceBytes + kv_bytes + act_bytes + out_bytes + ref_elems * 8 + max_nk * 8 + dequant_bytes;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%.2f GB: KV cache %.2f GB, workspace 64 MiB, reference %.2f GB; %.1f GB free", total / 1e9,
                kv_bytes / 1e9, (ref_elems * 8 + max_nk * 8) / 1e9, free_b / 1e9);
  scope.phase().summary = buf;
  auto& d = scope.phase().details;
  d["bytes"] = total;
  d["kv_cache_bytes"] = kv_bytes;
  d["kv_cache"] = kv_note;
  d["workspace_bytes"] = 2 * kWorkspaceBytes;
  d["activation_bytes"] = act_bytes;
  d["output_bytes"] = out_bytes;
  d["reference_bytes"] = ref_elems * 8 + max_nk * 8;
  d["dequant_scratch_bytes"] = dequant_bytes;
  d["device_free_bytes"] = free_b;
  d["cublaslt_fp8_weights"] = lt_count;
  d["cublaslt_fallbacks"] = fallback;
}

void GemmWarmup::warm_up(validate::PhaseScope& scope) {
  Impl& m = *impl_;
  const Event e0 = new_event(), e1 = new_event(), e2 = new_event();
  const size_t last = m.batches.size() - 1;
  const double one = 1.0, zero = 0.0;
  CKPT_CUDA(cudaEventRecord(e0, m.stream));
  for (auto& r : m.runs) {
    CKPT_CUDA(dequantize_f64(r.dq, m.w64.as<double>(), m.stream));
    CKPT_CUBLAS(cublasDgemm(m.blas, CUBLAS_OP_T, CUBLAS_OP_N, int(r.lw->n), m.max_batch, int(r.lw->k), &one,
                            m.w64.as<double>(), int(r.lw->k), m.x_ref.at(r.act).as<double>(), int(r.lw->k), &zero,
                            m.ref_arena.as<double>() + r.ref_off, int(r.lw->n)));
  }
  CKPT_CUDA(cudaEventRecord(e1, m.stream));
  for (auto& r : m.runs) m.enqueue(r, last);
  CKPT_CUDA(cudaEventRecord(e2, m.stream));
  for (size_t i = 0; i < m.runs.size(); ++i) {
    auto& r = m.runs[i];
    CKPT_CUDA(compare_outputs(m.out_arena.data() + r.out_off, r.out, r.lw->n, m.ref_arena.as<double>() + r.ref_off,
                              r.lw->n, m.max_batch, r.lw->n, m.stats_slot(i, 0), m.stream));
  }
  CKPT_CUDA(cudaStreamSynchronize(m.stream));
  float ref_ms = 0, gemm_ms = 0;
  CKPT_CUDA(cudaEventElapsedTime(&ref_ms, e0, e1));
  CKPT_CUDA(cudaEventElapsedTime(&gemm_ms, e1, e2));
  const double worst = m.judge_pass(scope, 0, "gemm", "at batch " + std::to_string(m.max_batch));

  std::map<std::string, int> by_path;
  ojson weights = ojson::array();
  for (const auto& r : m.runs) {
    std::string key = r.lw->format() + " via " + path_name(r.path);
    ++by_path[key];
    ojson w = ojson::object();
    w["tensor"] = r.lw->name;
    w["format"] = r.lw->format();
    w["path"] = path_name(r.path);
    if (!r.note.empty()) w["note"] = r.note;
    weights.push_back(w);
  }
  std::string paths;
  for (const auto& [k, v] : by_path) paths += (paths.empty() ? "" : ", ") + std::to_string(v) + " " + k;
  char buf[512];
  std::snprintf(buf, sizeof buf, " at batch %d (%s): %.2f ms; worst relative error %.2e vs float64 reference",
                m.max_batch, paths.c_str(), gemm_ms, worst);
  scope.phase().summary = count_of(m.runs.size(), "GEMM") + buf;
  auto& d = scope.phase().details;
  d["batch"] = m.max_batch;
  d["gemm_ms"] = gemm_ms;
  d["reference_ms"] = ref_ms;
  d["worst_relative_error"] = worst;
  d["paths"] = by_path;
  d["weights"] = weights;
}

void GemmWarmup::graphs(validate::PhaseScope& scope) {
  Impl& m = *impl_;
  const Event e0 = new_event(), e1 = new_event();
  ojson per_batch = ojson::array();
  double capture_total = 0, instantiate_total = 0;
  std::string replay_list;
  for (size_t bi = 0; bi < m.batches.size(); ++bi) {
    const int b = m.batches[bi];
    CKPT_CUDA(cudaMemsetAsync(m.out_arena.data(), 0, m.out_arena.size(), m.stream));
    CKPT_CUDA(cudaStreamSynchronize(m.stream));
    auto t = std::chrono::steady_clock::now();
    Graph graph;
    {
      CKPT_CUDA(cudaStreamBeginCapture(m.stream, cudaStreamCaptureModeThreadLocal));
      CaptureGuard capturing(m.stream);
      for (auto& r : m.runs) m.enqueue(r, bi);
      CKPT_CUDA(cudaStreamEndCapture(m.stream, graph.out()));
    }
    const double capture_s = seconds_since(t);
    t = std::chrono::steady_clock::now();
    GraphExec exec;
    CKPT_CUDA(cudaGraphInstantiate(exec.out(), graph, 0));
    const double instantiate_s = seconds_since(t);
    size_t nodes = 0;
    CKPT_CUDA(cudaGraphGetNodes(graph, nullptr, &nodes));
    t = std::chrono::steady_clock::now();
    CKPT_CUDA(cudaGraphLaunch(exec, m.stream));  // the first launch uploads the graph
    CKPT_CUDA(cudaStreamSynchronize(m.stream));
    const double first_s = seconds_since(t);
    CKPT_CUDA(cudaEventRecord(e0, m.stream));
    for (int i = 0; i < kReplays; ++i) CKPT_CUDA(cudaGraphLaunch(exec, m.stream));
    CKPT_CUDA(cudaEventRecord(e1, m.stream));
    for (size_t i = 0; i < m.runs.size(); ++i) {
      auto& r = m.runs[i];
      CKPT_CUDA(compare_outputs(m.out_arena.data() + r.out_off, r.out, r.lw->n, m.ref_arena.as<double>() + r.ref_off,
                                r.lw->n, b, r.lw->n, m.stats_slot(i, 1 + bi), m.stream));
    }
    CKPT_CUDA(cudaStreamSynchronize(m.stream));
    float replay_ms = 0;
    CKPT_CUDA(cudaEventElapsedTime(&replay_ms, e0, e1));
    replay_ms /= kReplays;
    const double worst = m.judge_pass(scope, 1 + bi, "graph", "in the CUDA graph for batch " + std::to_string(b));
    capture_total += capture_s;
    instantiate_total += instantiate_s;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%d:%.3f", replay_list.empty() ? "" : " ", b, replay_ms);
    replay_list += buf;
    ojson jb = ojson::object();
    jb["batch"] = b;
    jb["nodes"] = nodes;
    jb["capture_ms"] = capture_s * 1e3;
    jb["instantiate_ms"] = instantiate_s * 1e3;
    jb["first_launch_ms"] = first_s * 1e3;
    jb["replay_ms"] = replay_ms;
    jb["worst_relative_error"] = worst;
    per_batch.push_back(jb);
  }
  char buf[512];
  std::snprintf(buf, sizeof buf, ": capture %.1f ms, instantiate %.1f ms in all; replay ms by batch {%s}",
                capture_total * 1e3, instantiate_total * 1e3, replay_list.c_str());
  scope.phase().summary = count_of(m.batches.size(), "graph") + " of " + count_of(m.runs.size(), "GEMM") + buf;
  scope.phase().details["graphs"] = per_batch;
}

}  // namespace ckpt::cuda
