#include "formats/zip_reader.h"

#include <algorithm>

#include "core/error.h"
#include "formats/crc32_pieces.h"

namespace ckpt {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50,
                   kEocd64Sig = 0x06064b50, kLocatorSig = 0x07064b50;
constexpr size_t kEocdBytes = 22, kLocatorBytes = 20, kEocd64Bytes = 56, kCentralBytes = 46, kLocalBytes = 30;
constexpr uint32_t k32 = 0xFFFFFFFFu;
constexpr uint16_t kZip64ExtraTag = 0x0001;

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t le32(const uint8_t* p) { return le16(p) | static_cast<uint32_t>(le16(p + 2)) << 16; }
uint64_t le64(const uint8_t* p) { return le32(p) | static_cast<uint64_t>(le32(p + 4)) << 32; }

[[noreturn]] void bad(const ByteSource& src, const std::string& rule) { fail(Errc::kZipInvalid, src.name(), "", rule); }

const char* method_name(uint16_t m) {
  switch (m) {
    case 8: return "deflate";
    case 9: return "deflate64";
    case 12: return "bzip2";
    case 14: return "lzma";
    case 93: return "zstd";
    default: return "compressed";
  }
}

struct Directory {
  uint64_t entries = 0, offset = 0, size = 0;
  uint64_t end = 0;  // where the directory must end: the EOCD64 record or the EOCD
};

// The end-of-central-directory record must sit at the very end, its comment reaching EOF.
Directory find_directory(const ByteSource& src) {
  const uint64_t size = src.size();
  if (size < kEocdBytes) bad(src, "file is too small to be a zip archive (truncated?)");
  const uint64_t tail_len = std::min<uint64_t>(size, kEocdBytes + 0xFFFF);
  std::vector<uint8_t> tail = src.read_vector(size - tail_len, tail_len);
  uint64_t eocd = UINT64_MAX;
  for (uint64_t i = tail_len - kEocdBytes + 1; i-- > 0;) {
    const uint8_t* p = tail.data() + i;
    if (le32(p) == kEocdSig && i + kEocdBytes + le16(p + 20) == tail_len) {
      eocd = size - tail_len + i;
      break;
    }
  }
  if (eocd == UINT64_MAX)
    bad(src, "no end-of-central-directory record at the end of the file (truncated download?)");
  const uint8_t* e = tail.data() + (eocd - (size - tail_len));
  if (le16(e + 4) != 0 || le16(e + 6) != 0 || le16(e + 8) != le16(e + 10))
    fail(Errc::kZipUnsupported, src.name(), "", "multi-disk (split) zip archives are not supported");
  Directory d{le16(e + 10), le32(e + 16), le32(e + 12), eocd};
  // ZIP64: a locator just before the EOCD points at the EOCD64 record, whose 64-bit fields win.
  if (eocd >= kLocatorBytes) {
    uint8_t loc[kLocatorBytes];
    src.read(eocd - kLocatorBytes, kLocatorBytes, loc);
    if (le32(loc) == kLocatorSig) {
      uint64_t at = le64(loc + 8);
      if (le32(loc + 4) != 0 || le32(loc + 16) != 1)
        fail(Errc::kZipUnsupported, src.name(), "", "multi-disk (split) zip archives are not supported");
      if (at > eocd - kLocatorBytes || eocd - kLocatorBytes - at < kEocd64Bytes)
        bad(src, "ZIP64 locator points outside the file");
      uint8_t r[kEocd64Bytes];
      src.read(at, kEocd64Bytes, r);
      if (le32(r) != kEocd64Sig) bad(src, "ZIP64 end-of-central-directory record not found where the locator points");
      if (le32(r + 16) != 0 || le32(r + 20) != 0 || le64(r + 24) != le64(r + 32))
        fail(Errc::kZipUnsupported, src.name(), "", "multi-disk (split) zip archives are not supported");
      d = {le64(r + 32), le64(r + 48), le64(r + 40), at};
    }
  }
  if (d.offset > d.end || d.size > d.end - d.offset)
    bad(src, "central directory lies outside the file (truncated?)");
  if (d.size > kMaxZipDirectoryBytes) bad(src, "central directory is larger than 256 MiB");
  if (d.entries > d.size / kCentralBytes) bad(src, "central directory is too small for its entry count");
  return d;
}

// Applies the ZIP64 extended-information extra field: each 32-bit field that holds 0xFFFFFFFF is
// replaced, in the fixed order usize, csize, offset.
void apply_zip64_extra(const ByteSource& src, const std::string& name, const uint8_t* extra, size_t len,
                       uint64_t& usize, uint64_t& csize, uint64_t& offset) {
  size_t pos = 0;
  while (pos + 4 <= len) {
    uint16_t tag = le16(extra + pos), n = le16(extra + pos + 2);
    if (pos + 4 + n > len) bad(src, "record " + quote(name) + ": extra field runs past its end");
    if (tag == kZip64ExtraTag) {
      const uint8_t* f = extra + pos + 4;
      size_t k = 0;
      for (uint64_t* field : {&usize, &csize, &offset}) {
        if (*field != k32) continue;
        if (k + 8 > n) bad(src, "record " + quote(name) + ": ZIP64 extra field is too short");
        *field = le64(f + k);
        k += 8;
      }
    }
    pos += 4 + size_t{n};
  }
  if (pos != len) bad(src, "record " + quote(name) + ": malformed extra field");
}

}  // namespace

