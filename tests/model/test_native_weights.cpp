// --weights native (issue 18): the trained tiny checkpoint (FP8 E4M3 projections with 128x128
// weight_scale_inv, BF16 embedding/head/router/eh_proj) run on its stored bytes gives the same
// logits, bit for bit, as the float32 model that dequantized it at load time.
#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "reference/io/safetensors.h"
#include "reference/model/model.h"
#include "reference/model/mtp.h"
#include "reference/model/native_weights.h"

namespace dsv3::model {
namespace {

const Model& tiny_f32() {
  static const Model m = Model::load("tiny", 0, WeightMode::kF32);
  return m;
}
const Model& tiny_native() {
  static const Model m = Model::load("tiny", 0, WeightMode::kNative);
  return m;
}

bool same_bits(const Mat& a, const Mat& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

std::vector<int32_t> prompt(const Model& m) {
  return m.tokenizer().encode("The quick brown fox jumps over the lazy dog. 12+34=46");
}

TEST(NativeWeights, TinyCheckpointIsHeldAsStored) {
  const Model& m = tiny_native();
  ASSERT_NE(m.native(), nullptr);
  EXPECT_EQ(m.weight_mode(), WeightMode::kNative);
  const NativeWeights& n = *m.native();
  EXPECT_EQ(n.at("model.layers.0.self_attn.q_a_proj.weight").format, WeightFormat::kFP8);
  EXPECT_EQ(n.at("model.layers.2.mlp.experts.5.down_proj.weight").format, WeightFormat::kFP8);
  EXPECT_EQ(n.at("model.embed_tokens.weight").format, WeightFormat::kBF16);
  EXPECT_EQ(n.at("lm_head.weight").format, WeightFormat::kBF16);
  EXPECT_EQ(n.at("model.layers.1.mlp.gate.weight").format, WeightFormat::kBF16);
  // No float32 copy of a matrix in the model, and the stored bytes are a fraction of float32's.
  EXPECT_EQ(m.weights().embed_tokens.size(), 0);
  EXPECT_EQ(m.weights().layers[0].attn.q_a_proj.size(), 0);
  uint64_t f32_bytes = 0;
  for (const auto& [name, w] : n.matrices) f32_bytes += static_cast<uint64_t>(w.rows * w.cols) * 4;
  EXPECT_LT(n.bytes() * 3, f32_bytes);
  // The vectors are the same float32 numbers in both modes.
  EXPECT_EQ(m.weights().layers[1].moe->e_score_correction_bias,
            tiny_f32().weights().layers[1].moe->e_score_correction_bias);
  EXPECT_EQ(m.weights().mtp.size(), tiny_f32().weights().mtp.size());
}

TEST(NativeWeights, LogitsAreBitIdenticalToFloat32InBothAttentionForms) {
  for (AttnImpl impl : {AttnImpl::kAbsorbed, AttnImpl::kNaive}) {
    const std::vector<int32_t> ids = prompt(tiny_f32());
    ASSERT_GT(ids.size(), 12u);  // a prefill past 8 rows (GEMM path), then decode steps
    KVCache ca = tiny_f32().new_cache(impl), cb = tiny_native().new_cache(impl);
    const std::span<const int32_t> all(ids);
    std::vector<Mat> ha, hb;
    ForwardOptions oa, ob;
    oa.hidden = &ha;
    ob.hidden = &hb;
    Mat a = tiny_f32().forward(all.first(ids.size() - 3), ca, oa);
    Mat b = tiny_native().forward(all.first(ids.size() - 3), cb, ob);
    EXPECT_TRUE(same_bits(a, b)) << to_string(impl) << " prefill, max |diff| "
                                 << (a - b).cwiseAbs().maxCoeff();
    ASSERT_EQ(ha.size(), hb.size());
    for (size_t i = 0; i < ha.size(); ++i) EXPECT_TRUE(same_bits(ha[i], hb[i])) << "hidden." << i;
    for (size_t t = ids.size() - 3; t < ids.size(); ++t) {  // decode: the row-by-row path
      Mat da = tiny_f32().forward(all.subspan(t, 1), ca);
      Mat db = tiny_native().forward(all.subspan(t, 1), cb);
      EXPECT_TRUE(same_bits(da, db)) << to_string(impl) << " decode at " << t;
    }
  }
}

TEST(NativeWeights, MtpDraftsAreBitIdentical) {
  const std::vector<int32_t> ids = prompt(tiny_f32());
  std::vector<Mat> ha, hb;
  ForwardOptions oa, ob;
  oa.hidden = &ha;
  ob.hidden = &hb;
  KVCache ca = tiny_f32().new_cache(AttnImpl::kAbsorbed);
  KVCache cb = tiny_native().new_cache(AttnImpl::kAbsorbed);
  tiny_f32().forward(ids, ca, oa);
  tiny_native().forward(ids, cb, ob);
  MtpOutput a = mtp_forward(tiny_f32(), ids, ha.back());
  MtpOutput b = mtp_forward(tiny_native(), ids, hb.back());
  ASSERT_EQ(a.logits.size(), 1u);
  ASSERT_EQ(b.logits.size(), 1u);
  EXPECT_TRUE(same_bits(a.logits[0], b.logits[0]));
}

TEST(NativeWeights, MatrixNamesMatchTheLayout) {
  // The native loader's list of matrices and the float32 layout (alloc_model + visit_model) name
  // the same tensors in the same order.
  const Config& c = tiny_f32().config();
  ModelWeights w;
  alloc_model(c, w, c.num_nextn_predict_layers);
  std::vector<std::string> from_layout;
  visit_model(c, w, [&](const std::string& name, const auto& t) {
    if (t.cols() > 1) from_layout.push_back(name);
  });
  std::vector<std::string> native = matrix_names(c, c.num_nextn_predict_layers);
  EXPECT_EQ(std::set<std::string>(from_layout.begin(), from_layout.end()),
            std::set<std::string>(native.begin(), native.end()));
  EXPECT_EQ(from_layout.size(), native.size());
}

TEST(NativeWeights, ModesParseAndRandomConfigsAreRefused) {
  EXPECT_EQ(parse_weight_mode("f32"), WeightMode::kF32);
  EXPECT_EQ(parse_weight_mode("native"), WeightMode::kNative);
  EXPECT_THROW(parse_weight_mode("fp8"), std::invalid_argument);
  try {
    Model::load("small", 0, WeightMode::kNative);  // a config: random weights, no checkpoint
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--weights native"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv3::model
