// Multi-token prediction: the depth-1 forward against PyTorch, the loss bookkeeping, and the
// lossless property of speculative decoding (greedy: identical tokens; sampled: identical
// distribution).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>

#include "reference/model/generate.h"
#include "reference/model/mtp.h"
#include "reference/model/speculative.h"
#include "tests/model/golden.h"

namespace dsv3 {
namespace {

using model::AttnImpl;

// The built-in tiny config with D MTP modules (random weights by seed).
model::Model tiny_with_depth(int D, uint64_t seed = 0) {
  model::Config c = model::resolve_config("tiny-random");
  c.num_nextn_predict_layers = D;
  return model::Model(c, model::random_weights(c, seed));
}

const model::Model& tiny3() {
  static model::Model m = tiny_with_depth(3);
  return m;
}

std::vector<int32_t> golden_ids(const io::SafetensorsFile& g) {
  std::vector<int32_t> out;
  for (int64_t v : testing::golden_i64(g, "input_ids")) out.push_back(static_cast<int32_t>(v));
  return out;
}

class MtpGolden : public ::testing::TestWithParam<AttnImpl> {};

// tests/data/tiny-yarn-groups: mtp.1.logits computed in PyTorch from eq. (21)-(23) with the
// released-weight conventions, independently of this code (tests/data/gen/hf_reference.py).
TEST_P(MtpGolden, Depth1MatchesPyTorchReference) {
  const std::string dir = testing::data_path("tiny-yarn-groups");
  model::Model m = model::Model::load(dir);
  ASSERT_EQ(model::mtp_modules(m), 1);
  io::SafetensorsFile g(dir + "/golden.safetensors");
  std::vector<int32_t> ids = golden_ids(g);
  auto cache = m.new_cache(GetParam());
  std::vector<Mat> hidden;
  model::ForwardOptions fo;
  fo.hidden = &hidden;
  m.forward(ids, cache, fo);
  model::MtpOutput mo = model::mtp_forward(m, ids, hidden.back(), GetParam());
  ASSERT_EQ(mo.logits.size(), 1u);
  Mat want = testing::golden_matrix(g, "mtp.1.logits");
  ASSERT_EQ(mo.logits[0].rows(), static_cast<int64_t>(ids.size()) - 1);
  ASSERT_EQ(want.rows(), mo.logits[0].rows());
  ASSERT_EQ(want.cols(), mo.logits[0].cols());
  EXPECT_LT((mo.logits[0] - want).cwiseAbs().maxCoeff(), 1e-4);
}

TEST_P(MtpGolden, WrongConcatenationOrderIsDetected) {
  // The golden data can tell [emb; h] from the paper's [h; emb]: swapping the halves of
  // eh_proj's input columns must break the match (the test above can fail).
  const std::string dir = testing::data_path("tiny-yarn-groups");
  model::Model m = model::Model::load(dir);
  const int64_t d = m.config().hidden_size;
  Mat& eh = m.mutable_weights().mtp[0].eh_proj;
  Mat swapped(eh.rows(), eh.cols());
  swapped.leftCols(d) = eh.rightCols(d);
  swapped.rightCols(d) = eh.leftCols(d);
  eh = swapped;
  io::SafetensorsFile g(dir + "/golden.safetensors");
  std::vector<int32_t> ids = golden_ids(g);
  auto cache = m.new_cache(GetParam());
  std::vector<Mat> hidden;
  model::ForwardOptions fo;
  fo.hidden = &hidden;
  m.forward(ids, cache, fo);
  Mat got = model::mtp_forward(m, ids, hidden.back(), GetParam()).logits[0];
  EXPECT_GT((got - testing::golden_matrix(g, "mtp.1.logits")).cwiseAbs().maxCoeff(), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Attn, MtpGolden, ::testing::Values(AttnImpl::kNaive, AttnImpl::kAbsorbed),
                         [](const auto& i) { return std::string(model::to_string(i.param)); });

TEST(Mtp, DiscardingTheModulesLeavesMainLogitsBitIdentical) {
  model::Model with = tiny_with_depth(2, 7);
  model::Config c = with.config();
  model::ModelWeights w = with.weights();
  w.mtp.clear();
  c.num_nextn_predict_layers = 0;
  model::Model without(c, w);
  std::vector<int32_t> ids{3, 50, 7, 99, 12, 200, 5};
  auto c1 = with.new_cache(AttnImpl::kAbsorbed);
  auto c2 = without.new_cache(AttnImpl::kAbsorbed);
  Mat a = with.forward(ids, c1), b = without.forward(ids, c2);
  ASSERT_EQ(a.rows(), b.rows());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), sizeof(float) * a.size()), 0);
  // And running the MTP modules on the side changes nothing either.
  std::vector<Mat> hidden;
  model::ForwardOptions fo;
  fo.hidden = &hidden;
  auto c3 = with.new_cache(AttnImpl::kAbsorbed);
  Mat a2 = with.forward(ids, c3, fo);
  model::mtp_forward(with, ids, hidden.back());
  EXPECT_EQ(std::memcmp(a.data(), a2.data(), sizeof(float) * a.size()), 0);
}

