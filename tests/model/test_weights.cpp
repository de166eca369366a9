// Checkpoint loading: FP8 E4M3 weights with weight_scale_inv blocks, sharded checkpoints,
// save/load round trips and missing tensors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "reference/io/safetensors.h"
#include "reference/model/model.h"
#include "reference/model/sampling.h"
#include "tests/support/temp_dir.h"

namespace dsv3 {
namespace {
namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  return test_support::fresh_temp_dir("dsv3-weights-", name);
}

TEST(Weights, Fp8BlocksAreDequantizedWithCeilEdgeBlocks) {
  // [200, 130] E4M3 weight: 2 x 2 blocks of 128, the second row/column blocks partial.
  const int rows = 200, cols = 130;
  model::Rng rng(9);
  std::vector<uint8_t> codes(rows * cols);
  for (uint8_t& c : codes) {
    c = static_cast<uint8_t>(rng.next() & 0xFF);
    if ((c & 0x7F) == 0x7F) c = 0x3C;  // no NaNs in a weight
  }
  std::vector<float> scale = {0.5f, 2.0f, 0.125f, 3.0f};
  io::SafetensorsWriter w;
  w.add("w.weight", io::DType::kF8E4M3, {rows, cols}, codes.data(), codes.size());
  w.add("w.weight_scale_inv", io::DType::kF32, {2, 2}, scale.data(), scale.size() * 4);
  fs::path dir = temp_dir("fp8");
  w.write((dir / "model.safetensors").string());
  io::Checkpoint ck(dir.string());
  Mat m = ck.matrix("w.weight", {rows, cols});
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      ASSERT_EQ(m(r, c), io::e4m3fn_to_f32(codes[r * cols + c]) * scale[(r / 128) * 2 + c / 128])
          << r << "," << c;
  EXPECT_EQ(m(0, 0), io::e4m3fn_to_f32(codes[0]) * 0.5f);
  EXPECT_EQ(m(199, 129), io::e4m3fn_to_f32(codes[199 * cols + 129]) * 3.0f);

  // A wrong scale shape and a missing scale are both named errors.
  io::SafetensorsWriter bad;
  bad.add("w.weight", io::DType::kF8E4M3, {rows, cols}, codes.data(), codes.size());
  bad.add("w.weight_scale_inv", io::DType::kF32, {1, 4}, scale.data(), scale.size() * 4);
  bad.write((dir / "model.safetensors").string());
  try {
    io::Checkpoint(dir.string()).matrix("w.weight");
    FAIL() << "expected a FormatError";
  } catch (const io::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("w.weight_scale_inv"), std::string::npos) << e.what();
  }
  io::SafetensorsWriter noscale;
  noscale.add("w.weight", io::DType::kF8E4M3, {rows, cols}, codes.data(), codes.size());
  noscale.write((dir / "model.safetensors").string());
  EXPECT_THROW(io::Checkpoint(dir.string()).matrix("w.weight"), io::FormatError);
  fs::remove_all(dir);
}

