// Writing a model as the released checkpoint stores it (reference/fp8/checkpoint.h): which
// tensors are FP8, that the loader reads back exactly dequant(quant(W)), BF16 rounding, sizes.
#include <gtest/gtest.h>

#include <filesystem>

#include "reference/fp8/checkpoint.h"
#include "reference/fp8/format.h"
#include "reference/fp8/quant.h"
#include "reference/io/safetensors.h"
#include "reference/model/model.h"

namespace dsv3::fp8 {
namespace {
namespace fs = std::filesystem;

TEST(CheckpointExport, ThePrecisionRuleOfTheReleasedCheckpoint) {
  EXPECT_TRUE(stored_in_fp8("model.layers.0.self_attn.q_a_proj.weight"));
  EXPECT_TRUE(stored_in_fp8("model.layers.0.self_attn.kv_b_proj.weight"));
  EXPECT_TRUE(stored_in_fp8("model.layers.0.self_attn.kv_a_proj_with_mqa.weight"));
  EXPECT_FALSE(stored_in_fp8("model.layers.0.self_attn.kv_a_layernorm.weight"));
  EXPECT_TRUE(stored_in_fp8("model.layers.0.mlp.down_proj.weight"));
  EXPECT_TRUE(stored_in_fp8("model.layers.3.mlp.experts.7.up_proj.weight"));
  EXPECT_TRUE(stored_in_fp8("model.layers.3.mlp.shared_experts.gate_proj.weight"));
  EXPECT_FALSE(stored_in_fp8("model.layers.3.mlp.gate.weight"));  // the router stays BF16
  EXPECT_FALSE(stored_in_fp8("model.layers.4.eh_proj.weight"));   // MTP projection: BF16
  EXPECT_FALSE(stored_in_fp8("model.embed_tokens.weight"));
  EXPECT_FALSE(stored_in_fp8("lm_head.weight"));
  EXPECT_FALSE(stored_in_fp8("model.layers.0.input_layernorm.weight"));
}

TEST(CheckpointExport, Fp8AndBf16ReadBackAsTheirRoundedValues) {
  const model::Model m = model::Model::load("tiny-yarn", 3);
  const fs::path dir = fs::temp_directory_path() / ("dsv3_export_" + std::to_string(getpid()));
  fs::remove_all(dir);
  save_checkpoint(m.config(), m.weights(), StoreFormat::kFP8, (dir / "fp8").string());
  save_checkpoint(m.config(), m.weights(), StoreFormat::kBF16, (dir / "bf16").string());
  const model::Model q = model::Model::load((dir / "fp8").string());
  const model::Model b = model::Model::load((dir / "bf16").string());
  EXPECT_TRUE(q.config().quantization.fp8);
  EXPECT_FALSE(b.config().quantization.fp8);
  io::Checkpoint raw((dir / "fp8").string());
  int fp8_tensors = 0;
  model::visit_model(m.config(), m.weights(), [&](const std::string& name, const auto& t) {
    using T = std::decay_t<decltype(t)>;
    if constexpr (std::is_same_v<T, Mat>) {
      const Mat* got = nullptr;
      model::visit_model(q.config(), q.weights(), [&](const std::string& n, const auto& u) {
        if constexpr (std::is_same_v<std::decay_t<decltype(u)>, Mat>)
          if (n == name) got = &u;
      });
      ASSERT_NE(got, nullptr) << name;
      if (stored_in_fp8(name)) {
        ++fp8_tensors;
        EXPECT_EQ(raw.find(name)->dtype, io::DType::kF8E4M3) << name;
        EXPECT_TRUE(got->isApprox(quantize_weights(t).dequantize(), 0)) << name;
        EXPECT_FALSE(got->isApprox(t, 1e-6f)) << name << " was not rounded at all";
      } else {
        EXPECT_EQ(raw.find(name)->dtype, io::DType::kBF16) << name;
        EXPECT_TRUE(got->isApprox(t.unaryExpr([](float v) { return bf16_round(v); }), 0)) << name;
      }
    } else if (name.ends_with("e_score_correction_bias")) {
      EXPECT_EQ(raw.find(name)->dtype, io::DType::kF32) << name;
    }
  });
  EXPECT_GT(fp8_tensors, 10);
  // FP8 stores projections in one byte: smaller than BF16, which is half of float32.
  EXPECT_LT(fs::file_size(dir / "fp8" / "model.safetensors"),
            fs::file_size(dir / "bf16" / "model.safetensors"));
  fs::remove_all(dir);
}

TEST(CheckpointExport, ParsesFormatNames) {
  EXPECT_EQ(parse_store_format("fp8"), StoreFormat::kFP8);
  EXPECT_EQ(parse_store_format("bf16"), StoreFormat::kBF16);
  EXPECT_EQ(parse_store_format("f32"), StoreFormat::kF32);
  EXPECT_THROW(parse_store_format("int4"), std::invalid_argument);
}

}  // namespace
}  // namespace dsv3::fp8
