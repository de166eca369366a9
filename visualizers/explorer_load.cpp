// Expert-load panel: how evenly the routed experts have been used so far (§2.1.2, the
// auxiliary-loss-free balance: a bias b_i per expert tilts selection away from busy experts).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "visualizers/explorer_columns.h"
#include "visualizers/explorer_panels.h"
#include "visualizers/explorer_style.h"

namespace dsv3::viz {

namespace {
namespace st = style;

void sparkline(Canvas& c, int x, int y, int w, const std::vector<double>& s, Style style) {
  if (s.empty() || w <= 0) return;
  size_t first = s.size() > (size_t)w ? s.size() - w : 0;
  double mx = *std::max_element(s.begin() + first, s.end());
  for (size_t i = first; i < s.size(); ++i)
    c.put(x + static_cast<int>(i - first), y, st::block8(mx > 0 ? s[i] / mx : 0), style);
}
}  // namespace

Canvas load_panel(const ExplorerView& v, int w, int h, std::vector<Hit>* hits) {
  Canvas c(w, h > 0 ? h : 200);
  if (!v.config || !v.has_trace() || v.num_experts() == 0) {
    c.text(0, 0,
           v.num_experts() == 0 && v.config ? "Dense model: no experts to balance."
                                            : "No token computed yet: press → or type `step`.",
           st::kDim);
    return h > 0 ? c : st::crop_rows(c, 1);
  }
  const model::Config& cfg = *v.config;
  auto counts = expert_counts(v, v.cursor);
  ExpertColumns k = ExpertColumns::fit(cfg, w - 8);  // leave room for the MaxVio column
  st::text_clip(
      c, 0, 0,
      fmt::format("{} tokens seen (positions 0..{}), each sent to {} of {} experts per MoE layer",
                  v.cursor + 1, v.cursor, cfg.num_experts_per_tok, cfg.n_routed_experts),
      w, st::kBold);
  int y = 1;
  // The live balancing toggle (§2.1.2): b_i += γ·sign(c̄ − c_i) after every computed token.
  // The explorer names its keys; the REPL, `dsv3 exec` and lessons name the commands.
  std::string bal =
      v.balancing
          ? fmt::format("balancing ON · γ = {:g} · {} bias update{} · {}", v.gamma, v.bias_updates,
                        v.bias_updates == 1 ? "" : "s",
                        v.keys_shown ? "b off, + - γ" : "`balance off`, `balance gamma G`")
          : fmt::format("balancing off · {}: b_i += γ·sign(mean c − c_i) per token · γ = {:g} ({})",
                        v.keys_shown ? "b" : "`balance on`", v.gamma,
                        v.keys_shown ? "+ -" : "`balance gamma G`");
  st::text_clip(c, 0, y++, bal, w, v.balancing ? st::kGood : st::kDim);
  c.text(0, y, "layer", st::kLabel);
  c.text(k.label_w, y, "tokens per expert (bar height)", st::kLabel);
  c.text(w - 7, y, "MaxVio", st::kLabel);
  ++y;
  for (int l = 0; l < v.num_layers(); ++l, ++y) {
    bool sel = l == v.layer;
    c.text(0, y, fmt::format("{}L{}", sel ? "▶ " : "  ", l), sel ? st::kAccent : st::kLabel);
    if (hits) hits->push_back(Hit{0, y, k.label_w, 1, Hit::kLayer, l});
    if (!cfg.is_moe_layer(l)) {
      c.text(k.label_w, y, "dense", st::kDim);
      continue;
    }
    int64_t mx = std::max<int64_t>(1, *std::max_element(counts[l].begin(), counts[l].end()));
    for (int e = 0; e < k.shown; ++e) {
      double f = static_cast<double>(counts[l][e]) / mx;
      for (int i = 0; i < std::max(1, k.cw - 1); ++i)
        c.put(k.x(e) + i, y, counts[l][e] ? st::block8(f) : U' ',
              Style{st::heat_color(f), kDefault, kNone});
      if (hits) hits->push_back(Hit{k.x(e), y, k.cw, 1, Hit::kExpert, e, l});
    }
    double mv = max_vio(counts[l]);
    c.text(w - 6, y, st::fit_num(mv, 5), mv > 1.0 ? st::kWarn : st::kPlain);
  }
  // The selected layer in detail: a taller bar chart, the biases, MaxVio over time.
  int l = v.layer;
  if (l < 0 || l >= v.num_layers() || !cfg.is_moe_layer(l) || y + 4 > c.height()) {
    if (y + 1 < c.height())
      c.text(0, ++y, "Select a MoE layer (↑↓) for its bars, biases and MaxVio history.", st::kDim);
    return h > 0 ? c : st::crop_rows(c, st::used_rows(c));
  }
  ++y;
  ExpertColumns d = ExpertColumns::fit(cfg, w);
  st::text_clip(c, 0, y++,
                fmt::format("Layer {}: tokens routed to each expert, and its bias b_i", l), w,
                st::kAccent);
  int rows_left = (h > 0 ? h : 14) - y;
  int bar_h = std::clamp(rows_left - 4, 1, 6);
  int64_t mx = std::max<int64_t>(1, *std::max_element(counts[l].begin(), counts[l].end()));
  for (int r = 0; r < bar_h; ++r) {
    int yy = y + r;
    if (r == 0)
      c.text(0, yy, fmt::format("{:>6} ┤", mx), st::kLabel);
    else if (r == bar_h - 1)
      c.text(0, yy, fmt::format("{:>6} ┤", 0), st::kLabel);
    else
      c.text(7, yy, "│", st::kLabel);
    for (int e = 0; e < d.shown; ++e) {
      double f = static_cast<double>(counts[l][e]) / mx * bar_h;  // in rows
      double fill = f - (bar_h - 1 - r);                          // this row's share
      if (fill <= 0) continue;
      char32_t g = fill >= 1 ? U'█' : st::block8(fill);
      for (int i = 0; i < std::max(1, d.cw - 1); ++i)
        c.put(d.x(e) + i, yy, g, Style{st::heat_color(counts[l][e] / (double)mx), kDefault, kNone});
    }
  }
  y += bar_h;
  c.text(0, y, "expert", st::kLabel);
  for (int e = 0; e < d.shown; ++e) {
    std::string num = std::to_string(e);
    if ((int)num.size() <= std::max(1, d.cw - 1) || e % d.per_group == 0)
      c.text(d.x(e), y, num, e == v.expert ? Style{75, kDefault, kBold | kUnderline} : st::kLabel);
  }
  ++y;
  if (l < (int)v.bias.size() && !v.bias[l].empty()) {
    const auto& b = v.bias[l];
    float bm = 0;
    for (float x : b) bm = std::max(bm, std::fabs(x));
    double scale = (bm < 0.1f && d.cw <= 5) ? 100.0 : 1.0;
    c.text(0, y, scale == 100 ? "b×100" : "b_i", st::kLabel);
    for (int e = 0; e < d.shown; ++e) {
      double x = b[e] * scale;
      std::string s = d.cw >= 4 ? st::fit_num(x, d.cw - 1) : (x > 0 ? "+" : x < 0 ? "-" : "0");
      c.text(d.x(e), y, s, x > 0 ? st::kGood : x < 0 ? Style{203, kDefault, kNone} : st::kPlain);
    }
    ++y;
  }
  auto series = max_vio_series(v, l, v.cursor);
  std::string label = fmt::format("MaxVio over tokens, now {:.2f} (0 = even): ",
                                  series.empty() ? 0.0 : series.back());
  int x = st::text_clip(c, 0, y, label, w, st::kLabel);
  sparkline(c, x, y, w - x, series, Style{221, kDefault, kNone});
  ++y;
  return h > 0 ? c : st::crop_rows(c, st::used_rows(c));
}

}  // namespace dsv3::viz
