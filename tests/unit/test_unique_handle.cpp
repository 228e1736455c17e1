// UniqueHandle (core/unique_handle.h), the owner of every CUDA/cuBLAS handle the host code
// creates, against a fake C API that records each destroy.
#include "core/unique_handle.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

namespace ckpt {
namespace {

struct FakeObject {
  int id;
};
using FakeHandle = FakeObject*;

std::vector<int> g_destroyed;

int fake_create(FakeHandle* out, int id) {
  *out = new FakeObject{id};
  return 0;
}
int fake_destroy(FakeHandle h) {
  g_destroyed.push_back(h->id);
  delete h;
  return 0;
}

using Fake = UniqueHandle<FakeHandle, fake_destroy>;

class UniqueHandleTest : public ::testing::Test {
 protected:
  void SetUp() override { g_destroyed.clear(); }
};

TEST_F(UniqueHandleTest, DestroysOnceWhenItGoesOutOfScope) {
  {
    Fake h;
    fake_create(h.out(), 1);
    EXPECT_EQ(static_cast<FakeHandle>(h)->id, 1);
    EXPECT_TRUE(g_destroyed.empty());
  }
  EXPECT_EQ(g_destroyed, std::vector<int>{1});
}

TEST_F(UniqueHandleTest, AnEmptyOwnerDestroysNothing) {
  { Fake h; }
  EXPECT_TRUE(g_destroyed.empty());
}

// The leak issue 12 found in the GEMM warm-up (since replaced): a check throwing between create and destroy.
TEST_F(UniqueHandleTest, AThrowBetweenCreateAndUseLeaksNothing) {
  // (a lambda: the block's comma would split EXPECT_THROW's arguments)
  auto create_two_then_fail = [] {
    Fake a, b;
    fake_create(a.out(), 1);
    fake_create(b.out(), 2);
    throw std::runtime_error("a failed check");
  };
  EXPECT_THROW(create_two_then_fail(), std::runtime_error);
  EXPECT_EQ(g_destroyed, (std::vector<int>{2, 1}));
}

TEST_F(UniqueHandleTest, OutDestroysWhatWasHeldBeforeCreatingAgain) {
  Fake h;
  fake_create(h.out(), 1);
  fake_create(h.out(), 2);
  EXPECT_EQ(g_destroyed, std::vector<int>{1});
  h.reset();
  EXPECT_EQ(g_destroyed, (std::vector<int>{1, 2}));
  EXPECT_EQ(h.get(), nullptr);
  h.reset();
  EXPECT_EQ(g_destroyed.size(), 2u);
}

TEST_F(UniqueHandleTest, MovingTransfersOwnership) {
  Fake a;
  fake_create(a.out(), 7);
  Fake b(std::move(a));
  EXPECT_EQ(a.get(), nullptr);
  Fake c;
  fake_create(c.out(), 8);
  c = std::move(b);  // 8 goes, 7 moves in
  EXPECT_EQ(g_destroyed, std::vector<int>{8});
  std::vector<Fake> many;
  many.push_back(std::move(c));
  for (int i = 0; i < 20; ++i) {  // reallocations move, never destroy
    many.emplace_back();
    fake_create(many.back().out(), 100 + i);
  }
  EXPECT_EQ(g_destroyed, std::vector<int>{8});
  many.clear();
  EXPECT_EQ(g_destroyed.size(), 22u);
}

}  // namespace
}  // namespace ckpt
