// Small checkpoints for the `ckpt validate` tests, written with the library's own writer (a Plan
// run by the executor, so they carry ckpt-manifest.json like every ckpt output): dense, FP8
// per-tensor / per-channel / block, and TP rank directories, plus the ways to break them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/safetensors.h"
#include "formats/strict_json.h"
#include "validate/validate.h"

namespace ckpt::test {

struct FixtureTensor {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;
};

// Deterministic values: bf16/f16/f32 ~ uniform(-0.05, 0.05); FP8 E4M3 codes of |v| <= 448 (never
// NaN); scales are given.
FixtureTensor random_tensor(const std::string& name, DType dtype, std::vector<uint64_t> shape, uint64_t seed);
FixtureTensor float_tensor(const std::string& name, DType dtype, std::vector<uint64_t> shape, const std::vector<float>& values);

enum class FixtureQuant { kNone, kFp8Tensor, kFp8Channel, kFp8Block };

// A Llama-shaped model (hidden 64, intermediate 128, vocab 256, 2 layers, 8 heads / 2 KV heads):
// embeddings, norms, q/k/v/o/gate/up/down per layer and lm_head; with `quant`, every Linear but
// lm_head is FP8 E4M3 with its scales and config.json declares it (vLLM native fp8 for tensor and
// block 32x32, compressed-tensors for channel). `tp` > 1 gives the rank-`rank` slice shapes.
std::vector<FixtureTensor> llama_fixture(FixtureQuant quant, uint64_t tp = 1);
ojson llama_fixture_config(FixtureQuant quant);

// Writes `dir` (must not exist): model.safetensors holding `tensors` (with `metadata`), config.json
// and ckpt-manifest.json.
void write_fixture(const std::string& dir, const std::vector<FixtureTensor>& tensors, const ojson& config,
                   const Metadata& metadata = {{"format", "pt"}});

// A TP output: dir/rank-r/ for r < tp, each with the rank's shapes, a ckpt_parallel block and
// tp_size/tp_rank metadata, and one ckpt-manifest.json at dir (as `ckpt shard` writes).
void write_tp_fixture(const std::string& dir, FixtureQuant quant, uint64_t tp);

// The bf16 fixture quantized by `ckpt quantize --int4` (commands/quantize.h) into `dir` (must not
// exist; the bf16 source goes to dir + ".src"): format "gptq", "awq" or "compressed-tensors",
// group size 32, 64 or -1 (the fixture's K are 64 and 128).
void write_int4_fixture(const std::string& dir, const std::string& format, bool symmetric, int64_t group_size);
// testdata/llama-trained (whose Linears the Marlin kernel takes: K % 128, N % 64) quantized by
// `ckpt quantize --int4` into `dir`, in the format's own layout or (`marlin`) as `ckpt marlin`
// relays it out (quantize --layout marlin).
void write_trained_int4(const std::string& dir, const std::string& format, bool symmetric, int64_t group_size, bool marlin);
// The same, GPTQ symmetric group 32, made act-order: desc_act true and each g_idx a seeded shuffle
// of k / 32 (every group keeps its 32 columns, scattered over K), in `dir` as GPTQ or (`marlin`)
// relaid out by `ckpt marlin` (the GPTQ one then in dir + ".gptq").
void write_trained_gptq_act_order(const std::string& dir, bool marlin);

// The tensors of `dir`/model.safetensors, and writing them back (with config.json as `config`) in
// place of the directory, without a manifest: for tests that break one rule at a time.
std::vector<FixtureTensor> read_fixture_tensors(const std::string& dir);
void rewrite_fixture(const std::string& dir, const std::vector<FixtureTensor>& tensors, const ojson& config);

// The CPU phases of `ckpt validate DIR` (validate::run_cpu_phases with the default options).
struct CpuValidation {
  validate::Report report;
  validate::Prepared prepared;
};
std::unique_ptr<CpuValidation> run_cpu(const std::string& dir);

// Flips one bit of the byte at `offset` from the start of tensor `tensor`'s data in a safetensors file.
void flip_tensor_byte(const std::string& file, const std::string& tensor, uint64_t offset);

}  // namespace ckpt::test
