// A Plan is everything a writing command will do, decided before any tensor data moves: the
// output files, each with its ordered tensors (name, dtype, shape, byte size, producer), and the
// small files that go along (index, config, side files). Because every size is known, every
// header is written first and data lands at its final offset. `--dry-run` prints to_json().
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/source_check.h"
#include "checkpoint/tensor_ref.h"
#include "formats/container.h"
#include "formats/safetensors.h"
#include "formats/strict_json.h"
#include "plan/source_reader.h"

namespace ckpt {

// Makes the bytes of one output tensor. The executor cuts the output into chunks that start at
// multiples of the 1 MiB hash block (so each chunk's digests are computed from its own buffer)
// and may call produce() for different chunks on different threads at once; a producer must
// accept any range whose ends are whole output elements. prepare() runs once before any chunk.
class Producer {
 public:
  virtual ~Producer() = default;
  // Output byte size (must equal the tensor's dtype × shape size).
  virtual uint64_t nbytes() const = 0;
  // A one-time pass over the input (an amax for per-tensor scales, say). Called on one thread.
  virtual void prepare(const SourceReader&) {}
  // When output bytes [begin, begin + n) are a verbatim copy of one source file range, that
  // range's file and offset: the executor then copies in the kernel (copy_file_range).
  struct Verbatim {
    int file;
    uint64_t offset;
  };
  virtual std::optional<Verbatim> verbatim(uint64_t /*begin*/, uint64_t /*n*/) const { return std::nullopt; }
  // Writes output bytes [begin, begin + n) into out.
  virtual void produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const = 0;
  // What it does, for the printed plan ("copy", "cast BF16->F16", ...).
  virtual ojson describe() const = 0;
};

// The bytes one producer of an earlier pipeline step makes, read as a source by a later step's
// producers (SourceView::kProduced): they are made on demand, range by range, as the later step
// reads them, so no intermediate file exists and memory stays bounded by the chunks in flight
// (plan/pipeline.h). The producer is prepared once, by whichever reader comes first.
class ProducedTensor {
 public:
  explicit ProducedTensor(std::shared_ptr<Producer> producer) : producer_(std::move(producer)) {}
  // The producer's output bytes [begin, begin + n) (whole elements) into out.
  void read(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const;
  // The source file range the bytes [begin, begin + n) are a verbatim copy of, if any.
  std::optional<Producer::Verbatim> verbatim(uint64_t begin, uint64_t n) const { return producer_->verbatim(begin, n); }
  uint64_t nbytes() const { return producer_->nbytes(); }
  ojson describe() const { return producer_->describe(); }

 private:
  std::shared_ptr<Producer> producer_;
  mutable std::once_flag prepared_;
};

// An elementwise conversion from one dtype to another (a cast, say), applied to n elements.
class ElementOp {
 public:
  virtual ~ElementOp() = default;
  virtual DType in_dtype() const = 0;
  virtual DType out_dtype() const = 0;
  virtual void apply(const uint8_t* in, uint8_t* out, uint64_t n) const = 0;
  virtual std::string name() const = 0;
};

// The common producer: the concatenation (in row-major order) of source views — slices, strided
// views, zero padding — optionally passed through an ElementOp.
class ViewProducer : public Producer {
 public:
  ViewProducer(std::vector<SourceView> pieces, std::shared_ptr<const ElementOp> op = nullptr);
  uint64_t nbytes() const override;
  std::optional<Verbatim> verbatim(uint64_t begin, uint64_t n) const override;
  void produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const override;
  ojson describe() const override;
  const std::vector<SourceView>& pieces() const { return pieces_; }
  const ElementOp* op() const { return op_.get(); }

 private:
  std::vector<SourceView> pieces_;
  std::vector<uint64_t> piece_first_;  // first input element of each piece
  uint64_t numel_ = 0;
  std::shared_ptr<const ElementOp> op_;
};

struct OutputTensor {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  std::shared_ptr<Producer> producer;
  uint64_t nbytes() const;
};

struct OutputFile {
  std::string name;  // relative to the output directory
  // The format that lays the file out (header, tensor order, alignment, offsets).
  std::shared_ptr<const ContainerWriter> container = safetensors_container();
  std::vector<OutputTensor> tensors;  // finalize() puts them in the container's write order
  // Filled by finalize():
  std::string head;                   // the file's bytes before the first tensor
  std::vector<uint64_t> offsets;      // absolute file offset of each tensor's data
  uint64_t size = 0;
};

// A small file written as a whole: generated text (index, config) or a copy of a side file.
struct ExtraFile {
  std::string name;
  std::optional<std::string> content;   // generated
  std::optional<std::string> copy_from;  // or copied from this path
};

struct Plan {
  std::string command;        // "rechunk", "convert", ...
  std::vector<std::string> sources;  // source file paths; SourceView::file indexes this
  std::vector<OutputFile> files;
  std::vector<ExtraFile> extras;
  ojson notes = ojson::object();  // command-specific facts for the plan JSON and the manifest
  SourceChecks checks;            // run by the executor beside the chunks (see source_check.h)

  // Checks that names are unique per output directory, then lets each file's container check its
  // tensors, order them and lay out the header and offsets. Must be called before execution or
  // printing.
  void finalize();
  uint64_t tensor_bytes() const;
  size_t tensor_count() const;
  std::vector<std::string> file_names() const;  // files' names, in order
  ojson to_json() const;
};

// A view as the printed plan shows it (source, offset, shape, strides; or a count of zeros).
ojson describe_view(const SourceView& v);

// Turns a checkpoint's tensor into the view list of a plain copy.
std::shared_ptr<Producer> copy_of(const TensorRef& t);

}  // namespace ckpt
