#include "reference/model/config.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

namespace dsv3::model {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Reads typed keys from one JSON object, reporting "<file>: key '<k>' ..." on any problem.
class Reader {
 public:
  Reader(const json& j, std::string source, std::string prefix = "")
      : j_(j), source_(std::move(source)), prefix_(std::move(prefix)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  bool present(const char* key) const { return j_.contains(key); }

  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw ConfigError(fmt::format("{}: key '{}{}' {}", source_, prefix_, key, what));
  }

  int64_t integer(const char* key) const {
    if (!j_.contains(key)) fail(key, "is missing");
    const json& v = j_[key];
    if (v.is_number_integer()) return v.get<int64_t>();
    // 7168.0 is accepted; the range check keeps the cast defined (1e300 is not an integer).
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
        std::fabs(v.get<double>()) < 9.0e15)
      return static_cast<int64_t>(v.get<double>());
    fail(key, fmt::format("must be an integer, got {}", v.dump()));
  }
  int64_t integer(const char* key, int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }
  double number(const char* key) const {
    if (!j_.contains(key)) fail(key, "is missing");
    const json& v = j_[key];
    if (!v.is_number()) fail(key, fmt::format("must be a number, got {}", v.dump()));
    return v.get<double>();
  }
  double number(const char* key, double fallback) const {
    return has(key) ? number(key) : fallback;
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_boolean())
      fail(key, fmt::format("must be true or false, got {}", j_[key].dump()));
    return j_[key].get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_string()) fail(key, fmt::format("must be a string, got {}", j_[key].dump()));
    return j_[key].get<std::string>();
  }
  const json& object(const char* key) const {
    if (!j_[key].is_object()) fail(key, fmt::format("must be an object, got {}", j_[key].dump()));
    return j_[key];
  }
  const std::string& source() const { return source_; }

 private:
  const json& j_;
  std::string source_;
  std::string prefix_;
};

void parse_rope(const Reader& r, const json& rope, const char* key, Config& c) {
  Reader rr(rope, r.source(), std::string(key) + ".");
  std::string type = rr.string("rope_type", rr.string("type", "default"));
  if (rope.contains("rope_theta")) c.rope_theta = rr.number("rope_theta");
  if (type == "default" || type == "linear" || type.empty()) {
    if (type == "linear")
      rr.fail("rope_type", "'linear' is not used by DeepSeek models; use 'yarn'");
    return;
  }
  if (type != "yarn")
    rr.fail("rope_type", fmt::format("must be 'default' or 'yarn', got '{}'", type));
  RopeScaling& y = c.rope_scaling;
  y.yarn = true;
  // HF derives a missing factor from max_position_embeddings / original_max_position_embeddings.
  y.original_max_position_embeddings = rr.integer("original_max_position_embeddings", 4096);
  y.factor = rr.has("factor") ? rr.number("factor")
                              : static_cast<double>(c.max_position_embeddings) /
                                    static_cast<double>(y.original_max_position_embeddings);
  y.beta_fast = rr.number("beta_fast", 32.0);
  y.beta_slow = rr.number("beta_slow", 1.0);
  y.mscale = rr.number("mscale", 0.0);
  y.attention_factor = rr.number("attention_factor", 0.0);
  y.mscale_all_dim = rr.number("mscale_all_dim", 0.0);
  if (y.factor < 1.0) rr.fail("factor", fmt::format("must be >= 1, got {}", y.factor));
}

