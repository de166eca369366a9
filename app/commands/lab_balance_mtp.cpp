// Lab commands about DeepSeekMoE balancing (the toy routers of reference/balance) and
// multi-token prediction (the MTP loss and speculative decoding on the session's tokens).
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

}  // namespace dsv3::app::lab
