// The measurements behind `dsv3 eval` and `dsv3 experts` (reference/model/evaluate.h), checked
// against computations written out here from Model::forward and its Trace: documents split at
// 0x1E lines, BOS + tokens + EOS, chunking, the loss as a hand-computed log-softmax, and the
// relative expert load as counts of the traced top-K choices.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "reference/io/documents.h"
#include "reference/model/evaluate.h"
#include "reference/model/model.h"

namespace dsv3::model {
namespace {

// A built-in random-weight model with the byte tokenizer, three layers (the first dense) and
// 16 routed experts in 4 groups.
const Model& test_model() {
  static const Model m = Model::load("tiny-yarn", 0);
  return m;
}

TokenizedText tokenized(const std::vector<std::string>& docs, int64_t max_tokens = 0) {
  std::vector<std::string_view> views(docs.begin(), docs.end());
  return tokenize_documents(test_model().tokenizer(), views, max_tokens);
}

// -ln p(ids[t+1] | ids[..t]) summed over one forward of `ids`, written out in double.
double hand_nats(const std::vector<int32_t>& ids) {
  const Model& m = test_model();
  KVCache cache = m.new_cache(AttnImpl::kAbsorbed);
  Mat logits = m.forward(ids, cache);
  double nats = 0;
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    double mx = -1e300;
    for (Eigen::Index v = 0; v < logits.cols(); ++v) mx = std::max(mx, double(logits(t, v)));
    double z = 0;
    for (Eigen::Index v = 0; v < logits.cols(); ++v) z += std::exp(double(logits(t, v)) - mx);
    const double log_p = double(logits(t, ids[t + 1])) - mx - std::log(z);  // log-softmax
    nats -= log_p;
  }
  return nats;
}

TEST(Documents, SplitAtRecordSeparatorLines) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(io::split_documents("one\n\x1e\ntwo words\nline 2\n\x1e\n"),
            (V{"one", "two words\nline 2"}));
  EXPECT_EQ(io::split_documents("no separator\nat all\n"), (V{"no separator\nat all\n"}));
  EXPECT_EQ(io::split_documents("a\n\x1e\ntail without separator"),
            (V{"a", "tail without separator"}));
  EXPECT_EQ(io::split_documents("\x1e\n\x1e\nx\n\x1e\n"), (V{"x"}));      // empty documents dropped
  EXPECT_EQ(io::split_documents("in\x1e line\n"), (V{"in\x1e line\n"}));  // only whole lines
  EXPECT_EQ(io::split_documents("blank kept\n\n\x1e\n"), (V{"blank kept\n"}));
  EXPECT_TRUE(io::split_documents("").empty());
}

TEST(Evaluate, DocumentsAreBosTokensEos) {
  const io::Tokenizer& tok = test_model().tokenizer();
  TokenizedText t = tokenized({"ab", "xyz"});
  ASSERT_EQ(t.docs.size(), 2u);
  std::vector<int32_t> first = tok.encode("ab", true);
  first.push_back(tok.eos());
  EXPECT_EQ(t.docs[0], first);
  EXPECT_EQ(t.tokens(), 4 + 5);
  EXPECT_EQ(t.text_tokens, 5);
  EXPECT_EQ(t.bytes, 5);
  EXPECT_FALSE(t.truncated);
  // --max-tokens: the first six ids are doc 0 (4) and BOS, 'x' of doc 1; bytes "ab" + "x".
  TokenizedText cut = tokenized({"ab", "xyz", "never"}, 6);
  EXPECT_TRUE(cut.truncated);
  EXPECT_EQ(cut.tokens(), 6);
  ASSERT_EQ(cut.docs.size(), 2u);
  EXPECT_EQ(cut.bytes, 3);
  EXPECT_EQ(cut.text_tokens, 3);
}

TEST(Evaluate, ChunksCutEachDocumentSeparately) {
  TokenizedText t = tokenized({std::string(10, 'a'), "bc"});  // 12 and 4 ids
  std::vector<Chunk> c = make_chunks(t, 5);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].doc, 0u);
  EXPECT_EQ(c[2].begin, 10);
  EXPECT_EQ(c[2].end, 12);
  EXPECT_EQ(c[3].doc, 1u);
  EXPECT_EQ(c[3].end, 4);
}

TEST(Evaluate, LossEqualsHandComputedLogSoftmaxOfOneForward) {
  const std::string text = "Multi-head latent attention.";
  TokenizedText t = tokenized({text});
  LossResult r = evaluate_loss(test_model(), t, 256);  // shorter than the context: one chunk
  EXPECT_EQ(r.chunks, 1);
  EXPECT_EQ(r.predicted, t.tokens() - 1);  // every id after BOS, EOS included
  const double expected = hand_nats(t.docs[0]);
  EXPECT_NEAR(r.nats, expected, 1e-9 * std::fabs(expected));
  EXPECT_NEAR(r.loss(), expected / r.predicted, 1e-12);
  EXPECT_NEAR(r.bits_per_byte(), expected / std::numbers::ln2 / double(text.size()), 1e-12);
  EXPECT_NEAR(r.perplexity(), std::exp(r.loss()), 1e-9);
}

