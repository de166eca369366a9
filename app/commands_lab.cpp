// Lab commands: the explorer-language wrappers over the reference modules that the lessons
// use (MLA shapes, YaRN, the balance toys, MTP, FP8, DualPipe, accounting), and `lesson N`.
// Each prints a picture or a table, and with --json the numbers a lesson's checks read.
#include <curses.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "app/commands.h"
#include "app/commands_util.h"
#include "app/lesson_player.h"
#include "app/session.h"
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

namespace dsv3::app {

namespace {

using nlohmann::json;

// ---- declaration helpers ------------------------------------------------------------------

const std::vector<std::string> kConfigs = {"v3-671b",     "v2-236b", "v2-lite-16b", "tiny",
                                           "tiny-random", "small",   "tiny-yarn"};

FlagSpec config_flag() {
  return opt("config", ArgKind::kPath, "a built-in config name or config.json (default v3-671b)",
             kConfigs);
}

Command make(std::string name, std::string summary, std::string help, std::vector<ArgSpec> args,
             std::vector<FlagSpec> flags,
             std::function<Output(Session&, const Args&, const Context&)> run) {
  Command c;
  c.name = std::move(name);
  c.summary = std::move(summary);
  c.help = std::move(help);
  c.args = std::move(args);
  c.flags = std::move(flags);
  c.run = std::move(run);
  return c;
}

Output text(std::string t) {
  Output o;
  o.text = std::move(t);
  return o;
}

Output json_out(const json& j) {
  return text(j.dump(2));
}

model::Config config_of(const Args& a, const char* def = "v3-671b") {
  std::string name = a.has("config") ? a.str("config") : def;
  try {
    model::Config c = model::resolve_config(name);
    if (c.name.empty()) c.name = name;
    return c;
  } catch (const std::exception& e) {
    throw CommandError(fmt::format("--config {}: {}", name, e.what()));
  }
}

int64_t int_flag(const Args& a, const char* name, int64_t def, int64_t lo, int64_t hi) {
  if (!a.has(name)) return def;
  int64_t v = a.integer(name);
  if (v < lo || v > hi)
    throw CommandError(fmt::format("--{} must be in {}..{}, got {}", name, lo, hi, v));
  return v;
}

double real_flag(const Args& a, const char* name, double def, double lo, double hi) {
  if (!a.has(name)) return def;
  double v = a.real(name);
  if (!(v >= lo && v <= hi))
    throw CommandError(fmt::format("--{} must be in {}..{}, got {}", name, lo, hi, v));
  return v;
}

std::string human(double bytes) {
  return viz::style::human_bytes(bytes);
}

std::string big(double n) {
  if (std::fabs(n) >= 1e9) return fmt::format("{:.1f}B", n / 1e9);
  if (std::fabs(n) >= 1e6) return fmt::format("{:.1f}M", n / 1e6);
  if (std::fabs(n) >= 1e3) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

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

// ---- balance ------------------------------------------------------------------------------

Output balance_toy(Session&, const Args& a, const Context& ctx) {
  balance::ToyAConfig c;
  c.experts = static_cast<int>(int_flag(a, "experts", 64, 2, 1024));
  c.top_k = static_cast<int>(int_flag(a, "topk", 6, 1, c.experts));
  c.tokens_per_batch = static_cast<int>(int_flag(a, "tokens", 1024, 16, 1 << 16));
  c.steps = static_cast<int>(int_flag(a, "steps", 400, 1, 20000));
  c.gamma = static_cast<float>(real_flag(a, "gamma", 1e-3, 0, 1));
  c.skew = real_flag(a, "skew", 1.0, 0, 10);
  c.heldout_tokens = 8192;
  c.seed = static_cast<uint64_t>(int_flag(a, "seed", 0, 0, INT32_MAX));
  balance::ToyAResult r = balance::run_toy_a(c);
  double floor = balance::noise_floor(c.experts, c.tokens_per_batch, c.top_k);
  int tail = std::max(1, c.steps / 5);
  double steady = 0;
  for (int s = c.steps - tail; s < c.steps; ++s) steady += r.maxvio_batch[s];
  steady /= tail;
  std::vector<double> init_load(r.load_initial.begin(), r.load_initial.end());
  auto drift = balance::bias_drift(r.bias);
  json j = {{"experts", c.experts},
            {"topk", c.top_k},
            {"tokens_per_batch", c.tokens_per_batch},
            {"steps", c.steps},
            {"gamma", c.gamma},
            {"maxvio_first", r.maxvio_batch.front()},
            {"maxvio_last", r.maxvio_batch.back()},
            {"maxvio_steady", steady},
            {"noise_floor", floor},
            {"maxvio_global_before", balance::max_vio(std::span<const double>(init_load))},
            {"maxvio_global_after", r.maxvio_global.empty() ? 0.0 : r.maxvio_global.back()},
            {"first_below_2x_floor", r.first_below(2 * floor)},
            {"bias_mean", drift.mean},
            {"bias_min", drift.min},
            {"bias_max", drift.max}};
  if (a.flag("json")) return json_out(j);
  viz::PlotSeries s{c.gamma > 0 ? fmt::format("γ = {}", c.gamma) : "balancing off",
                    r.maxvio_batch,
                    {},
                    viz::kSeriesColors[0]};
  Output o;
  o.canvas =
      viz::maxvio_plot(std::span<const viz::PlotSeries>(&s, 1), std::min(ctx.width, 78), 12, floor,
                       fmt::format("MaxVio_batch, {} experts top-{}, {} tokens/batch", c.experts,
                                   c.top_k, c.tokens_per_batch));
  o.text = fmt::format(
      "MaxVio_batch {:.2f} → {:.2f} (noise floor {:.2f})\nheld-out MaxVio {:.2f} → {:.2f}; bias in "
      "[{:+.3f}, {:+.3f}]\n",
      r.maxvio_batch.front(), steady, floor, j["maxvio_global_before"].get<double>(),
      j["maxvio_global_after"].get<double>(), drift.min, drift.max);
  return o;
}

Output balance_tradeoff(Session&, const Args& a, const Context& ctx) {
  balance::ToyCConfig base;
  base.steps = static_cast<int>(int_flag(a, "steps", 600, 10, 20000));
  base.tokens_per_batch = 256;
  base.eval_tokens = 4096;
  int seeds = static_cast<int>(int_flag(a, "seeds", 1, 1, 8));
  auto points = balance::run_tradeoff(base, {1e-3, 1e-2, 1e-1}, {1e-3}, seeds);
  json rows = json::array();
  std::vector<viz::ScatterPoint> sp;
  for (const auto& p : points) {
    std::string name(balance::balancing_name(p.method));
    std::string label = p.method == balance::Balancing::kNone ? "none"
                        : p.method == balance::Balancing::kAuxLoss
                            ? fmt::format("aux α={}", p.param)
                            : fmt::format("loss-free γ={}", p.param);
    rows.push_back({{"method", name},
                    {"param", p.param},
                    {"label", label},
                    {"eval_mse", p.eval_mse},
                    {"maxvio_global", p.maxvio_global}});
    sp.push_back({p.maxvio_global, p.eval_mse, label, U'●', viz::kSeriesColors[sp.size() % 8]});
  }
  json j = {{"steps", base.steps}, {"seeds", seeds}, {"points", rows}};
  if (a.flag("json")) return json_out(j);
  Output o;
  o.canvas = viz::scatter_plot(sp, std::min(ctx.width, 78), 14,
                               "task loss against balance (lower-left is better)", "MaxVio_global",
                               "eval MSE");
  for (const auto& r : rows)
    o.text += fmt::format("  {:<18} MaxVio_global {:>6.3f}   eval MSE {:.4f}\n",
                          r["label"].get<std::string>(), r["maxvio_global"].get<double>(),
                          r["eval_mse"].get<double>());
  return o;
}

// ---- MTP ----------------------------------------------------------------------------------

Output mtp_loss_cmd(Session& s, const Args& a, const Context&) {
  if (model::mtp_modules(s.model()) == 0)
    throw CommandError("mtp-loss: this model has no MTP module (num_nextn_predict_layers = 0)");
  if (s.tokens().size() < 3)
    throw CommandError("mtp-loss: needs at least 3 tokens: `prompt TEXT` first");
  double lambda = real_flag(a, "lambda", 0.3, 0, 10);
  model::MtpLoss l = model::mtp_loss(s.model(), s.tokens(), lambda, s.attn());
  json depths = json::array();
  for (size_t k = 0; k < l.targets.size(); ++k)
    depths.push_back({{"depth", k + 1},
                      {"targets", l.targets[k]},
                      {"per_token", l.per_token[k]},
                      {"paper", l.paper[k]}});
  json j = {{"tokens", s.tokens().size()},
            {"main_targets", l.main_targets},
            {"main", l.main},
            {"lambda", l.lambda},
            {"depths", depths},
            {"mtp_total", l.total_paper},
            {"mtp_total_per_token", l.total_per_token},
            {"uniform", std::log(static_cast<double>(s.config().vocab_size))}};
  if (a.flag("json")) return json_out(j);
  std::string t = fmt::format("MTP objective on {} tokens (T = {} next-token targets):\n",
                              s.tokens().size(), l.main_targets);
  t += fmt::format("  main model   L_main  = {:.4f}   (uniform guess: ln V = {:.4f})\n", l.main,
                   j["uniform"].get<double>());
  for (size_t k = 0; k < l.targets.size(); ++k)
    t += fmt::format(
        "  depth {}      L^{}_MTP = {:.4f}   over {} targets (eq. 24 divides by T: {:.4f})\n",
        k + 1, k + 1, l.per_token[k], l.targets[k], l.paper[k]);
  t += fmt::format("  L_MTP = λ/D Σ_k L^k_MTP = {:.4f}  (λ = {}, eq. 25)\n", l.total_paper,
                   l.lambda);
  return text(t);
}

Output mtp_spec(Session& s, const Args& a, const Context& ctx) {
  if (model::mtp_modules(s.model()) == 0)
    throw CommandError("mtp-spec: this model has no MTP module");
  int n = static_cast<int>(a.integer("N"));
  model::SpeculativeOptions so;
  so.max_new_tokens = n;
  so.draft_depth = static_cast<int>(int_flag(a, "depth", 1, 1, 4));
  so.attn = s.attn();
  double agree = real_flag(a, "agree", -1, 0, 1);
  std::vector<int32_t> prompt = s.tokens();
  model::GenerateOptions go;
  go.max_new_tokens = n;
  go.attn = s.attn();
  std::vector<int32_t> plain = model::generate(s.model(), prompt, go);
  std::vector<int32_t> truth = prompt;
  truth.insert(truth.end(), plain.begin(), plain.end());
  model::MtpDrafter drafter(s.model(), so.attn);
  if (agree >= 0) {
    // A stand-in for a trained MTP module: the draft is the main model's own greedy token with
    // probability `agree` (deterministic per position), else whatever the module proposed.
    drafter.override_token = [truth, agree](int k, int64_t index, int32_t drafted) {
      return model::stand_in_draft(k, index, drafted, truth, agree);
    };
  }
  model::SpeculativeResult r = model::speculative_generate(s.model(), prompt, so, &drafter);
  const auto& st = r.stats;
  json j = {{"draft_depth", so.draft_depth},
            {"tokens", r.ids.size()},
            {"steps", st.steps},
            {"proposed", st.proposed_total()},
            {"accepted", st.accepted_total()},
            {"acceptance_rate", st.acceptance_rate()},
            {"tokens_per_step", st.tokens_per_step()},
            {"forwards", st.steps + 1},
            {"ids", r.ids},
            {"plain_ids", plain},
            {"lossless", r.ids == plain},
            {"agree", agree >= 0 ? json(agree) : json(nullptr)}};
  if (a.flag("json")) return json_out(j);
  Output o;
  viz::MtpPanelOptions po;
  po.draft_depth = so.draft_depth;
  po.token_text = [&s](int32_t id) { return s.piece(id); };
  o.canvas = viz::mtp_panel(r.steps, st, po, std::min(ctx.width, 78),
                            std::min<int>(14, static_cast<int>(r.steps.size()) + 4));
  o.text = fmt::format(
      "{} tokens in {} main-model forwards ({} verification steps)\n{:.2f} tokens/step, acceptance "
      "{:.0f}%\n"
      "same tokens as plain greedy decoding: {}\n",
      r.ids.size(), st.steps + 1, st.steps, st.tokens_per_step(), 100 * st.acceptance_rate(),
      r.ids == plain ? "yes" : "NO");
  return o;
}

// ---- FP8 ----------------------------------------------------------------------------------

Output fp8_bits(Session&, const Args& a, const Context&) {
  double x = a.real("VALUE");
  fp8::Format f = a.has("format") ? fp8::parse_format(a.str("format")) : fp8::Format::kE4M3;
  const fp8::FormatInfo& fi = fp8::info(f);
  uint8_t code = fp8::encode(static_cast<float>(x), f);
  float back = fp8::decode(code, f);
  int m = fi.mantissa_bits, e = fi.exponent_bits;
  std::string bits = std::to_string(code >> 7) + " ";
  for (int b = 6; b >= m; --b) bits += ((code >> b) & 1) ? '1' : '0';
  bits += ' ';
  for (int b = m - 1; b >= 0; --b) bits += ((code >> b) & 1) ? '1' : '0';
  int exp_field = (code >> m) & ((1 << e) - 1);
  int man_field = code & ((1 << m) - 1);
  bool finite = !fp8::is_nan(code, f) && !fp8::is_inf(code, f);
  fp8::Parts p = finite ? fp8::parts(code, f) : fp8::Parts{1, 0, 0};
  double err = static_cast<double>(back) - x;
  json j = {{"value", x},
            {"format", fi.name},
            {"code", code},
            {"bits", bits},
            {"exponent_field", exp_field},
            {"mantissa_field", man_field},
            {"exponent", p.exponent},
            {"significand", p.significand},
            {"subnormal", exp_field == 0},
            {"decoded", back},
            {"error", err},
            {"rel_error", x != 0 ? std::fabs(err / x) : 0.0},
            {"max", fi.max},
            {"min_normal", fi.min_normal},
            {"min_subnormal", fi.min_subnormal},
            {"exponent_bits", e},
            {"mantissa_bits", m},
            {"bias", fi.bias}};
  if (a.flag("json")) return json_out(j);
  std::string t = fmt::format("{} in {} (1 sign, {} exponent, {} mantissa bits, bias {}):\n", x,
                              fi.name, e, m, fi.bias);
  t += fmt::format("  bits  {}   code 0x{:02x}\n", bits, code);
  if (finite)
    t += fmt::format("  value = {}{} × 2^({} − {}) = {}{}\n", p.sign < 0 ? "−" : "", p.significand,
                     p.exponent, m, fp8::format_value(back),
                     exp_field == 0 ? "   (subnormal: no hidden 1)" : "");
  else
    t += fmt::format("  value = {}\n", fp8::format_value(back));
  t += fmt::format("  rounding error {:+.4g} ({:.2f}% of the value)\n", err,
                   100 * j["rel_error"].get<double>());
  t += fmt::format("  range: max {}, smallest normal {}, smallest subnormal {}\n",
                   fp8::format_value(fi.max), fp8::format_value(fi.min_normal),
                   fp8::format_value(fi.min_subnormal));
  return text(t);
}

struct QuantError {
  double rel = 0;     // ||x̂ − x|| / ||x|| over the tiles without the outlier
  int64_t zeros = 0;  // non-zero inputs that became 0
};

QuantError quant_error(const Mat& x, const fp8::QMatrix& q, int64_t skip_tile) {
  Mat d = q.dequantize();
  double num = 0, den = 0;
  QuantError r;
  for (int64_t c = 0; c < x.cols(); ++c) {
    if (x(0, c) != 0 && d(0, c) == 0) ++r.zeros;
    if (c / fp8::kTile == skip_tile) continue;
    num += std::pow(d(0, c) - x(0, c), 2);
    den += std::pow(x(0, c), 2);
  }
  r.rel = std::sqrt(num / den);
  return r;
}

Output fp8_scaling(Session&, const Args& a, const Context&) {
  double outlier = real_flag(a, "outlier", 1000, 0, 1e30);
  Mat x = fp8::random_matrix(1, 4 * fp8::kTile, fp8::Dist::kRandn, 7) * 0.01f;  // small activations
  x(0, 5) = static_cast<float>(outlier);
  fp8::QMatrix pt = fp8::quantize_per_tensor(x);
  fp8::QMatrix tile = fp8::quantize_activations(x);
  QuantError e_pt = quant_error(x, pt, 0), e_tile = quant_error(x, tile, 0);
  json j = {
      {"outlier", outlier},
      {"elements", x.cols()},
      {"per_tensor", {{"scale", pt.scales[0]}, {"rel_error", e_pt.rel}, {"zeros", e_pt.zeros}}},
      {"per_tile", {{"scales", tile.scales}, {"rel_error", e_tile.rel}, {"zeros", e_tile.zeros}}}};
  if (a.flag("json")) return json_out(j);
  std::string t =
      fmt::format("{} activations ~ N(0, 0.01²), one outlier of {}, in E4M3:\n", x.cols(), outlier);
  t += fmt::format("  {:<22} {:>12} {:>22} {:>10}\n", "scaling", "scale", "error, other tiles",
                   "→ zero");
  t += fmt::format("  {:<22} {:>12.4g} {:>21.2f}% {:>10}\n", "per tensor (1 scale)", pt.scales[0],
                   100 * e_pt.rel, e_pt.zeros);
  t += fmt::format("  {:<22} {:>12} {:>21.2f}% {:>10}\n", "1×128 tiles (4 scales)", "per tile",
                   100 * e_tile.rel, e_tile.zeros);
  t += "  tile scales:";
  for (float s : tile.scales) t += fmt::format(" {:.3g}", s);
  t += "\n";
  return text(t);
}

Output fp8_accum(Session&, const Args& a, const Context&) {
  int64_t k = int_flag(a, "k", 4096, 128, 16384);
  if (k % fp8::kTile) throw CommandError("fp8-accum: --k must be a multiple of 128");
  json rows = json::array();
  std::string t =
      fmt::format("GEMM error of 16×{} · {}×16 FP8 (E4M3) against the exact sum:\n", k, k);
  t += fmt::format("  {:<44} {:>12} {:>12}\n", "accumulation", "max rel err", "mean signed");
  struct Mode {
    const char* name;
    const char* label;
    fp8::Accum accum;
    int promote;
  };
  for (const Mode& m :
       {Mode{"tensor_core_only", "tensor core chain over all K (no promotion)", fp8::Accum::kH100,
             0},
        Mode{"promote_128", "promote to FP32 every 128 (DeepSeek-V3)", fp8::Accum::kH100, 128},
        Mode{"fp32", "plain FP32 accumulation", fp8::Accum::kFp32, 128}}) {
    fp8::GemmErrorConfig c;
    c.m = c.n = 16;
    c.k = k;
    c.tile_scaling = false;  // one scale per tensor: a tensor-core chain may then run over all of K
    c.gemm.accum = m.accum;
    c.gemm.promote = m.promote;
    c.dist = fp8::Dist::kUniform;
    fp8::ErrorStats s = fp8::gemm_error(c);
    rows.push_back({{"mode", m.name},
                    {"max_rel", s.max_rel},
                    {"rel_fro", s.rel_fro},
                    {"mean_signed_rel", s.mean_signed_rel}});
    t += fmt::format("  {:<44} {:>11.4f}% {:>+11.4f}%\n", m.label, 100 * s.max_rel,
                     100 * s.mean_signed_rel);
  }
  json j = {{"k", k}, {"modes", rows}};
  j["by_mode"] = json::object();
  for (const auto& r : rows) j["by_mode"][r["mode"].get<std::string>()] = r;
  if (a.flag("json")) return json_out(j);
  return text(t);
}

// ---- DualPipe -----------------------------------------------------------------------------

pipeline::Costs costs_of(const Args& a) {
  try {
    return a.has("costs") ? pipeline::parse_costs(a.str("costs")) : pipeline::Costs{};
  } catch (const std::exception& e) {
    throw CommandError(fmt::format("--costs: {}", e.what()));
  }
}

Output pp_sim(Session&, const Args& a, const Context& ctx) {
  pipeline::Costs costs = costs_of(a);
  int P = static_cast<int>(a.integer("P")), N = static_cast<int>(a.integer("N"));
  pipeline::SimResult r;
  try {
    r = pipeline::simulate(pipeline::build_schedule(a.str("SCHEDULE"), P, N), costs);
  } catch (const std::exception& e) {
    throw CommandError(fmt::format("pp-sim: {}", e.what()));
  }
  if (a.flag("json")) return json_out(pipeline::to_json(r));
  Output o;
  viz::PipelineTimelineOptions po;
  po.width = std::max(40, std::min(ctx.width, 100));
  o.canvas = viz::draw_pipeline_timeline(r, po);
  pipeline::TableFormula f = pipeline::table_formula(r.kind, P, N, costs);
  o.text = fmt::format(
      "bubble per rank: max {:.3g}, formula {} = {:.3g}\nparameters {}, peak activations {}\n",
      r.max_bubble(), f.bubble, f.bubble_value, f.params, r.max_peak_activations());
  return o;
}

Output pp_table(Session&, const Args& a, const Context&) {
  pipeline::Costs costs = costs_of(a);
  int P = static_cast<int>(a.integer("P")), N = static_cast<int>(a.integer("N"));
  std::vector<std::string> skipped;
  auto rows = pipeline::compare_schedules(P, N, costs, pipeline::SimMode::kIdeal, &skipped);
  json j = json::object();
  json list = json::array();
  for (const auto& r : rows) {
    json row = pipeline::to_json(r);
    list.push_back(row);
    std::string key(pipeline::schedule_id(r.kind));
    if (r.ranks != P) key += "_half";  // DualPipeV at the same stages: P/2 ranks
    j[key] = row;
  }
  j["rows"] = list;
  if (a.flag("json")) return json_out(j);
  std::string t =
      fmt::format("Table 2 at PP = {}, {} micro-batches, {}:\n", P, N, pipeline::to_string(costs));
  t += fmt::format("  {:<10} {:>5} {:<22} {:>7} {:>7} {:>6} {:>7}\n", "schedule", "ranks",
                   "bubble formula", "= value", "sim", "params", "activ.");
  for (const auto& r : rows)
    t += fmt::format("  {:<10} {:>5} {:<22} {:>7.3g} {:>7.3g} {:>6} {:>7}\n",
                     pipeline::schedule_label(r.kind), r.ranks, r.formula.bubble.substr(0, 22),
                     r.formula.bubble_value, r.sim_bubble_max, r.formula.params,
                     r.sim_peak_activations);
  for (const auto& s : skipped) t += "  skipped: " + s + "\n";
  return text(t);
}

Output pp_overlap(Session&, const Args& a, const Context& ctx) {
  model::Config c = config_of(a);
  pipeline::BlockCosts bc = pipeline::derive_block_costs(c, pipeline::HardwareModel{});
  pipeline::OverlapResult r = pipeline::simulate_overlap(bc);
  json j = {{"config", c.name},
            {"serial_time", r.serial_time},
            {"overlapped_time", r.overlapped_time},
            {"compute_time", r.compute_time},
            {"comm_time", r.comm_time},
            {"exposed_comm", r.exposed_comm},
            {"hidden_fraction", r.hidden_fraction},
            {"speedup", r.serial_time / r.overlapped_time}};
  if (a.flag("json")) return json_out(j);
  Output o;
  o.canvas = viz::draw_pipeline_overlap(r, std::max(60, std::min(ctx.width, 100)));
  return o;
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

// ---- the lesson player --------------------------------------------------------------------

Output lesson_cmd(Session&, const Args& a, const Context& ctx) {
  std::string dir = lesson::lessons_dir();
  if (!a.has("N")) return text(lesson::lesson_list(dir));
  lesson::Lesson l = lesson::load_lesson(lesson::resolve_lesson(a.str("N"), dir));
  bool curses_running = stdscr != nullptr && !isendwin();
  if (curses_running && !a.flag("plain")) {
    // Inside the explorer: the player borrows the screen and returns it on q.
    lesson::play_tui(l);
    return text(fmt::format("left lesson {}: {}", l.number, l.title));
  }
  std::ostringstream out;
  int failures = lesson::play_plain(l, out, std::max(60, ctx.width));
  if (failures) out << fmt::format("{} problem(s) in this lesson\n", failures);
  return text(out.str());
}

}  // namespace

void add_lab_commands(Registry& r) {
  r.add(make(
      "mla", "MLA's shapes, cached values and attention FLOPs per token (naive vs absorbed)",
      "The latent c^KV and the shared RoPE key k^R are all MLA caches (eq. 1-5); "
      "reference/accounting.",
      {},
      {config_flag(), opt("context", ArgKind::kInt, "context length for the FLOPs (default 4096)"),
       json_flag()},
      mla));
  r.add(
      make("yarn", "YaRN's per-pair RoPE frequency correction: the ramp, f'/f and mscale",
           "reference/model/rope.cpp make_rope_table; DeepSeek-V3 §4.3 extends 4K to 128K with it.",
           {}, {config_flag(), json_flag()}, yarn));
  r.add(make("balance-toy", "auxiliary-loss-free balancing on a skewed toy router: MaxVio per step",
             "Toy A of reference/balance: a fixed random router with a per-expert skew, fresh "
             "tokens each\n"
             "step, biases updated by b_i += γ·sign(c̄ − c_i). --gamma 0 switches balancing off.",
             {},
             {opt("steps", ArgKind::kInt, "bias updates (default 400)"),
              opt("gamma", ArgKind::kFloat, "bias update speed γ (default 0.001)"),
              opt("experts", ArgKind::kInt, "N_r (default 64)"),
              opt("topk", ArgKind::kInt, "K_r (default 6)"),
              opt("tokens", ArgKind::kInt, "tokens per batch (default 1024)"),
              opt("skew", ArgKind::kFloat, "σ of the logit skew (default 1)"),
              opt("seed", ArgKind::kInt, "random seed"), json_flag()},
             balance_toy));
  r.add(make("balance-tradeoff",
             "task loss vs balance: no balancing, aux loss at several α, loss-free",
             "Toy C of reference/balance: a learned router trained each way (short runs).", {},
             {opt("steps", ArgKind::kInt, "training steps (default 600)"),
              opt("seeds", ArgKind::kInt, "seeds averaged (default 1)"), json_flag()},
             balance_tradeoff));
  r.add(make("mtp-loss", "the multi-token prediction loss on the session's tokens (eq. 24-25)", "",
             {}, {opt("lambda", ArgKind::kFloat, "λ (default 0.3)"), json_flag()}, mtp_loss_cmd));
  r.add(make(
      "mtp-spec", "speculative decoding with the MTP drafts from the session's tokens",
      "Greedy; compares the output with plain greedy decoding (lossless). --agree P replaces a\n"
      "draft by the main model's own token with probability P, standing in for a trained module.",
      {arg("N", ArgKind::kInt, "new tokens", "16", false, {}, 1, 512)},
      {opt("depth", ArgKind::kInt, "drafts per step D (default 1)"),
       opt("agree", ArgKind::kFloat, "simulated draft accuracy 0..1"), json_flag()},
      mtp_spec));
  r.add(make(
      "fp8-bits", "one number in FP8, bit by bit: sign, exponent, mantissa, rounding error", "",
      {arg("VALUE", ArgKind::kFloat, "the number", "", true)},
      {opt("format", ArgKind::kChoice, "e4m3 (default) or e5m2", {"e4m3", "e5m2"}), json_flag()},
      fp8_bits));
  r.add(make("fp8-scaling", "an outlier against per-tensor and 1x128 tile scaling (§3.3.2)", "", {},
             {opt("outlier", ArgKind::kFloat, "the outlier's value (default 1000)"), json_flag()},
             fp8_scaling));
  r.add(make("fp8-accum", "FP8 GEMM accumulation error: tensor-core chain vs promotion every 128",
             "", {}, {opt("k", ArgKind::kInt, "inner dimension K (default 4096)"), json_flag()},
             fp8_accum));
  const std::vector<std::string> schedules = {"gpipe", "1f1b", "zb1p", "dualpipe", "dualpipev"};
  r.add(make("pp-sim", "simulate one pipeline schedule and draw its timeline",
             "Costs default to the paper's figures: F=1,B=2,W=1,FB=3.",
             {arg("SCHEDULE", ArgKind::kChoice, "the schedule", "", true, schedules),
              arg("P", ArgKind::kInt, "ranks", "4", false, {}, 1, 64),
              arg("N", ArgKind::kInt, "micro-batches", "8", false, {}, 1, 256)},
             {opt("costs", ArgKind::kWord, "F=..,B=..,W=..,FB=.."), json_flag()}, pp_sim));
  r.add(make("pp-table",
             "Table 2: bubble, parameters and activations of every schedule, formula vs simulation",
             "",
             {arg("P", ArgKind::kInt, "ranks", "8", false, {}, 1, 64),
              arg("N", ArgKind::kInt, "micro-batches", "20", false, {}, 1, 256)},
             {opt("costs", ArgKind::kWord, "F=..,B=..,W=..,FB=.."), json_flag()}, pp_table));
  r.add(make("pp-overlap",
             "Figure 4: all-to-all and pipeline communication hidden under computation", "", {},
             {config_flag(), json_flag()}, pp_overlap));
  r.add(make("params", "parameters (total and per token) by component, and FLOPs per token", "", {},
             {config_flag(), json_flag()}, params));
  r.add(make("memory", "what fits: weights and KV cache against GPU memory", "", {},
             {config_flag(), opt("gpu-gb", ArgKind::kFloat, "GPU memory in GB (default 80)"),
              opt("context", ArgKind::kInt, "tokens per sequence (default 32768)"),
              opt("batch", ArgKind::kInt, "sequences (default 16)"), json_flag()},
             memory));
  r.add(make(
      "lesson", "play a lesson (in the explorer: full screen, q returns); without N: list them",
      "`lesson N --plain` prints the whole lesson with every output (the REPL does this anyway).",
      {arg("N", ArgKind::kWord, "lesson number or name")}, {[] {
        FlagSpec f;
        f.name = "plain";
        f.help = "print the lesson as text";
        return f;
      }()},
      lesson_cmd));
}

}  // namespace dsv3::app