TEST(Mtp, LossHasTMinusKValidTargetsPerDepth) {
  const model::Model& m = tiny3();
  std::vector<int32_t> ids{3, 50, 7, 99, 12, 200, 5, 8, 40, 41};  // N = 10, T = 9
  model::MtpLoss L = model::mtp_loss(m, ids, 0.3);
  const int64_t T = 9;
  EXPECT_EQ(L.main_targets, T);
  ASSERT_EQ(L.targets.size(), 3u);
  for (int k = 1; k <= 3; ++k) {
    EXPECT_EQ(L.targets[k - 1], T - k);
    EXPECT_NEAR(L.per_token[k - 1], L.sum[k - 1] / (T - k), 1e-12);
    EXPECT_NEAR(L.paper[k - 1], L.sum[k - 1] / T, 1e-12);  // eq. (24) divides by T
    EXPECT_GT(L.per_token[k - 1], 0.0);
  }
  EXPECT_NEAR(L.total_paper, 0.3 / 3 * (L.paper[0] + L.paper[1] + L.paper[2]), 1e-12);
  EXPECT_NEAR(L.total_per_token, 0.3 / 3 * (L.per_token[0] + L.per_token[1] + L.per_token[2]),
              1e-12);

  // Recompute depth 2 by hand: row i of P^2 predicts t_{i+3}.
  auto cache = m.new_cache(AttnImpl::kAbsorbed);
  std::vector<Mat> hidden;
  model::ForwardOptions fo;
  fo.hidden = &hidden;
  Mat logits = m.forward(ids, cache, fo);
  model::MtpOutput mo = model::mtp_forward(m, ids, hidden.back());
  ASSERT_EQ(mo.logits.size(), 3u);
  for (int k = 1; k <= 3; ++k) EXPECT_EQ(mo.logits[k - 1].rows(), 10 - k);
  double s = 0;
  for (int i = 0; i < T - 2; ++i) {
    auto r = mo.logits[1].row(i).cast<double>();
    double lse = std::log((r.array() - r.maxCoeff()).exp().sum()) + r.maxCoeff();
    s += lse - r(ids[i + 3]);
  }
  EXPECT_NEAR(s, L.sum[1], 1e-6 * std::abs(s));
  std::vector<int32_t> next(ids.begin() + 1, ids.end());
  EXPECT_NEAR(L.main, model::cross_entropy_sum(logits.topRows(T), next) / T, 1e-12);
}

// ---------------------------------------------------------------------------------------------
// Greedy speculative decoding is lossless.

class GreedyLossless : public ::testing::TestWithParam<std::tuple<int, AttnImpl>> {};

