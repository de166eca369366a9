// Parity with Hugging Face transformers' DeepseekV3 (float32, random tiny weights):
// tests/data/hf-tiny holds the config, the checkpoint and the reference outputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "reference/model/model.h"
#include "tests/model/golden.h"

namespace dsv3 {
namespace {

using model::AttnImpl;

// hf-tiny: the shared golden set (plain RoPE, 2 groups); tiny-yarn-groups: YaRN with mscale,
// 4 groups keep 2, and an MTP module; tiny-yarn-noq: q_lora_rank null (plain q_proj), V2-Lite
// style mscale 0.707. The last two come from tests/data/gen/hf_reference.py.
struct HfTiny {
  explicit HfTiny(const std::string& name)
      : m(model::Model::load(testing::data_path(name))),
        golden(testing::data_path(name + "/golden.safetensors")) {}
  model::Model m;
  io::SafetensorsFile golden;
  std::vector<int32_t> ids() const {
    std::vector<int32_t> out;
    for (int64_t v : testing::golden_i64(golden, "input_ids"))
      out.push_back(static_cast<int32_t>(v));
    return out;
  }
  // transformers 5.17 fills dropped groups with -inf, like the official code (our default).
  model::ForwardOptions hf_options() const { return {}; }
};

HfTiny& fixture(const std::string& name) {
  static std::map<std::string, std::unique_ptr<HfTiny>> cache;
  auto& f = cache[name];
  if (!f) f = std::make_unique<HfTiny>(name);
  return *f;
}

class ParityHf : public ::testing::TestWithParam<std::tuple<std::string, AttnImpl>> {
 protected:
  HfTiny& data() { return fixture(std::get<0>(GetParam())); }
  AttnImpl impl() const { return std::get<1>(GetParam()); }
};

TEST_P(ParityHf, LogitsHiddenAndRoutingMatchTransformers) {
  HfTiny& f = data();
  auto cache = f.m.new_cache(impl());
  model::Trace trace;
  std::vector<Mat> hidden;
  model::ForwardOptions opt = f.hf_options();
  opt.trace = &trace;
  opt.hidden = &hidden;
  std::vector<int32_t> ids = f.ids();
  Mat logits = f.m.forward(ids, cache, opt);

  Mat want = testing::golden_matrix(f.golden, "logits");
  ASSERT_EQ(logits.rows(), want.rows());
  ASSERT_EQ(logits.cols(), want.cols());
  EXPECT_LT((logits - want).cwiseAbs().maxCoeff(), 1e-4f);
  for (Eigen::Index t = 0; t < want.rows(); ++t) {
    Eigen::Index a, b;
    logits.row(t).maxCoeff(&a);
    want.row(t).maxCoeff(&b);
    EXPECT_EQ(a, b) << "argmax differs at position " << t;
  }
  const int L = static_cast<int>(f.m.config().num_hidden_layers);
  ASSERT_EQ(static_cast<int>(hidden.size()), L + 1);
  for (int i = 0; i <= L; ++i) {
    Mat hw = testing::golden_matrix(f.golden, "hidden." + std::to_string(i));
    EXPECT_LT((hidden[i] - hw).cwiseAbs().maxCoeff(), 1e-4f) << "hidden." << i;
  }
  for (int l = 0; l < L; ++l) {
    if (!f.m.config().is_moe_layer(l)) continue;
    Mat logits_w = testing::golden_matrix(f.golden, "gate." + std::to_string(l) + ".out0");
    Mat weight_w = testing::golden_matrix(f.golden, "gate." + std::to_string(l) + ".out1");
    std::vector<int64_t> idx_w =
        testing::golden_i64(f.golden, "gate." + std::to_string(l) + ".out2");
    const int K = static_cast<int>(f.m.config().num_experts_per_tok);
    for (size_t t = 0; t < ids.size(); ++t) {
      const model::RouteResult& r = trace.tokens[t].layers[l].router;
      for (int e = 0; e < logits_w.cols(); ++e)
        EXPECT_NEAR(r.logits[e], logits_w(t, e), 1e-4) << "layer " << l;
      std::set<int64_t> got(r.topk_idx.begin(), r.topk_idx.end());
      std::set<int64_t> exp(idx_w.begin() + t * K, idx_w.begin() + (t + 1) * K);
      EXPECT_EQ(got, exp) << "top-k expert set differs at layer " << l << " token " << t;
      for (int j = 0; j < K; ++j) {  // match weights by expert id (HF's top-k is unsorted)
        int64_t e = idx_w[t * K + j];
        auto it = std::find(r.topk_idx.begin(), r.topk_idx.end(), e);
        if (it == r.topk_idx.end()) continue;
        EXPECT_NEAR(r.topk_weight[it - r.topk_idx.begin()], weight_w(t, j), 1e-5);
      }
    }
  }
}

TEST_P(ParityHf, IncrementalDecodeMatchesTransformersCache) {
  HfTiny& f = data();
  std::vector<int32_t> ids = f.ids();
  const size_t n = ids.size();
  auto cache = f.m.new_cache(impl());
  model::ForwardOptions opt = f.hf_options();
  f.m.forward(std::span(ids).first(n - 3), cache, opt);
  Mat want = testing::golden_matrix(f.golden, "decode_logits_last3");
  for (size_t i = 0; i < 3; ++i) {
    Mat step = f.m.forward(std::span(ids).subspan(n - 3 + i, 1), cache, opt);
    EXPECT_LT((step.row(0) - want.row(i)).cwiseAbs().maxCoeff(), 1e-4f) << "decode step " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Golden, ParityHf,
    ::testing::Combine(::testing::Values("hf-tiny", "tiny-yarn-groups", "tiny-yarn-noq"),
                       ::testing::Values(AttnImpl::kNaive, AttnImpl::kAbsorbed)),
    [](const auto& info) {
      std::string n = std::get<0>(info.param) + "_" + model::to_string(std::get<1>(info.param));
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

}  // namespace
}  // namespace dsv3
