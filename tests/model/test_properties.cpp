// Property tests of the reference model on random configs and weights:
// absorbed MLA equals naive MLA, decode equals prefill, the bias only selects.
#include <gtest/gtest.h>

#include "reference/model/model.h"
#include "reference/model/sampling.h"

namespace dsv3::model {
namespace {

Config random_config(uint64_t seed) {
  Rng rng(seed);
  auto pick = [&](std::initializer_list<int64_t> v) {
    return *(v.begin() + rng.next() % v.size());
  };
  Config c;
  c.name = "random";
  c.source = "test";
  c.vocab_size = 97;
  c.hidden_size = pick({32, 48, 64});
  c.intermediate_size = 64;
  c.moe_intermediate_size = 16;
  c.num_hidden_layers = 3;
  c.num_attention_heads = pick({1, 2, 3, 4});
  c.q_lora_rank = pick({0, 24});
  c.kv_lora_rank = pick({8, 16, 32});
  c.qk_nope_head_dim = pick({8, 16});
  c.qk_rope_head_dim = pick({4, 8});
  c.v_head_dim = pick({8, 12});
  c.n_routed_experts = 8;
  c.n_shared_experts = pick({0, 1, 2});
  c.num_experts_per_tok = 2;
  c.n_group = pick({1, 2, 4});
  c.topk_group = c.n_group == 1 ? 1 : 2;
  c.first_k_dense_replace = 1;
  c.routed_scaling_factor = 2.5;
  bool v3 = rng.next() % 2;
  c.scoring_func = v3 ? ScoringFunc::kSigmoid : ScoringFunc::kSoftmax;
  c.topk_method = v3 ? TopkMethod::kNoauxTc
                     : (c.n_group > 1 ? TopkMethod::kGroupLimitedGreedy : TopkMethod::kGreedy);
  c.norm_topk_prob = v3;
  c.max_position_embeddings = 4096;
  if (rng.next() % 2) {
    c.rope_scaling.yarn = true;
    c.rope_scaling.factor = 8;
    c.rope_scaling.original_max_position_embeddings = 256;
    c.rope_scaling.mscale = 1.0;
    c.rope_scaling.mscale_all_dim = 0.707;
  }
  c.validate();
  return c;
}

std::vector<int32_t> random_ids(uint64_t seed, int n, int vocab) {
  Rng rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = static_cast<int32_t>(rng.next() % vocab);
  return ids;
}

float rel_error(const Mat& a, const Mat& b) {
  return (a - b).norm() / std::max(b.norm(), 1e-30f);
}

class RandomConfigs : public ::testing::TestWithParam<int> {};

TEST_P(RandomConfigs, AbsorbedAttentionEqualsNaive) {
  Config c = random_config(GetParam());
  Model m(c, random_weights(c, 100 + GetParam()));
  std::vector<int32_t> ids = random_ids(GetParam(), 19, static_cast<int>(c.vocab_size));
  auto naive = m.new_cache(AttnImpl::kNaive);
  auto absorbed = m.new_cache(AttnImpl::kAbsorbed);
  Trace tn, ta;
  ForwardOptions on, oa;
  on.trace = &tn;
  oa.trace = &ta;
  Mat ln = m.forward(ids, naive, on);
  Mat la = m.forward(ids, absorbed, oa);
  EXPECT_LT(rel_error(la, ln), 1e-5f);
  // Same experts chosen everywhere, and the same attention pattern.
  for (size_t t = 0; t < ids.size(); ++t)
    for (int l = 0; l < c.num_hidden_layers; ++l) {
      EXPECT_EQ(tn.tokens[t].layers[l].router.topk_idx, ta.tokens[t].layers[l].router.topk_idx);
      for (int h = 0; h < c.num_attention_heads; ++h)
        for (size_t s = 0; s <= t; ++s)
          EXPECT_NEAR(tn.tokens[t].layers[l].attn[h][s], ta.tokens[t].layers[l].attn[h][s], 1e-5);
    }
  // The absorbed cache holds d_c + d^R_h numbers per token per layer; naive H*(d_qk + d_v).
  EXPECT_EQ(absorbed.elements_per_token_per_layer(), c.kv_lora_rank + c.qk_rope_head_dim);
  EXPECT_EQ(naive.elements_per_token_per_layer(),
            c.num_attention_heads * (c.qk_head_dim() + c.v_head_dim));
  EXPECT_EQ(absorbed.bytes(), static_cast<int64_t>(ids.size()) * c.num_hidden_layers *
                                  (c.kv_lora_rank + c.qk_rope_head_dim) * 4);
}

TEST_P(RandomConfigs, DecodeEqualsPrefill) {
  Config c = random_config(GetParam());
  Model m(c, random_weights(c, 200 + GetParam()));
  std::vector<int32_t> ids = random_ids(GetParam() + 7, 13, static_cast<int>(c.vocab_size));
  for (AttnImpl impl : {AttnImpl::kNaive, AttnImpl::kAbsorbed}) {
    auto full = m.new_cache(impl);
    Mat want = m.forward(ids, full, {});
    auto inc = m.new_cache(impl);
    // A prefill of 5 tokens, then chunks of 1 and 3 and single steps.
    Mat got(static_cast<Eigen::Index>(ids.size()), c.vocab_size);
    size_t pos = 0;
    for (size_t chunk : {5, 1, 3, 1, 1, 1, 1}) {
      Mat part = m.forward(std::span(ids).subspan(pos, chunk), inc, {});
      got.middleRows(pos, chunk) = part;
      pos += chunk;
    }
    ASSERT_EQ(pos, ids.size());
    EXPECT_LT(rel_error(got, want), 1e-5f) << to_string(impl);
    EXPECT_EQ(inc.length(), full.length());
  }
}

TEST_P(RandomConfigs, TruncatedCacheRecomputesTheSameLogits) {
  Config c = random_config(GetParam());
  Model m(c, random_weights(c, 300 + GetParam()));
  std::vector<int32_t> ids = random_ids(GetParam() + 11, 10, static_cast<int>(c.vocab_size));
  std::vector<int32_t> other = ids;
  other[8] = (other[8] + 1) % static_cast<int32_t>(c.vocab_size);
  for (AttnImpl impl : {AttnImpl::kNaive, AttnImpl::kAbsorbed}) {
    auto cache = m.new_cache(impl);
    m.forward(std::span(other).first(10), cache, {});
    cache.truncate(8);  // roll back the last two positions, as speculative decoding does
    Mat got = m.forward(std::span(ids).subspan(8, 2), cache, {});
    auto fresh = m.new_cache(impl);
    Mat want = m.forward(ids, fresh, {}).bottomRows(2);
    EXPECT_LT(rel_error(got, want), 1e-5f);
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomConfigs, ::testing::Range(1, 9));

TEST(Model, TinyIsDeterministicAcrossLoads) {
  Model a = Model::load("tiny-random"), b = Model::load("tiny-random");
  std::vector<int32_t> ids = {0, 71, 104, 100};
  auto ca = a.new_cache(AttnImpl::kAbsorbed), cb = b.new_cache(AttnImpl::kAbsorbed);
  EXPECT_EQ(a.forward(ids, ca, {}), b.forward(ids, cb, {}));
  Model s = Model::load("tiny-random", 7);
  auto cs = s.new_cache(AttnImpl::kAbsorbed);
  ca = a.new_cache(AttnImpl::kAbsorbed);
  EXPECT_NE(a.forward(ids, ca, {}), s.forward(ids, cs, {}));
}

TEST(Model, RejectsOutOfVocabularyIds) {
  Model m = Model::load("tiny-random");
  auto cache = m.new_cache(AttnImpl::kAbsorbed);
  std::vector<int32_t> ids = {0, static_cast<int32_t>(m.config().vocab_size)};
  EXPECT_THROW(m.forward(ids, cache, {}), std::out_of_range);
  EXPECT_EQ(cache.length(), 0);
}

TEST(Model, TraceRecordsRoutingAttentionAndCacheBytes) {
  Model m = Model::load("tiny-random");
  auto cache = m.new_cache(AttnImpl::kAbsorbed);
  Trace trace;
  ForwardOptions opt;
  opt.trace = &trace;
  std::vector<int32_t> ids = {0, 71, 104};
  m.forward(ids, cache, opt);
  const Config& c = m.config();
  ASSERT_EQ(trace.tokens.size(), 3u);
  for (size_t t = 0; t < 3; ++t) {
    const TokenTrace& tt = trace.tokens[t];
    EXPECT_EQ(tt.position, static_cast<int64_t>(t));
    ASSERT_EQ(static_cast<int64_t>(tt.layers.size()), c.num_hidden_layers);
    for (const LayerTrace& lt : tt.layers) {
      EXPECT_EQ(lt.moe, c.is_moe_layer(lt.layer));
      EXPECT_EQ(lt.cache_bytes,
                static_cast<int64_t>(t + 1) * (c.kv_lora_rank + c.qk_rope_head_dim) * 4);
      ASSERT_EQ(static_cast<int64_t>(lt.attn.size()), c.num_attention_heads);
      for (const auto& row : lt.attn) {
        ASSERT_EQ(row.size(), t + 1);
        float sum = 0;
        for (float p : row) sum += p;
        EXPECT_NEAR(sum, 1.0f, 1e-5f);
      }
      if (lt.moe) {
        EXPECT_EQ(static_cast<int64_t>(lt.router.topk_idx.size()), c.num_experts_per_tok);
        EXPECT_EQ(static_cast<int64_t>(lt.router.groups_kept.size()), c.topk_group);
        float sum = 0;
        for (float w : lt.router.topk_weight) sum += w;
        EXPECT_NEAR(sum, c.routed_scaling_factor, 1e-5);  // eq. (13) normalised, then scaled
      }
    }
    ASSERT_EQ(tt.top_next.size(), 10u);
    EXPECT_GE(tt.top_next[0].second, tt.top_next[1].second);
  }
}

}  // namespace
}  // namespace dsv3::model