TEST_P(GreedyLossless, SameTokensAsPlainGreedyDecoding) {
  const auto [D, attn] = GetParam();
  const model::Model& m = tiny3();
  for (uint64_t seed : {0u, 1u, 2u}) {
    model::Rng rng(seed * 977 + D);
    std::vector<int32_t> prompt;
    const int P = 1 + static_cast<int>(rng.next() % 9);
    for (int i = 0; i < P; ++i) prompt.push_back(static_cast<int32_t>(rng.next() % 320));
    model::GenerateOptions g;
    g.max_new_tokens = 20;
    g.attn = attn;
    std::vector<int32_t> plain = model::generate(m, prompt, g);
    model::SpeculativeOptions o;
    o.max_new_tokens = 20;
    o.draft_depth = D;
    o.attn = attn;
    model::SpeculativeResult r = model::speculative_generate(m, prompt, o);
    EXPECT_EQ(r.ids, plain) << "seed " << seed << " D " << D;
    EXPECT_EQ(r.stats.step_tokens + 1, static_cast<int64_t>(r.ids.size()));
    EXPECT_EQ(r.stats.step_tokens, r.stats.steps + r.stats.accepted_total());
  }
}

INSTANTIATE_TEST_SUITE_P(DepthAttn, GreedyLossless,
                         ::testing::Combine(::testing::Values(1, 2, 3, 5),
                                            ::testing::Values(AttnImpl::kNaive,
                                                              AttnImpl::kAbsorbed)),
                         [](const auto& i) {
                           return "D" + std::to_string(std::get<0>(i.param)) + "_" +
                                  model::to_string(std::get<1>(i.param));
                         });

// The MTP drafts are overridden by an oracle that knows the greedy continuation and accepts
// exactly `pattern[step % size]` drafts, so every accept length 0..D (every rejection depth and
// full acceptance with the bonus token) occurs, and the MTP caches must roll back correctly
// through accepted and rejected drafts alike.
class ForcedRejections : public ::testing::TestWithParam<std::tuple<int, AttnImpl>> {};

