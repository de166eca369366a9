// Config parsing: every shipped config, derived values (model_spec §1, §5.2), and an error that
// names the key and the file for each kind of bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "reference/model/config.h"

namespace dsv3::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string shipped(const std::string& rel) {
  return tiny_configs_dir() + "/" + rel;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// A scratch folder removed with the fixture.
class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dsv3_config_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::string write(const std::string& name, const json& j) { return write(name, j.dump(2)); }

  // Loads a modified copy of a shipped config and returns the error message ("" if none).
  std::string error_for(const std::string& base, const std::function<void(json&)>& edit) {
    json j = read_json(shipped(base));
    edit(j);
    std::string path = write("edited.json", j);
    try {
      load_config_file(path);
    } catch (const ConfigError& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
      return msg;
    }
    return "";
  }

  fs::path dir_;
};

TEST(Config, EveryShippedConfigParses) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(tiny_configs_dir())) {
    // Checkpoint folders (tiny/) hold a tokenizer.json beside their config.json.
    if (e.path().extension() != ".json" || e.path().filename() == "tokenizer.json") continue;
    SCOPED_TRACE(e.path().string());
    Config c = load_config_file(e.path().string());
    EXPECT_NO_THROW(c.validate());
    EXPECT_GT(c.hidden_size, 0);
    ++n;
  }
  EXPECT_GE(n, 8);  // tiny, small, three hub configs, three official configs
}

TEST(Config, V3DerivedValues) {
  Config c = resolve_config("v3-671b");
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.qk_head_dim(), 192);
  EXPECT_EQ(c.num_moe_layers(), 58);
  EXPECT_EQ(c.n_routed_experts / c.n_group, 32);
  EXPECT_EQ(c.num_attention_heads * c.qk_head_dim(), 24576);                      // q_b_proj rows
  EXPECT_EQ(c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim), 32768);  // kv_b_proj
  EXPECT_EQ(c.kv_lora_rank + c.qk_rope_head_dim, 576);                            // kv_a_proj
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_TRUE(c.is_moe_layer(3));
  EXPECT_TRUE(c.is_moe_layer(60));
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::kNoauxTc);
  EXPECT_TRUE(c.has_correction_bias());
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_TRUE(c.rope_scaling.yarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 40.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_EQ(c.max_position_embeddings, 163840);
  EXPECT_TRUE(c.quantization.fp8);
  EXPECT_EQ(c.quantization.block_rows, 128);
  EXPECT_EQ(c.quantization.block_cols, 128);
  EXPECT_FALSE(c.quantization.ue8m0);
  EXPECT_NEAR(c.softmax_scale(), 0.1352337788608801, 1e-15);
}

TEST(Config, V2LiteDerivedValues) {
  Config c = resolve_config("v2-lite-16b");
  EXPECT_EQ(c.q_lora_rank, 0);  // null in the file: plain q_proj
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_EQ(c.topk_method, TopkMethod::kGreedy);
  EXPECT_FALSE(c.has_correction_bias());
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.num_moe_layers(), 26);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);
  EXPECT_FALSE(c.quantization.fp8);
  EXPECT_NEAR(c.softmax_scale(), 0.1147213867929261, 1e-15);
}

TEST(Config, V2DerivedValues) {
  Config c = resolve_config("v2-236b");
  EXPECT_EQ(c.topk_method, TopkMethod::kGroupLimitedGreedy);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 3);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 16.0);
  EXPECT_EQ(c.num_moe_layers(), 59);
  // The hub config carries mscale_all_dim 0.707; the official config_236B.json leaves mscale
  // at 1.0 (model_spec §14): the two softmax scales differ for V2 only.
  EXPECT_NEAR(c.softmax_scale(), 0.1147213867929261, 1e-15);
  Config o = load_config_file(shipped("official/config_236B.json"));
  EXPECT_NEAR(o.softmax_scale(), 0.1352337788608801, 1e-15);
}

