// One handcrafted minimal file per rule of the reference reader (safetensors tensor.rs), each
// expecting its own error code, plus the files the reference accepts.
#include <gtest/gtest.h>

#include "core/error.h"
#include "formats/safetensors.h"
#include "formats/strict_json.h"
#include "test_support.h"

using namespace ckpt;
using ckpt::test::ScratchDir;

namespace {

class Reader : public ::testing::Test {
 protected:
  SafetensorsHeader read(const std::string& header, const std::vector<uint8_t>& data = {},
                         uint64_t declared = UINT64_MAX) {
    std::string path = dir_ / "t.safetensors";
    test::write_raw_safetensors(path, header, data, declared);
    return read_safetensors_header(File::open_read(path));
  }
  Errc error_of(const std::string& header, const std::vector<uint8_t>& data = {}, uint64_t declared = UINT64_MAX) {
    try {
      read(header, data, declared);
    } catch (const Error& e) {
      last_message_ = e.what();
      return e.code();
    }
    ADD_FAILURE() << "accepted: " << header;
    return Errc::kIo;
  }
  ScratchDir dir_;
  std::string last_message_;
};

std::vector<uint8_t> bytes(size_t n) { return std::vector<uint8_t>(n, 0x5a); }

}  // namespace

TEST_F(Reader, HeaderTooSmall) {
  std::string path = dir_ / "small.safetensors";
  test::write_file_bytes(path, {1, 2, 3, 4, 5});
  try {
    read_safetensors_header(File::open_read(path));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kHeaderTooSmall);
    EXPECT_NE(std::string(e.what()).find("small.safetensors"), std::string::npos);
  }
}

TEST_F(Reader, HeaderTooLargeAboveTheDecimalLimit) {
  EXPECT_EQ(error_of("{}", {}, 100'000'001), Errc::kHeaderTooLarge);
  // Exactly the limit is allowed by the reference; this file is then too short for it.
  EXPECT_EQ(error_of("{}", {}, 100'000'000), Errc::kInvalidHeaderLength);
}

TEST_F(Reader, HeaderLengthPastEndOfFile) { EXPECT_EQ(error_of("{}", {}, 64), Errc::kInvalidHeaderLength); }

TEST_F(Reader, HeaderNotUtf8) { EXPECT_EQ(error_of("{\"\xff\xfe\":1}"), Errc::kHeaderNotUtf8); }

TEST_F(Reader, BadJson) {
  EXPECT_EQ(error_of("{,}"), Errc::kHeaderBadJson);
  EXPECT_EQ(error_of(std::string("{}\0\0", 4)), Errc::kHeaderBadJson);  // trailing NUL padding
  EXPECT_EQ(error_of("\xEF\xBB\xBF{}"), Errc::kHeaderBadJson);           // byte-order mark
  EXPECT_EQ(error_of("{\"__metadata__\":{},}"), Errc::kHeaderBadJson);  // trailing comma
}

TEST_F(Reader, RootMustBeAnObject) { EXPECT_EQ(error_of("[]      "), Errc::kHeaderNotObject); }

TEST_F(Reader, DuplicateKeysAreRefused) {
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                     bytes(1)),
            Errc::kDuplicateKey);
  EXPECT_NE(last_message_.find("'a'"), std::string::npos);
  EXPECT_EQ(error_of(R"({"__metadata__":{},"__metadata__":{}})"), Errc::kDuplicateKey);
}

TEST_F(Reader, MetadataMustMapStringsToStrings) {
  EXPECT_EQ(error_of(R"({"__metadata__":{"a":1}})"), Errc::kMetadataNotStringMap);
  EXPECT_EQ(error_of(R"({"__metadata__":{"a":{"b":"c"}}})"), Errc::kMetadataNotStringMap);
  EXPECT_EQ(error_of(R"({"__metadata__":"x"})"), Errc::kMetadataNotStringMap);
}

TEST_F(Reader, MissingField) {
  EXPECT_EQ(error_of(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", bytes(1)), Errc::kMissingField);
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", bytes(1)), Errc::kMissingField);
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[1]}})", bytes(1)), Errc::kMissingField);
}

TEST_F(Reader, FieldsOfTheWrongType) {
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[2.0],"data_offsets":[0,2]}})", bytes(2)), Errc::kBadFieldType);
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[-2],"data_offsets":[0,2]}})", bytes(2)), Errc::kBadFieldType);
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", bytes(1)), Errc::kBadFieldType);
  EXPECT_EQ(error_of(R"({"a":{"dtype":5,"shape":[1],"data_offsets":[0,1]}})", bytes(1)), Errc::kBadFieldType);
  EXPECT_EQ(error_of(R"({"a":[1]})", bytes(1)), Errc::kBadFieldType);
}