TEST_P(ForcedRejections, EveryAcceptLengthOccursAndOutputStaysExact) {
  // Plain variables: clang 14 (the asan preset) cannot capture structured bindings in a lambda.
  const int D = std::get<0>(GetParam());
  const AttnImpl attn = std::get<1>(GetParam());
  const model::Model& m = tiny3();
  const int64_t V = m.config().vocab_size;
  std::vector<int32_t> prompt{0, 70, 71, 72};
  const int N = 30;
  model::GenerateOptions g;
  g.max_new_tokens = N + D + 2;
  g.attn = attn;
  std::vector<int32_t> ref = model::generate(m, prompt, g);
  const int64_t P = static_cast<int64_t>(prompt.size());

  model::MtpDrafter drafter(m, attn);
  int step = -1;
  int64_t last_n = -1;
  drafter.override_token = [&](int k, int64_t index, int32_t) {
    const int64_t n = index - k;
    if (n != last_n) {
      last_n = n;
      ++step;
    }
    const int want_accept = step % (D + 1);  // 0, 1, .., D accepted drafts
    const int32_t truth = ref[index - P];
    return k <= want_accept ? truth : static_cast<int32_t>((truth + 1) % V);
  };
  model::SpeculativeOptions o;
  o.max_new_tokens = N;
  o.draft_depth = D;
  o.attn = attn;
  model::SpeculativeResult r = model::speculative_generate(m, prompt, o, &drafter);
  EXPECT_EQ(r.ids, std::vector<int32_t>(ref.begin(), ref.begin() + N));
  std::map<int, int> seen;
  for (const model::SpecStep& s : r.steps)
    if (!s.prefill && static_cast<int>(s.drafts.size()) == D) ++seen[s.accepted];
  for (int a = 0; a <= D; ++a) EXPECT_GT(seen[a], 0) << "accept length " << a << " never happened";

  // The drafter's caches after all that rollback must equal a teacher-forced recomputation:
  // at each step, depth k's probability of its (overridden) draft is recomputed from scratch.
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), r.ids.begin(), r.ids.end());
  for (const model::SpecStep& s : r.steps) {
    if (s.prefill || s.drafts.empty()) continue;
    const int64_t n = s.position;
    std::vector<int32_t> ids(all.begin(), all.begin() + n + 1);  // x_0..x_n
    auto cache = m.new_cache(attn);
    std::vector<Mat> hidden;
    model::ForwardOptions fo;
    fo.hidden = &hidden;
    m.forward(ids, cache, fo);
    const int Ds = static_cast<int>(s.drafts.size());
    Mat h0 = Mat::Zero(n + Ds, m.config().hidden_size);  // rows past n are never read at depth >= 1
    h0.topRows(n + 1) = hidden.back();
    for (int k = 1; k < Ds; ++k) ids.push_back(s.drafts[k - 1].token);
    model::MtpOutput mo = model::mtp_forward(m, ids, h0, attn, Ds);
    for (int k = 1; k <= Ds; ++k) {
      auto row = mo.logits[k - 1].row(n - 1).cast<double>();
      Eigen::RowVectorXd p = (row.array() - row.maxCoeff()).exp();
      p /= p.sum();
      EXPECT_NEAR(p(s.drafts[k - 1].token), s.drafts[k - 1].draft_prob, 1e-5)
          << "step at " << n << " depth " << k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DepthAttn, ForcedRejections,
                         ::testing::Combine(::testing::Values(1, 2, 3),
                                            ::testing::Values(AttnImpl::kNaive,
                                                              AttnImpl::kAbsorbed)),
                         [](const auto& i) {
                           return "D" + std::to_string(std::get<0>(i.param)) + "_" +
                                  model::to_string(std::get<1>(i.param));
                         });

TEST(Speculative, UnmodifiedMtpDraftsMatchTeacherForcedArgmax) {
  // Without an override each draft is the argmax of the teacher-forced MTP distribution.
  const model::Model& m = tiny3();
  std::vector<int32_t> prompt{0, 9, 8, 7, 6};
  model::SpeculativeOptions o;
  o.max_new_tokens = 16;
  o.draft_depth = 3;
  model::SpeculativeResult r = model::speculative_generate(m, prompt, o);
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), r.ids.begin(), r.ids.end());
  int checked = 0;
  for (const model::SpecStep& s : r.steps) {
    if (s.prefill || s.drafts.size() != 3) continue;
    const int64_t n = s.position;
    std::vector<int32_t> ids(all.begin(), all.begin() + n + 1);
    auto cache = m.new_cache(AttnImpl::kAbsorbed);
    std::vector<Mat> hidden;
    model::ForwardOptions fo;
    fo.hidden = &hidden;
    m.forward(ids, cache, fo);
    Mat h0 = Mat::Zero(n + 3, m.config().hidden_size);
    h0.topRows(n + 1) = hidden.back();
    ids.push_back(s.drafts[0].token);
    ids.push_back(s.drafts[1].token);
    model::MtpOutput mo = model::mtp_forward(m, ids, h0, AttnImpl::kAbsorbed, 3);
    for (int k = 1; k <= 3; ++k) {
      Eigen::Index best;
      mo.logits[k - 1].row(n - 1).maxCoeff(&best);
      EXPECT_EQ(best, s.drafts[k - 1].token);
      ++checked;
    }
  }
  EXPECT_GT(checked, 6);
}

// ---------------------------------------------------------------------------------------------
// Acceptance arithmetic: a draft that matches the target argmax with probability p gives
// 1 + p tokens per verification at D = 1, and 1 + p + p^2 at D = 2 (i.i.d. per depth).

double oracle_tokens_per_step(int D, double p, uint64_t seed) {
  const model::Model& m = tiny3();
  const int64_t V = m.config().vocab_size;
  std::vector<int32_t> prompt{0, 33, 34};
  const int N = 240;
  model::GenerateOptions g;
  g.max_new_tokens = N + D + 2;
  std::vector<int32_t> ref = model::generate(m, prompt, g);
  model::MtpDrafter drafter(m, AttnImpl::kAbsorbed);
  model::Rng rng(seed);
  drafter.override_token = [&](int, int64_t index, int32_t) {
    const int32_t truth = ref[index - 3];
    return rng.uniform() < p ? truth : static_cast<int32_t>((truth + 1 + rng.next() % (V - 1)) % V);
  };
  model::SpeculativeOptions o;
  o.max_new_tokens = N;
  o.draft_depth = D;
  model::SpeculativeResult r = model::speculative_generate(m, prompt, o, &drafter);
  EXPECT_EQ(r.ids, std::vector<int32_t>(ref.begin(), ref.begin() + N));
  // Only full-depth steps, so the clipped last step does not bias the mean.
  int64_t steps = 0, tokens = 0;
  for (const model::SpecStep& s : r.steps)
    if (!s.prefill && static_cast<int>(s.drafts.size()) == D) {
      ++steps;
      tokens += s.accepted + 1;
    }
  return static_cast<double>(tokens) / static_cast<double>(steps);
}