Config parse_hf(const json& j, const std::string& source) {
  Reader r(j, source);
  Config c;
  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("hidden_size");
  c.intermediate_size = r.integer("intermediate_size");
  c.num_hidden_layers = r.integer("num_hidden_layers");
  c.num_attention_heads = r.integer("num_attention_heads");
  c.kv_lora_rank = r.integer("kv_lora_rank");
  c.q_lora_rank = r.present("q_lora_rank") && !r.has("q_lora_rank") ? 0 : r.integer("q_lora_rank");
  c.qk_nope_head_dim = r.integer("qk_nope_head_dim");
  c.qk_rope_head_dim = r.integer("qk_rope_head_dim");
  c.v_head_dim = r.integer("v_head_dim");
  c.n_routed_experts = r.integer("n_routed_experts", 0);
  c.moe_intermediate_size = r.integer("moe_intermediate_size", c.n_routed_experts ? -1 : 0);
  if (c.moe_intermediate_size < 0) r.integer("moe_intermediate_size");  // reports it missing
  c.n_shared_experts = r.integer("n_shared_experts", 0);
  c.num_experts_per_tok = r.integer("num_experts_per_tok", c.n_routed_experts ? -1 : 0);
  if (c.num_experts_per_tok < 0) r.integer("num_experts_per_tok");
  c.n_group = r.integer("n_group", 1);
  c.topk_group = r.integer("topk_group", 1);
  c.first_k_dense_replace = r.integer("first_k_dense_replace", 0);
  c.moe_layer_freq = r.integer("moe_layer_freq", 1);
  c.routed_scaling_factor = r.number("routed_scaling_factor", 1.0);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  c.max_position_embeddings = r.integer("max_position_embeddings", 4096);
  c.rope_theta = r.number("rope_theta", 10000.0);
  c.num_nextn_predict_layers = r.integer("num_nextn_predict_layers", 0);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.bos_token_id = r.integer("bos_token_id", 0);
  c.eos_token_id = r.integer("eos_token_id", 1);

  std::string model_type = r.string("model_type", "deepseek_v3");
  std::string scoring =
      r.string("scoring_func", model_type == "deepseek_v3" ? "sigmoid" : "softmax");
  if (scoring == "sigmoid")
    c.scoring_func = ScoringFunc::kSigmoid;
  else if (scoring == "softmax")
    c.scoring_func = ScoringFunc::kSoftmax;
  else
    r.fail("scoring_func", fmt::format("must be 'sigmoid' or 'softmax', got '{}'", scoring));

  std::string method = r.string("topk_method", model_type == "deepseek_v3" ? "noaux_tc" : "greedy");
  if (method == "noaux_tc")
    c.topk_method = TopkMethod::kNoauxTc;
  else if (method == "group_limited_greedy")
    c.topk_method = TopkMethod::kGroupLimitedGreedy;
  else if (method == "greedy")
    c.topk_method = TopkMethod::kGreedy;
  else
    r.fail("topk_method",
           fmt::format("must be noaux_tc, group_limited_greedy or greedy, got '{}'", method));
  // V3 always normalises sigmoid top-k weights; V2 configs say so explicitly.
  c.norm_topk_prob = r.boolean("norm_topk_prob", c.scoring_func == ScoringFunc::kSigmoid);

  // Newer transformers write rope_parameters, older ones rope_scaling; either may carry YaRN.
  if (r.has("rope_parameters")) parse_rope(r, r.object("rope_parameters"), "rope_parameters", c);
  if (r.has("rope_scaling")) parse_rope(r, r.object("rope_scaling"), "rope_scaling", c);

  if (r.has("qk_head_dim") && r.integer("qk_head_dim") != c.qk_head_dim())
    r.fail("qk_head_dim", fmt::format("is {} but qk_nope_head_dim + qk_rope_head_dim = {}",
                                      r.integer("qk_head_dim"), c.qk_head_dim()));
  if (r.has("num_key_value_heads") && r.integer("num_key_value_heads") != c.num_attention_heads)
    r.fail("num_key_value_heads", "must equal num_attention_heads (MLA has no KV head grouping)");
  if (r.has("hidden_act") && r.string("hidden_act", "silu") != "silu")
    r.fail("hidden_act", "must be 'silu' (DeepSeek uses SwiGLU)");
  if (r.boolean("attention_bias", false))
    r.fail("attention_bias", "must be false (MLA has no biases)");

  if (r.has("quantization_config")) {
    Reader q(r.object("quantization_config"), source, "quantization_config.");
    std::string qm = q.string("quant_method", "");
    if (qm != "fp8") q.fail("quant_method", fmt::format("must be 'fp8', got '{}'", qm));
    c.quantization.fp8 = true;
    c.quantization.fmt = q.string("fmt", "e4m3");
    if (c.quantization.fmt != "e4m3") q.fail("fmt", "must be 'e4m3'");
    c.quantization.ue8m0 = q.string("scale_fmt", "") == "ue8m0";
    const json& qj = r.object("quantization_config");
    if (qj.contains("weight_block_size")) {
      const json& b = qj["weight_block_size"];
      if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer())
        q.fail("weight_block_size", fmt::format("must be [rows, cols], got {}", b.dump()));
      if (b[0].get<int64_t>() <= 0 || b[1].get<int64_t>() <= 0 || b[0].get<int64_t>() > 65536 ||
          b[1].get<int64_t>() > 65536)
        q.fail("weight_block_size",
               fmt::format("must be two positive block sizes, got {}", b.dump()));
      c.quantization.block_rows = b[0].get<int>();
      c.quantization.block_cols = b[1].get<int>();
    }
  }
  return c;
}

