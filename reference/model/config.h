// Model configuration: the Hugging Face config.json keys of DeepSeek-V3 / V2 / V2-Lite, and the
// official inference configs (config_671B.json: dim, n_layers, ...), mapped to one struct whose
// field names follow the Hugging Face checkpoint.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>

namespace dsv3::model {

// Any configuration problem: the message names the file and the key.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class ScoringFunc { kSigmoid, kSoftmax };
// noaux_tc: V3 (sigmoid, correction bias, group score = top-2 sum);
// group_limited_greedy: V2 (softmax, group score = max); greedy: V2-Lite (no groups).
enum class TopkMethod { kNoauxTc, kGroupLimitedGreedy, kGreedy };

struct RopeScaling {
  bool yarn = false;    // rope_type/type == "yarn"
  double factor = 1.0;  // s in YaRN
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;            // 0 = absent; cos/sin scale mscale/mscale_all_dim
  double mscale_all_dim = 0.0;    // 0 = absent; scales the softmax (HF semantics)
  double attention_factor = 0.0;  // 0 = absent: derived from mscale (HF rule)
};

struct Quantization {
  bool fp8 = false;  // quantization_config.quant_method == "fp8"
  std::string fmt = "e4m3";
  int block_rows = 128;  // weight_block_size
  int block_cols = 128;
  bool ue8m0 = false;  // scale_fmt == "ue8m0"
};

// The largest sizes Config::validate accepts (docs/reliability.md): 9x to 100x DeepSeek-V3's,
// small enough that parameter counts, FLOPs and KV-cache bytes derived from them fit in int64.
struct ConfigLimits {
  int64_t vocab_size = int64_t{1} << 22;  // 4,194,304 (V3: 129,280)
  int64_t width = int64_t{1} << 16;       // hidden_size, q/kv_lora_rank (V3: 7168)
  int64_t ffn_width = int64_t{1} << 18;   // intermediate sizes (V3: 18,432)
  int64_t layers = int64_t{1} << 10;      // num_hidden_layers (V3: 61)
  int64_t heads = int64_t{1} << 10;       // num_attention_heads (V3: 128)
  int64_t head_dim = int64_t{1} << 12;    // qk_nope/qk_rope/v head dims (V3: 128, 64, 128)
  int64_t experts = int64_t{1} << 12;     // n_routed_experts (V3: 256)
  int64_t shared_experts = 64;            // n_shared_experts (V3: 1)
  int64_t mtp_depth = 16;                 // num_nextn_predict_layers (V3: 1)
  int64_t positions = int64_t{1} << 24;   // max_position_embeddings: 16M (V3: 163,840)
};
inline constexpr ConfigLimits kConfigLimits{};

struct Config {
  std::string name;    // a short label: the built-in name or the file stem
  std::string source;  // where it came from (file path or "built-in")

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;            // d
  int64_t intermediate_size = 0;      // dense SwiGLU width
  int64_t moe_intermediate_size = 0;  // one expert's width
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;  // n_h
  int64_t q_lora_rank = 0;          // d'_c; 0 = no query compression (V2-Lite: null)
  int64_t kv_lora_rank = 0;         // d_c
  int64_t qk_nope_head_dim = 0;     // d_h
  int64_t qk_rope_head_dim = 0;     // d^R_h
  int64_t v_head_dim = 0;
  int64_t n_routed_experts = 0;       // N_r (0 = dense model)
  int64_t n_shared_experts = 0;       // N_s
  int64_t num_experts_per_tok = 0;    // K_r
  int64_t n_group = 1;                // expert groups (nodes in the paper's node-limited routing)
  int64_t topk_group = 1;             // M: groups a token may reach
  int64_t first_k_dense_replace = 0;  // leading dense layers
  int64_t moe_layer_freq = 1;
  double routed_scaling_factor = 1.0;
  bool norm_topk_prob = false;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;
  TopkMethod topk_method = TopkMethod::kGreedy;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 4096;
  RopeScaling rope_scaling;
  int64_t num_nextn_predict_layers = 0;  // D, MTP depth
  bool tie_word_embeddings = false;
  Quantization quantization;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;

  // Derived sizes.
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool has_correction_bias() const { return topk_method == TopkMethod::kNoauxTc; }
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }
  int64_t num_moe_layers() const;
  // Softmax scale of MLA: qk_head_dim^-0.5, times mscale^2 when YaRN is on (model_spec §5.2).
  double softmax_scale() const;

  // Checks every invariant between fields; throws ConfigError naming `source` and the key.
  void validate() const;
};

// Parses a Hugging Face config.json or an official inference config (auto-detected by its keys).
Config parse_config(const nlohmann::json& j, const std::string& source);
Config load_config_file(const std::string& path);
// Resolves a built-in name ("tiny", "small", "v3-671b", "v2-236b", "v2-lite-16b", ...),
// a config.json path, or a model directory holding config.json.
Config resolve_config(const std::string& name_or_path);
// Where a built-in name lives (tiny-configs/<file or folder>); other arguments unchanged. "tiny"
// is the trained checkpoint folder tiny-configs/tiny/, "tiny-random" its random-weight sibling.
std::string resolve_model_path(const std::string& name_or_path);
// The folder of shipped configs: $DSV3_CONFIGS, else data_dir() + "/tiny-configs".
std::string tiny_configs_dir();

// The folder holding dsv3's data (tiny-configs/ with the trained tiny/ checkpoint, and
// lessons/), found the same way wherever the binary runs from:
//   1. $DSV3_DATA_DIR when set (it must hold tiny-configs/);
//   2. ../share/dsv3 beside the executable's bin/ folder (`cmake --install` puts it there);
//   3. the source tree, for an executable inside the build tree it was built in.
// Throws ConfigError, one line naming every place it looked, when none holds tiny-configs/.
std::string data_dir();

nlohmann::json to_json(const Config& c);  // Hugging Face form

}  // namespace dsv3::model