TEST(Weights, SaveLoadRoundTripIncludingMtpAndShards) {
  model::Model m = model::Model::load("tiny-random");
  fs::path dir = temp_dir("roundtrip");
  std::ifstream cfg(std::string(DSV3_SOURCE_DIR) + "/tiny-configs/tiny.json");
  std::ofstream((dir / "config.json").string()) << cfg.rdbuf();
  model::save_weights(m.config(), m.weights(), (dir / "model.safetensors").string());
  model::Model back = model::Model::load(dir.string());
  ASSERT_EQ(back.weights().mtp.size(), 1u);
  EXPECT_EQ(back.weights().mtp[0].eh_proj, m.weights().mtp[0].eh_proj);
  std::vector<int32_t> ids = {0, 50, 60, 70};
  auto c1 = m.new_cache(model::AttnImpl::kAbsorbed),
       c2 = back.new_cache(model::AttnImpl::kAbsorbed);
  EXPECT_EQ(m.forward(ids, c1, {}), back.forward(ids, c2, {}));

  // Split the same tensors over two shards with an index; the result is identical.
  io::SafetensorsFile whole((dir / "model.safetensors").string());
  io::SafetensorsWriter a, b;
  nlohmann::json index;
  int i = 0;
  for (const auto& [name, t] : whole.tensors()) {
    bool first = i++ % 2 == 0;
    (first ? a : b).add(name, t.dtype, t.shape, t.data, t.nbytes);
    index["weight_map"][name] =
        first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  fs::path sharded = temp_dir("sharded");
  fs::copy_file(dir / "config.json", sharded / "config.json");
  a.write((sharded / "model-00001-of-00002.safetensors").string());
  b.write((sharded / "model-00002-of-00002.safetensors").string());
  std::ofstream((sharded / "model.safetensors.index.json").string()) << index.dump();
  model::Model s = model::Model::load(sharded.string());
  auto c3 = s.new_cache(model::AttnImpl::kAbsorbed);
  c1 = m.new_cache(model::AttnImpl::kAbsorbed);
  EXPECT_EQ(m.forward(ids, c1, {}), s.forward(ids, c3, {}));
  fs::remove_all(dir);
  fs::remove_all(sharded);
}

TEST(Weights, MissingTensorsAreListedByName) {
  model::Model m = model::Model::load("tiny-random");
  fs::path dir = temp_dir("missing");
  io::SafetensorsWriter w;
  w.add("model.embed_tokens.weight", m.weights().embed_tokens);
  w.write((dir / "model.safetensors").string());
  try {
    model::load_weights(m.config(), dir.string());
    FAIL() << "expected a FormatError";
  } catch (const io::FormatError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("missing tensors: model.layers.0.input_layernorm.weight"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("in all)"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3

namespace dsv3 {
namespace {

// transformers v5 writes fused expert tensors; they load to the same model as per-expert ones.
TEST(Weights, FusedExpertLayoutOfTransformersV5) {
  model::Model m = model::Model::load("tiny-random");
  const model::Config& c = m.config();
  fs::path dir = temp_dir("fused");
  std::ifstream cfg(std::string(DSV3_SOURCE_DIR) + "/tiny-configs/tiny.json");
  std::ofstream((dir / "config.json").string()) << cfg.rdbuf();
  fs::path whole_path = dir / "whole.safetensors";
  model::save_weights(c, m.weights(), whole_path.string());
  io::SafetensorsWriter w;
  {
    io::SafetensorsFile whole(whole_path.string());
    for (const auto& [name, t] : whole.tensors())
      if (name.find("mlp.experts.") == std::string::npos)
        w.add(name, t.dtype, t.shape, t.data, t.nbytes);
  }
  const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size, d = c.hidden_size;
  for (int64_t l = 0; l < c.num_hidden_layers + 1; ++l) {
    const model::LayerWeights& lw =
        l < c.num_hidden_layers ? m.weights().layers[l] : m.weights().mtp[0].block;
    if (!lw.moe) continue;
    std::vector<float> gate_up(E * 2 * I * d), down(E * d * I);
    for (int64_t e = 0; e < E; ++e) {
      const model::FfnWeights& f = lw.moe->experts[e];
      std::copy(f.gate_proj.data(), f.gate_proj.data() + I * d, gate_up.begin() + e * 2 * I * d);
      std::copy(f.up_proj.data(), f.up_proj.data() + I * d,
                gate_up.begin() + e * 2 * I * d + I * d);
      std::copy(f.down_proj.data(), f.down_proj.data() + d * I, down.begin() + e * d * I);
    }
    std::string p = "model.layers." + std::to_string(l) + ".mlp.experts.";
    w.add(p + "gate_up_proj", io::DType::kF32, {E, 2 * I, d}, gate_up.data(), gate_up.size() * 4);
    w.add(p + "down_proj", io::DType::kF32, {E, d, I}, down.data(), down.size() * 4);
  }
  fs::remove(whole_path);
  w.write((dir / "model.safetensors").string());
  model::Model fused = model::Model::load(dir.string());
  for (int64_t l = 1; l < c.num_hidden_layers; ++l)
    for (int64_t e = 0; e < E; ++e) {
      EXPECT_EQ(fused.weights().layers[l].moe->experts[e].up_proj,
                m.weights().layers[l].moe->experts[e].up_proj);
      EXPECT_EQ(fused.weights().layers[l].moe->experts[e].down_proj,
                m.weights().layers[l].moe->experts[e].down_proj);
    }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3

namespace dsv3 {
namespace {

TEST(Weights, IndexNamingTheWrongShardIsAnError) {
  fs::path dir = temp_dir("wrongshard");
  Mat a = Mat::Ones(2, 2);
  io::SafetensorsWriter s1, s2;
  s1.add("a.weight", a);
  s2.add("b.weight", a);
  s1.write((dir / "one.safetensors").string());
  s2.write((dir / "two.safetensors").string());
  nlohmann::json index;
  index["weight_map"]["a.weight"] = "two.safetensors";  // wrong: a lives in one
  index["weight_map"]["b.weight"] = "two.safetensors";
  std::ofstream((dir / "model.safetensors.index.json").string()) << index.dump();
  // Only two.safetensors is listed, so a.weight is in no listed shard at all.
  try {
    io::Checkpoint ck(dir.string());
    FAIL() << "expected a FormatError";
  } catch (const io::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'a.weight' is listed in 'two.safetensors'"),
              std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3