TEST(Config, OfficialConfigsMatchHubConfigs) {
  struct Pair {
    const char* hub;
    const char* official;
  };
  for (Pair p : {Pair{"deepseek-v3-671b.json", "official/config_671B.json"},
                 Pair{"deepseek-v2-236b.json", "official/config_236B.json"},
                 Pair{"deepseek-v2-lite-16b.json", "official/config_16B.json"}}) {
    SCOPED_TRACE(p.official);
    Config h = load_config_file(shipped(p.hub));
    Config o = load_config_file(shipped(p.official));
    EXPECT_EQ(o.vocab_size, h.vocab_size);
    EXPECT_EQ(o.hidden_size, h.hidden_size);
    EXPECT_EQ(o.intermediate_size, h.intermediate_size);
    EXPECT_EQ(o.moe_intermediate_size, h.moe_intermediate_size);
    EXPECT_EQ(o.num_hidden_layers, h.num_hidden_layers);
    EXPECT_EQ(o.first_k_dense_replace, h.first_k_dense_replace);
    EXPECT_EQ(o.num_attention_heads, h.num_attention_heads);
    EXPECT_EQ(o.n_routed_experts, h.n_routed_experts);
    EXPECT_EQ(o.n_shared_experts, h.n_shared_experts);
    EXPECT_EQ(o.num_experts_per_tok, h.num_experts_per_tok);
    EXPECT_EQ(o.n_group, h.n_group);
    EXPECT_EQ(o.topk_group, h.topk_group);
    EXPECT_DOUBLE_EQ(o.routed_scaling_factor, h.routed_scaling_factor);
    EXPECT_EQ(o.q_lora_rank, h.q_lora_rank);
    EXPECT_EQ(o.kv_lora_rank, h.kv_lora_rank);
    EXPECT_EQ(o.qk_nope_head_dim, h.qk_nope_head_dim);
    EXPECT_EQ(o.qk_rope_head_dim, h.qk_rope_head_dim);
    EXPECT_EQ(o.v_head_dim, h.v_head_dim);
    EXPECT_EQ(o.scoring_func, h.scoring_func);
    EXPECT_EQ(o.topk_method, h.topk_method);
    EXPECT_EQ(o.norm_topk_prob, h.norm_topk_prob);
    EXPECT_EQ(o.quantization.fp8, h.quantization.fp8);
    EXPECT_TRUE(o.rope_scaling.yarn);  // official max_seq_len 16384 > original_seq_len 4096
    EXPECT_DOUBLE_EQ(o.rope_scaling.factor, h.rope_scaling.factor);
  }
  EXPECT_NEAR(load_config_file(shipped("official/config_671B.json")).softmax_scale(),
              0.1352337788608801, 1e-15);
  EXPECT_NEAR(load_config_file(shipped("official/config_16B.json")).softmax_scale(),
              0.1147213867929261, 1e-15);
}

TEST(Config, BuiltInNamesAndFolders) {
  EXPECT_EQ(resolve_config("v3").hidden_size, 7168);
  EXPECT_EQ(resolve_config("671b").hidden_size, 7168);
  EXPECT_EQ(resolve_config("deepseek-v2").hidden_size, 5120);
  EXPECT_EQ(resolve_config("16b").hidden_size, 2048);
  EXPECT_EQ(resolve_config("tiny-random").name, "tiny-random");
  try {
    resolve_config("no-such-model");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("no-such-model"), std::string::npos) << msg;
    EXPECT_NE(msg.find("tiny-random"), std::string::npos) << msg;  // lists the built-in names
  }
}

TEST(Config, ToJsonRoundTrips) {
  for (const char* name : {"tiny-random", "small", "v3-671b", "v2-236b", "v2-lite-16b"}) {
    SCOPED_TRACE(name);
    Config a = resolve_config(name);
    Config b = parse_config(to_json(a), "roundtrip.json");
    EXPECT_EQ(b.hidden_size, a.hidden_size);
    EXPECT_EQ(b.q_lora_rank, a.q_lora_rank);
    EXPECT_EQ(b.n_group, a.n_group);
    EXPECT_EQ(b.topk_method, a.topk_method);
    EXPECT_EQ(b.scoring_func, a.scoring_func);
    EXPECT_EQ(b.norm_topk_prob, a.norm_topk_prob);
    EXPECT_EQ(b.num_nextn_predict_layers, a.num_nextn_predict_layers);
    EXPECT_EQ(b.quantization.fp8, a.quantization.fp8);
    EXPECT_DOUBLE_EQ(b.softmax_scale(), a.softmax_scale());
  }
}

