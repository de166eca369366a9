// Balancing the reference model's own routers (tiny config, frozen weights) and the explorer's
// ModelBalancer API.
#include <gtest/gtest.h>

#include <cmath>

#include "reference/balance/model_balance.h"
#include "reference/model/model.h"

namespace dsv3::balance {
namespace {

TEST(ModelBalance, BiasesMoveByAtMostGammaPerBatchAndBalanceImproves) {
  model::Model m = model::Model::load("tiny-random");
  ModelBalanceConfig c;
  c.tokens = 4096;
  c.tokens_per_batch = 256;
  c.seq_len = 64;
  c.gamma = 2e-3f;
  c.heldout_tokens = 512;
  const ModelBalanceResult r = run_model_balance(m, c);
  ASSERT_FALSE(r.moe_layers.empty());
  EXPECT_EQ(r.moe_layers.front(), static_cast<int>(m.config().first_k_dense_replace));
  const int steps = 4096 / 256;
  ASSERT_EQ(r.maxvio_batch_mean.size(), static_cast<size_t>(steps));
  for (size_t i = 0; i < r.moe_layers.size(); ++i) {
    // The model's live weights hold the final biases; no step moved one by more than γ.
    const Vec& live = m.weights().layers[r.moe_layers[i]].moe->e_score_correction_bias;
    for (int e = 0; e < live.size(); ++e) {
      EXPECT_EQ(live[e], r.bias_after[i][e]);
      EXPECT_LE(std::abs(r.bias_after[i][e] - r.bias_before[i][e]), steps * c.gamma * 1.001f);
    }
  }
  // Held-out balance improves on average over the MoE layers.
  EXPECT_LT(r.mean_global_after, r.mean_global_before);
}

TEST(ModelBalance, BalancerTogglesAndObservesTraces) {
  model::Model m = model::Model::load("tiny-random");
  ModelBalancer b(m.config(), 1e-2f);
  const int first_moe = b.moe_layers().front();
  EXPECT_THROW(b.layer(0), std::out_of_range);  // layer 0 is dense in tiny
  const Vec before = m.weights().layers[first_moe].moe->e_score_correction_bias;
  model::Trace trace;
  model::ForwardOptions opt;
  opt.trace = &trace;
  model::KVCache cache = m.new_cache(model::AttnImpl::kAbsorbed);
  const std::vector<int32_t> ids = {5, 17, 42, 99, 7, 7, 7, 300};
  m.forward(ids, cache, opt);
  b.set_enabled(false);
  b.observe(trace);
  EXPECT_EQ(b.tokens(), 8);
  auto st = b.step(m);
  ASSERT_EQ(st.size(), b.moe_layers().size());
  EXPECT_EQ(m.weights().layers[first_moe].moe->e_score_correction_bias, before);  // off: no move
  EXPECT_GT(st[0].maxvio, 0.0);
  b.set_enabled(true);
  b.set_gamma(0.5f);
  b.observe(trace);
  b.step(m);
  const Vec& after = m.weights().layers[first_moe].moe->e_score_correction_bias;
  EXPECT_NE(after, before);
  EXPECT_LE((after - before).cwiseAbs().maxCoeff(), 0.5f + 1e-6f);
  EXPECT_EQ(b.mean_maxvio_history().size(), 2u);
}

}  // namespace
}  // namespace dsv3::balance