// The official DeepSeek-V3 inference configs (inference/configs/config_671B.json); ModelArgs
// defaults are the V2-Lite values, and a file overrides only the keys it lists.
Config parse_official(const json& j, const std::string& source) {
  Reader r(j, source);
  Config c;
  c.vocab_size = r.integer("vocab_size", 102400);
  c.hidden_size = r.integer("dim", 2048);
  c.intermediate_size = r.integer("inter_dim", 10944);
  c.moe_intermediate_size = r.integer("moe_inter_dim", 1408);
  c.num_hidden_layers = r.integer("n_layers", 27);
  c.first_k_dense_replace = r.integer("n_dense_layers", 1);
  c.num_attention_heads = r.integer("n_heads", 16);
  c.n_routed_experts = r.integer("n_routed_experts", 64);
  c.n_shared_experts = r.integer("n_shared_experts", 2);
  c.num_experts_per_tok = r.integer("n_activated_experts", 6);
  c.n_group = r.integer("n_expert_groups", 1);
  c.topk_group = r.integer("n_limited_groups", 1);
  std::string score = r.string("score_func", "softmax");
  if (score == "sigmoid")
    c.scoring_func = ScoringFunc::kSigmoid;
  else if (score == "softmax")
    c.scoring_func = ScoringFunc::kSoftmax;
  else
    r.fail("score_func", fmt::format("must be 'sigmoid' or 'softmax', got '{}'", score));
  c.routed_scaling_factor = r.number("route_scale", 1.0);
  c.q_lora_rank = r.integer("q_lora_rank", 0);
  c.kv_lora_rank = r.integer("kv_lora_rank", 512);
  c.qk_nope_head_dim = r.integer("qk_nope_head_dim", 128);
  c.qk_rope_head_dim = r.integer("qk_rope_head_dim", 64);
  c.v_head_dim = r.integer("v_head_dim", 128);
  int64_t max_seq_len = r.integer("max_seq_len", 16384);
  int64_t original = r.integer("original_seq_len", 4096);
  c.rope_theta = r.number("rope_theta", 10000.0);
  c.max_position_embeddings = max_seq_len;
  // The official code turns YaRN on only when max_seq_len > original_seq_len.
  if (max_seq_len > original) {
    c.rope_scaling.yarn = true;
    c.rope_scaling.factor = r.number("rope_factor", 40.0);
    c.rope_scaling.original_max_position_embeddings = original;
    c.rope_scaling.beta_fast = r.number("beta_fast", 32.0);
    c.rope_scaling.beta_slow = r.number("beta_slow", 1.0);
    c.rope_scaling.mscale = r.number("mscale", 1.0);
    c.rope_scaling.mscale_all_dim = c.rope_scaling.mscale;
  }
  // Official rules: normalise iff sigmoid; the correction bias exists iff dim == 7168.
  c.norm_topk_prob = c.scoring_func == ScoringFunc::kSigmoid;
  if (c.hidden_size == 7168)
    c.topk_method = TopkMethod::kNoauxTc;
  else
    c.topk_method = c.n_group > 1 ? TopkMethod::kGroupLimitedGreedy : TopkMethod::kGreedy;
  std::string dtype = r.string("dtype", "bf16");
  if (dtype != "bf16" && dtype != "fp8")
    r.fail("dtype", fmt::format("must be 'bf16' or 'fp8', got '{}'", dtype));
  c.quantization.fp8 = dtype == "fp8";
  c.quantization.ue8m0 = r.string("scale_fmt", "") == "ue8m0";
  c.num_nextn_predict_layers = 0;
  return c;
}

}  // namespace

