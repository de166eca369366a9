// Lab commands about the architecture and its scale: MLA's shapes and caches, YaRN's frequency
// correction, parameter and FLOP counts, and what fits in GPU memory (reference/accounting).
#include <curses.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "app/commands/lab.h"
#include "app/commands/registry.h"
#include "app/commands/util.h"
#include "app/explorer/session.h"
#include "app/lesson/player.h"
#include "reference/accounting/accounting.h"
#include "reference/balance/metrics.h"
#include "reference/balance/toy_a.h"
#include "reference/balance/toy_c.h"
#include "reference/fp8/analysis.h"
#include "reference/fp8/format.h"
#include "reference/fp8/quant.h"
#include "reference/model/generate.h"
#include "reference/model/mtp.h"
#include "reference/model/rope.h"
#include "reference/model/speculative.h"
#include "reference/pipeline/export.h"
#include "reference/pipeline/overlap.h"
#include "reference/pipeline/schedule.h"
#include "reference/pipeline/simulator.h"
#include "reference/pipeline/table.h"
#include "visualizers/balance_plot.h"
#include "visualizers/explorer_style.h"
#include "visualizers/mtp_panel.h"
#include "visualizers/pipeline_overlap.h"
#include "visualizers/pipeline_timeline.h"

namespace dsv3::app::lab {

// ---- MLA and YaRN -------------------------------------------------------------------------

Output mla(Session&, const Args& a, const Context&) {
  model::Config c = config_of(a);
  int64_t ctx = int_flag(a, "context", 4096, 1, int64_t{1} << 30);
  auto kv = accounting::kv_elements_per_layer(c);
  auto fl = accounting::flops_per_token(c, ctx);
  int64_t L = c.num_hidden_layers, H = c.num_attention_heads;
  json j = {
      {"config", c.name},
      {"layers", L},
      {"d", c.hidden_size},
      {"heads", H},
      {"d_h", c.qk_nope_head_dim},
      {"d_r", c.qk_rope_head_dim},
      {"d_v", c.v_head_dim},
      {"d_c", c.kv_lora_rank},
      {"d_c_q", c.q_lora_rank},
      {"cache",
       {{"mla", kv.mla},
        {"mla_naive", kv.mla_naive},
        {"mha", kv.mha},
        {"gqa", kv.gqa},
        {"mqa", kv.mqa}}},
      {"bytes_per_token_bf16",
       {{"mla", kv.mla * L * 2}, {"mla_naive", kv.mla_naive * L * 2}, {"mha", kv.mha * L * 2}}},
      {"context", ctx},
      {"attn_flops_naive", fl.attention_naive},
      {"attn_flops_absorbed", fl.attention_absorbed},
      {"linear_flops", fl.linear}};
  if (a.flag("json")) return json_out(j);
  std::string t =
      fmt::format("MLA of {}: one token, one layer (d = {}, {} heads)\n", c.name, c.hidden_size, H);
  t += fmt::format("  h_t [{}] ─W^DKV→ c^KV [{}]  ◀ cached (eq. 1)\n", c.hidden_size,
                   c.kv_lora_rank);
  t += fmt::format("      c^KV ─W^UK→ k^C [{}×{}],  ─W^UV→ v^C [{}×{}]  (eq. 2, 5)\n", H,
                   c.qk_nope_head_dim, H, c.v_head_dim);
  t += fmt::format("  h_t ─W^KR→ k^R [{}] RoPE, one for all heads  ◀ cached (eq. 3)\n",
                   c.qk_rope_head_dim);
  t += fmt::format("  cached values per token per layer:\n");
  t += fmt::format("    naive (full k, v):  H(d_h+d^R_h)+H·d_v = {:>7}\n", kv.mla_naive);
  t += fmt::format("    absorbed (latent):  d_c + d^R_h        = {:>7}  ({:.1f}× less)\n", kv.mla,
                   static_cast<double>(kv.mla_naive) / kv.mla);
  t += fmt::format("  BF16 bytes per token, all {} layers: {} absorbed, {} naive\n", L,
                   human(kv.mla * L * 2.0), human(kv.mla_naive * L * 2.0));
  t += fmt::format("  attention FLOPs per token at {} context: naive {}, absorbed {}\n", ctx,
                   big(static_cast<double>(fl.attention_naive)),
                   big(static_cast<double>(fl.attention_absorbed)));
  return text(t);
}

Output yarn(Session&, const Args& a, const Context&) {
  model::Config c = config_of(a);
  model::RopeTable t = model::make_rope_table(c);
  const auto& rs = c.rope_scaling;
  int pairs = static_cast<int>(t.inv_freq.size());
  json rows = json::array();
  int kept = 0, interp = 0;
  for (int j = 0; j < pairs; ++j) {
    double ramp = t.ramp.empty() ? 0.0 : t.ramp[j];
    kept += ramp <= 0.0 ? 1 : 0;
    interp += ramp >= 1.0 ? 1 : 0;
    rows.push_back({{"pair", j},
                    {"base_freq", t.base_freq[j]},
                    {"freq", t.inv_freq[j]},
                    {"ratio", t.inv_freq[j] / t.base_freq[j]},
                    {"ramp", ramp},
                    {"wavelength", 2 * M_PI / t.base_freq[j]}});
  }
  double mscale =
      rs.yarn ? model::yarn_get_mscale(rs.factor, rs.mscale_all_dim > 0 ? rs.mscale_all_dim : 1.0)
              : 1.0;
  json j = {{"config", c.name},
            {"yarn", rs.yarn},
            {"factor", rs.factor},
            {"original_context", rs.original_max_position_embeddings},
            {"max_context", c.max_position_embeddings},
            {"theta", c.rope_theta},
            {"beta_fast", rs.beta_fast},
            {"beta_slow", rs.beta_slow},
            {"dim", t.dim},
            {"low", t.low},
            {"high", t.high},
            {"kept", kept},
            {"interpolated", interp},
            {"blended", pairs - kept - interp},
            {"attention_factor", t.attention_factor},
            {"softmax_mscale", mscale},
            {"pairs", rows}};
  if (a.flag("json")) return json_out(j);
  if (!rs.yarn)
    return text(
        fmt::format("{} uses plain RoPE (no rope_scaling): nothing is corrected\n", c.name));
  std::string s = fmt::format("YaRN on {}: s = {}, {} → {} positions, d^R_h = {} ({} pairs)\n",
                              c.name, rs.factor, rs.original_max_position_embeddings,
                              c.max_position_embeddings, t.dim, pairs);
  s += fmt::format(
      "  ramp over pairs j (· kept as is, █ divided by s), ramp from j = {:.0f} to {:.0f}:\n  ",
      t.low, t.high);
  const char32_t* blocks = U" ▁▂▃▄▅▆▇█";
  for (int p = 0; p < pairs; ++p) {
    double r = t.ramp.empty() ? 0 : t.ramp[p];
    s += viz::utf8_encode(r <= 0 ? U'·'
                                 : blocks[std::clamp(static_cast<int>(std::round(r * 8)), 1, 8)]);
  }
  s += fmt::format("\n  {:>4} {:>14} {:>11} {:>6}  {}\n", "pair", "wavelength", "f'/f", "ramp", "");
  // Sample pairs: the first, the ramp's ends and middle, the last; each once (the ramp may
  // start at pair 0).
  std::vector<int> sampled;
  for (int p :
       {0, static_cast<int>(t.low), (static_cast<int>(t.low) + static_cast<int>(t.high)) / 2,
        static_cast<int>(t.high), pairs - 1})
    sampled.push_back(std::clamp(p, 0, pairs - 1));
  std::sort(sampled.begin(), sampled.end());
  sampled.erase(std::unique(sampled.begin(), sampled.end()), sampled.end());
  for (int p : sampled) {
    double wl = 2 * M_PI / t.base_freq[p];
    s += fmt::format(
        "  {:>4} {:>14.1f} {:>11.4f} {:>6.2f}  {}\n", p, wl, t.inv_freq[p] / t.base_freq[p],
        t.ramp.empty() ? 0.0 : t.ramp[p],
        wl < rs.original_max_position_embeddings ? "fits the trained context" : "longer than it");
  }
  s += fmt::format(
      "  kept {}, blended {}, interpolated {}; softmax scale × mscale², mscale {:.4f}\n", kept,
      pairs - kept - interp, interp, mscale);
  return text(s);
}

// ---- scale --------------------------------------------------------------------------------

Output params(Session&, const Args& a, const Context&) {
  model::Config c = config_of(a);
  accounting::ParamCount p = accounting::count_params(c);
  accounting::MtpParams mtp = accounting::count_mtp_params(c);
  accounting::Flops fl = accounting::flops_per_token(c, 4096);
  json comps = json::object();
  for (const auto& k : p.components)
    comps[k.name] = {{"total", k.total}, {"activated", k.activated}};
  json j = {{"config", c.name},
            {"total", p.total},
            {"activated", p.activated},
            {"activated_without_embedding", p.activated_without_embedding},
            {"dense_layers", p.dense_layers},
            {"moe_layers", p.moe_layers},
            {"components", comps},
            {"mtp_unique", mtp.unique},
            {"mtp_stored", mtp.stored},
            {"flops_per_token_4k", fl.total_absorbed()},
            {"flops_linear", fl.linear}};
  if (a.flag("json")) return json_out(j);
  std::string t =
      fmt::format("{}: {} parameters in the main model, {} touched per token ({:.1f}%)\n", c.name,
                  big(static_cast<double>(p.total)), big(static_cast<double>(p.activated)),
                  100.0 * p.activated / p.total);
  t += fmt::format("  {:<20} {:>9} {:>9}  {}\n", "component", "total", "per token",
                   "share of total");
  for (const auto& k : p.components) {
    double share = static_cast<double>(k.total) / p.total;
    t += fmt::format("  {:<20} {:>9} {:>9}  {} {:.1f}%\n", k.name.substr(0, 20),
                     big(static_cast<double>(k.total)), big(static_cast<double>(k.activated)),
                     viz::style::hbar(share, 20), 100 * share);
  }
  t += fmt::format("  MTP module: {} more (stored with its own copy of embedding and head: {})\n",
                   big(static_cast<double>(mtp.unique)), big(static_cast<double>(mtp.stored)));
  t += fmt::format("  forward FLOPs per token at 4K context: {} (2 × activated ≈ {})\n",
                   big(static_cast<double>(fl.total_absorbed())),
                   big(2.0 * p.activated_without_embedding));
  return text(t);
}

Output memory(Session&, const Args& a, const Context&) {
  model::Config c = config_of(a);
  double gpu = real_flag(a, "gpu-gb", 80, 1, 4096) * 1e9;
  int64_t ctx = int_flag(a, "context", 32768, 1, int64_t{1} << 24);
  int64_t batch = int_flag(a, "batch", 16, 1, 1 << 20);
  accounting::ParamCount p = accounting::count_params(c);
  accounting::MtpParams mtp = accounting::count_mtp_params(c);
  double all = static_cast<double>(p.total + mtp.unique);
  double fp8_bytes = static_cast<double>(accounting::checkpoint_census(c, true).bytes());
  double bf16_bytes = 2 * all;
  auto kv = accounting::kv_cache(c, ctx, 2);
  double kv_bytes = static_cast<double>(kv.at_context_bytes.mla) * batch;
  double kv_mha = static_cast<double>(kv.at_context_bytes.mha) * batch;
  auto gpus = [&](double bytes) { return static_cast<int64_t>(std::ceil(bytes / gpu)); };
  json j = {{"config", c.name},
            {"gpu_bytes", gpu},
            {"weights_fp8_checkpoint", fp8_bytes},
            {"weights_bf16", bf16_bytes},
            {"context", ctx},
            {"batch", batch},
            {"kv_mla_bf16", kv_bytes},
            {"kv_mha_bf16", kv_mha},
            {"gpus_fp8", gpus(fp8_bytes + kv_bytes)},
            {"gpus_bf16", gpus(bf16_bytes + kv_bytes)},
            {"gpus_fp8_mha", gpus(fp8_bytes + kv_mha)}};
  if (a.flag("json")) return json_out(j);
  std::string t =
      fmt::format("{} on {:.0f} GB GPUs, {} sequences × {} tokens (weights + KV cache only):\n",
                  c.name, gpu / 1e9, batch, ctx);
  t += fmt::format("  weights, released FP8 checkpoint (with MTP): {:>10}\n", human(fp8_bytes));
  t += fmt::format("  weights, all BF16:                           {:>10}\n", human(bf16_bytes));
  t += fmt::format("  KV cache, MLA (BF16):                        {:>10}\n", human(kv_bytes));
  t += fmt::format("  KV cache if it were MHA (BF16):              {:>10}\n", human(kv_mha));
  t += fmt::format("  GPUs needed: FP8 + MLA {}, BF16 + MLA {}, FP8 + MHA cache {}\n",
                   j["gpus_fp8"].get<int64_t>(), j["gpus_bf16"].get<int64_t>(),
                   j["gpus_fp8_mha"].get<int64_t>());
  return text(t);
}

}  // namespace dsv3::app::lab