TEST_F(ConfigFiles, RopeParametersFormAndDerivedFactor) {
  json j = read_json(shipped("deepseek-v3-671b.json"));
  json rope = j["rope_scaling"];
  j.erase("rope_scaling");
  j.erase("rope_theta");
  rope.erase("type");
  rope["rope_type"] = "yarn";
  rope["rope_theta"] = 10000;
  rope.erase("factor");  // derived as max_position_embeddings / original = 163840 / 4096
  j["rope_parameters"] = rope;
  Config c = load_config_file(write("v5.json", j));
  EXPECT_TRUE(c.rope_scaling.yarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 40.0);
  EXPECT_NEAR(c.softmax_scale(), 0.1352337788608801, 1e-15);
}

TEST_F(ConfigFiles, NoRopeScalingMeansPlainScale) {
  json j = read_json(shipped("deepseek-v3-671b.json"));
  j.erase("rope_scaling");
  Config c = load_config_file(write("plain.json", j));
  EXPECT_FALSE(c.rope_scaling.yarn);
  EXPECT_NEAR(c.softmax_scale(), 0.07216878364870322, 1e-15);  // 192^-0.5
}

TEST_F(ConfigFiles, MissingKeys) {
  for (const char* key :
       {"vocab_size", "hidden_size", "kv_lora_rank", "qk_rope_head_dim", "v_head_dim",
        "num_attention_heads", "moe_intermediate_size", "num_experts_per_tok"}) {
    std::string msg = error_for("deepseek-v3-671b.json", [&](json& j) { j.erase(key); });
    EXPECT_NE(msg.find(std::string("'") + key + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  }
}

TEST_F(ConfigFiles, WrongTypes) {
  struct Case {
    const char* key;
    json value;
    const char* expect;
  };
  for (const Case& c :
       {Case{"hidden_size", "7168", "hidden_size"}, Case{"hidden_size", 7168.5, "hidden_size"},
        Case{"hidden_size", 1e300, "hidden_size"},
        Case{"num_hidden_layers", true, "num_hidden_layers"},
        Case{"norm_topk_prob", "yes", "norm_topk_prob"},
        Case{"routed_scaling_factor", "2.5", "routed_scaling_factor"},
        Case{"scoring_func", 1, "scoring_func"}, Case{"rope_scaling", 40, "rope_scaling"},
        Case{"quantization_config", json::array(), "quantization_config"},
        Case{"q_lora_rank", "1536", "q_lora_rank"}}) {
    std::string msg = error_for("deepseek-v3-671b.json", [&](json& j) { j[c.key] = c.value; });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.key << ": " << msg;
  }
  std::string msg =
      error_for("deepseek-v3-671b.json", [](json& j) { j["rope_scaling"]["factor"] = "40"; });
  EXPECT_NE(msg.find("rope_scaling.factor"), std::string::npos) << msg;
  msg = error_for("official/config_671B.json", [](json& j) { j["n_heads"] = "128"; });
  EXPECT_NE(msg.find("'n_heads'"), std::string::npos) << msg;
}

TEST_F(ConfigFiles, UnknownValues) {
  struct Case {
    const char* key;
    json value;
  };
  for (const Case& c :
       {Case{"scoring_func", "relu"}, Case{"topk_method", "aux_loss"}, Case{"hidden_act", "gelu"},
        Case{"attention_bias", true}, Case{"tie_word_embeddings", true}}) {
    std::string msg = error_for("deepseek-v3-671b.json", [&](json& j) { j[c.key] = c.value; });
    EXPECT_NE(msg.find(c.key), std::string::npos) << msg;
  }
  std::string msg =
      error_for("deepseek-v3-671b.json", [](json& j) { j["rope_scaling"]["type"] = "dynamic"; });
  EXPECT_NE(msg.find("rope_scaling.rope_type"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json",
                  [](json& j) { j["quantization_config"]["quant_method"] = "gptq"; });
  EXPECT_NE(msg.find("quantization_config.quant_method"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) {
    j["quantization_config"]["weight_block_size"] = {0, 128};
  });
  EXPECT_NE(msg.find("weight_block_size"), std::string::npos) << msg;
  msg = error_for("official/config_671B.json", [](json& j) { j["score_func"] = "tanh"; });
  EXPECT_NE(msg.find("score_func"), std::string::npos) << msg;
  msg = error_for("official/config_671B.json", [](json& j) { j["dtype"] = "int4"; });
  EXPECT_NE(msg.find("dtype"), std::string::npos) << msg;
}

TEST_F(ConfigFiles, ContradictoryFields) {
  std::string msg = error_for("deepseek-v3-671b.json", [](json& j) { j["topk_group"] = 9; });
  EXPECT_NE(msg.find("'topk_group'"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) { j["n_group"] = 7; });
  EXPECT_NE(msg.find("'n_group'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("divide"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) { j["qk_head_dim"] = 190; });
  EXPECT_NE(msg.find("'qk_head_dim'"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) {
    j["n_group"] = 64;  // 4 experts per group, 1 group kept: fewer than the 8 to choose
    j["topk_group"] = 1;
  });
  EXPECT_NE(msg.find("'num_experts_per_tok'"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) {
    j["n_group"] = 256;
    j["topk_group"] = 8;
  });
  EXPECT_NE(msg.find("'n_group'"), std::string::npos) << msg;  // noaux_tc needs top-2 per group
  msg = error_for("deepseek-v3-671b.json", [](json& j) { j["num_experts_per_tok"] = 257; });
  EXPECT_NE(msg.find("'num_experts_per_tok'"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) { j["num_key_value_heads"] = 8; });
  EXPECT_NE(msg.find("'num_key_value_heads'"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) { j["first_k_dense_replace"] = 62; });
  EXPECT_NE(msg.find("'first_k_dense_replace'"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) { j["qk_rope_head_dim"] = 63; });
  EXPECT_NE(msg.find("'qk_rope_head_dim'"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) {
    j["rope_scaling"]["beta_fast"] = 1;
    j["rope_scaling"]["beta_slow"] = 32;
  });
  EXPECT_NE(msg.find("beta_fast"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) { j["hidden_size"] = 0; });
  EXPECT_NE(msg.find("'hidden_size'"), std::string::npos) << msg;
  msg = error_for("deepseek-v3-671b.json", [](json& j) { j["intermediate_size"] = 0; });
  EXPECT_NE(msg.find("'intermediate_size'"), std::string::npos) << msg;
  // Without dense layers intermediate_size is unused, so 0 is fine there.
  EXPECT_EQ(error_for("deepseek-v3-671b.json",
                      [](json& j) {
                        j["intermediate_size"] = 0;
                        j["first_k_dense_replace"] = 0;
                      }),
            "");
}

TEST_F(ConfigFiles, MixedOfficialAndHuggingFaceKeys) {
  std::string msg = error_for("deepseek-v3-671b.json", [](json& j) { j["dim"] = 7168; });
  EXPECT_NE(msg.find("'dim'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'hidden_size'"), std::string::npos) << msg;
  msg = error_for("official/config_671B.json", [](json& j) { j["num_hidden_layers"] = 61; });
  EXPECT_NE(msg.find("'dim'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'num_hidden_layers'"), std::string::npos) << msg;
  msg = error_for("official/config_671B.json", [](json& j) {
    j.erase("dim");
    j["hidden_size"] = 7168;
  });
  EXPECT_NE(msg.find("'n_layers'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'hidden_size'"), std::string::npos) << msg;
}

TEST_F(ConfigFiles, MalformedFiles) {
  std::string path = write("truncated.json", std::string("{\"hidden_size\": 7168,"));
  try {
    load_config_file(path);
    FAIL();
  } catch (const ConfigError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("malformed JSON"), std::string::npos) << msg;
  }
  path = write("array.json", std::string("[1, 2]"));
  EXPECT_THROW(load_config_file(path), ConfigError);
  path = write("empty.json", std::string(""));
  EXPECT_THROW(load_config_file(path), ConfigError);
  EXPECT_THROW(load_config_file((dir_ / "absent.json").string()), ConfigError);
  // A folder resolves to its config.json.
  write("config.json", read_json(shipped("tiny.json")));
  EXPECT_EQ(resolve_config(dir_.string()).hidden_size, 64);
}

}  // namespace
}  // namespace dsv3::model