int64_t Config::num_moe_layers() const {
  int64_t n = 0;
  for (int64_t l = 0; l < num_hidden_layers; ++l) n += is_moe_layer(l) ? 1 : 0;
  return n;
}

double Config::softmax_scale() const {
  double scale = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
  // model_spec §5.2: m = 0.1 * mscale_all_dim * ln(s) + 1, applied squared (HF semantics).
  if (rope_scaling.yarn && rope_scaling.mscale_all_dim != 0.0 && rope_scaling.factor > 1.0) {
    double m = 0.1 * rope_scaling.mscale_all_dim * std::log(rope_scaling.factor) + 1.0;
    scale *= m * m;
  }
  return scale;
}

void Config::validate() const {
  auto fail = [&](const char* key, const std::string& what) {
    throw ConfigError(fmt::format("{}: key '{}' {}", source, key, what));
  };
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) fail(key, fmt::format("must be positive, got {}", v));
  };
  // Upper bounds, checked first (docs/reliability.md): far above every published model
  // (DeepSeek-V3: d = 7168, 61 layers, 128 heads, 256 experts, vocab 129280, 163840 positions)
  // and low enough that every size derived from them (parameter counts, FLOPs, KV-cache bytes
  // at max_position_embeddings) fits in int64 with room to spare. A config with 10^9 experts
  // or layers is refused here, before anything is counted or allocated.
  auto at_most = [&](const char* key, int64_t v, int64_t limit) {
    if (v > limit)
      fail(key, fmt::format("is {}, above the limit {} (larger than any model this code can hold)",
                            v, limit));
  };
  at_most("vocab_size", vocab_size, kConfigLimits.vocab_size);
  at_most("hidden_size", hidden_size, kConfigLimits.width);
  at_most("intermediate_size", intermediate_size, kConfigLimits.ffn_width);
  at_most("moe_intermediate_size", moe_intermediate_size, kConfigLimits.ffn_width);
  at_most("num_hidden_layers", num_hidden_layers, kConfigLimits.layers);
  at_most("num_attention_heads", num_attention_heads, kConfigLimits.heads);
  at_most("q_lora_rank", q_lora_rank, kConfigLimits.width);
  at_most("kv_lora_rank", kv_lora_rank, kConfigLimits.width);
  at_most("qk_nope_head_dim", qk_nope_head_dim, kConfigLimits.head_dim);
  at_most("qk_rope_head_dim", qk_rope_head_dim, kConfigLimits.head_dim);
  at_most("v_head_dim", v_head_dim, kConfigLimits.head_dim);
  at_most("n_routed_experts", n_routed_experts, kConfigLimits.experts);
  at_most("n_shared_experts", n_shared_experts, kConfigLimits.shared_experts);
  at_most("moe_layer_freq", moe_layer_freq, kConfigLimits.layers);
  at_most("num_nextn_predict_layers", num_nextn_predict_layers, kConfigLimits.mtp_depth);
  at_most("max_position_embeddings", max_position_embeddings, kConfigLimits.positions);
  if (rope_scaling.yarn &&
      (rope_scaling.original_max_position_embeddings <= 0 ||
       rope_scaling.original_max_position_embeddings > kConfigLimits.positions))
    fail("rope_scaling.original_max_position_embeddings",
         fmt::format("must be in [1, {}], got {}", kConfigLimits.positions,
                     rope_scaling.original_max_position_embeddings));
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("kv_lora_rank", kv_lora_rank);
  positive("qk_nope_head_dim", qk_nope_head_dim);
  positive("v_head_dim", v_head_dim);
  if (q_lora_rank < 0) fail("q_lora_rank", "must be null or positive");
  if (qk_rope_head_dim <= 0 || qk_rope_head_dim % 2)
    fail("qk_rope_head_dim",
         fmt::format("must be positive and even (RoPE rotates pairs), got {}", qk_rope_head_dim));
  if (first_k_dense_replace < 0 || first_k_dense_replace > num_hidden_layers)
    fail("first_k_dense_replace", fmt::format("must be in [0, num_hidden_layers={}], got {}",
                                              num_hidden_layers, first_k_dense_replace));
  if (moe_layer_freq > 0 && num_moe_layers() < num_hidden_layers)
    positive("intermediate_size", intermediate_size);
  if (moe_layer_freq <= 0) fail("moe_layer_freq", "must be positive");
  if (n_routed_experts < 0) fail("n_routed_experts", "must not be negative");
  if (n_routed_experts > 0) {
    positive("moe_intermediate_size", moe_intermediate_size);
    if (num_experts_per_tok <= 0 || num_experts_per_tok > n_routed_experts)
      fail("num_experts_per_tok", fmt::format("must be in [1, n_routed_experts={}], got {}",
                                              n_routed_experts, num_experts_per_tok));
    if (n_group <= 0 || n_routed_experts % n_group)
      fail("n_group",
           fmt::format("must divide n_routed_experts={}, got {}", n_routed_experts, n_group));
    if (topk_group <= 0 || topk_group > n_group)
      fail("topk_group", fmt::format("must be in [1, n_group={}], got {}", n_group, topk_group));
    if (num_experts_per_tok > topk_group * (n_routed_experts / n_group))
      fail("num_experts_per_tok",
           fmt::format("is {} but the {} kept groups hold only {} experts", num_experts_per_tok,
                       topk_group, topk_group * (n_routed_experts / n_group)));
    if (topk_method == TopkMethod::kNoauxTc && n_group > 1 && n_routed_experts / n_group < 2)
      fail("n_group",
           "noaux_tc scores each group by its top-2 experts, so each group needs at least 2");
  }
  if (n_shared_experts < 0) fail("n_shared_experts", "must not be negative");
  if (routed_scaling_factor <= 0) fail("routed_scaling_factor", "must be positive");
  if (rms_norm_eps <= 0) fail("rms_norm_eps", "must be positive");
  if (rope_theta <= 1.0) fail("rope_theta", "must be greater than 1");
  if (num_nextn_predict_layers < 0) fail("num_nextn_predict_layers", "must not be negative");
  if (max_position_embeddings <= 0) fail("max_position_embeddings", "must be positive");
  if (rope_scaling.yarn && rope_scaling.beta_fast <= rope_scaling.beta_slow)
    fail("rope_scaling.beta_fast", "must be greater than beta_slow");
  if (tie_word_embeddings)
    fail("tie_word_embeddings", "must be false (DeepSeek keeps a separate output head)");
}