TEST(Speculative, TokensPerStepIsOnePlusAcceptance) {
  for (double p : {0.3, 0.8}) {
    double mean = 0;
    for (uint64_t seed : {1u, 2u, 3u}) mean += oracle_tokens_per_step(1, p, seed) / 3;
    EXPECT_NEAR(mean, 1 + p, 0.06) << "p = " << p;
  }
  const double p = 0.7;
  double mean = 0;
  for (uint64_t seed : {4u, 5u}) mean += oracle_tokens_per_step(2, p, seed) / 2;
  EXPECT_NEAR(mean, 1 + p + p * p, 0.08);
}

// ---------------------------------------------------------------------------------------------
// Sampled verification is lossless: a cheap Markov-chain target over a small vocabulary
// stands in for the model, and a deliberately bad drafter proposes tokens.

double chi_square(const std::vector<int64_t>& counts, const std::vector<double>& expect_p,
                  int64_t n) {
  double x2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double e = expect_p[i] * static_cast<double>(n);
    x2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  return x2;
}

TEST(Speculative, SampledVerificationReproducesTargetDistribution) {
  constexpr int V = 6, D = 2;
  // Target: a Markov chain P[prev][next], given to verify_drafts as logits = log P.
  double P[V][V];
  model::Rng init(42);
  for (int a = 0; a < V; ++a) {
    double s = 0;
    for (int b = 0; b < V; ++b) s += P[a][b] = 0.05 + init.uniform();
    for (int b = 0; b < V; ++b) P[a][b] /= s;
  }
  P[2][4] = 0.97 * P[2][4] + 0.03;  // make one row lopsided, then renormalise it
  {
    double s = 0;
    for (int b = 0; b < V; ++b) s += P[2][b];
    for (int b = 0; b < V; ++b) P[2][b] /= s;
  }
  model::SamplingParams sp{1.0, 1.0, 0};
  model::Rng rng(2024), drafts_rng(7);
  const int start = 2;
  const int64_t trials = 100000;
  std::vector<int64_t> joint(V * V, 0);
  for (int64_t t = 0; t < trials; ++t) {
    std::vector<int32_t> out;
    int32_t last = start;
    while (out.size() < 2) {
      // A drafter that is often wrong: uniform random tokens.
      std::vector<int32_t> d(D);
      for (int& x : d) x = static_cast<int32_t>(drafts_rng.next() % V);
      Mat logits(D + 1, V);
      int32_t prev = last;
      for (int i = 0; i <= D; ++i) {
        for (int b = 0; b < V; ++b) logits(i, b) = static_cast<float>(std::log(P[prev][b]));
        if (i < D) prev = d[i];
      }
      model::VerifyOutcome v = model::verify_drafts(d, logits, sp, rng);
      ASSERT_EQ(static_cast<int>(v.emitted.size()), v.accepted + 1);
      out.insert(out.end(), v.emitted.begin(), v.emitted.end());
      last = out.back();
    }
    ++joint[out[0] * V + out[1]];
  }
  std::vector<double> want(V * V);
  for (int a = 0; a < V; ++a)
    for (int b = 0; b < V; ++b) want[a * V + b] = P[start][a] * P[a][b];
  // 35 degrees of freedom: the 0.999 quantile is 66.6; a wrong rule gives thousands.
  EXPECT_LT(chi_square(joint, want, trials), 66.6);
}

