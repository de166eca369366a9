// Exact properties of the gradient and the optimizer step (training.md §6 "what this means"):
// no LM gradient to a top-1 router, none to the bias, the balance loss reaching unselected
// experts, MTP reaching the trunk, the training forward equal to inference, AdamW on untouched
// experts, clipping, the bias rule and the schedule by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "reference/model/model.h"
#include "reference/model/mtp.h"
#include "reference/train/objective.h"
#include "reference/train/optimizer.h"
#include "tests/train/micro.h"

namespace dsv3::train {
namespace {

using testing::micro_config;
using testing::micro_weights;
using testing::random_batch;

struct Micro {
  model::Config c;
  model::RopeTable rope;
  model::ModelWeights w;
  explicit Micro(const testing::MicroOptions& o = {}, uint64_t seed = 7)
      : c(micro_config(o)), rope(model::make_rope_table(c)), w(micro_weights(c, seed)) {}
  LossParts run(const Batch& b, const Objective& obj, model::ModelWeights* g) const {
    return loss_and_grad<float>(c, rope, w, b, obj, g);
  }
};

TEST(TrainProperties, TopOneRoutingGivesTheRouterNoLanguageModelGradient) {
  // K_r = 1 with normalised sigmoid gates: g = R s / s = R is constant in s (§6.2 pitfall).
  Micro s({.topk = 1, .groups = 1, .topk_group = 1});
  Objective obj{0.3, 0.0, BalanceMode::kLossFree};
  auto g = zeros_like(s.c, s.w);
  s.run(random_batch(s.c, 2, 9, 1), obj, &g);
  for (int l : {1, 2}) EXPECT_EQ(g.layers[l].moe->gate.norm(), 0.0f) << "layer " << l;
  EXPECT_EQ(g.mtp[0].block.moe->gate.norm(), 0.0f);
  // With K_r = 2 the same model's routers do learn from the LM loss, and with alpha > 0 the
  // top-1 router learns from the balance loss.
  Micro s2({.topk = 2});
  auto g2 = zeros_like(s2.c, s2.w);
  s2.run(random_batch(s2.c, 2, 9, 1), obj, &g2);
  EXPECT_GT(g2.layers[1].moe->gate.norm(), 0.0f);
  auto g3 = zeros_like(s.c, s.w);
  s.run(random_batch(s.c, 2, 9, 1), Objective{0.3, 0.01, BalanceMode::kLossFree}, &g3);
  EXPECT_GT(g3.layers[1].moe->gate.norm(), 0.0f);
}

TEST(TrainProperties, TheBiasSelectsButHasNoGradient) {
  Micro s;
  Batch b = random_batch(s.c, 2, 9, 2);
  Objective obj{0.3, 0.1, BalanceMode::kLossFree};
  auto g = zeros_like(s.c, s.w);
  const double base = s.run(b, obj, &g).total;
  EXPECT_EQ(g.layers[1].moe->e_score_correction_bias.norm(), 0.0f);  // never written
  // A tiny move of every bias keeps every selection: the loss is exactly unchanged (the gate
  // value never contains b, eq. 16) ...
  Micro moved = s;
  moved.w.layers[1].moe->e_score_correction_bias.array() += 1e-6f;
  EXPECT_EQ(moved.run(b, obj, nullptr).total, base);
  // ... while a large push on one expert changes which experts run, and so the loss.
  moved.w.layers[1].moe->e_score_correction_bias[0] += 10.0f;
  LossParts pushed = moved.run(b, obj, nullptr);
  EXPECT_NE(pushed.total, base);
  EXPECT_EQ(pushed.expert_counts[0][0], 2 * 9);  // every token of layer 1 now picks expert 0
  // Aux mode routes as if b = 0: the push changes nothing there.
  Objective aux{0.3, 0.1, BalanceMode::kAux};
  EXPECT_EQ(moved.run(b, aux, nullptr).total, s.run(b, aux, nullptr).total);
}

TEST(TrainProperties, BalanceLossReachesExpertsNoTokenChose) {
  Micro s;
  Batch b = random_batch(s.c, 1, 6, 3);
  // Find an expert of layer 1 that no token chose.
  LossParts lp = s.run(b, Objective{0.0, 0.0, BalanceMode::kAux}, nullptr);
  int idle = -1;
  for (int e = 0; e < s.c.n_routed_experts; ++e)
    if (lp.expert_counts[0][e] == 0) idle = e;
  ASSERT_GE(idle, 0);
  auto g0 = zeros_like(s.c, s.w);
  s.run(b, Objective{0.0, 0.0, BalanceMode::kAux}, &g0);
  EXPECT_EQ(g0.layers[1].moe->gate.row(idle).norm(), 0.0f);  // the LM loss cannot see it
  auto g1 = zeros_like(s.c, s.w);
  s.run(b, Objective{0.0, 0.1, BalanceMode::kAux}, &g1);
  EXPECT_GT(g1.layers[1].moe->gate.row(idle).norm(), 0.0f);  // P_i has every expert in it
  // Its FFN weights get nothing either way: no token went through them.
  EXPECT_EQ(g1.layers[1].moe->experts[idle].up_proj.norm(), 0.0f);
}

TEST(TrainProperties, BalanceLossIsOneForUniformRouting) {
  // Eq. (17)-(20) sanity: with equal scores and every expert chosen equally, L_Bal = 1 per layer.
  Micro s({.experts = 4, .topk = 4, .groups = 1, .topk_group = 1});
  for (auto* l : {&s.w.layers[1], &s.w.layers[2], &s.w.mtp[0].block}) {
    l->moe->gate.setZero();  // s_i = 1/2 for every expert
    l->moe->e_score_correction_bias.setZero();
  }
  LossParts lp = s.run(random_batch(s.c, 2, 5, 4), Objective{}, nullptr);
  EXPECT_NEAR(lp.balance, 3.0, 1e-6);  // three MoE layers (two main, one MTP block)
}

TEST(TrainProperties, MtpGradientFlowsIntoTheTrunkAndSharedTensors) {
  Micro s;
  Batch b = random_batch(s.c, 2, 9, 5);
  auto g_off = zeros_like(s.c, s.w), g_on = zeros_like(s.c, s.w);
  s.run(b, Objective{0.0, 0.0, BalanceMode::kLossFree}, &g_off);
  s.run(b, Objective{0.3, 0.0, BalanceMode::kLossFree}, &g_on);
  // lambda = 0: the module gets nothing.
  EXPECT_EQ(g_off.mtp[0].eh_proj.norm(), 0.0f);
  EXPECT_GT(g_on.mtp[0].eh_proj.norm(), 0.0f);
  // The module's input h^0 is not detached: the first layer's gradient changes.
  EXPECT_GT((g_on.layers[0].attn.o_proj - g_off.layers[0].attn.o_proj).norm(), 0.0f);
  // Shared head and embedding: the MTP path adds its gradient to the main model's tensors.
  EXPECT_GT((g_on.lm_head - g_off.lm_head).norm(), 0.0f);
  EXPECT_GT((g_on.embed_tokens - g_off.embed_tokens).norm(), 0.0f);
}

TEST(TrainProperties, TrainingForwardEqualsInference) {
  // B = 1: the trainer's float32 L_main and L_MTP equal model::mtp_loss (naive MLA) on the
  // same weights: training and inference run one model.
  model::Model m = model::Model::load(std::string(DSV3_TEST_DATA) + "/tiny-yarn-groups");
  Batch b = random_batch(m.config(), 1, 24, 6);
  LossParts lp = loss_and_grad<float>(m.config(), m.rope(), m.weights(), b,
                                      Objective{0.3, 0.0, BalanceMode::kNone}, nullptr);
  model::MtpLoss ref = model::mtp_loss(m, b.ids, 0.3, model::AttnImpl::kNaive);
  EXPECT_NEAR(lp.main, ref.main, 2e-6 * ref.main);
  ASSERT_EQ(lp.mtp.size(), 1u);
  EXPECT_NEAR(lp.mtp[0], ref.per_token[0], 2e-6 * ref.per_token[0]);
  EXPECT_NEAR(lp.total, ref.main + ref.total_per_token, 2e-6 * lp.total);
}

TEST(TrainProperties, AdamWDecaysAndMovesAnExpertNoTokenTouched) {
  Micro s;
  model::ModelWeights w = s.w;
  auto g = zeros_like(s.c, w);
  // A gradient only on one matrix: every other tensor has g = 0 and is still stepped.
  g.lm_head.setConstant(0.5f);
  AdamWState st = adamw_init(s.c, w);
  const double lr = 0.01, wd = 0.1;
  adamw_step(s.c, w, g, st, lr, AdamWOptions{});
  const float decay = static_cast<float>(1.0 - lr * wd);
  // Zero gradient, zero moments: only the decoupled decay moves a matrix ...
  EXPECT_EQ(w.layers[1].moe->experts[3].up_proj,
            (s.w.layers[1].moe->experts[3].up_proj * decay).eval());
  // ... and nothing moves a 1-D norm weight.
  EXPECT_EQ(w.norm, s.w.norm);
  // First step with a gradient: m/(1-β1) = g, sqrt(v/(1-β2)) = |g|, so θ moves by lr·sign(g).
  const float expect = s.w.lm_head(0, 0) * decay - static_cast<float>(lr) * 0.5f / (0.5f + 1e-8f);
  EXPECT_NEAR(w.lm_head(0, 0), expect, 1e-7);
  // The biases are not parameters.
  EXPECT_EQ(w.layers[1].moe->e_score_correction_bias, s.w.layers[1].moe->e_score_correction_bias);
}

TEST(TrainProperties, ClipScalesToTheNormAsTorchDoes) {
  Micro s;
  auto g = zeros_like(s.c, s.w);
  g.lm_head(0, 0) = 3.0f;
  g.norm[0] = 4.0f;  // global norm 5
  EXPECT_NEAR(clip_grad_norm(s.c, g, 1.0), 5.0, 1e-12);
  EXPECT_NEAR(g.lm_head(0, 0), 3.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(grad_norm(s.c, g), 5.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(clip_grad_norm(s.c, g, 2.0), 1.0, 1e-6);  // below the limit: untouched
  EXPECT_NEAR(g.norm[0], 4.0 / (5.0 + 1e-6), 1e-7);
}

TEST(TrainProperties, ClippingFoldedIntoAdamWEqualsClipThenAdamW) {
  Micro s;
  auto g = zeros_like(s.c, s.w);
  s.run(random_batch(s.c, 2, 9, 8), Objective{}, &g);
  const double norm = grad_norm(s.c, g);
  ASSERT_GT(norm, 0.5);
  model::ModelWeights a = s.w, b = s.w;
  AdamWState sa = adamw_init(s.c, a), sb = adamw_init(s.c, b);
  auto g_clipped = g;
  EXPECT_EQ(clip_grad_norm(s.c, g_clipped, 0.5), norm);
  adamw_step(s.c, a, g_clipped, sa, 1e-2, AdamWOptions{});
  adamw_step(s.c, b, g, sb, 1e-2, AdamWOptions{}, clip_scale(norm, 0.5));
  EXPECT_EQ(a.layers[1].moe->gate, b.layers[1].moe->gate);  // bit for bit
  EXPECT_EQ(a.embed_tokens, b.embed_tokens);
  EXPECT_EQ(sa.v.lm_head, sb.v.lm_head);
  EXPECT_EQ(clip_scale(0.4, 0.5), 1.0f);
}

// The trainer's AdamW (pieces of 2048 elements as vectorised array statements, shared by the
// threads) against the element-by-element loop kept as its reference: bit for bit, on the
// tiny-yarn-groups config (tensors of up to 10^5 elements, sizes that are not multiples of a
// piece or of a SIMD width), with clipping folded in, and in both moment precisions.
TEST(Optimizer, FastAdamWEqualsThePlainLoopBitForBit) {
  const model::Config c =
      model::Model::load(std::string(DSV3_TEST_DATA) + "/tiny-yarn-groups").config();
  const model::ModelWeights w0 = model::random_weights(c, 11);
  int64_t largest = 0, ragged = 0;
  model::visit_model(c, w0, [&](const std::string&, const auto& t) {
    largest = std::max<int64_t>(largest, t.size());
    if (t.size() > 2048 && t.size() % 2048 != 0) ++ragged;
  });
  ASSERT_GT(largest, 4 * 2048);  // several pieces per tensor ...
  ASSERT_GT(ragged, 0);          // ... and a last piece that is not whole
  for (bool bf16 : {false, true}) {
    model::ModelWeights fast = w0, plain = w0;
    AdamWState sf = adamw_init(c, fast), sp = adamw_init(c, plain);
    AdamWOptions opt;
    opt.bf16_moments = bf16;
    for (int step = 0; step < 3; ++step) {
      // A gradient of mixed scales: normal values, some exact zeros, some large.
      model::ModelWeights g = model::init_weights(c, 100 + step, 0.3);
      g.layers[0].attn.o_proj.setZero();
      g.lm_head.row(1) *= 1e4f;
      const float scale = step == 1 ? 0.37f : 1.0f;
      adamw_step(c, fast, g, sf, 1e-2, opt, scale);
      adamw_step_plain(c, plain, g, sp, 1e-2, opt, scale);
    }
    auto same = [&](const model::ModelWeights& a, const model::ModelWeights& b, const char* what) {
      std::vector<const float*> pa;
      std::vector<std::pair<std::string, int64_t>> names;
      model::visit_model(c, a, [&](const std::string& n, const auto& t) {
        pa.push_back(t.data());
        names.emplace_back(n, t.size());
      });
      size_t k = 0;
      model::visit_model(c, b, [&](const std::string&, const auto& t) {
        EXPECT_EQ(std::memcmp(pa[k], t.data(), sizeof(float) * names[k].second), 0)
            << what << " " << names[k].first << (bf16 ? " (bf16 moments)" : "");
        ++k;
      });
    };
    same(fast, plain, "weights");
    same(sf.m, sp.m, "first moment");
    same(sf.v, sp.v, "second moment");
    EXPECT_NE(fast.lm_head, w0.lm_head);  // the step moved them
    EXPECT_EQ(sf.step, 3);
  }
}

TEST(TrainProperties, BiasUpdateFollowsTheSignRule) {
  Micro s({.experts = 4, .groups = 1, .topk_group = 1});
  model::ModelWeights w = s.w;
  w.layers[1].moe->e_score_correction_bias.setZero();
  LossParts step;
  step.moe_layers = {1};
  step.expert_counts = {{5, 3, 4, 4}};  // mean 4: overloaded, underloaded, balanced x2
  update_biases(s.c, w, step, 0.001);
  const VecT<float>& b = w.layers[1].moe->e_score_correction_bias;
  EXPECT_FLOAT_EQ(b[0], -0.001f);
  EXPECT_FLOAT_EQ(b[1], 0.001f);
  EXPECT_EQ(b[2], 0.0f);
  EXPECT_EQ(b[3], 0.0f);
  EXPECT_NEAR(step_max_vio(step)[0], 0.25, 1e-12);  // (5 - 4) / 4
}

TEST(TrainProperties, ScheduleHasThePapersShape) {
  const double peak = 2.2e-4;
  const int64_t n = 10000, warm = 200;
  EXPECT_NEAR(learning_rate(Schedule::kCosine, peak, 0, n, warm), peak / 200, 1e-15);
  EXPECT_NEAR(learning_rate(Schedule::kCosine, peak, 199, n, warm), peak, 1e-15);
  EXPECT_EQ(learning_rate(Schedule::kCosine, peak, 6000, n, warm), peak);  // constant to 67.6%
  // Cosine to 0.1x between 67.6% and 96.6%; its midpoint is 0.55x.
  const int64_t mid = static_cast<int64_t>(n * (10.0 + 2.15) / 14.8);
  EXPECT_NEAR(learning_rate(Schedule::kCosine, peak, mid, n, warm), 0.55 * peak, 0.01 * peak);
  EXPECT_NEAR(learning_rate(Schedule::kCosine, peak, 9700, n, warm), 2.2e-5, 1e-12);
  EXPECT_NEAR(learning_rate(Schedule::kCosine, peak, 9999, n, warm), 7.3e-6, 1e-12);
  EXPECT_EQ(learning_rate(Schedule::kConstant, peak, 9999, n, warm), peak);
}

}  // namespace
}  // namespace dsv3::train