Config parse_config(const json& j, const std::string& source) {
  if (!j.is_object())
    throw ConfigError(fmt::format("{}: the top level must be a JSON object", source));
  const char* official_key = j.contains("dim")        ? "dim"
                             : j.contains("n_layers") ? "n_layers"
                                                      : nullptr;
  const char* hf_key = j.contains("hidden_size")         ? "hidden_size"
                       : j.contains("num_hidden_layers") ? "num_hidden_layers"
                                                         : nullptr;
  bool official = official_key != nullptr;
  if (official_key && hf_key)
    throw ConfigError(
        fmt::format("{}: key '{}' contradicts '{}': mixes official and Hugging Face keys", source,
                    official_key, hf_key));
  Config c = official ? parse_official(j, source) : parse_hf(j, source);
  c.source = source;
  c.name = fs::path(source).stem().string();
  if (c.name == "config") c.name = fs::path(source).parent_path().filename().string();
  c.validate();
  return c;
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("{}: cannot open config file", path));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw ConfigError(fmt::format("{}: malformed JSON at byte {}", path, e.byte));
  } catch (const json::exception& e) {  // a number beyond double range (out_of_range.406)
    throw ConfigError(fmt::format("{}: malformed JSON: {}", path, e.what()));
  }
  return parse_config(j, path);
}

