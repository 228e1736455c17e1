// ckpt forward MODEL --ids 1,5,9|FILE | --text "..." [--logits OUT.safetensors] [--generate N] [--device cpu|cuda]
// ckpt perplexity MODEL --ids FILE | --text "..." | --file F [--seq-len N] [--json]
#include <cmath>
#include <cstdio>
#include <cstring>

#include "common.h"
#include "interrupt.h"
#include "core/error.h"
#include "core/sizes.h"
#include "core/file_io.h"
#include "formats/safetensors_small.h"
#include "model/compare.h"
#include "model/cpu_forward.h"
#include "subcommands.h"
#include "tokenizer/tokenizer.h"
#if CKPT_HAVE_CUDA
#include "gpu_info.h"
#include "runtime/gpu_forward.h"
#endif

namespace ckpt::cli {

namespace {

void require_cpu(const std::string& device) {
  if (wants_cuda_device(device))
    fail(Errc::kUnsupported, "", "", "--device cuda: perplexity runs on the CPU reference forward for now");
}

// The CPU reference forward or the CUDA one behind one step function.
struct Runner {
  std::unique_ptr<model::CpuForward> cpu;
#if CKPT_HAVE_CUDA
  std::unique_ptr<cuda::GpuForward> gpu;
#endif
  uint64_t kv_bytes = 0;
  std::vector<double> forward(const std::vector<int64_t>& ids, uint64_t tokens) {
#if CKPT_HAVE_CUDA
    if (gpu) return tokens == 1 ? gpu->decode(ids) : gpu->forward(ids, tokens);  // decode steps: CUDA graph
#endif
    return cpu->forward(ids, tokens);
  }
};

Runner make_runner(const model::Model& m, uint64_t batch, uint64_t capacity, bool cuda) {
  Runner r;
#if CKPT_HAVE_CUDA
  if (cuda) {
    if (cuda::device_count() == 0) fail(Errc::kUnsupported, "", "", "--device cuda: no CUDA GPU on this machine");
    r.gpu = std::make_unique<cuda::GpuForward>(m, batch, capacity);
    r.kv_bytes = r.gpu->kv_cache_bytes();
    std::printf("device: %s; weights %.3f GB on the GPU (as stored), float32 activations\n",
                cuda::device_description(0).c_str(), r.gpu->weight_bytes() / 1e9);
    return r;
  }
#endif
  (void)cuda;
  r.cpu = std::make_unique<model::CpuForward>(m, batch, capacity, workers(0));
  r.kv_bytes = r.cpu->kv_cache_bytes();
  return r;
}

void write_logits(const std::string& path, const model::TokenIds& ids, const std::vector<double>& logits, uint64_t vocab) {
  std::vector<uint8_t> bytes(logits.size() * 4);
  for (size_t i = 0; i < logits.size(); ++i) {
    const float f = static_cast<float>(logits[i]);
    std::memcpy(&bytes[4 * i], &f, 4);
  }
  std::vector<uint8_t> id_bytes(ids.ids.size() * 8);
  std::memcpy(id_bytes.data(), ids.ids.data(), id_bytes.size());  // little-endian host
  write_small_safetensors(path, {{"input_ids", DType::I64, {ids.sequences, ids.length}, std::move(id_bytes)},
                                 {"logits", DType::F32, {ids.sequences, ids.length, vocab}, std::move(bytes)}});
}

}  // namespace

void add_forward(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("forward", "Run the model on token ids: top-5 next tokens per position, greedy generation");
  struct Args {
    std::string model, ids, text, logits, device = "cpu";
    uint64_t generate = 0;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("MODEL", a->model, "Checkpoint directory (or a TP/PP output root)")->required();
  auto* ids_opt = cmd->add_option("--ids", a->ids, "Token ids: 1,5,9 or a .safetensors/.json/.npy file of [sequences, length]");
  auto* text_opt = cmd->add_option("--text,--prompt", a->text, "Text, tokenized by the model's tokenizer (with its BOS/EOS)");
  ids_opt->excludes(text_opt);
  cmd->add_option("--logits", a->logits, "Write input_ids and float32 logits [sequences, length, vocab] here");
  cmd->add_option("--generate", a->generate, "Greedy tokens to generate after the ids (KV cache)");
  cmd->add_option("--device", a->device, "cpu (the float64 reference forward) or cuda (float32 activations and sums)");
  cmd->callback([&action, a] {
    action = [a] {
      const bool cuda = wants_cuda_device(a->device);
      if (a->ids.empty() && a->text.empty()) usage("give --ids or --text");
      auto m = model::Model::open(a->model);
      const uint64_t V = m->config().vocab;
      // The model's tokenizer when it ships one: the text's ids, and the continuations as text.
      std::optional<tok::Tokenizer> tokenizer =
          a->text.empty() ? tok::Tokenizer::load_if_present(a->model) : tok::Tokenizer::load(a->model);
      const model::TokenIds ids = a->text.empty() ? model::read_token_ids_argument(a->ids)
                                                  : model::text_token_ids(*tokenizer, a->text, V, "--text");
      std::printf("model: %s%s%s; %s\n", m->config().describe().c_str(), m->parallelism().empty() ? "" : ", ",
                  m->parallelism().c_str(), m->formats().c_str());
      Runner f = make_runner(*m, ids.sequences, ids.length + a->generate, cuda);
      std::printf("kv cache: %.3f MB (%s, %llu x %llu tokens)\n", f.kv_bytes / 1e6, cuda ? "float32" : "float64",
                  static_cast<unsigned long long>(ids.sequences), static_cast<unsigned long long>(ids.length + a->generate));
      std::vector<double> logits = f.forward(ids.ids, ids.length);
      for (uint64_t s = 0; s < ids.sequences; ++s) {
        if (ids.sequences > 1) std::printf("sequence %llu\n", static_cast<unsigned long long>(s));
        for (uint64_t t = 0; t < ids.length; ++t) {
          const double* l = &logits[(s * ids.length + t) * V];
          const double mx = *std::max_element(l, l + V);
          double sum = 0;
          for (uint64_t v = 0; v < V; ++v) sum += std::exp(l[v] - mx);
          std::printf("  %4llu  id %-7lld next:", static_cast<unsigned long long>(t), static_cast<long long>(ids.row(s)[t]));
          std::vector<uint64_t> order(V);
          for (uint64_t v = 0; v < V; ++v) order[v] = v;
          std::partial_sort(order.begin(), order.begin() + std::min<uint64_t>(5, V), order.end(),
                            [&](uint64_t x, uint64_t y) { return l[x] > l[y] || (l[x] == l[y] && x < y); });
          for (uint64_t k = 0; k < std::min<uint64_t>(5, V); ++k)
            std::printf("  %llu (%.3f)", static_cast<unsigned long long>(order[k]), std::exp(l[order[k]] - mx) / sum);
          std::printf("\n");
        }
      }
      if (!a->logits.empty()) {
        write_logits(a->logits, ids, logits, V);
        std::printf("logits written to %s\n", a->logits.c_str());
      }
      if (a->generate) {
        std::vector<std::vector<int64_t>> out(ids.sequences);
        std::vector<int64_t> next(ids.sequences);
        for (uint64_t s = 0; s < ids.sequences; ++s)
          next[s] = static_cast<int64_t>(model::argmax(&logits[(s * ids.length + ids.length - 1) * V], V));
        for (uint64_t g = 0; g < a->generate; ++g) {
          for (uint64_t s = 0; s < ids.sequences; ++s) out[s].push_back(next[s]);
          if (g + 1 == a->generate) break;
          std::vector<double> step = f.forward(next, 1);
          for (uint64_t s = 0; s < ids.sequences; ++s) next[s] = static_cast<int64_t>(model::argmax(&step[s * V], V));
        }
        for (uint64_t s = 0; s < ids.sequences; ++s) {
          std::printf("generated%s:", ids.sequences > 1 ? (" " + std::to_string(s)).c_str() : "");
          for (int64_t x : out[s]) std::printf(" %lld", static_cast<long long>(x));
          std::printf("\n");
          if (tokenizer) std::printf("  text: %s\n", quote(model::token_ids_text(*tokenizer, out[s]), model::kContinuationTextBytes).c_str());
        }
      }
      return kExitOk;
    };
  });
}

void add_perplexity(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("perplexity", "Perplexity on held-out token ids, chunked as llama.cpp's perplexity tool");
  struct Args {
    std::string model, ids, text, file, device = "cpu";
    uint64_t seq_len = 0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("MODEL", a->model, "Checkpoint directory (or a TP/PP output root)")->required();
  auto* ids_opt = cmd->add_option("--ids", a->ids, "Held-out ids: .safetensors (input_ids), .json or .npy");
  auto* text_opt = cmd->add_option("--text", a->text, "Held-out text, tokenized by the model's tokenizer (with its BOS/EOS)");
  auto* file_opt = cmd->add_option("--file", a->file, "A text file, tokenized as --text (invalid UTF-8 becomes U+FFFD)");
  ids_opt->excludes(text_opt)->excludes(file_opt);
  text_opt->excludes(file_opt);
  cmd->add_option("--seq-len", a->seq_len, "Chunk length (default: the file's row length)");
  cmd->add_option("--device", a->device, "cpu or cuda");
  cmd->add_flag("--json", a->json, "Print the result as JSON");
  cmd->callback([&action, a] {
    action = [a] {
      require_cpu(a->device);
      if (a->ids.empty() && a->text.empty() && a->file.empty()) usage("give --ids, --text or --file");
      auto m = model::Model::open(a->model);
      model::TokenIds ids;
      if (!a->ids.empty()) ids = model::read_token_ids(a->ids);
      else if (!a->file.empty())
        ids = model::text_token_ids(tok::Tokenizer::load(a->model), read_text_file(a->file), m->config().vocab, a->file);
      else ids = model::text_token_ids(tok::Tokenizer::load(a->model), a->text, m->config().vocab, "--text");
      const uint64_t chunk = a->seq_len ? a->seq_len : ids.length;
      model::PerplexityResult r = model::perplexity(*m, ids, chunk, workers(0));
      if (a->json) {
        ojson j = {{"perplexity", r.perplexity}, {"mean_nll", r.mean_nll}, {"chunks", r.chunks},
                   {"chunk_tokens", chunk},      {"scored_tokens", r.scored_tokens},
                   {"method", "llama.cpp perplexity: non-overlapping chunks, BOS first, second half scored"},
                   {"running_perplexity", r.chunk_perplexity}};
        std::printf("%s\n", j.dump(2).c_str());
        return kExitOk;
      }
      for (size_t k = 0; k < r.chunk_perplexity.size(); ++k) std::printf("[%zu]%.4f,", k + 1, r.chunk_perplexity[k]);
      std::printf("\nperplexity: %.4f over %s of %s (%s scored: the second half of each chunk, "
                  "first token BOS, as llama.cpp's perplexity)\n",
                  r.perplexity, count_of(r.chunks, "chunk").c_str(), count_of(chunk, "token").c_str(),
                  count_of(r.scored_tokens, "token").c_str());
      return kExitOk;
    };
  });
}

}  // namespace ckpt::cli
