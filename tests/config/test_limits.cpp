// Resource bounds on hostile configs (docs/reliability.md): a config with 10^9 experts or layers,
// or a context of 2^40 positions, is refused by validate() with the number it asked for and the
// limit, before anything is counted or allocated; a config inside the limits but too large for
// the machine is refused by the memory check with the bytes it needs and the bytes there are.
#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "reference/model/config.h"
#include "reference/model/memory.h"
#include "reference/model/weights.h"

namespace dsv3::model {
namespace {

using nlohmann::json;

json v3_json() {
  return to_json(resolve_config("v3-671b"));
}

// Parses `j` and expects a ConfigError containing every fragment.
void expect_refused(const json& j, std::initializer_list<std::string> fragments) {
  try {
    (void)parse_config(j, "hostile/config.json");
    ADD_FAILURE() << "accepted: " << j.dump();
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    for (const std::string& f : fragments) EXPECT_NE(what.find(f), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
  }
}

TEST(ConfigLimits, BillionExpertsOrLayersAreRefusedWithTheNumberAndTheLimit) {
  json j = v3_json();
  j["n_routed_experts"] = 1'000'000'000;
  expect_refused(j, {"hostile/config.json", "n_routed_experts", "1000000000", "4096"});
  j = v3_json();
  j["num_hidden_layers"] = 1'000'000'000;
  expect_refused(j, {"num_hidden_layers", "1000000000", "1024"});
  j = v3_json();
  j["vocab_size"] = int64_t{1} << 40;
  expect_refused(j, {"vocab_size", "1099511627776", "4194304"});
  j = v3_json();
  j["hidden_size"] = std::numeric_limits<int64_t>::max();
  expect_refused(j, {"hidden_size", "9223372036854775807"});
}

TEST(ConfigLimits, ContextOfTwoToTheFortyIsRefused) {
  json j = v3_json();
  j["max_position_embeddings"] = int64_t{1} << 40;
  expect_refused(j, {"max_position_embeddings", "1099511627776", "16777216"});
  // The official form's max_seq_len is the same key.
  json o = {{"dim", 2048}, {"max_seq_len", int64_t{1} << 40}};
  expect_refused(o, {"max_position_embeddings", "1099511627776"});
  // YaRN's original length is bounded too (and must be positive: it divides).
  j = v3_json();
  j["rope_scaling"]["original_max_position_embeddings"] = 0;
  expect_refused(j, {"original_max_position_embeddings", "got 0"});
}

// Every limit at once is still countable: the largest config validate() accepts has a weight
// count that fits in int64, in bytes too (the fuzz target config_json runs reference/accounting's
// FLOPs and KV-cache bytes at its full context under UBSan).
TEST(ConfigLimits, TheLargestAcceptedConfigIsCountedWithoutOverflow) {
  json j = v3_json();
  const ConfigLimits& L = kConfigLimits;
  j["vocab_size"] = L.vocab_size;
  j["hidden_size"] = L.width;
  j["intermediate_size"] = L.ffn_width;
  j["moe_intermediate_size"] = L.ffn_width;
  j["num_hidden_layers"] = L.layers;
  j["num_attention_heads"] = L.heads;
  j["num_key_value_heads"] = L.heads;
  j["q_lora_rank"] = L.width;
  j["kv_lora_rank"] = L.width;
  j["qk_nope_head_dim"] = L.head_dim;
  j["qk_rope_head_dim"] = L.head_dim;
  j["v_head_dim"] = L.head_dim;
  j.erase("qk_head_dim");
  j["n_routed_experts"] = L.experts;
  j["n_group"] = 8;
  j["topk_group"] = 4;
  j["num_experts_per_tok"] = 8;
  j["n_shared_experts"] = L.shared_experts;
  j["num_nextn_predict_layers"] = L.mtp_depth;
  j["max_position_embeddings"] = L.positions;
  const Config c = parse_config(j, "largest/config.json");
  const int64_t floats = weight_floats(c, c.num_nextn_predict_layers);
  EXPECT_GT(floats, 0);
  EXPECT_LT(floats, std::numeric_limits<int64_t>::max() / 4);  // bytes fit too
  // And it is refused by the memory check before a single weight is allocated.
  EXPECT_THROW(check_weights_fit(c, c.num_nextn_predict_layers, int64_t{64} << 30),
               InsufficientMemory);
}

// A model inside the limits that cannot fit: random_weights refuses it at once (no allocation
// attempted), naming the GiB needed and the GiB available.
TEST(ConfigLimits, AModelThatCannotFitIsRefusedBeforeAllocating) {
  const Config c = resolve_config("v3-671b");
  try {
    check_weights_fit(c, 1, int64_t{16} << 30);
    FAIL() << "v3-671b fits in 16 GiB?";
  } catch (const InsufficientMemory& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("2543.0 GiB"), std::string::npos) << what;  // (671.0B + 11.6B) x 4 bytes
    EXPECT_NE(what.find("16.0 GiB"), std::string::npos) << what;
  }
  // The real check, on this machine (skipped where it is switched off: it would allocate).
  const char* off = std::getenv("DSV3_NO_MEMORY_CHECK");
  if (!(off && std::string(off) == "1") && available_memory_bytes() >= 0 &&
      available_memory_bytes() < (int64_t{2000} << 30)) {
    EXPECT_THROW(random_weights(c, 0), InsufficientMemory);
  }
}

}  // namespace
}  // namespace dsv3::model
