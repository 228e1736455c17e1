// The restricted unpickler: what a state dict needs is accepted; every other global, opcode and
// abuse (memo, stack, marks, lengths) is refused with its name and byte offset, and the hostile
// testdata files are refused without anything being executed.
#include <gtest/gtest.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "formats/pickle/unpickler.h"
#include "test_support.h"
#include "torch_files.h"

using namespace ckpt;
using namespace ckpt::pickle;
using ckpt::test::PickleWriter;

namespace {

const Object* load(const std::string& bytes, Arena& arena, const Limits& limits = {}) {
  Source src{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t.pkl", "data.pkl"};
  return unpickle(src, 0, arena, nullptr, limits);
}

// The error a pickle gets: its code and message.
std::pair<Errc, std::string> refusal(const std::string& bytes, const Limits& limits = {}) {
  Arena arena;
  try {
    load(bytes, arena, limits);
  } catch (const Error& e) {
    return {e.code(), e.what()};
  }
  return {Errc::kCheckFailed, "accepted"};
}

void expect_refused(const std::string& bytes, Errc code, const std::string& needle, const Limits& limits = {}) {
  auto [c, msg] = refusal(bytes, limits);
  EXPECT_EQ(c, code) << msg;
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
}

}  // namespace

TEST(Unpickler, LoadsAStateDictWithEveryRebuildForm) {
  PickleWriter w;
  w.proto().ordered_dict().op('q').raw(std::string(1, '\0'));  // BINPUT 0
  w.op('(');
  w.str("a").tensor("FloatStorage", "0", 24, 6, {3, 3}, {6, 2});
  w.str("b").tensor("", "1", 6, 0, {3}, {1}, "uint16");
  w.str("p").global("torch._utils", "_rebuild_parameter").op('(');
  w.tensor("HalfStorage", "2", 4, 0, {2, 2}, {2, 1}).boolean(true).ordered_dict().op('t').op('R');
  w.str("old").global("torch._utils", "_rebuild_tensor").op('(').op('(').str("storage").global("torch", "BFloat16Storage");
  w.str("3").str("cpu").integer(2).op('t').op('Q').integer(0).int_tuple({2}).int_tuple({1}).op('t').op('R');
  w.op('u');
  // nn.Module.state_dict()'s _metadata arrives as BUILD with a dict; it is ignored.
  w.op('}').str("_metadata").ordered_dict().op('s').op('b').op('.');
  Arena arena;
  const Object* root = load(w.bytes(), arena);
  ASSERT_EQ(root->kind, Kind::kDict);
  ASSERT_EQ(root->entries.size(), 4u);
  const Object* a = root->get("a");
  ASSERT_EQ(a->kind, Kind::kTensor);
  EXPECT_EQ(a->tensor.dtype, DType::F32);
  EXPECT_EQ(a->tensor.offset, 6u);
  EXPECT_EQ(a->tensor.shape, (std::vector<uint64_t>{3, 3}));
  EXPECT_EQ(a->tensor.strides, (std::vector<int64_t>{6, 2}));
  EXPECT_EQ(a->tensor.storage->storage.numel, 24u);
  EXPECT_EQ(root->get("b")->tensor.dtype, DType::U16);
  EXPECT_EQ(root->get("b")->tensor.storage->storage.dtype, DType::U8);
  EXPECT_EQ(root->get("p")->tensor.dtype, DType::F16);
  EXPECT_EQ(root->get("old")->tensor.dtype, DType::BF16);
  EXPECT_EQ(arena.storages.size(), 4u);
}

TEST(Unpickler, RefusesGlobalsOutsideTheAllowList) {
  std::string evil = PickleWriter().proto().global("posix", "system").str("echo pwned").op(0x85).op('R').op('.').bytes();
  expect_refused(evil, Errc::kPickleRefused, "global 'posix.system' is not allowed");
  expect_refused(evil, Errc::kPickleRefused, "offset 2");
  for (auto [m, n] : {std::pair{"builtins", "eval"}, {"numpy.core.multiarray", "scalar"}, {"torch", "load"},
                      {"torch._utils", "_rebuild_qtensor"}, {"torch.nn.parameter", "Parameter"}, {"argparse", "Namespace"},
                      {"torch", "QInt8Storage"}, {"collections", "Counter"}})
    expect_refused(PickleWriter().proto().global(m, n).op('.').bytes(), Errc::kPickleRefused,
                   std::string("'") + m + "." + n + "'");
}

TEST(Unpickler, RefusesOpcodesOutsideTheList) {
  // Each of these is a real opcode torch's weights_only loader refuses too.
  for (auto [op, name] : {std::pair{0x93, "STACK_GLOBAL"}, {0x95, "FRAME"}, {0x94, "MEMOIZE"}, {0x8c, "SHORT_BINUNICODE"},
                          {'B', "BINBYTES"}, {'i', "INST"}, {'o', "OBJ"}, {'d', "DICT"}, {'l', "LIST"}, {'I', "INT"},
                          {'S', "STRING"}, {'0', "POP"}, {'2', "DUP"}, {0x82, "EXT1"}, {0x92, "NEWOBJ_EX"}, {'P', "PERSID"}})
    expect_refused(PickleWriter().proto().op(static_cast<uint8_t>(op)).op('.').bytes(), Errc::kPickleRefused,
                   std::string("opcode ") + name);
  expect_refused(PickleWriter().proto().op(0xff).bytes(), Errc::kPickleInvalid, "unknown opcode 0xff");
  expect_refused(PickleWriter().proto(4).op('N').op('.').bytes(), Errc::kPickleRefused, "pickle protocol 4");
}

TEST(Unpickler, RefusesCallsAndBuildsOnAnythingElse) {
  // REDUCE on a storage class, a dtype, a non-global; NEWOBJ of a tensor function; BUILD on a list.
  expect_refused(PickleWriter().proto().global("torch", "FloatStorage").op(')').op('R').op('.').bytes(),
                 Errc::kPickleRefused, "calling 'torch.FloatStorage'");
  expect_refused(PickleWriter().proto().op('N').op(')').op('R').op('.').bytes(), Errc::kPickleRefused, "REDUCE on a None");
  expect_refused(PickleWriter().proto().global("torch._utils", "_rebuild_tensor_v2").op(')').op(0x81).op('.').bytes(),
                 Errc::kPickleRefused, "NEWOBJ of 'torch._utils._rebuild_tensor_v2'");
  expect_refused(PickleWriter().proto().op(']').op('}').op('b').op('.').bytes(), Errc::kPickleRefused, "BUILD on a list");
  expect_refused(PickleWriter().proto().op('}').op('N').op('a').op('.').bytes(), Errc::kPickleRefused, "APPEND on a dict");
  expect_refused(PickleWriter().proto().op('(').str("notstorage").op('t').op('Q').op('.').bytes(), Errc::kPickleRefused,
                 "persistent id of type 'notstorage'");
  expect_refused(PickleWriter().proto().ordered_dict().op('(').op(')').op('N').op('u').op('.').bytes(), Errc::kPickleRefused,
                 "dict key of type tuple");
  // A rebuild with non-empty tensor metadata (conj/neg bits) is not plain data.
  PickleWriter conj;
  conj.proto().global("torch._utils", "_rebuild_tensor_v2").op('(').op('(').str("storage").global("torch", "FloatStorage");
  conj.str("0").str("cpu").integer(1).op('t').op('Q').integer(0).int_tuple({1}).int_tuple({1}).boolean(false).ordered_dict();
  conj.op('}').str("conj").boolean(true).op('s').op('t').op('R').op('.');
  expect_refused(conj.bytes(), Errc::kPickleRefused, "tensor metadata is not empty");
}

TEST(Unpickler, RefusesMemoStackAndLengthAbuse) {
  expect_refused(PickleWriter().proto().op('h').raw("\x05").op('.').bytes(), Errc::kPickleInvalid, "memo entry 5 was never stored");
  expect_refused(PickleWriter().proto().op('R').op('.').bytes(), Errc::kPickleInvalid, "REDUCE on an empty stack");
  expect_refused(PickleWriter().proto().op('N').op('t').op('.').bytes(), Errc::kPickleInvalid, "TUPLE without a MARK");
  expect_refused(PickleWriter().proto().op('N').op('N').op('.').bytes(), Errc::kPickleInvalid, "STOP with 2 values");
  expect_refused(PickleWriter().proto().op('(').op('N').op('.').bytes(), Errc::kPickleInvalid, "STOP with");
  // A string length far beyond the data, and beyond the limit.
  expect_refused(PickleWriter().proto().op('X').raw(std::string("\xff\xff\xff\x7f", 4)).bytes(), Errc::kPickleInvalid,
                 "larger than allowed");
  expect_refused(PickleWriter().proto().op('X').raw(std::string("\x10\x00\x00\x00" "ab", 6)).bytes(), Errc::kPickleInvalid,
                 "truncated");
  expect_refused(PickleWriter().proto().op(0x8a).raw("\x09" + std::string(9, '\1')).op('.').bytes(), Errc::kPickleRefused,
                 "wider than 64 bits");
  expect_refused(PickleWriter().proto().op('X').raw(std::string("\x02\x00\x00\x00\xc3\x28", 6)).op('.').bytes(),
                 Errc::kPickleInvalid, "not valid UTF-8");
  Limits small;
  small.max_stack = 8;
  small.max_memo = 2;
  std::string deep = PickleWriter().proto().bytes();
  for (int i = 0; i < 9; ++i) deep += 'N';
  expect_refused(deep, Errc::kPickleInvalid, "stack deeper than 8", small);
  std::string memo = PickleWriter().proto().op('N').bytes() + "q\x01q\x02q\x03.";
  expect_refused(memo, Errc::kPickleInvalid, "memo holds more than 2", small);
  expect_refused(PickleWriter().proto().bytes(), Errc::kPickleInvalid, "truncated");
}

TEST(Unpickler, CyclicObjectsNeitherCrashNorLeak) {
  // l = []; l.append(l) — through the memo. The arena owns everything, so ASan sees no leak.
  std::string bytes = PickleWriter().proto().op(']').bytes() + std::string("q\x00h\x00" "a.", 6);
  Arena arena;
  const Object* root = load(bytes, arena);
  ASSERT_EQ(root->kind, Kind::kList);
  EXPECT_EQ(root->items.at(0), root);
}

TEST(Unpickler, MaliciousTestdataIsRefusedAndNothingRuns) {
  ::unlink("/tmp/ckpt_pwned");
  for (const char* f : {"malicious/malicious.bin", "malicious/malicious_legacy.bin"}) {
    try {
      open_checkpoint(test::testdata(f));
      ADD_FAILURE() << f << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::kPickleRefused) << e.what();
      EXPECT_NE(std::string(e.what()).find("global 'posix.system' is not allowed"), std::string::npos) << e.what();
    }
  }
  EXPECT_NE(::access("/tmp/ckpt_pwned", F_OK), 0) << "the malicious payload ran";
}