// Set by reference/CMakeLists.txt for this file alone: the build tree, and where `cmake
// --install` puts the data relative to the executable's folder ("../share/dsv3").
#ifndef DSV3_BUILD_DIR
#define DSV3_BUILD_DIR ""
#endif
#ifndef DSV3_INSTALL_DATA_FROM_BIN
#define DSV3_INSTALL_DATA_FROM_BIN "../share/dsv3"
#endif

namespace {

bool holds_data(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir / "tiny-configs", ec);
}

// True when `p` is `dir` or lies under it (compared as canonical paths).
bool is_under(const fs::path& p, const fs::path& dir) {
  std::error_code ec;
  const fs::path a = fs::weakly_canonical(p, ec);
  if (ec) return false;
  const fs::path b = fs::weakly_canonical(dir, ec);
  if (ec) return false;
  const fs::path rel = a.lexically_relative(b);
  return !rel.empty() && *rel.begin() != "..";
}

}  // namespace

std::string data_dir() {
  if (const char* env = std::getenv("DSV3_DATA_DIR"); env && *env) {
    if (!holds_data(env))
      throw ConfigError(fmt::format(
          "DSV3_DATA_DIR={} has no tiny-configs/ folder: point it at the folder holding "
          "tiny-configs/ and lessons/ (an installed dsv3's PREFIX/share/dsv3)",
          env));
    return env;
  }
  std::vector<fs::path> looked;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  const bool exe_known = !ec && !exe.empty();
  if (exe_known) {
    // An installed dsv3: PREFIX/bin/dsv3 with its data in PREFIX/share/dsv3.
    const fs::path installed = (exe.parent_path() / DSV3_INSTALL_DATA_FROM_BIN).lexically_normal();
    if (holds_data(installed)) return installed.string();
    looked.push_back(installed);
  }
  // A binary in the build tree it was built in (dsv3, the tests, the benchmarks) reads the
  // source tree; a copy anywhere else does not, so a broken install cannot pass unnoticed.
  const std::string build_dir = DSV3_BUILD_DIR;
  if (!exe_known || (!build_dir.empty() && is_under(exe, build_dir))) {
    const fs::path source(DSV3_SOURCE_DIR);
    if (holds_data(source)) return source.string();
    looked.push_back(source);
  }
  std::string where;
  for (const fs::path& p : looked) where += (where.empty() ? "" : ", ") + p.string();
  throw ConfigError(fmt::format(
      "cannot find dsv3's data (tiny-configs/, lessons/): looked in {}{}; install with `cmake "
      "--install BUILD --prefix PREFIX` or set DSV3_DATA_DIR to the folder holding them",
      where.empty() ? "no folder" : where,
      exe_known ? fmt::format(" (beside {})", exe.string()) : std::string()));
}

std::string tiny_configs_dir() {
  if (const char* env = std::getenv("DSV3_CONFIGS"); env && *env) return env;
  return (fs::path(data_dir()) / "tiny-configs").string();
}

