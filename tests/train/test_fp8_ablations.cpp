// FP8 training ablations and validation (fp8_linear.h, trainer.h): block-wise Dgrad (App. B.2)
// puts every scale where its definition says, hand-checked, and reaches the GEMM bit for bit;
// it loses the small tokens that share a block with an outlier token; it changes the backward
// only. Validation runs its forward in the training precision, or in float32 when asked.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "reference/fp8/format.h"
#include "reference/fp8/quant.h"
#include "reference/io/safetensors.h"
#include "reference/io/tokenizer.h"
#include "reference/train/fp8_compare.h"
#include "reference/train/fp8_linear.h"
#include "reference/train/trainer.h"
#include "tests/support/temp_dir.h"
#include "tests/train/fp8_support.h"
#include "tests/train/micro.h"

namespace dsv3::train {
namespace {
namespace fs = std::filesystem;
using testing::expect_bit_equal;
using testing::fp8_mode;
using testing::random_mat;
using testing::reference_gemm;

TEST(Fp8BlockDgrad, ScalesAreOnePerBlockOfTokensAndChannelsByHand) {
  // g = 2 so that it can be checked by hand: dy [4 tokens, 4 channels].
  Mat dy(4, 4);
  dy << 1, -2, 0.5f, 4,  //
      8, 0.25f, -3, 1,   //
      -1, 1, 1, 1,       //
      2, 1, 1, -16;
  LowPrecision p = fp8_mode(2);
  const fp8::QMatrix tiles = quantize_dgrad_dy(dy, p);
  EXPECT_EQ(tiles.tile_rows, 1);  // 1 x g: per token per g channels
  EXPECT_EQ(tiles.tile_cols, 2);
  EXPECT_EQ(tiles.scales, (std::vector<float>{2 / 448.f, 4 / 448.f, 8 / 448.f, 3 / 448.f, 1 / 448.f,
                                              1 / 448.f, 2 / 448.f, 16 / 448.f}));
  p.dgrad_blocks = true;
  const fp8::QMatrix blocks = quantize_dgrad_dy(dy, p);
  EXPECT_EQ(blocks.tile_rows, 2);  // g x g: g tokens x g channels share one scale
  EXPECT_EQ(blocks.tile_cols, 2);
  // Blocks (tokens 0-1, channels 0-1): amax 8; (0-1, 2-3): 4; (2-3, 0-1): 2; (2-3, 2-3): 16.
  EXPECT_EQ(blocks.scales, (std::vector<float>{8 / 448.f, 4 / 448.f, 2 / 448.f, 16 / 448.f}));
  EXPECT_EQ(blocks.scale(1, 3), 4 / 448.f);  // token 1, channel 3: block (0, 1)
  EXPECT_EQ(fp8::decode(blocks.code(1, 0), blocks.format), 448.0f);  // the block's amax
  EXPECT_EQ(fp8::decode(blocks.code(3, 3), blocks.format), -448.0f);
}

TEST(Fp8BlockDgrad, DgradEqualsThePlainTensorCoreComputationWithBlocks) {
  // 70 tokens: two full 32-token blocks and a partial one; K = 96 output channels.
  LowPrecision p = fp8_mode(32);
  p.dgrad_blocks = true;
  const Mat dy = random_mat(70, 96, 11, 1e-3f), w = random_mat(96, 40, 12, 0.05f);
  const fp8::QMatrix a = fp8::quantize(dy, 32, 32);
  ASSERT_EQ(a.scale_rows(), 3);
  ASSERT_EQ(a.scale_cols(), 3);
  for (int64_t br = 0; br < 3; ++br)
    for (int64_t bc = 0; bc < 3; ++bc) {
      const int64_t r0 = br * 32, nr = std::min<int64_t>(32, 70 - r0);
      const float amax = dy.block(r0, bc * 32, nr, 32).cwiseAbs().maxCoeff();
      EXPECT_EQ(quantize_dgrad_dy(dy, p).scale(r0, bc * 32), amax / 448.0f);
    }
  const fp8::QMatrix b = fp8::quantize(Mat(w.transpose()), 32, 32);  // W^T [in, out]
  expect_bit_equal(fp8_dgrad(dy, w, p), reference_gemm(a, b, 32, true));
  // ... and differs from the 1 x g tiles (the test can fail).
  LowPrecision t = fp8_mode(32);
  EXPECT_NE(fp8_dgrad(dy, w, p), fp8_dgrad(dy, w, t));
}

// App. B.2's mechanism: a token whose gradient is 10^6 times the others' sets the scale of its
// whole block, so the other tokens of that block fall below E4M3's range (448 down to 2^-9, a
// ratio of 2^17.8) and flush towards zero; 1 x g tiles give every token its own scale.
TEST(Fp8BlockDgrad, AnOutlierTokenFlushesTheOtherTokensOfItsBlock) {
  std::mt19937 gen(13);
  std::uniform_real_distribution<float> u(1e-3f, 2e-3f);
  Mat dy(64, 32);
  for (int64_t i = 0; i < dy.size(); ++i) dy.data()[i] = (i % 3 ? 1.0f : -1.0f) * u(gen);
  dy.row(5) *= 1e6f;  // an outlier token in the first 32-token block
  LowPrecision p = fp8_mode(32);
  const Mat tiles = quantize_dgrad_dy(dy, p).dequantize();
  p.dgrad_blocks = true;
  const Mat blocks = quantize_dgrad_dy(dy, p).dequantize();
  auto rel = [&](const Mat& q, int64_t r) {
    return (q.row(r) - dy.row(r)).norm() / dy.row(r).norm();
  };
  for (int64_t r = 0; r < 64; ++r) {
    EXPECT_LT(rel(tiles, r), 0.07) << "token " << r;  // E4M3: at most half an ulp, 2^-4
    if (r < 32 && r != 5)
      EXPECT_GT(rel(blocks, r), 0.5) << "token " << r;  // its block's scale is the outlier's
    else
      EXPECT_LT(rel(blocks, r), 0.07) << "token " << r;
  }
}

TEST(Fp8BlockDgrad, ModeParsesAndChangesTheBackwardOnly) {
  const CompareMode m = parse_compare_mode("fp8:t32:block-dgrad");
  EXPECT_TRUE(m.precision.dgrad_blocks);
  EXPECT_EQ(m.precision.describe(), "fp8 g=32 N_C=32 E4M3 block-Dgrad");
  EXPECT_THROW(parse_compare_mode("fp8:blocks"), std::invalid_argument);
  const model::Config c = testing::micro_config();
  const model::ModelWeights w = testing::micro_weights(c, 5);
  const model::RopeTable rope = model::make_rope_table(c);
  const Batch b = testing::random_batch(c, 2, 40, 3);  // 80 tokens: 3 token blocks of 32
  const LowPrecision tiles = parse_compare_mode("fp8:t32").precision;
  model::ModelWeights g1 = zeros_like(c, w), g2 = zeros_like(c, w);
  const LossParts l1 = loss_and_grad<float>(c, rope, w, b, Objective{}, &g1, &tiles);
  const LossParts l2 = loss_and_grad<float>(c, rope, w, b, Objective{}, &g2, &m.precision);
  EXPECT_EQ(l1.total, l2.total);  // Fprop is untouched
  double diff = 0;
  std::vector<const float*> a;
  model::visit_model(c, g1, [&](const std::string&, auto& t) { a.push_back(t.data()); });
  size_t i = 0;
  model::visit_model(c, g2, [&](const std::string&, auto& t) {
    for (int64_t k = 0; k < t.size(); ++k)
      diff = std::max(diff, double(std::abs(t.data()[k] - a[i][k])));
    ++i;
  });
  EXPECT_GT(diff, 0.0);  // Dgrad's dy was quantized in blocks
}

// ---- Validation in the training precision ---------------------------------------------------

std::string tokens_file(const fs::path& dir) {
  std::string text;
  for (int i = 0; i < 60; ++i)
    text += "FP8 GEMMs accumulate in the tensor core, promoted every 128. ";
  std::vector<int32_t> ids = io::ByteTokenizer().encode(text);
  io::SafetensorsWriter wr;
  wr.add("tokens", io::DType::kI32, {static_cast<int64_t>(ids.size())}, ids.data(), ids.size() * 4);
  const std::string path = (dir / "tokens.safetensors").string();
  wr.write(path);
  return path;
}

TEST(Fp8Validation, RunsInTheTrainingPrecisionUnlessAskedForFloat32) {
  const fs::path dir = test_support::fresh_temp_dir("dsv3_fp8_val_", "run");
  TrainOptions o;
  o.model = "tiny-random";
  o.data = tokens_file(dir);
  o.save = (dir / "run").string();
  o.batch = 2;
  o.seq_len = 64;
  o.steps = 1;
  o.eval_batches = 2;
  o.precision = parse_compare_mode("fp8:t32").precision;
  Trainer t(o);
  const BatchSource data(o.data, t.config().vocab_size);
  const model::RopeTable rope = model::make_rope_table(t.config());
  auto mean_val = [&](const LowPrecision* p) {
    double s = 0;
    for (int64_t i = 0; i < o.eval_batches; ++i)
      s += loss_and_grad<float>(t.config(), rope, t.weights(), *data.val_batch(i, 2, 64),
                                o.objective, nullptr, p)
               .main;
    return s / static_cast<double>(o.eval_batches);
  };
  const double fp8_val = mean_val(&o.precision), fp32_val = mean_val(nullptr);
  ASSERT_TRUE(t.validate().has_value());
  EXPECT_EQ(*t.validate(), fp8_val);  // default: the FP8 forward
  EXPECT_NE(fp8_val, fp32_val);
  t.mutable_options().val_fp32 = true;
  EXPECT_EQ(*t.validate(), fp32_val);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::train
