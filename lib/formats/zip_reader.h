// A strict reader for the zip torch.save writes (pytorch caffe2/serialize/inline_container.cc): the central
// directory is the only source of truth (local headers hold zero sizes), ZIP64 is parsed whenever
// present, only stored (uncompressed, unencrypted) single-disk archives are accepted, and every
// record's data range is checked to lie inside the file, before the central directory, without
// overlapping another record. Reading the directory reads no record data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/parallel.h"
#include "formats/byte_source.h"
#include "formats/crc32_pieces.h"

namespace ckpt {

struct ZipRecord {
  std::string name;
  uint64_t data_offset = 0;  // absolute offset of the record's first byte
  uint64_t size = 0;
  uint32_t crc32 = 0;        // from the central directory
};

struct ZipArchive {
  std::vector<ZipRecord> records;  // central directory order
  // Constant time: a torch file holds one record per storage, and each storage is looked up.
  const ZipRecord* find(const std::string& name) const;
  std::unordered_map<std::string, size_t> by_name;  // record name -> index in `records`
};

// Limits that keep a hostile directory from costing more than a real one could need.
inline constexpr uint64_t kMaxZipDirectoryBytes = 256ull << 20;

ZipArchive read_zip_directory(const ByteSource& src);

// Checks the CRC-32 of every record against the central directory, records in parallel.
void verify_zip_crcs(const ByteSource& src, const ZipArchive& zip, const Workers& workers = {});
// Checks one record; the error names the file and the record. With `seen`, the CRC is assembled
// from the pieces of the record already hashed, and only the rest is read.
void verify_zip_record_crc(const ByteSource& src, const ZipRecord& record);
void verify_zip_record_crc(const ByteSource& src, const ZipRecord& record, Crc32Pieces& seen,
                           const CancelToken* cancel = nullptr);

}  // namespace ckpt
