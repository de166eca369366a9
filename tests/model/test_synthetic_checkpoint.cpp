// The released DeepSeek-V3 layout at reduced size (issue 18): written at test time, opened with
// --weights native from its mapped shards, run without any float32 copy of a matrix, and per
// decoded token only the dense weights and the chosen experts are read.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "reference/io/safetensors.h"
#include "reference/model/model.h"
#include "reference/model/synthetic_checkpoint.h"

namespace dsv3::model {
namespace {
namespace fs = std::filesystem;

// One synthetic checkpoint for the whole file, removed at exit.
struct Synthetic {
  fs::path dir;
  Synthetic() {
    dir = fs::temp_directory_path() / ("dsv3-synthetic-v3-" + std::to_string(getpid()));
    fs::remove_all(dir);
    SyntheticSizes s;
    s.shards = 3;
    write_synthetic_v3(dir.string(), s);
  }
  ~Synthetic() { fs::remove_all(dir); }
};
const fs::path& synthetic_dir() {
  static Synthetic s;
  return s.dir;
}

TEST(SyntheticCheckpoint, E4M3EncoderRoundsToNearestEven) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F) continue;  // NaN
    const float v = io::e4m3fn_to_f32(static_cast<uint8_t>(code));
    EXPECT_EQ(to_e4m3(v), code) << code;
  }
  // fp8.md §2: the 464 tie goes to 448 (even mantissa); 2^-10 ties to +0; 1.5 * 2^-9 to 2 * 2^-9;
  // 15 * 2^-10 up to the min normal; above the max, saturate.
  EXPECT_EQ(to_e4m3(464.0f), 0x7E);
  EXPECT_EQ(to_e4m3(1e6f), 0x7E);
  EXPECT_EQ(to_e4m3(-1e6f), 0xFE);
  EXPECT_EQ(to_e4m3(std::ldexp(1.0f, -10)), 0x00);
  EXPECT_EQ(to_e4m3(1.5f * std::ldexp(1.0f, -9)), 0x02);
  EXPECT_EQ(to_e4m3(15.0f * std::ldexp(1.0f, -10)), 0x08);
  EXPECT_EQ(to_e4m3(1.0625f), 0x38);  // tie between 1 and 1.125: even mantissa 000
  EXPECT_EQ(to_e4m3(1.1875f), 0x3A);  // tie between 1.125 and 1.25: even mantissa 010
}

TEST(SyntheticCheckpoint, HasTheReleasedLayout) {
  const fs::path& dir = synthetic_dir();
  std::ifstream in(dir / "model.safetensors.index.json");
  const nlohmann::json index = nlohmann::json::parse(in);
  std::set<std::string> shards;
  for (const auto& [name, file] : index["weight_map"].items())
    shards.insert(file.get<std::string>());
  EXPECT_EQ(shards, (std::set<std::string>{"model-00001-of-00003.safetensors",
                                           "model-00002-of-00003.safetensors",
                                           "model-00003-of-00003.safetensors"}));
  io::Checkpoint ck(dir.string());
  const Config c = resolve_config(dir.string());
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_TRUE(c.quantization.fp8);
  const std::string mtp = fmt::format("model.layers.{}.", c.num_hidden_layers);
  auto dtype = [&](const std::string& n) { return ck.get(n).dtype; };
  auto shape = [&](const std::string& n) { return ck.get(n).shape; };
  EXPECT_EQ(dtype("model.layers.0.self_attn.q_a_proj.weight"), io::DType::kF8E4M3);
  EXPECT_EQ(shape("model.layers.0.self_attn.kv_b_proj.weight_scale_inv"),
            (std::vector<int64_t>{(c.num_attention_heads * 128 + 127) / 128, 1}));
  EXPECT_EQ(dtype("model.layers.0.mlp.down_proj.weight_scale_inv"), io::DType::kF32);
  EXPECT_EQ(dtype("model.layers.3.mlp.experts.31.up_proj.weight"), io::DType::kF8E4M3);
  EXPECT_EQ(dtype("model.layers.3.mlp.shared_experts.down_proj.weight"), io::DType::kF8E4M3);
  EXPECT_EQ(dtype("model.layers.3.mlp.gate.weight"), io::DType::kBF16);
  EXPECT_EQ(dtype("model.layers.3.mlp.gate.e_score_correction_bias"), io::DType::kF32);
  EXPECT_EQ(dtype("model.embed_tokens.weight"), io::DType::kBF16);
  EXPECT_EQ(dtype("lm_head.weight"), io::DType::kBF16);
  EXPECT_EQ(dtype("model.norm.weight"), io::DType::kBF16);
  EXPECT_EQ(dtype(mtp + "eh_proj.weight"), io::DType::kBF16);
  EXPECT_EQ(dtype(mtp + "embed_tokens.weight"), io::DType::kBF16);
  EXPECT_EQ(dtype(mtp + "shared_head.head.weight"), io::DType::kBF16);
  EXPECT_EQ(dtype(mtp + "mlp.experts.0.gate_proj.weight"), io::DType::kF8E4M3);
  EXPECT_EQ(dtype(mtp + "enorm.weight"), io::DType::kBF16);
}