TEST(Evaluate, ChunksRunThroughFreshCachesAndSkipTheirFirstToken) {
  TokenizedText t = tokenized({"The router picks the top-K experts.", "Zwei."});
  const int64_t context = 8;
  LossResult r = evaluate_loss(test_model(), t, context);
  double expected = 0;
  int64_t predicted = 0;
  for (const auto& doc : t.docs)
    for (size_t b = 0; b < doc.size(); b += context) {
      std::vector<int32_t> piece(doc.begin() + b, doc.begin() + std::min(doc.size(), b + context));
      expected += hand_nats(piece);
      predicted += static_cast<int64_t>(piece.size()) - 1;
    }
  EXPECT_EQ(r.predicted, predicted);
  EXPECT_EQ(r.chunks, static_cast<int64_t>(make_chunks(t, context).size()));
  EXPECT_NEAR(r.nats, expected, 1e-9 * expected);
}

TEST(Evaluate, ResultDoesNotDependOnTheThreadCount) {
  std::vector<std::string> docs;
  for (int i = 0; i < 6; ++i) docs.push_back("document " + std::to_string(i) + " of a test text");
  TokenizedText t = tokenized(docs);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  LossResult one = evaluate_loss(test_model(), t, 16);
  ExpertLoad load_one = expert_load(test_model(), t, 16);
  omp_set_num_threads(3);
  LossResult three = evaluate_loss(test_model(), t, 16);
  ExpertLoad load_three = expert_load(test_model(), t, 16);
  omp_set_num_threads(saved);
  EXPECT_EQ(one.nats, three.nats);  // bit for bit
  EXPECT_EQ(load_one.counts, load_three.counts);
}

TEST(Evaluate, RejectsContextsOutsideTheModel) {
  TokenizedText t = tokenized({"abc"});
  EXPECT_THROW(evaluate_loss(test_model(), t, 1), std::invalid_argument);
  EXPECT_THROW(evaluate_loss(test_model(), t, test_model().config().max_position_embeddings + 1),
               std::invalid_argument);
  EXPECT_THROW(expert_load(test_model(), t, 0), std::invalid_argument);
}

TEST(ExpertLoad, CountsTheTracedTopKOfEveryPosition) {
  const Model& m = test_model();
  TokenizedText t = tokenized({"def route(x):\n    return top_k(x)\n", "Guten Tag!"});
  const int64_t context = 16;
  ExpertLoad load = expert_load(m, t, context);
  // The same counts from traces of forwards over the same chunks.
  const Config& c = m.config();
  std::vector<std::vector<int64_t>> counts(load.moe_layers.size(),
                                           std::vector<int64_t>(c.n_routed_experts, 0));
  int64_t positions = 0;
  for (const Chunk& ch : make_chunks(t, context)) {
    std::vector<int32_t> ids(t.docs[ch.doc].begin() + ch.begin, t.docs[ch.doc].begin() + ch.end);
    Trace trace;
    ForwardOptions opt;
    opt.trace = &trace;
    KVCache cache = m.new_cache(AttnImpl::kAbsorbed);
    m.forward(ids, cache, opt);
    for (const TokenTrace& tt : trace.tokens) {
      ++positions;
      for (size_t i = 0; i < load.moe_layers.size(); ++i) {
        const LayerTrace& lt = tt.layers[load.moe_layers[i]];
        ASSERT_TRUE(lt.moe);
        ASSERT_EQ(lt.router.topk_idx.size(), size_t(c.num_experts_per_tok));
        for (int e : lt.router.topk_idx) ++counts[i][e];
      }
    }
  }
  EXPECT_EQ(load.moe_layers, (std::vector<int>{1, 2}));  // first_k_dense_replace = 1
  EXPECT_EQ(load.tokens, positions);
  EXPECT_EQ(load.tokens, t.tokens());
  EXPECT_EQ(load.counts, counts);
  // Relative load: count / mean count, so each layer sums to N_r and averages 1.
  auto rel = load.relative_load();
  for (size_t i = 0; i < rel.size(); ++i) {
    double sum = 0;
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
      const double mean = double(positions * c.num_experts_per_tok) / double(c.n_routed_experts);
      EXPECT_NEAR(rel[i][e], double(counts[i][e]) / mean, 1e-12);
      sum += rel[i][e];
    }
    EXPECT_NEAR(sum, double(c.n_routed_experts), 1e-9);
  }
}

TEST(ExpertLoad, AnEmptyLayerHasZeroRelativeLoad) {
  ExpertLoad load(test_model().config());
  for (const auto& row : load.relative_load())
    for (double v : row) EXPECT_EQ(v, 0.0);
}

}  // namespace
}  // namespace dsv3::model
