// `dsv3 balance simulate | tradeoff | model`: the load-balancing lab (DeepSeek-V3 §2.1.2,
// Loss-Free Balancing). Each prints a summary and terminal plots, or --json.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/cli/cli.h"
#include "reference/balance/metrics.h"
#include "reference/balance/model_balance.h"
#include "reference/balance/placement.h"
#include "reference/balance/toy_a.h"
#include "reference/balance/toy_c.h"
#include "visualizers/balance_report.h"
#include "visualizers/canvas.h"

namespace dsv3::app {

namespace {

using nlohmann::json;

struct Common {
  bool json = false;
  bool no_plot = false;
  bool no_color = false;
  int width = 0;  // 0: $COLUMNS (at most 120), else 80
};

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_flag("--json", c.json, "Print the results as JSON");
  cmd->add_flag("--no-plot", c.no_plot, "Skip the terminal plots");
  cmd->add_flag("--no-color", c.no_color, "Plain text even on a terminal");
  cmd->add_option("--width", c.width, "Plot width in columns (default: $COLUMNS, at most 120)");
}

int plot_width(const Common& c) {
  if (c.width > 0) return std::max(40, c.width);
  if (const char* cols = std::getenv("COLUMNS")) {
    const int w = std::atoi(cols);
    if (w >= 40) return std::min(w, 120);
  }
  return 80;
}

void print_canvas(const viz::Canvas& canvas, const Common& c) {
  const bool colour = !c.no_color && !viz::colour_disabled(STDOUT_FILENO);
  std::fputs((colour ? viz::render_ansi(canvas) : viz::render_plain(canvas)).c_str(), stdout);
}

void print_json(const json& j) {
  std::fputs((j.dump() + "\n").c_str(), stdout);
}

balance::UpdateRule rule_of(const std::string& s) {
  try {
    return balance::parse_rule(s);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

std::string step_or_never(int s) {
  return s < 0 ? "never" : fmt::format("step {}", s);
}

// ---- simulate ---------------------------------------------------------------------------

struct SimulateArgs {
  balance::ToyAConfig toy;
  std::string rule = "sign";
  int devices = 8;
  int redundant = 8;
  Common common;
};

void run_simulate(SimulateArgs& a) {
  balance::ToyAConfig& c = a.toy;
  c.rule = rule_of(a.rule);
  if (c.gamma < 0) throw UsageError("--gamma must not be negative");
  if (c.heldout_tokens < 0) throw UsageError("--heldout must not be negative");
  balance::ToyAResult r;
  try {
    r = balance::run_toy_a(c);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  const double floor = balance::noise_floor(c.experts, c.tokens_per_batch, c.top_k);
  const int tail = std::max(1, std::min(500, c.steps / 4));
  // Expert-parallel placement of the held-out load: per-device imbalance with zero biases and
  // with the final ones, before and after redundant copies of the heaviest experts.
  json placement = nullptr;
  std::string placement_text;
  if (!r.counts_global.empty() && a.devices > 0 && c.experts % a.devices == 0) {
    const balance::Placement p = balance::contiguous_placement(c.experts, a.devices);
    auto counts_of = [&](const std::vector<double>& frac) {
      std::vector<int64_t> k(frac.size());
      for (size_t i = 0; i < frac.size(); ++i) k[i] = std::llround(frac[i] * 1e6);
      return k;
    };
    const std::vector<int64_t> before = counts_of(r.load_initial), after = r.counts_global;
    const int red = std::min(a.redundant, a.devices);
    auto imb = [&](const balance::Placement& pl, const std::vector<int64_t>& k) {
      return balance::device_imbalance(balance::device_loads(pl, k));
    };
    const double ib = imb(p, before),
                 ibr = imb(balance::add_redundant_experts(p, before, red), before);
    const double ia = imb(p, after),
                 iar = imb(balance::add_redundant_experts(p, after, red), after);
    placement = {{"devices", a.devices},       {"redundant_experts", red},
                 {"imbalance_unbalanced", ib}, {"imbalance_unbalanced_redundant", ibr},
                 {"imbalance_balanced", ia},   {"imbalance_balanced_redundant", iar}};
    placement_text = fmt::format(
        "expert parallelism ({} devices, max/mean − 1):  zero biases {:.3f} ({:.3f} with {} "
        "redundant experts)  ·  final biases {:.3f} ({:.3f})\n",
        a.devices, ib, ibr, red, ia, iar);
  }
  if (a.common.json) {
    json j;
    j["config"] = {{"experts", c.experts}, {"top_k", c.top_k},
                   {"dim", c.dim},         {"tokens_per_batch", c.tokens_per_batch},
                   {"steps", c.steps},     {"gamma", c.gamma},
                   {"skew", c.skew},       {"rule", balance::rule_name(c.rule)},
                   {"groups", c.groups},   {"topk_groups", c.topk_groups},
                   {"seed", c.seed},       {"heldout_tokens", c.heldout_tokens}};
    j["maxvio_batch"] = r.maxvio_batch;
    if (!r.maxvio_global.empty())
      j["maxvio_global"] = r.maxvio_global.back();
    else
      j["maxvio_global"] = nullptr;
    if (r.global_steps.size() > 1) {
      json curve = json::array();
      for (size_t i = 0; i < r.global_steps.size(); ++i)
        curve.push_back({{"step", r.global_steps[i]}, {"maxvio", r.maxvio_global[i]}});
      j["maxvio_global_curve"] = curve;
    }
    j["bias"] = r.bias;
    j["load"] = r.load;
    j["load_initial"] = r.load_initial;
    j["bias_mean"] = r.bias_mean;
    j["noise_floor"] = floor;
    j["first_step_below_0.2"] = r.first_below(0.2);
    j["first_step_below_0.1"] = r.first_below(0.1);
    j["steady_maxvio_batch"] = r.steady(tail);
    j["placement"] = placement;
    print_json(j);
    return;
  }
  std::string s = fmt::format(
      "Toy A: {} experts, top-{}, {} tokens per batch, {} steps, γ = {:g} ({} rule), skew σ = {:g}",
      c.experts, c.top_k, c.tokens_per_batch, c.steps, c.gamma, balance::rule_name(c.rule), c.skew);
  if (c.groups > 1) s += fmt::format(", {} groups / top-{}", c.groups, c.topk_groups);
  s += "\n";
  if (!r.maxvio_batch.empty()) {
    s += fmt::format("MaxVio_batch: {:.3f} at step 0, below 0.2 from {}, below 0.1 from {}\n",
                     r.maxvio_batch[0], step_or_never(r.first_below(0.2)),
                     step_or_never(r.first_below(0.1)));
    s += fmt::format(
        "steady MaxVio_batch (last {} steps): {:.3f}  (noise floor 2.4·sqrt(N/(T·K)) = {:.3f})\n",
        tail, r.steady(tail), floor);
  }
  if (!r.maxvio_global.empty())
    s += fmt::format("MaxVio_global on {} held-out tokens: {:.3f} (zero biases: {:.3f})\n",
                     c.heldout_tokens, r.maxvio_global.back(), balance::max_vio(r.load_initial));
  const balance::BiasDrift d = balance::bias_drift(r.bias);
  s += fmt::format(
      "biases: mean {:+.4f} (common-mode drift, invisible to routing), spread σ {:.4f}, range "
      "[{:+.3f}, {:+.3f}]\n",
      d.mean, d.stddev, d.min, d.max);
  s += placement_text;
  std::fputs(s.c_str(), stdout);
  if (!a.common.no_plot) {
    std::fputs("\n", stdout);
    print_canvas(viz::toy_a_report(c, r, plot_width(a.common)), a.common);
  }
}

// ---- tradeoff ---------------------------------------------------------------------------

struct TradeoffArgs {
  balance::ToyCConfig toy;
  std::vector<double> alphas = {1e-3, 1e-2, 1e-1, 0.3, 1.0, 3.0};
  std::vector<double> gammas = {1e-4, 1e-3, 1e-2};
  int seeds = 1;
  Common common;
};

void run_tradeoff(TradeoffArgs& a) {
  if (a.seeds < 1) throw UsageError("--seeds must be at least 1");
  for (double x : a.alphas)
    if (x < 0) throw UsageError("--alphas must not be negative");
  for (double x : a.gammas)
    if (x < 0) throw UsageError("--gammas must not be negative");
  std::vector<balance::TradeoffPoint> pts;
  try {
    pts = balance::run_tradeoff(a.toy, a.alphas, a.gammas, a.seeds);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (a.common.json) {
    json j;
    const balance::ToyCConfig& c = a.toy;
    j["config"] = {{"dim", c.dim},     {"experts", c.experts},
                   {"top_k", c.top_k}, {"clusters", c.clusters},
                   {"zipf", c.zipf},   {"tokens_per_batch", c.tokens_per_batch},
                   {"steps", c.steps}, {"lr", c.lr},
                   {"seeds", a.seeds}, {"eval_tokens", c.eval_tokens}};
    json p = json::array();
    for (const auto& q : pts)
      p.push_back({{"method", balance::balancing_name(q.method)},
                   {"param", q.param},
                   {"eval_mse", q.eval_mse},
                   {"maxvio_global", q.maxvio_global},
                   {"eval_mse_seeds", q.eval_mse_seeds},
                   {"maxvio_global_seeds", q.maxvio_seeds},
                   {"maxvio_batch", q.maxvio_batch}});
    j["points"] = p;
    print_json(j);
    return;
  }
  std::string s = fmt::format(
      "Toy C: {} clusters (Zipf {:g}), {} linear experts, top-{}, {} tokens per step, {} steps, "
      "{} seed(s)\n\n  {:<10} {:>8}  {:>9}  {:>13}\n",
      a.toy.clusters, a.toy.zipf, a.toy.experts, a.toy.top_k, a.toy.tokens_per_batch, a.toy.steps,
      a.seeds, "method", "α or γ", "eval MSE", "MaxVio_global");
  for (const auto& q : pts)
    s += fmt::format(
        "  {:<10} {:>8}  {:>9.4f}  {:>13.3f}\n", balance::balancing_name(q.method),
        q.method == balance::Balancing::kNone ? std::string("-") : fmt::format("{:g}", q.param),
        q.eval_mse, q.maxvio_global);
  std::fputs(s.c_str(), stdout);
  if (!a.common.no_plot) {
    std::fputs("\n", stdout);
    print_canvas(viz::tradeoff_report(pts, plot_width(a.common)), a.common);
  }
}

// ---- model ------------------------------------------------------------------------------

struct ModelArgs {
  balance::ModelBalanceConfig cfg;
  std::string rule = "sign";
  Common common;
};

void run_model(ModelArgs& a) {
  a.cfg.rule = rule_of(a.rule);
  std::unique_ptr<model::Model> m;
  try {
    m = std::make_unique<model::Model>(model::Model::load(a.cfg.model));
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  balance::ModelBalanceResult r;
  try {
    r = balance::run_model_balance(*m, a.cfg);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (a.common.json) {
    json j;
    j["model"] = r.model;
    j["config"] = {{"tokens", a.cfg.tokens},
                   {"tokens_per_batch", a.cfg.tokens_per_batch},
                   {"seq_len", a.cfg.seq_len},
                   {"gamma", a.cfg.gamma},
                   {"rule", balance::rule_name(a.cfg.rule)},
                   {"zipf", a.cfg.zipf},
                   {"heldout_tokens", a.cfg.heldout_tokens},
                   {"seed", a.cfg.seed}};
    j["moe_layers"] = r.moe_layers;
    j["maxvio_batch"] = r.maxvio_batch_mean;
    j["maxvio_batch_per_layer"] = r.maxvio_batch;
    j["maxvio_global_before"] = r.maxvio_global_before;
    j["maxvio_global_after"] = r.maxvio_global_after;
    j["maxvio_global"] = r.mean_global_after;
    j["bias_before"] = r.bias_before;
    j["bias"] = r.bias_after;
    j["load"] = r.load_after;
    print_json(j);
    return;
  }
  std::string s = fmt::format(
      "{}: {} MoE layers, {} tokens in batches of {} (sequences of {}), γ = {:g} ({} rule)\n",
      r.model, r.moe_layers.size(), a.cfg.tokens, a.cfg.tokens_per_batch, a.cfg.seq_len,
      a.cfg.gamma, balance::rule_name(a.cfg.rule));
  for (size_t i = 0; i < r.moe_layers.size(); ++i) {
    const auto& mb = r.maxvio_batch[i];
    s += fmt::format("  layer {:>2}: MaxVio_batch {:.3f} → {:.3f}", r.moe_layers[i],
                     mb.empty() ? 0.0 : mb.front(), mb.empty() ? 0.0 : mb.back());
    if (i < r.maxvio_global_before.size() && i < r.maxvio_global_after.size())
      s += fmt::format(", MaxVio_global {:.3f} → {:.3f}", r.maxvio_global_before[i],
                       r.maxvio_global_after[i]);
    const balance::BiasDrift d = balance::bias_drift(r.bias_after[i]);
    s += fmt::format(", bias mean {:+.4f} σ {:.4f}\n", d.mean, d.stddev);
  }
  if (!r.maxvio_global_after.empty())
    s += fmt::format("mean MaxVio_global over MoE layers ({} held-out tokens): {:.3f} → {:.3f}\n",
                     a.cfg.heldout_tokens, r.mean_global_before, r.mean_global_after);
  std::fputs(s.c_str(), stdout);
  if (!a.common.no_plot) {
    std::fputs("\n", stdout);
    print_canvas(viz::model_balance_report(r, plot_width(a.common)), a.common);
  }
}

}  // namespace

void add_balance_commands(CLI::App& app) {
  CLI::App* bal = app.add_subcommand(
      "balance", "Load-balancing lab: auxiliary-loss-free bias updates (DeepSeek-V3 §2.1.2)");
  bal->require_subcommand(1);

  auto sim = std::make_shared<SimulateArgs>();
  CLI::App* s = bal->add_subcommand(
      "simulate", "Toy A: a static skewed router where only the biases move; MaxVio over steps");
  s->add_option("--experts", sim->toy.experts, "Routed experts N_r")->capture_default_str();
  s->add_option("--top-k", sim->toy.top_k, "Experts per token K_r")->capture_default_str();
  s->add_option("--dim", sim->toy.dim, "Token dimension d")->capture_default_str();
  s->add_option("--tokens-per-batch", sim->toy.tokens_per_batch, "Tokens per batch T")
      ->capture_default_str();
  s->add_option("--steps", sim->toy.steps, "Batches (bias updates)")->capture_default_str();
  s->add_option("--gamma", sim->toy.gamma, "Bias update speed γ")->capture_default_str();
  s->add_option("--skew", sim->toy.skew, "σ of the per-expert logit skew")->capture_default_str();
  s->add_option("--rule", sim->rule, "Update rule: sign | centred | raw")->capture_default_str();
  s->add_option("--groups", sim->toy.groups, "Expert groups (nodes)")->capture_default_str();
  s->add_option("--topk-groups", sim->toy.topk_groups, "Groups a token may reach (M)")
      ->capture_default_str();
  s->add_option("--seed", sim->toy.seed, "Random seed")->capture_default_str();
  s->add_option("--heldout", sim->toy.heldout_tokens, "Held-out tokens for MaxVio_global")
      ->capture_default_str();
  s->add_option("--global-every", sim->toy.global_every, "Also measure MaxVio_global every N steps")
      ->capture_default_str();
  s->add_option("--devices", sim->devices, "Expert-parallel devices for the placement summary")
      ->capture_default_str();
  s->add_option("--redundant", sim->redundant, "Redundant expert copies (one per device at most)")
      ->capture_default_str();
  add_common(s, sim->common);
  s->callback([sim] { run_simulate(*sim); });

  auto tr = std::make_shared<TradeoffArgs>();
  CLI::App* t = bal->add_subcommand(
      "tradeoff",
      "Toy C: a learned router with no balancing, the aux loss at each α, loss-free at each γ");
  t->add_option("--alphas", tr->alphas, "Aux-loss weights α (comma separated)")
      ->delimiter(',')
      ->capture_default_str();
  t->add_option("--gammas", tr->gammas, "Bias update speeds γ (comma separated)")
      ->delimiter(',')
      ->capture_default_str();
  t->add_option("--seeds", tr->seeds, "Seeds per setting (results averaged)")
      ->capture_default_str();
  t->add_option("--steps", tr->toy.steps, "Training steps")->capture_default_str();
  t->add_option("--tokens-per-batch", tr->toy.tokens_per_batch, "Tokens per step")
      ->capture_default_str();
  t->add_option("--lr", tr->toy.lr, "Adam learning rate")->capture_default_str();
  t->add_option("--zipf", tr->toy.zipf, "Zipf exponent of the cluster frequencies")
      ->capture_default_str();
  t->add_option("--eval-tokens", tr->toy.eval_tokens, "Held-out tokens")->capture_default_str();
  add_common(t, tr->common);
  t->callback([tr] { run_tradeoff(*tr); });

  auto mo = std::make_shared<ModelArgs>();
  CLI::App* m = bal->add_subcommand(
      "model", "The reference model's own routers, frozen weights, biases updated as tokens flow");
  m->add_option("--model", mo->cfg.model, "Built-in name, config.json or checkpoint folder")
      ->capture_default_str();
  m->add_option("--tokens", mo->cfg.tokens, "Tokens to stream")->capture_default_str();
  m->add_option("--tokens-per-batch", mo->cfg.tokens_per_batch, "Tokens per bias update")
      ->capture_default_str();
  m->add_option("--seq-len", mo->cfg.seq_len, "Tokens per sequence")->capture_default_str();
  m->add_option("--gamma", mo->cfg.gamma, "Bias update speed γ")->capture_default_str();
  m->add_option("--rule", mo->rule, "Update rule: sign | centred | raw")->capture_default_str();
  m->add_option("--zipf", mo->cfg.zipf, "Zipf exponent of the token stream")->capture_default_str();
  m->add_option("--heldout", mo->cfg.heldout_tokens, "Held-out tokens for MaxVio_global")
      ->capture_default_str();
  m->add_option("--seed", mo->cfg.seed, "Random seed of the token stream")->capture_default_str();
  add_common(m, mo->common);
  m->callback([mo] { run_model(*mo); });
}

}  // namespace dsv3::app