namespace {
const std::map<std::string, std::string>& builtin_names() {
  static const std::map<std::string, std::string> names = {
      {"tiny", "tiny"},  // the trained model: a checkpoint folder (docs/model-card.md)
      {"tiny-random", "tiny.json"},
      {"small", "small.json"},
      {"tiny-yarn", "tiny-yarn.json"},
      {"v3", "deepseek-v3-671b.json"},
      {"v3-671b", "deepseek-v3-671b.json"},
      {"671b", "deepseek-v3-671b.json"},
      {"deepseek-v3", "deepseek-v3-671b.json"},
      {"v2", "deepseek-v2-236b.json"},
      {"v2-236b", "deepseek-v2-236b.json"},
      {"236b", "deepseek-v2-236b.json"},
      {"deepseek-v2", "deepseek-v2-236b.json"},
      {"v2-lite", "deepseek-v2-lite-16b.json"},
      {"v2-lite-16b", "deepseek-v2-lite-16b.json"},
      {"16b", "deepseek-v2-lite-16b.json"},
      {"deepseek-v2-lite", "deepseek-v2-lite-16b.json"},
  };
  return names;
}
}  // namespace

std::string resolve_model_path(const std::string& name_or_path) {
  auto it = builtin_names().find(name_or_path);
  if (it != builtin_names().end()) return tiny_configs_dir() + "/" + it->second;
  return name_or_path;
}

Config resolve_config(const std::string& name_or_path) {
  auto it = builtin_names().find(name_or_path);
  if (it != builtin_names().end()) {
    const fs::path p = resolve_model_path(name_or_path);
    Config c = load_config_file(fs::is_directory(p) ? (p / "config.json").string() : p.string());
    c.name = name_or_path;
    return c;
  }
  fs::path p(name_or_path);
  if (fs::is_directory(p)) return load_config_file((p / "config.json").string());
  if (fs::exists(p)) return load_config_file(p.string());
  std::string known;
  for (const auto& [k, v] : builtin_names()) known += (known.empty() ? "" : ", ") + k;
  throw ConfigError(fmt::format("{}: no such file, directory or built-in model (built-in: {})",
                                name_or_path, known));
}

json to_json(const Config& c) {
  json j;
  j["model_type"] = "deepseek_v3";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_attention_heads;
  j["q_lora_rank"] = c.q_lora_rank ? json(c.q_lora_rank) : json(nullptr);
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["n_group"] = c.n_group;
  j["topk_group"] = c.topk_group;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  j["moe_layer_freq"] = c.moe_layer_freq;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["scoring_func"] = c.scoring_func == ScoringFunc::kSigmoid ? "sigmoid" : "softmax";
  j["topk_method"] = c.topk_method == TopkMethod::kNoauxTc              ? "noaux_tc"
                     : c.topk_method == TopkMethod::kGroupLimitedGreedy ? "group_limited_greedy"
                                                                        : "greedy";
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["max_position_embeddings"] = c.max_position_embeddings;
  if (c.rope_scaling.yarn) {
    j["rope_scaling"] = {
        {"type", "yarn"},
        {"factor", c.rope_scaling.factor},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings},
        {"beta_fast", c.rope_scaling.beta_fast},
        {"beta_slow", c.rope_scaling.beta_slow},
        {"mscale", c.rope_scaling.mscale},
        {"mscale_all_dim", c.rope_scaling.mscale_all_dim}};
  }
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["tie_word_embeddings"] = false;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  if (c.quantization.fp8) {
    j["quantization_config"] = {
        {"quant_method", "fp8"},
        {"fmt", c.quantization.fmt},
        {"activation_scheme", "dynamic"},
        {"weight_block_size", {c.quantization.block_rows, c.quantization.block_cols}}};
    if (c.quantization.ue8m0) j["quantization_config"]["scale_fmt"] = "ue8m0";
  }
  return j;
}

}  // namespace dsv3::model
