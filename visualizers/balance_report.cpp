#include "visualizers/balance_report.h"

#include <fmt/format.h>

#include <algorithm>

#include "visualizers/balance_load.h"
#include "visualizers/balance_plot.h"

namespace dsv3::viz {

namespace {

Canvas stack(const std::vector<Canvas>& parts) {
  int w = 0, h = 0;
  for (const Canvas& p : parts) {
    w = std::max(w, p.width());
    h += p.height() + 1;
  }
  Canvas c(w, std::max(0, h - 1));
  int y = 0;
  for (const Canvas& p : parts) {
    c.blit(p, 0, y);
    y += p.height() + 1;
  }
  return c;
}

}  // namespace

std::vector<double> smooth(const std::vector<double>& v, int window) {
  if (window <= 1 || v.empty()) return v;
  std::vector<double> out(v.size());
  const int half = window / 2;
  for (size_t i = 0; i < v.size(); ++i) {
    const size_t a = i >= static_cast<size_t>(half) ? i - half : 0;
    const size_t b = std::min(v.size(), i + half + 1);
    double s = 0;
    for (size_t j = a; j < b; ++j) s += v[j];
    out[i] = s / static_cast<double>(b - a);
  }
  return out;
}

Canvas toy_a_report(const balance::ToyAConfig& c, const balance::ToyAResult& r, int width) {
  std::vector<PlotSeries> s = {{fmt::format("γ={:g} {}", c.gamma, balance::rule_name(c.rule)),
                                r.maxvio_batch,
                                {},
                                kDefault}};
  const double floor = balance::noise_floor(c.experts, c.tokens_per_batch, c.top_k);
  std::vector<Canvas> parts;
  parts.push_back(maxvio_plot(s, width, 16, floor,
                              fmt::format("MaxVio_batch per step (N={}, K={}, T={})", c.experts,
                                          c.top_k, c.tokens_per_batch)));
  if (!r.load.empty()) {
    LoadBarsOptions o;
    o.width = width;
    o.height = 11;
    o.title = "held-out load per expert after the run, and the biases (b - mean b)";
    parts.push_back(expert_load_bars(r.load, r.bias, o));
  }
  return stack(parts);
}

Canvas tradeoff_report(const std::vector<balance::TradeoffPoint>& points, int width) {
  std::vector<ScatterPoint> sp;
  std::vector<PlotSeries> curves;
  for (const auto& p : points) {
    ScatterPoint q;
    q.x = p.maxvio_global;
    q.y = p.eval_mse;
    switch (p.method) {
      case balance::Balancing::kNone:
        q.label = "none";
        q.marker = U'■';
        q.color = 250;
        break;
      case balance::Balancing::kAuxLoss:
        q.label = fmt::format("α={:g}", p.param);
        q.marker = U'●';
        q.color = 203;
        break;
      case balance::Balancing::kLossFree:
        q.label = fmt::format("γ={:g}", p.param);
        q.marker = U'◆';
        q.color = 114;
        break;
    }
    sp.push_back(q);
    curves.push_back({q.label, smooth(p.maxvio_batch, 50), {}, kDefault});
  }
  std::vector<Canvas> parts;
  parts.push_back(scatter_plot(sp, width, 16,
                               "Toy C: task loss vs balance (● aux loss, ◆ loss-free, ■ none)",
                               "MaxVio_global (held-out)", "eval MSE"));
  parts.push_back(
      maxvio_plot(curves, width, 16, 0, "MaxVio_batch per step (first seed, 50-step mean)"));
  return stack(parts);
}

Canvas model_balance_report(const balance::ModelBalanceResult& r, int width) {
  std::vector<PlotSeries> s;
  s.push_back({"mean over MoE layers", r.maxvio_batch_mean, {}, kDefault});
  for (size_t i = 0; i < r.moe_layers.size() && i < 4; ++i)
    s.push_back({fmt::format("L{}", r.moe_layers[i]), r.maxvio_batch[i], {}, kDefault});
  std::vector<Canvas> parts;
  parts.push_back(maxvio_plot(s, width, 14, 0, fmt::format("{}: MaxVio_batch per batch", r.model)));
  if (!r.load_after.empty()) {
    LoadBarsOptions o;
    o.width = width;
    o.height = 10;
    o.title =
        fmt::format("layer {}: held-out load after balancing, and the biases", r.moe_layers.back());
    parts.push_back(expert_load_bars(r.load_after.back(), r.bias_after.back(), o));
  }
  return stack(parts);
}

}  // namespace dsv3::viz