const ZipRecord* ZipArchive::find(const std::string& name) const {
  auto it = by_name.find(name);
  return it == by_name.end() ? nullptr : &records[it->second];
}

ZipArchive read_zip_directory(const ByteSource& src) {
  const Directory d = find_directory(src);
  std::vector<uint8_t> cd = src.read_vector(d.offset, d.size);
  ZipArchive zip;
  struct Span { uint64_t begin, end; size_t record; };
  std::vector<Span> spans;
  size_t pos = 0;
  for (uint64_t i = 0; i < d.entries; ++i) {
    if (cd.size() - pos < kCentralBytes || le32(cd.data() + pos) != kCentralSig)
      bad(src, "central directory entry " + std::to_string(i) + " is malformed");
    const uint8_t* c = cd.data() + pos;
    const uint16_t flags = le16(c + 8), method = le16(c + 10);
    const size_t name_len = le16(c + 28), extra_len = le16(c + 30), comment_len = le16(c + 32);
    if (cd.size() - pos - kCentralBytes < name_len + extra_len + comment_len)
      bad(src, "central directory entry " + std::to_string(i) + " runs past the directory");
    ZipRecord r;
    r.name.assign(reinterpret_cast<const char*>(c + kCentralBytes), name_len);
    r.crc32 = le32(c + 16);
    uint64_t csize = le32(c + 20), usize = le32(c + 24), local = le32(c + 42);
    apply_zip64_extra(src, r.name, c + kCentralBytes + name_len, extra_len, usize, csize, local);
    pos += kCentralBytes + name_len + extra_len + comment_len;

    if (flags & 0x0041)
      fail(Errc::kZipUnsupported, src.name(), "", "record " + quote(r.name) + " is encrypted");
    if (method != 0)
      fail(Errc::kZipUnsupported, src.name(), "",
           "record " + quote(r.name) + " is compressed (method " + std::to_string(method) + ", " + method_name(method) +
               "); torch.save writes stored records only, re-save the file with torch.save");
    if (csize != usize) bad(src, "record " + quote(r.name) + " is stored but its compressed and plain sizes differ");
    if (!zip.by_name.emplace(r.name, zip.records.size()).second) bad(src, "record name " + quote(r.name) + " appears twice");

    // The local header gives only where the data starts; its sizes are zero in torch files.
    if (local > d.offset || d.offset - local < kLocalBytes) bad(src, "record " + quote(r.name) + " starts outside the file");
    uint8_t lh[kLocalBytes];
    src.read(local, kLocalBytes, lh);
    if (le32(lh) != kLocalSig) bad(src, "record " + quote(r.name) + ": no local header where the directory points");
    if (le16(lh + 8) != method) bad(src, "record " + quote(r.name) + ": local header and directory disagree on the method");
    const uint64_t data = local + kLocalBytes + le16(lh + 26) + le16(lh + 28);
    if (le16(lh + 26) != name_len || src.read_vector(local + kLocalBytes, std::min<uint64_t>(name_len, d.offset - local - kLocalBytes)) !=
                                         std::vector<uint8_t>(r.name.begin(), r.name.end()))
      bad(src, "record " + quote(r.name) + ": local header names a different record");
    if (data > d.offset || usize > d.offset - data)
      bad(src, "record " + quote(r.name) + " data runs past the start of the central directory (truncated?)");
    r.data_offset = data;
    r.size = usize;
    spans.push_back({local, data + usize, zip.records.size()});
    zip.records.push_back(std::move(r));
  }
  if (pos != cd.size()) bad(src, "central directory size does not match its entries");
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      bad(src, "records '" + zip.records[spans[i - 1].record].name + "' and '" + zip.records[spans[i].record].name +
                   "' overlap");
  return zip;
}

namespace {

bool crc_matches(const ByteSource& src, const ZipRecord& r, Crc32Pieces& seen, const CancelToken* cancel) {
  return seen.crc_of(src, r.data_offset, r.size, cancel) == r.crc32;
}

[[noreturn]] void fail_crc(const ByteSource& src, const ZipRecord& r) {
  fail(Errc::kZipCrcMismatch, src.name(), "",
       "record " + quote(r.name) + " does not match its CRC-32 (corrupt or truncated file; --no-verify skips this check)");
}

}  // namespace

void verify_zip_record_crc(const ByteSource& src, const ZipRecord& record, Crc32Pieces& seen,
                           const CancelToken* cancel) {
  if (!crc_matches(src, record, seen, cancel)) fail_crc(src, record);
}

void verify_zip_record_crc(const ByteSource& src, const ZipRecord& record) {
  Crc32Pieces none;
  verify_zip_record_crc(src, record, none);
}

void verify_zip_crcs(const ByteSource& src, const ZipArchive& zip, const Workers& workers) {
  std::vector<char> matches(zip.records.size(), 0);
  parallel_for(zip.records.size(), workers, [&](size_t i) {
    Crc32Pieces none;
    matches[i] = crc_matches(src, zip.records[i], none, workers.cancel);
  });
  // The first mismatching record in directory order, whatever the thread count.
  for (size_t i = 0; i < zip.records.size(); ++i)
    if (!matches[i]) fail_crc(src, zip.records[i]);
}

}  // namespace ckpt