TEST_F(Reader, UnknownDtype) {
  EXPECT_EQ(error_of(R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", bytes(4)), Errc::kUnknownDtype);
  EXPECT_EQ(error_of(R"({"a":{"dtype":"F8_E4M3FN","shape":[1],"data_offsets":[0,1]}})", bytes(1)), Errc::kUnknownDtype);
}

TEST_F(Reader, OffsetsMustTileTheBufferFromZero) {
  // Not starting at 0.
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", bytes(2)), Errc::kInvalidOffset);
  // A hole between two tensors.
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})",
                     bytes(3)),
            Errc::kInvalidOffset);
  // Overlap.
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
                     bytes(3)),
            Errc::kInvalidOffset);
  // End before begin.
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"c":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})",
                     bytes(1)),
            Errc::kInvalidOffset);
}

TEST_F(Reader, ShapeOverflow) {
  EXPECT_EQ(error_of(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", bytes(8)),
            Errc::kValidationOverflow);
}

TEST_F(Reader, SubByteTensorsMustBeWholeBytes) {
  EXPECT_EQ(error_of(R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", bytes(2)), Errc::kMisalignedSlice);
  auto h = read(R"({"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}})", bytes(2));
  EXPECT_EQ(h.tensors[0].end, 2u);
}

TEST_F(Reader, ByteRangeMustMatchShape) {
  EXPECT_EQ(error_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", bytes(4)), Errc::kTensorInvalidInfo);
}

TEST_F(Reader, BufferMustEndWithTheLastTensor) {
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", bytes(3)), Errc::kIncompleteBuffer);
  EXPECT_NE(last_message_.find("trailing"), std::string::npos);
  EXPECT_EQ(error_of(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", bytes(1)), Errc::kIncompleteBuffer);
  EXPECT_NE(last_message_.find("truncated"), std::string::npos);
}

TEST_F(Reader, AcceptsWhatTheReferenceAccepts) {
  EXPECT_TRUE(read("{}      ").tensors.empty());
  EXPECT_TRUE(read("  \t\n{}").tensors.empty());  // leading whitespace, unpadded length
  EXPECT_FALSE(read(R"({"__metadata__":null})").metadata);
  EXPECT_TRUE(read(R"({"__metadata__":{}})").metadata->empty());
  auto h = read(R"({"z":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4],"extra":1},"":{"dtype":"BOOL","shape":[1],"data_offsets":[4,5]}})",
                bytes(5));
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "z");  // zero-size tensors sort first at their offset
  EXPECT_EQ(h.tensors[1].name, "s");
  EXPECT_TRUE(h.tensors[1].shape.empty());
  EXPECT_EQ(h.tensors[2].name, "");
  EXPECT_EQ(h.data_start(), 8 + h.header_len);
}

TEST_F(Reader, EveryDtypeNameParses) {
  for (const auto& d : all_dtypes()) {
    uint64_t n = d.bits == 6 ? 4 : 8;  // whole bytes for every width
    uint64_t nb = n * d.bits / 8;
    std::string hdr = "{\"t\":{\"dtype\":\"" + std::string(d.name) + "\",\"shape\":[" + std::to_string(n) +
                      "],\"data_offsets\":[0," + std::to_string(nb) + "]}}";
    auto h = read(hdr, bytes(nb));
    EXPECT_EQ(h.tensors[0].dtype, d.dtype);
  }
}

// The strict parser finds a repeated key by its hash, confirmed against the keys: in an object as
// large as a tokenizer's vocabulary, the first repeat is named, keys in different objects never
// clash, and distinct keys (however many) all pass.
TEST(StrictJson, RepeatedKeysInLargeObjects) {
  std::string many = "{";
  for (int i = 0; i < 50000; ++i) many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  StrictJsonResult ok = parse_strict_json(many + "}");
  ASSERT_TRUE(ok.ok) << ok.error;
  EXPECT_EQ(ok.value.size(), 50000u);
  EXPECT_EQ(ok.value["k49999"], 49999);
  StrictJsonResult dup = parse_strict_json(many + ",\"k123\":0,\"k7\":0}");
  EXPECT_FALSE(dup.ok);
  EXPECT_TRUE(dup.duplicate_key);
  EXPECT_EQ(dup.duplicate, "k123");
  EXPECT_EQ(dup.error, "duplicate key 'k123'");
  StrictJsonResult nested = parse_strict_json(R"({"a":{"a":1,"b":{"a":2}},"b":[{"a":1},{"a":2}]})");
  EXPECT_TRUE(nested.ok) << nested.error;
  EXPECT_FALSE(parse_strict_json(R"({"a":{"x":1},"b":2,"a":3})").ok);
}
