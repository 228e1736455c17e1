// compare_models' building blocks on the CPU: diff_activations (the sums every backend's diff
// reduces to) against plain arithmetic, and the comparison through the StepForward interface on
// testdata/llama: a model against itself agrees exactly; the same model with one Linear's rows
// swapped is located at that layer and Linear. (The CUDA backend is compared with this one in
// tests/gpu/test_gpu_compare.cpp.)
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "model/compare.h"
#include "model/cpu_step_forward.h"
#include "test_support.h"

using namespace ckpt;

TEST(CompareDiff, SumsCosineAndLargestDifference) {
  // ref rows (1, 0, 2) and (0, 0, 0); other rows (1, 1, 2) and (0, 3, 0).
  const double ref[] = {1, 0, 2, 0, 0, 0};
  const double other[] = {1, 1, 2, 0, 3, 0};
  const model::ActivationDiff d = model::diff_activations(ref, other, 2, 3, false);
  EXPECT_DOUBLE_EQ(d.sum_sq_diff, 1 + 9);
  EXPECT_DOUBLE_EQ(d.sum_sq_ref, 5);
  EXPECT_DOUBLE_EQ(d.max_abs_diff, 3);
  EXPECT_EQ(d.max_at, 4u);
  EXPECT_DOUBLE_EQ(d.min_row_cosine, 0);  // a zero row against a nonzero one
  EXPECT_TRUE(std::isnan(d.rescaled_sq_diff));
  EXPECT_DOUBLE_EQ(model::row_cosine(0, 0, 0), 1);
}

TEST(CompareDiff, RescaledErrorForgivesAPositiveScaleAChannel) {
  // other = ref with column 0 times 4 and column 1 times 1/2: exact after the per-column scale.
  const double ref[] = {1, 2, -3, 4, 0.5, -1};
  const double other[] = {4, 1, -12, 2, 2, -0.5};
  const model::ActivationDiff d = model::diff_activations(ref, other, 3, 2, true);
  EXPECT_GT(d.sum_sq_diff, 1);
  EXPECT_NEAR(d.rescaled_sq_diff, 0, 1e-24);
  // A negative scale is not forgiven (alpha is clamped at 0: the error is the whole of ref's column).
  const double flipped[] = {-1, 2, 3, 4, -0.5, -1};
  EXPECT_NEAR(model::diff_activations(ref, flipped, 3, 2, true).rescaled_sq_diff, 1 + 9 + 0.25, 1e-12);
}

TEST(CompareModels, SameModelAgreesExactlyThroughTheStepInterface) {
  auto m = model::Model::open(test::testdata("llama"));
  const model::TokenIds ids = model::seeded_token_ids(m->config().vocab, 2, 8, 1);
  model::CompareOptions o;
  o.generate = 3;
  model::ComparedForwards f = model::cpu_compared_forwards(*m, *m, 2, 8 + 3, 8, o.workers);
  const model::Comparison c = model::compare_models(*m, *m, ids, o, f);
  EXPECT_EQ(c.device, "cpu");
  EXPECT_EQ(c.transformation, model::Transformation::kSame);
  EXPECT_EQ(c.top1, 1.0);
  EXPECT_EQ(c.top5_overlap, 1.0);
  EXPECT_EQ(c.mean_kl, 0.0);
  EXPECT_EQ(c.max_abs_logit_delta, 0.0);
  EXPECT_EQ(c.first_bad_layer, -1);
  EXPECT_TRUE(c.failures.empty());
  ASSERT_EQ(c.layers.size(), m->config().layers);
  for (const auto& l : c.layers) {
    EXPECT_EQ(l.hidden_cosine, 1.0);
    ASSERT_FALSE(l.linears.empty());
    EXPECT_EQ(l.linears.front().name, "self_attn.q_proj");
    for (const auto& lin : l.linears) EXPECT_EQ(lin.relative_error, 0.0) << lin.name;
  }
  EXPECT_EQ(c.src_generated, c.dst_generated);
  EXPECT_EQ(c.src_generated[0].size(), 3u);
  EXPECT_EQ(c.first_divergence, std::vector<int64_t>(2, -1));
  EXPECT_GE(c.seconds.layers, 0.0);
}

TEST(CompareModels, DifferentModelsAreRefusedBeforeAnyForward) {
  auto a = model::Model::open(test::testdata("llama"));
  auto b = model::Model::open(test::testdata("qwen3"));
  EXPECT_THROW(model::check_comparable(*a, *b), Error);
}
