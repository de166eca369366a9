// `dsv3 info`: parameter, FLOP and KV-cache accounting of any config (reference/accounting).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "app/cli/cli.h"
#include "reference/accounting/accounting.h"
#include "reference/model/config.h"

namespace dsv3::app {
namespace {

namespace acc = dsv3::accounting;

// 671026419200 -> "671,026,419,200"
std::string grouped(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

// 671026419200 -> "671.03 B"  (decimal units for parameter and FLOP counts)
std::string short_count(double v, const char* unit = "") {
  // Parameters read "671.03 B" (billions), FLOPs "73.25 GFLOP".
  static const char* params[] = {"", " K", " M", " B", " T", " P"};
  static const char* si[] = {"", " K", " M", " G", " T", " P"};
  const char* const* suffix = *unit ? si : params;
  int i = 0;
  while (v >= 1000.0 && i < 5) {
    v /= 1000.0;
    ++i;
  }
  return i == 0 ? fmt::format("{:.0f}{}", v, unit) : fmt::format("{:.2f}{}{}", v, suffix[i], unit);
}

// 70272 -> "68.6 KiB"  (binary units for memory)
std::string short_bytes(double v) {
  static const char* suffix[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int i = 0;
  while (v >= 1024.0 && i < 5) {
    v /= 1024.0;
    ++i;
  }
  return i == 0 ? fmt::format("{:.0f} B", v) : fmt::format("{:.2f} {}", v, suffix[i]);
}

int64_t dtype_bytes(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"f32", 4},  {"fp32", 4},    {"float32", 4}, {"bf16", 2}, {"bfloat16", 2}, {"f16", 2},
      {"fp16", 2}, {"float16", 2}, {"fp8", 1},     {"f8", 1},   {"e4m3", 1}};
  auto it = sizes.find(dtype);
  if (it == sizes.end())
    throw UsageError(fmt::format("--kv-dtype: unknown dtype '{}' (bf16, f16, f32 or fp8)", dtype));
  return it->second;
}

struct InfoOptions {
  std::string config;
  std::string config_positional;  // `dsv3 info tiny`, like the REPL's `info [CONFIG]`
  int64_t context = 4096;
  std::string kv_dtype = "bf16";
  int64_t gqa_groups = 0;  // 0: accounting::default_gqa_groups (8, at most half the heads)
  std::string checkpoint;  // optional: count a real checkpoint's headers too
  bool json = false;
};

nlohmann::json checkpoint_json(const acc::CheckpointCount& n) {
  return {{"tensors", n.tensors},
          {"params", n.params},
          {"scale_elements", n.scale_elements},
          {"bytes", n.bytes},
          {"mtp_params", n.mtp_params}};
}

nlohmann::json to_json(const model::Config& c, const InfoOptions& o) {
  const acc::ParamCount pc = acc::count_params(c);
  const acc::MtpParams mtp = acc::count_mtp_params(c);
  const acc::KvCache kv = acc::kv_cache(c, o.context, dtype_bytes(o.kv_dtype), o.gqa_groups);
  const acc::Flops fl = acc::flops_per_token(c, o.context);
  const acc::Census census = acc::checkpoint_census(c);
  const acc::LayerParams lp = acc::layer_params(c);

  nlohmann::json j;
  j["config"] = c.source;
  j["name"] = c.name;
  j["params_total"] = pc.total;
  j["params_activated"] = pc.activated;
  j["params_activated_without_embedding"] = pc.activated_without_embedding;
  j["params_mtp"] = mtp.unique;
  j["params_mtp_stored"] = mtp.stored;
  j["params_mtp_activated"] = mtp.activated;
  j["params_checkpoint"] = pc.total + mtp.stored;
  j["layers"] = {
      {"total", c.num_hidden_layers}, {"dense", pc.dense_layers}, {"moe", pc.moe_layers}};
  j["params_per_layer"] = {{"attention", lp.attention.total()},
                           {"dense_layer", lp.dense_layer()},
                           {"moe_layer", lp.moe_layer()},
                           {"moe_layer_activated", lp.moe_layer_activated()},
                           {"one_expert", lp.one_expert}};
  nlohmann::json breakdown = nlohmann::json::array();
  for (const acc::Component& comp : pc.components)
    breakdown.push_back(
        {{"name", comp.name}, {"total", comp.total}, {"activated", comp.activated}});
  j["breakdown"] = breakdown;

  j["kv_dtype"] = o.kv_dtype;
  j["kv_bytes_per_element"] = kv.bytes_per_element;
  j["kv_elements_per_token_per_layer"] = {{"mla", kv.per_layer.mla},
                                          {"mla_naive", kv.per_layer.mla_naive},
                                          {"mha", kv.per_layer.mha},
                                          {"gqa", kv.per_layer.gqa},
                                          {"mqa", kv.per_layer.mqa}};
  j["kv_cache_bytes_per_token"] = kv.per_token_bytes.mla;
  j["kv_cache_bytes_per_token_naive"] = kv.per_token_bytes.mla_naive;
  j["kv_cache_bytes_per_token_mha"] = kv.per_token_bytes.mha;
  j["kv_cache_bytes_per_token_gqa"] = kv.per_token_bytes.gqa;
  j["kv_cache_bytes_per_token_mqa"] = kv.per_token_bytes.mqa;
  j["gqa_groups"] = kv.gqa_groups;
  // The head sizes behind each baseline (one definition: accounting::KvElements).
  j["kv_head_dims"] = {
      {"mha",
       {{"heads", c.num_attention_heads}, {"k", c.qk_nope_head_dim}, {"v", c.qk_nope_head_dim}}},
      {"gqa", {{"heads", kv.gqa_groups}, {"k", c.qk_nope_head_dim}, {"v", c.qk_nope_head_dim}}},
      {"mqa", {{"heads", 1}, {"k", c.qk_nope_head_dim}, {"v", c.qk_nope_head_dim}}},
      {"mla_naive",
       {{"heads", c.num_attention_heads}, {"k", c.qk_head_dim()}, {"v", c.v_head_dim}}}};
  j["context"] = o.context;
  j["kv_cache_bytes_at_context"] = {{"mla", kv.at_context_bytes.mla},
                                    {"mla_naive", kv.at_context_bytes.mla_naive},
                                    {"mha", kv.at_context_bytes.mha},
                                    {"gqa", kv.at_context_bytes.gqa},
                                    {"mqa", kv.at_context_bytes.mqa}};
  j["flops_per_token"] = fl.total();
  j["flops_per_token_linear"] = fl.linear;
  j["flops_per_token_attention"] = fl.attention_naive;
  j["flops_per_token_absorbed"] = fl.total_absorbed();
  j["flops_per_token_attention_absorbed"] = fl.attention_absorbed;
  j["checkpoint"] = {{"tensors", census.tensors()},
                     {"bytes", census.bytes()},
                     {"fp8", c.quantization.fp8},
                     {"f8_elements", census.f8.elements},
                     {"bf16_elements", census.bf16.elements},
                     {"f32_elements", census.f32.elements}};
  if (!o.checkpoint.empty())
    j["checkpoint_actual"] =
        checkpoint_json(acc::count_checkpoint(o.checkpoint, c.num_hidden_layers));
  return j;
}

void print_table(const model::Config& c, const InfoOptions& o) {
  const acc::ParamCount pc = acc::count_params(c);
  const acc::MtpParams mtp = acc::count_mtp_params(c);
  const acc::KvCache kv = acc::kv_cache(c, o.context, dtype_bytes(o.kv_dtype), o.gqa_groups);
  const acc::Flops fl = acc::flops_per_token(c, o.context);
  const acc::Census census = acc::checkpoint_census(c);

  std::string out;
  auto line = [&](const std::string& s) { out += s + "\n"; };
  line(fmt::format("{} ({})", c.name, c.source));
  std::string experts =
      c.n_routed_experts > 0
          ? fmt::format(", {} routed experts (top-{}, {} groups keep {}) + {} shared",
                        c.n_routed_experts, c.num_experts_per_tok, c.n_group, c.topk_group,
                        c.n_shared_experts)
          : "";
  line(fmt::format("  {} layers ({} dense, {} MoE), d={}, {} heads, vocab {}{}",
                   c.num_hidden_layers, pc.dense_layers, pc.moe_layers, c.hidden_size,
                   c.num_attention_heads, c.vocab_size, experts));
  line("");
  line(fmt::format("{:<32}{:>20}{:>20}", "Parameters", "total", "activated/token"));
  for (const acc::Component& comp : pc.components)
    line(fmt::format("  {:<30}{:>20}{:>20}", comp.name, grouped(comp.total),
                     grouped(comp.activated)));
  line(fmt::format("  {:<30}{:>20}{:>20}", "total", grouped(pc.total), grouped(pc.activated)));
  line(fmt::format("  {:<30}{:>20}{:>20}", "", short_count(static_cast<double>(pc.total)),
                   short_count(static_cast<double>(pc.activated))));
  line(fmt::format("  activated without the embedding lookup: {} ({})",
                   grouped(pc.activated_without_embedding),
                   short_count(static_cast<double>(pc.activated_without_embedding))));
  if (mtp.depth > 0) {
    line(
        fmt::format("  MTP modules (D={}): {} unique, {} as stored (embedding and head copied), "
                    "{} activated/token",
                    mtp.depth, grouped(mtp.unique), grouped(mtp.stored), grouped(mtp.activated)));
  } else {
    line("  MTP modules: none (num_nextn_predict_layers = 0)");
  }
  line(fmt::format("  checkpoint ({}): {} tensors, {} bytes ({})",
                   c.quantization.fp8 ? "FP8 E4M3 + BF16 + F32 scales" : "BF16",
                   grouped(census.tensors()), grouped(census.bytes()),
                   short_bytes(static_cast<double>(census.bytes()))));
  if (!o.checkpoint.empty()) {
    const acc::CheckpointCount n = acc::count_checkpoint(o.checkpoint, c.num_hidden_layers);
    line(
        fmt::format("  {} holds {} tensors: {} parameters ({} in MTP layers) + {} scale elements, "
                    "{} data bytes",
                    o.checkpoint, grouped(n.tensors), grouped(n.params), grouped(n.mtp_params),
                    grouped(n.scale_elements), grouped(n.bytes)));
  }
  line("");

  line(fmt::format("{:<44}{:>14}{:>16}{:>16}",
                   fmt::format("KV cache ({}, {} layers)", o.kv_dtype, kv.layers), "elem/tok/layer",
                   "bytes/token", fmt::format("at {} tok", grouped(o.context))));
  auto kv_row = [&](const std::string& name, int64_t elems, int64_t per_tok, int64_t at_ctx) {
    line(fmt::format("  {:<42}{:>14}{:>16}{:>16}", name, grouped(elems),
                     short_bytes(static_cast<double>(per_tok)),
                     short_bytes(static_cast<double>(at_ctx))));
  };
  const int64_t h = c.num_attention_heads, dh = c.qk_nope_head_dim;
  kv_row(fmt::format("MLA absorbed (d_c + d^R_h = {} + {})", c.kv_lora_rank, c.qk_rope_head_dim),
         kv.per_layer.mla, kv.per_token_bytes.mla, kv.at_context_bytes.mla);
  kv_row(
      fmt::format("MLA naive ({} heads: K {}+{}, V {})", h, dh, c.qk_rope_head_dim, c.v_head_dim),
      kv.per_layer.mla_naive, kv.per_token_bytes.mla_naive, kv.at_context_bytes.mla_naive);
  kv_row(fmt::format("MHA ({} heads: K {}, V {})", h, dh, dh), kv.per_layer.mha,
         kv.per_token_bytes.mha, kv.at_context_bytes.mha);
  kv_row(fmt::format("GQA ({} KV heads: K {}, V {})", kv.gqa_groups, dh, dh), kv.per_layer.gqa,
         kv.per_token_bytes.gqa, kv.at_context_bytes.gqa);
  kv_row(fmt::format("MQA (1 KV head: K {}, V {})", dh, dh), kv.per_layer.mqa,
         kv.per_token_bytes.mqa, kv.at_context_bytes.mqa);
  line(
      fmt::format("  MHA/GQA/MQA: each KV head caches K and V of d_h = qk_nope_head_dim = {} "
                  "(V2 Table 1)",
                  dh));
  line("  MLA naive: every head's decompressed K (nope + RoPE part) and V, without absorption");
  line(fmt::format(
      "  MLA bytes/token exactly: {}; MLA / MHA = {:.2f}% ({:.1f}x smaller), naive / MLA = {:.1f}x",
      grouped(kv.per_token_bytes.mla),
      100.0 * static_cast<double>(kv.per_layer.mla) / static_cast<double>(kv.per_layer.mha),
      static_cast<double>(kv.per_layer.mha) / static_cast<double>(kv.per_layer.mla),
      static_cast<double>(kv.per_layer.mla_naive) / static_cast<double>(kv.per_layer.mla)));
  line("");
  line(fmt::format("Forward FLOPs per token at context {}", grouped(o.context)));
  line(fmt::format("  {:<30}{:>24}  {}", "linear layers", grouped(fl.linear),
                   short_count(static_cast<double>(fl.linear), "FLOP")));
  line(fmt::format("  {:<30}{:>24}  {}", "attention (naive)", grouped(fl.attention_naive),
                   short_count(static_cast<double>(fl.attention_naive), "FLOP")));
  line(fmt::format("  {:<30}{:>24}  {}", "attention (absorbed)", grouped(fl.attention_absorbed),
                   short_count(static_cast<double>(fl.attention_absorbed), "FLOP")));
  line(fmt::format("  {:<30}{:>24}  {}", "total (naive)", grouped(fl.total()),
                   short_count(static_cast<double>(fl.total()), "FLOP")));
  line(fmt::format("  {:<30}{:>24}  {}", "total (absorbed)", grouped(fl.total_absorbed()),
                   short_count(static_cast<double>(fl.total_absorbed()), "FLOP")));
  std::fputs(out.c_str(), stdout);
}

}  // namespace

void add_info_commands(CLI::App& app) {
  auto opts = std::make_shared<InfoOptions>();
  CLI::App* info = app.add_subcommand(
      "info", "Parameter counts, KV-cache bytes and FLOPs of a config (total, activated, MTP)");
  info->add_option(
      "--config,-c", opts->config,
      "config.json, a model folder, or a built-in name (tiny, small, v3-671b, v2-236b, "
      "v2-lite-16b, ...); default: the --checkpoint folder's config.json");
  info->add_option("CONFIG", opts->config_positional, "the same as --config");
  info->add_option("--checkpoint", opts->checkpoint,
                   "also count the parameters stored in this checkpoint (folder, index or file); "
                   "reads headers only");
  info->add_option("--context", opts->context, "context length for KV-cache and attention FLOPs")
      ->capture_default_str();
  info->add_option("--kv-dtype", opts->kv_dtype, "KV-cache element type: bf16, f16, f32 or fp8")
      ->capture_default_str();
  info->add_option("--gqa-groups", opts->gqa_groups,
                   "groups (KV heads) of the GQA baseline (default: 8, at most half the heads)");
  info->add_flag("--json", opts->json, "print one JSON object");
  info->callback([opts]() {
    if (opts->context < 0)
      throw UsageError(fmt::format("--context must be >= 0, got {}", opts->context));
    if (!opts->config_positional.empty()) {
      if (!opts->config.empty() && opts->config != opts->config_positional)
        throw UsageError(fmt::format("info: two configs given ('{}' and --config '{}')",
                                     opts->config_positional, opts->config));
      opts->config = opts->config_positional;
    }
    if (opts->config.empty() && opts->checkpoint.empty())
      throw UsageError("info: --config is required (or --checkpoint with a config.json)");
    model::Config c = model::resolve_config(opts->config.empty() ? opts->checkpoint : opts->config);
    if (opts->gqa_groups == 0) opts->gqa_groups = acc::default_gqa_groups(c);
    if (opts->gqa_groups <= 0 || opts->gqa_groups > c.num_attention_heads)
      throw UsageError(fmt::format("--gqa-groups must be in [1, {}], got {}", c.num_attention_heads,
                                   opts->gqa_groups));
    if (opts->json) {
      std::string s = to_json(c, *opts).dump(2);
      std::fputs((s + "\n").c_str(), stdout);
    } else {
      print_table(c, *opts);
    }
  });
}

}  // namespace dsv3::app