TEST(Speculative, SampledVerificationWithTopPStaysInsideTheNucleus) {
  // top-p zeroes tokens outside the nucleus; a draft there must always be rejected.
  Mat logits(2, 4);
  logits << 3.0f, 2.0f, -5.0f, -6.0f, 0.0f, 0.0f, 0.0f, 0.0f;
  model::SamplingParams sp{1.0, 0.9, 0};
  model::Rng rng(1);
  std::vector<int32_t> d{3};
  std::vector<int64_t> counts(4, 0);
  for (int t = 0; t < 20000; ++t) {
    model::VerifyOutcome v = model::verify_drafts(d, logits, sp, rng);
    EXPECT_EQ(v.accepted, 0);
    ++counts[v.emitted[0]];
  }
  std::vector<double> p = model::sampling_distribution({logits.row(0).data(), 4}, sp);
  EXPECT_EQ(counts[2] + counts[3], 0);
  EXPECT_LT(chi_square({counts[0], counts[1]}, {p[0], p[1]}, 20000), 10.8);  // 1 dof, 0.999
}

TEST(Speculative, GreedyVerificationStopsAtFirstMismatch) {
  Mat logits = Mat::Zero(4, 5);
  logits(0, 2) = 1;  // argmax after x_n: 2
  logits(1, 4) = 1;  // after d_1: 4
  logits(2, 0) = 1;  // after d_2: 0
  logits(3, 3) = 1;  // bonus: 3
  model::Rng rng(0);
  model::SamplingParams greedy;
  auto v = model::verify_drafts(std::vector<int32_t>{2, 4, 1}, logits, greedy, rng);
  EXPECT_EQ(v.accepted, 2);
  EXPECT_EQ(v.emitted, (std::vector<int32_t>{2, 4, 0}));
  v = model::verify_drafts(std::vector<int32_t>{2, 4, 0}, logits, greedy, rng);
  EXPECT_EQ(v.accepted, 3);
  EXPECT_EQ(v.emitted, (std::vector<int32_t>{2, 4, 0, 3}));
  v = model::verify_drafts(std::vector<int32_t>{1, 4, 0}, logits, greedy, rng);
  EXPECT_EQ(v.accepted, 0);
  EXPECT_EQ(v.emitted, (std::vector<int32_t>{2}));
}

TEST(Speculative, SampledDecodingOnTheModelKeepsItsBookkeeping) {
  const model::Model& m = tiny3();
  model::SpeculativeOptions o;
  o.max_new_tokens = 25;
  o.draft_depth = 2;
  o.sampling = {0.8, 0.95, 11};
  o.stop_token = -1;
  model::SpeculativeDecoder dec(m, {0, 5, 6}, o);
  while (!dec.done()) {
    const model::SpecStep& s = dec.step();
    EXPECT_EQ(dec.cache().length() + 1, static_cast<int64_t>(dec.committed().size()));
    if (!s.prefill) {
      EXPECT_LE(static_cast<int>(s.emitted.size()), s.accepted + 1);
    }
  }
  EXPECT_EQ(dec.output().size(), 25u);
  EXPECT_EQ(dec.stats().step_tokens + 1, 25);
}

TEST(Speculative, StopTokenEndsGeneration) {
  const model::Model& m = tiny3();
  model::GenerateOptions g;
  g.max_new_tokens = 12;
  std::vector<int32_t> plain = model::generate(m, {0, 1, 2}, g);
  model::SpeculativeOptions o;
  o.max_new_tokens = 12;
  o.draft_depth = 2;
  o.stop_token = plain[5];
  model::SpeculativeResult r = model::speculative_generate(m, {0, 1, 2}, o);
  g.stop_token = plain[5];
  EXPECT_EQ(r.ids, model::generate(m, {0, 1, 2}, g));
}

TEST(Speculative, ModelWithoutMtpIsRefused) {
  model::Model m = tiny_with_depth(0);
  model::SpeculativeOptions o;
  EXPECT_THROW(model::speculative_generate(m, {1, 2}, o), std::invalid_argument);
  o.draft_depth = 0;  // depth 0 is plain decoding through the same loop
  model::GenerateOptions g;
  EXPECT_EQ(model::speculative_generate(m, {1, 2}, o).ids, model::generate(m, {1, 2}, g));
}

}  // namespace
}  // namespace dsv3
