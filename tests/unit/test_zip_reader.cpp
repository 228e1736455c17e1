// The strict zip reader: real torch files, ZIP64 directory fields, and every refusal (compressed,
// encrypted, truncated, overlapping, duplicate, bad CRC) with its error code.
#include <gtest/gtest.h>

#include "core/error.h"
#include "formats/zip_reader.h"
#include "test_support.h"
#include "torch_files.h"

using namespace ckpt;
using ckpt::test::build_zip;
using ckpt::test::ZipEntry;

namespace {

ZipArchive read_mem(const std::string& bytes) {
  MemorySource src(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem.zip");
  return read_zip_directory(src);
}

Errc error_of(const std::string& bytes, bool verify = false) {
  MemorySource src(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem.zip");
  try {
    ZipArchive z = read_zip_directory(src);
    if (verify) verify_zip_crcs(src, z);
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error";
  return Errc::kCheckFailed;
}

}  // namespace

TEST(ZipReader, ReadsRealTorchFileWithAlignedRecordsAndValidCrcs) {
  File f = File::open_read(test::testdata("edge/edge.bin"));
  FileSource src(f);
  ZipArchive z = read_zip_directory(src);
  ASSERT_NE(z.find("edge/data.pkl"), nullptr);
  ASSERT_NE(z.find("edge/data/0"), nullptr);
  for (const auto& r : z.records) EXPECT_EQ(r.data_offset % 64, 0u) << r.name;
  EXPECT_NO_THROW(verify_zip_crcs(src, z));
}

TEST(ZipReader, TakesSizesAndOffsetsFromZip64Extra) {
  std::string bytes = build_zip({{"a/x", "hello"}, {"a/y", std::string(100, 'q'), 0, true}});
  ZipArchive z = read_mem(bytes);
  ASSERT_EQ(z.records.size(), 2u);
  const ZipRecord* y = z.find("a/y");
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(y->size, 100u);
  EXPECT_EQ(bytes.substr(y->data_offset, 100), std::string(100, 'q'));
}

TEST(ZipReader, RefusesCompressedAndEncryptedRecords) {
  EXPECT_EQ(error_of(build_zip({{"a/x", "data", 8}})), Errc::kZipUnsupported);
  std::string enc = build_zip({{"a/x", "data"}});
  // Set the encryption flag bit in the central directory entry.
  size_t cd = enc.find("PK\x01\x02");
  enc[cd + 8] |= 1;
  EXPECT_EQ(error_of(enc), Errc::kZipUnsupported);
}

TEST(ZipReader, RefusesTruncatedFiles) {
  std::string bytes = build_zip({{"a/x", std::string(1000, 'x')}, {"a/y", "tail"}});
  for (size_t cut : {bytes.size() - 1, bytes.size() - 30, bytes.size() / 2, size_t{10}, size_t{0}})
    EXPECT_EQ(error_of(bytes.substr(0, cut)), Errc::kZipInvalid) << cut;
}

TEST(ZipReader, RefusesCorruptDirectories) {
  std::string bytes = build_zip({{"a/x", "1234"}, {"a/y", "5678"}});
  size_t cd = bytes.find("PK\x01\x02");
  std::string bad_sig = bytes;
  bad_sig[cd + 1] = 'X';
  EXPECT_EQ(error_of(bad_sig), Errc::kZipInvalid);
  EXPECT_EQ(error_of(build_zip({{"a/x", "1"}, {"a/x", "2"}})), Errc::kZipInvalid);  // duplicate name
  // A directory entry pointing its local header at another record's: overlap.
  std::string overlap = bytes;
  size_t cd2 = overlap.find("PK\x01\x02", cd + 4);
  for (int i = 0; i < 4; ++i) overlap[cd2 + 42 + i] = overlap[cd + 42 + i];
  EXPECT_EQ(error_of(overlap), Errc::kZipInvalid);
  EXPECT_EQ(error_of("not a zip file at all, but long enough to hold an end record"), Errc::kZipInvalid);
}

TEST(ZipReader, ChecksCrcOnlyWhenAsked) {
  std::string bytes = build_zip({{"a/x", "payload", 0, false, true}});
  EXPECT_NO_THROW(read_mem(bytes));
  EXPECT_EQ(error_of(bytes, true), Errc::kZipCrcMismatch);
  std::string good = build_zip({{"a/x", "payload"}});
  MemorySource src(reinterpret_cast<const uint8_t*>(good.data()), good.size(), "mem.zip");
  EXPECT_NO_THROW(verify_zip_crcs(src, read_zip_directory(src)));
}