TEST(SyntheticCheckpoint, NativeRunsAsFloat32BitForBit) {
  const Model f32 = Model::load(synthetic_dir().string(), 0, WeightMode::kF32);
  const Model native = Model::load(synthetic_dir().string(), 0, WeightMode::kNative);
  EXPECT_EQ(native.weights().layers[3].moe->experts[0].up_proj.size(), 0);
  const std::vector<int32_t> ids = {5, 300, 17, 900, 42, 7, 7, 1000, 64, 3, 8, 250};
  KVCache ca = f32.new_cache(AttnImpl::kAbsorbed), cb = native.new_cache(AttnImpl::kAbsorbed);
  Mat a = f32.forward(ids, ca), b = native.forward(ids, cb);
  ASSERT_EQ(a.rows(), b.rows());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), sizeof(float) * a.size()), 0);
  const int32_t next = 77;
  Mat da = f32.forward({&next, 1}, ca), db = native.forward({&next, 1}, cb);
  EXPECT_EQ(std::memcmp(da.data(), db.data(), sizeof(float) * da.size()), 0);
}

TEST(SyntheticCheckpoint, ADecodedTokenReadsTheDenseWeightsAndOnlyTheChosenExperts) {
  const Model m = Model::load(synthetic_dir().string(), 0, WeightMode::kNative);
  const Config& c = m.config();
  const NativeWeights& n = *m.native();
  KVCache cache = m.new_cache(AttnImpl::kAbsorbed);
  const std::vector<int32_t> prompt = {1, 2, 3, 4};
  m.forward(prompt, cache);
  n.reset_reads();
  Trace trace;
  ForwardOptions opt;
  opt.trace = &trace;
  const int32_t tok = 99;
  m.forward({&tok, 1}, cache, opt);

  // Expected: everything but the routed experts of the main stack and the MTP module (not run
  // here), plus the chosen experts, plus one embedding row. The router gates and the absorbed
  // form's kv_b_proj are read from their float32 copies, made during the prompt (NativeWeights::
  // f32): the stored bytes not at all, each copy once.
  uint64_t expect = 0, expect_f32 = 0;
  std::set<std::string> chosen;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (int e : trace.tokens[0].layers[l].router.topk_idx)
      for (const char* p : {"gate_proj", "up_proj", "down_proj"})
        chosen.insert(fmt::format("model.layers.{}.mlp.experts.{}.{}.weight", l, e, p));
  const std::string mtp = fmt::format("model.layers.{}.", c.num_hidden_layers);
  for (const auto& [name, w] : n.matrices) {
    const bool routed = name.find(".mlp.experts.") != std::string::npos;
    const bool in_mtp = name.starts_with(mtp);
    const bool whole_f32 =
        name.ends_with(".mlp.gate.weight") || name.ends_with(".kv_b_proj.weight");
    if (name == "model.embed_tokens.weight") {
      EXPECT_EQ(w.bytes_read(), static_cast<uint64_t>(w.cols) * 2) << name;  // one BF16 row
      expect += w.bytes_read();
    } else if (whole_f32 && !in_mtp) {
      EXPECT_EQ(w.bytes_read(), 0u) << name << " should be read from its float32 copy";
      expect_f32 += static_cast<uint64_t>(w.rows * w.cols) * 4;
    } else if (in_mtp || (routed && !chosen.count(name))) {
      EXPECT_EQ(w.bytes_read(), 0u) << name << " was read but not needed";
    } else {
      EXPECT_EQ(w.bytes_read(), w.nbytes()) << name << " should be read exactly once";
      expect += w.nbytes();
    }
  }
  EXPECT_EQ(chosen.size(), static_cast<size_t>(3 * c.num_experts_per_tok *
                                               (c.num_hidden_layers - c.first_k_dense_replace)));
  EXPECT_EQ(n.bytes_read(), expect);
  EXPECT_EQ(n.f32_bytes_read(), expect_f32);
  EXPECT_GT(expect_f32, 0u);
  EXPECT_LT(n.bytes_read(), n.bytes() / 2);  // 8 of 32 experts: most of the model stays untouched
}

}  // namespace
}  // namespace dsv3::model
