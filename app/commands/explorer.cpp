// Commands behind the explorer's live panels: `balance` (the Load panel's loss-free balancing
// toggle), `mtp` (speculative decoding with the MTP drafts, the MTP panel) and `fp8` (one token
// through one linear layer in FP8, the FP8 panel). Each changes the session the way the panel's
// keys do and prints the panel, so the REPL, `dsv3 exec` and lessons see what the TUI shows.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "app/commands/registry.h"
#include "app/commands/util.h"
#include "app/explorer/session.h"
#include "reference/balance/metrics.h"
#include "visualizers/balance_plot.h"
#include "visualizers/explorer_style.h"

namespace dsv3::app {

namespace {

using json = nlohmann::json;
using viz::Panel;

Output with_panel(const Session& s, Panel p, const Context& ctx, std::string text) {
  Output o;
  o.canvas = viz::panel_canvas(s.view(), p, s.real_config(), ctx.width, 0);
  o.panel = p;
  o.text = std::move(text);
  return o;
}

Output json_text(const json& j) {
  Output o;
  o.text = j.dump(2);
  return o;
}

// ---- balance --------------------------------------------------------------------------------

json balance_json(const Session& s) {
  auto v = s.view();
  auto counts = viz::expert_counts(v, s.cursor());
  json layers = json::array();
  for (int l = 0; l < s.config().num_hidden_layers; ++l) {
    if (!s.config().is_moe_layer(l)) continue;
    layers.push_back({{"layer", l},
                      {"counts", counts[l]},
                      {"maxvio", viz::max_vio(counts[l])},
                      {"bias", s.bias(l)}});
  }
  return {{"balancing", s.balancing()},
          {"gamma", s.gamma()},
          {"updates", s.bias_updates()},
          {"tokens_seen", s.cursor() + 1},
          {"maxvio_batch_mean", s.balance_history()},
          {"layers", layers}};
}

std::string balance_text(const Session& s) {
  auto v = s.view();
  auto counts = viz::expert_counts(v, s.cursor());
  std::string out =
      fmt::format("balancing {} · γ = {:g} · {} bias update{}\n", s.balancing() ? "on" : "off",
                  s.gamma(), s.bias_updates(), s.bias_updates() == 1 ? "" : "s");
  for (int l = 0; l < s.config().num_hidden_layers; ++l) {
    if (!s.config().is_moe_layer(l)) continue;
    auto b = s.bias(l);
    auto [mn, mx] = std::minmax_element(b.begin(), b.end());
    out += fmt::format(
        "  layer {}: MaxVio {:.3f} over positions 0..{}, bias in [{:+.4f}, {:+.4f}]\n", l,
        viz::max_vio(counts[l]), s.cursor(), b.empty() ? 0.f : *mn, b.empty() ? 0.f : *mx);
  }
  return out;
}

Output balance_cmd(Session& s, const Args& a, const Context& ctx) {
  const std::string action = a.has("ACTION") ? a.str("ACTION") : "status";
  std::string said;
  if (action == "on" || action == "off" || action == "toggle") {
    s.set_balancing(action == "toggle" ? !s.balancing() : action == "on");
    said = s.balancing() ? "balancing on: every new token moves the biases (step or generate)"
                         : "balancing off: the biases stay as they are";
  } else if (action == "gamma") {
    if (!a.has("VALUE"))
      throw CommandError("balance gamma: give the value, e.g. `balance gamma 0.01`");
    double g = 0;
    size_t used = 0;
    try {
      g = std::stod(a.str("VALUE"), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != a.str("VALUE").size())
      throw CommandError(fmt::format("balance gamma: '{}' is not a number", a.str("VALUE")));
    try {
      s.set_gamma(g);
    } catch (const std::out_of_range& e) {
      throw CommandError(fmt::format("balance gamma: {}", e.what()));
    }
    said = fmt::format("γ = {:g}", s.gamma());
  } else if (action == "reset") {
    s.reset_biases();
    said = "biases back to the loaded model's; update count reset";
  } else if (action != "status") {
    throw CommandError(fmt::format(
        "balance: unknown action '{}' (on, off, toggle, gamma G, reset, status)", action));
  }
  if (a.flag("json")) return json_text(balance_json(s));
  Output o = with_panel(s, Panel::kLoad, ctx, said.empty() ? balance_text(s) : said);
  // The running MaxVio over positions 0..t, averaged over MoE layers, as a braille plot: with
  // balancing on it falls as the biases learn the load.
  std::vector<double> series;
  {
    const viz::ExplorerView v = s.view();
    int moe = 0;
    for (int l = 0; l < s.config().num_hidden_layers; ++l) {
      if (!s.config().is_moe_layer(l)) continue;
      std::vector<double> one = viz::max_vio_series(v, l, s.cursor());
      series.resize(one.size(), 0.0);
      for (size_t t = 0; t < one.size(); ++t) series[t] += one[t];
      ++moe;
    }
    for (double& x : series) x /= std::max(moe, 1);
  }
  if (series.size() >= 2) {
    viz::PlotSeries ps{"running MaxVio", series, {}, 221};
    viz::PlotOptions po;
    po.width = std::max(40, std::min(ctx.width, 100));
    po.height = 10;
    po.title = "MaxVio over positions 0..t (mean over MoE layers)";
    po.x_label = "position";
    viz::Canvas plot = viz::line_plot(std::span<const viz::PlotSeries>(&ps, 1), po);
    viz::Canvas both(std::max(o.canvas->width(), plot.width()),
                     o.canvas->height() + plot.height() + 1);
    both.blit(*o.canvas, 0, 0);
    both.blit(plot, 0, o.canvas->height() + 1);
    o.canvas = std::move(both);
  }
  return o;
}

// ---- mtp ------------------------------------------------------------------------------------

json mtp_json(const Session& s) {
  const model::SpeculativeDecoder* d = s.speculative();
  json j{{"modules", s.mtp_modules()},
         {"depth", s.settings().mtp_depth},
         {"agree", s.settings().mtp_agree < 0 ? json(nullptr) : json(s.settings().mtp_agree)}};
  if (!d) {
    j["steps"] = 0;
    return j;
  }
  const model::SpecStats& st = d->stats();
  j["start"] = s.mtp_start();
  j["steps"] = st.steps;
  j["proposed"] = st.proposed_total();
  j["accepted"] = st.accepted_total();
  j["acceptance_rate"] = st.acceptance_rate();
  j["tokens_per_step"] = st.tokens_per_step();
  json per = json::array();
  for (size_t k = 1; k <= st.proposed.size(); ++k)
    per.push_back(st.acceptance_rate(static_cast<int>(k)));
  j["acceptance_rate_per_depth"] = per;
  json steps = json::array();
  for (const model::SpecStep& x : d->history()) {
    json drafts = json::array();
    for (const model::DraftToken& t : x.drafts)
      drafts.push_back({{"token", t.token},
                        {"draft_prob", t.draft_prob},
                        {"target_prob", t.target_prob},
                        {"accepted", t.accepted}});
    steps.push_back({{"prefill", x.prefill},
                     {"position", x.position},
                     {"last_token", x.last_token},
                     {"drafts", drafts},
                     {"accepted", x.accepted},
                     {"bonus", x.bonus},
                     {"emitted", x.emitted}});
  }
  j["history"] = steps;
  return j;
}

Output mtp_cmd(Session& s, const Args& a, const Context& ctx) {
  const std::string action = a.has("ACTION") ? a.str("ACTION") : "status";
  std::string said;
  auto number = [&](int lo, int hi, int def) {
    if (!a.has("VALUE")) return def;
    const std::string& w = a.str("VALUE");
    size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(w, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != w.size() || n < lo || n > hi)
      throw CommandError(
          fmt::format("mtp {}: '{}' is not a whole number in {}..{}", action, w, lo, hi));
    return n;
  };
  try {
    if (action == "step") {
      int tokens = 0;
      const int done = s.mtp_steps(number(1, 1000, 1), &tokens);
      const auto& st = s.speculative()->stats();
      said = fmt::format(
          "{} speculative step{}: {} tokens · acceptance {:.0f}% · {:.2f} tokens per main pass",
          done, done == 1 ? "" : "s", tokens, 100 * st.acceptance_rate(), st.tokens_per_step());
    } else if (action == "depth") {
      if (!a.has("VALUE")) throw CommandError("mtp depth: give D, e.g. `mtp depth 2`");
      s.settings().mtp_depth = number(1, 8, 1);
      said = fmt::format("draft depth D = {}: the next step starts a fresh decoder",
                         s.settings().mtp_depth);
    } else if (action == "agree") {
      if (!a.has("VALUE"))
        throw CommandError("mtp agree: give P in 0..1 (or off), e.g. `mtp agree 0.8`");
      const std::string& w = a.str("VALUE");
      double p = -1;
      if (w != "off") {
        size_t used = 0;
        try {
          p = std::stod(w, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != w.size() || !(p >= 0 && p <= 1))
          throw CommandError(fmt::format("mtp agree: '{}' is not a probability in 0..1 or off", w));
      }
      s.settings().mtp_agree = p;
      said = p < 0 ? "drafts: the MTP module's own"
                   : fmt::format("drafts: the main model's token w.p. {:g} (stand-in, greedy only)",
                                 p);
    } else if (action == "reset") {
      s.mtp_reset();
      said = "speculative decoder reset";
    } else if (action != "status") {
      throw CommandError(fmt::format(
          "mtp: unknown action '{}' (step [N], depth D, agree P|off, reset, status)", action));
    }
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const CommandError*>(&e)) throw;
    throw CommandError(fmt::format("mtp: {}", e.what()));
  }
  if (a.flag("json")) return json_text(mtp_json(s));
  return with_panel(s, Panel::kMtp, ctx, said);
}

// ---- fp8 ------------------------------------------------------------------------------------

// The part of a tensor name after "model.layers.L.": "self_attn.q_a_proj".
std::string short_name(const std::string& name) {
  std::string n = name;
  size_t p = n.find('.', n.find("layers.") + 7);
  if (n.rfind("model.layers.", 0) == 0 && p != std::string::npos) n = n.substr(p + 1);
  if (n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0) n.resize(n.size() - 7);
  return n;
}

std::vector<std::string> linear_names(const Session& s) {
  std::vector<std::string> out;
  for (const auto& l : s.fp8_linears()) out.push_back(short_name(l.name));
  return out;
}

Output fp8_cmd(Session& s, const Args& a, const Context& ctx) {
  const auto& lin = s.fp8_linears();
  if (lin.empty()) throw CommandError("fp8: no token computed yet; `step` first");
  if (a.has("LINEAR")) {
    const std::string& want = a.str("LINEAR");
    int pick = -1;
    bool numeric = !want.empty() && std::all_of(want.begin(), want.end(), ::isdigit);
    if (numeric) {
      int i = std::stoi(want);
      if (i < 1 || i > static_cast<int>(lin.size()))
        throw CommandError(fmt::format("fp8: linear {} is out of range 1..{}", i, lin.size()));
      pick = i - 1;
    } else {
      for (size_t i = 0; i < lin.size() && pick < 0; ++i)
        if (short_name(lin[i].name) == want) pick = static_cast<int>(i);
      for (size_t i = 0; i < lin.size() && pick < 0; ++i)
        if (lin[i].name.find(want) != std::string::npos) pick = static_cast<int>(i);
      if (pick < 0) {
        std::string names;
        for (const auto& n : linear_names(s)) names += (names.empty() ? "" : ", ") + n;
        throw CommandError(fmt::format("fp8: layer {} has no linear '{}' for this token ({})",
                                       s.layer(), want, names));
      }
    }
    s.settings().fp8_linear = pick;
  }
  fp8::LayerFp8View v = s.fp8_view();
  if (a.flag("json")) {
    json errs = json::array();
    for (const auto& e : v.errors)
      errs.push_back({{"mode", e.label},
                      {"accum_rel", e.accum_rel},
                      {"total_rel", e.total_rel},
                      {"mean_signed", e.mean_signed}});
    return json_text({{"position", s.cursor()},
                      {"layer", s.layer()},
                      {"name", v.name},
                      {"in_features", v.in_features},
                      {"out_features", v.out_features},
                      {"tile_scales", v.tile_scales},
                      {"tile_amax", v.tile_amax},
                      {"code_histogram", v.code_histogram},
                      {"quant_rel", v.quant_rel},
                      {"errors", errs}});
  }
  return with_panel(s, Panel::kFp8, ctx, {});
}

}  // namespace

void add_explorer_commands(Registry& r) {
  ArgSpec linear = arg("LINEAR", ArgKind::kWord, "which linear layer");
  linear.complete = [](const Session& s) { return linear_names(s); };
  r.add({"balance",
         {"bal"},
         "live loss-free balancing on the model's routers: on/off, γ, reset (the Load panel)",
         "When on, every token the session computes (step, generate, a new prompt as one batch)\n"
         "moves each MoE layer's biases by b_i += γ·sign(c̄ − c_i) (§2.1.2). The biases steer\n"
         "selection only; gate weights stay the unbiased scores. `dsv3 balance model` runs it\n"
         "over a long token stream.",
         {arg("ACTION", ArgKind::kChoice, "on, off, toggle, gamma, reset or status", "", false,
              {"on", "off", "toggle", "gamma", "reset", "status"}),
          arg("VALUE", ArgKind::kWord, "γ for `gamma` (e.g. 0.01)")},
         {json_flag()},
         balance_cmd});
  r.add({"mtp",
         {},
         "speculative decoding with the MTP drafts, step by step (the MTP panel)",
         "`mtp step [N]` drafts D tokens with the MTP chain after the last computed position,\n"
         "verifies them with one main-model pass and appends the accepted ones (greedy: exactly\n"
         "the tokens plain stepping gives). `mtp depth D` sets D; `mtp agree P` makes each draft\n"
         "the main model's own token with probability P (random weights draft almost nothing\n"
         "right; this stands in for a trained module); `mtp reset` forgets the history.",
         {arg("ACTION", ArgKind::kChoice, "step, depth, agree, reset or status", "", false,
              {"step", "depth", "agree", "reset", "status"}),
          arg("VALUE", ArgKind::kWord,
              "steps (step), drafts per step (depth), probability or off (agree)")},
         {json_flag()},
         mtp_cmd});
  r.add({"fp8",
         {},
         "the cursor token through one linear layer of the selected layer in FP8 (the FP8 panel)",
         "Shows the 1x128 activation tile scales, the E4M3 code histogram and the error of each\n"
         "accumulation (fp32, H100 tensor cores with promotion every 32 / 128, none). LINEAR is a\n"
         "number (1 = first) or a name such as q_a_proj or experts.3.up_proj.",
         {linear},
         {json_flag()},
         fp8_cmd});
}

}  // namespace dsv3::app
