#include "visualizers/train_panel.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "visualizers/explorer_style.h"

namespace dsv3::viz {
namespace {
namespace st = style;
using train::LiveStep;
using train::TrainSnapshot;

using train_plot::chart;
using train_plot::layer_name;
using train_plot::load_shade;
using train_plot::lr_row;
using train_plot::Series;

// Mean of f over the steps of each column (NaN where no step has a value).
template <class F>
std::vector<double> columns(const std::vector<LiveStep>& h, int cols, F f) {
  return train_plot::columns(h, h.size(), cols, f);
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The current load of each MoE layer, one row each: experts as columns.
void load_rows(Canvas& c, int x, int y, int w, int h, const TrainSnapshot& s) {
  if (s.history.empty() || h < 2) return;
  const LiveStep& last = s.history.back();
  st::text_clip(c, x, y, fmt::format("step {} load/mean · MaxVio · b range", last.step), w,
                st::kLabel);
  for (size_t l = 0; l < last.expert_load.size() && static_cast<int>(l) + 1 < h; ++l) {
    const int yy = y + 1 + static_cast<int>(l);
    int xx = c.text(x, yy, fmt::format("{:<4}", layer_name(s, l)), st::kDim);
    for (size_t e = 0; e < last.expert_load[l].size() && xx < x + w; ++e, ++xx) {
      const double v = load_shade(last.expert_load[l], e);
      c.put(xx, yy, st::shade(v), Style{st::heat_color(v), kDefault, kNone});
    }
    std::string tail = fmt::format(" {:.2f}", l < last.max_vio.size() ? last.max_vio[l] : 0.0);
    if (l < s.bias.size() && !s.bias[l].empty()) {
      auto [mn, mx] = std::minmax_element(s.bias[l].begin(), s.bias[l].end());
      tail += fmt::format(" [{:+.3f},{:+.3f}]", *mn, *mx);
    }
    st::text_clip(c, xx, yy, tail, x + w - xx);
  }
}

// Figure 9: per domain, the share of its tokens each expert of layer l receives (relative to
// uniform); the two busiest experts named.
void domains(Canvas& c, int x, int y, int w, int h, const TrainSnapshot& s, size_t l) {
  if (s.domains.empty() || l >= s.domain_load.size() || h < 2) return;
  st::text_clip(c, x, y,
                fmt::format("{} per domain (Fig. 9), step {}", layer_name(s, l), s.domain_step), w,
                st::kLabel);
  int name_w = 4;
  for (const std::string& d : s.domains) name_w = std::max(name_w, display_width(d));
  name_w = std::min(name_w, 10);
  for (size_t d = 0; d < s.domains.size() && static_cast<int>(d) + 1 < h; ++d) {
    const int yy = y + 1 + static_cast<int>(d);
    const auto& cnt = s.domain_load[l][d];
    st::text_clip(c, x, yy, s.domains[d], name_w, st::kDim);
    int xx = x + name_w + 1;
    for (size_t e = 0; e < cnt.size() && xx < x + w; ++e, ++xx) {
      const double v = load_shade(cnt, e);
      c.put(xx, yy, st::shade(v), Style{st::heat_color(v), kDefault, kNone});
    }
    std::vector<size_t> order(cnt.size());
    for (size_t e = 0; e < order.size(); ++e) order[e] = e;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cnt[a] > cnt[b]; });
    if (order.size() >= 2)
      st::text_clip(c, xx + 1, yy, fmt::format("top {} {}", order[0], order[1]), x + w - xx - 1,
                    st::kDim);
  }
}

}  // namespace

void train_plot::chart(Canvas& c, int x, int y, int w, int h, const std::string& title,
                       const std::vector<Series>& series, bool log_axis, int marker) {
  if (w < 12 || h < 3) return;
  st::text_clip(c, x, y, title, w, st::kLabel);
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Series& s : series)
    for (double v : s.y)
      if (std::isfinite(v) && (!log_axis || v > 0)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  const int ph = h - 1, px = x + 6, pw = w - 6;
  for (int j = 0; j < ph; ++j) c.put(px - 1, y + 1 + j, U'│', st::kFrame);
  if (marker >= 0 && marker < pw)
    for (int j = 0; j < ph; ++j) c.put(px + marker, y + 1 + j, U'┊', st::kDim);
  if (!std::isfinite(lo)) {
    st::text_clip(c, px + 1, y + 1, "no steps yet", pw - 1, st::kDim);
    return;
  }
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    hi = lo * (log_axis ? 1.01 : 1.0) + (log_axis ? 0 : 1e-9);
  }
  auto pos = [&](double v) {
    const double a = log_axis ? std::log10(v) : v, l = log_axis ? std::log10(lo) : lo,
                 u = log_axis ? std::log10(hi) : hi;
    const double f = u > l ? (a - l) / (u - l) : 0.5;
    return std::clamp(static_cast<int>(std::lround((1.0 - f) * (ph - 1))), 0, ph - 1);
  };
  c.text(x, y + 1, st::fit_num(hi, 5), st::kDim);
  c.text(x, y + ph, st::fit_num(lo, 5), st::kDim);
  for (const Series& s : series)
    for (int i = 0; i < pw && i < static_cast<int>(s.y.size()); ++i)
      if (std::isfinite(s.y[i]) && (!log_axis || s.y[i] > 0))
        c.put(px + i, y + 1 + pos(s.y[i]), s.glyph, s.style);
}

// Load of expert i as a share of the mean load (1 = balanced), mapped to [0, 1] over 0..2x.
double train_plot::load_shade(const std::vector<int64_t>& c, size_t i) {
  double mean = 0;
  for (int64_t x : c) mean += static_cast<double>(x) / static_cast<double>(c.size());
  return mean > 0 ? std::clamp(static_cast<double>(c[i]) / mean / 2.0, 0.0, 1.0) : 0.0;
}

// "L3": the checkpoint index of the MoE layer (the MTP module's block counts after the main
// layers, as in the checkpoint).
std::string train_plot::layer_name(const train::TrainSnapshot& s, size_t l) {
  return fmt::format("L{}", l < s.moe_layers.size() ? s.moe_layers[l] : static_cast<int>(l));
}

// The learning-rate schedule (current peak) with a cursor at the current step.
void train_plot::lr_row(Canvas& c, int x, int y, int w, const train::TrainSnapshot& s) {
  const int cols = w - 22;
  if (cols < 8 || s.steps < 1) return;
  c.text(x, y, "lr", st::kLabel);
  double peak = 0;
  for (int i = 0; i < cols; ++i)
    peak = std::max(peak, s.lr_at(static_cast<int64_t>(i) * s.steps / cols));
  const int cur = std::min<int>(cols - 1, static_cast<int>(s.step * cols / s.steps));
  for (int i = 0; i < cols; ++i) {
    const double v = s.lr_at(static_cast<int64_t>(i) * s.steps / cols);
    c.put(x + 3 + i, y, i == cur ? U'┃' : st::block8(peak > 0 ? v / peak : 0),
          i == cur ? st::kCursor : Style{75, kDefault, kNone});
  }
  const double now = s.lr_at(std::min(s.step, s.steps - 1));
  st::text_clip(c, x + 4 + cols, y,
                fmt::format("{:.2e} {}", now, train::to_string(s.options.schedule)), w - cols - 4);
}

// One row per expert (or per MoE layer when `rows_per_layer` is 1): heat map of the load over
// time, then b_i as a signed number.
void train_plot::heatmap(Canvas& c, int x, int y, int w, int h, const train::TrainSnapshot& s,
                         size_t l, size_t n, const std::string& title) {
  const int E = static_cast<int>(s.experts);
  const int bias_w = 7, cols = w - 4 - bias_w;
  if (cols < 4 || h < 2) return;
  st::text_clip(c, x, y,
                title.empty()
                    ? fmt::format("{} load/mean, experts x steps (·0 █2x) · b_i", layer_name(s, l))
                    : title,
                w, st::kLabel);
  const int rows = std::min(E, h - 1);
  for (int e = 0; e < rows; ++e) {
    const int yy = y + 1 + e;
    c.text(x, yy, fmt::format("{:>3}", e), st::kDim);
    for (int col = 0; col < cols; ++col) {
      Bucket b = time_bucket(std::max(n, s.history.size()), cols, col);
      if (b.first == b.last) continue;
      double v = 0;
      for (size_t i = b.first; i < b.last && i < s.history.size(); ++i)
        if (l < s.history[i].expert_load.size())
          v += load_shade(s.history[i].expert_load[l], e) / static_cast<double>(b.last - b.first);
      c.put(x + 4 + col, yy, st::shade(v), Style{st::heat_color(v), kDefault, kNone});
    }
    if (l < s.bias.size() && e < static_cast<int>(s.bias[l].size())) {
      const float b = s.bias[l][e];
      c.text(x + 4 + cols + 1, yy, st::fit_num(b, bias_w - 1),
             b > 0 ? st::kGood : (b < 0 ? st::kWarn : st::kDim));
    }
  }
  if (rows < E) c.text(x, y + h - 1, fmt::format("…{} more", E - rows), st::kDim);
}

int train_plot::column_of(const std::vector<train::LiveStep>& h, int64_t step, size_t n, int cols) {
  size_t i = 0;
  while (i < h.size() && h[i].step != step) ++i;
  if (i == h.size()) return -1;  // step 0 (before the first step) or not in the history
  for (int col = 0; col < cols; ++col) {
    Bucket b = time_bucket(std::max(n, h.size()), cols, col);
    if (i >= b.first && i < b.last) return col;
  }
  return -1;
}

Bucket time_bucket(size_t n, int cols, int col) {
  if (cols <= 0 || n == 0) return {};
  if (n <= static_cast<size_t>(cols))  // one step per column, left-aligned
    return col < static_cast<int>(n)
               ? Bucket{static_cast<size_t>(col), static_cast<size_t>(col) + 1}
               : Bucket{};
  return {n * col / cols, n * (col + 1) / cols};
}

Canvas train_panel(const TrainSnapshot& s, int W, int H, int64_t shown_step) {
  Canvas c(std::max(W, 1), std::max(H, 1));
  if (W < 40 || H < 8) {
    c.text(0, 0, "train: needs at least 40x8", st::kDim);
    return c;
  }
  const auto& o = s.options;
  const LiveStep* last = s.history.empty() ? nullptr : &s.history.back();
  // Line 0: what the run is doing.
  std::string mode = train::to_string(o.objective.balance);
  std::string knobs = fmt::format("{} γ={:g} λ={:g} α={:g}", mode, o.bias_gamma,
                                  o.objective.mtp_lambda, o.objective.balance_alpha);
  Style state_style = s.state == train::RunState::kRunning  ? st::kGood
                      : s.state == train::RunState::kFailed ? st::kBad
                                                            : st::kWarn;
  int x = c.text(0, 0, train::to_string(s.state), state_style);
  // The model being trained (not necessarily the one the explorer's header names); the speed
  // gives way first when the line is too narrow for the knobs.
  std::string head = fmt::format(" · {} · step {}/{}", o.model, s.step, s.steps);
  std::string speed =
      fmt::format(" · {:.0f} tok/s · ETA {}", s.tokens_per_s, train::format_duration(s.eta_s));
  if (x + display_width(head) + display_width(speed) + 3 + display_width(knobs) > W) speed.clear();
  x = c.text(x, 0, head + speed + " · ");
  st::text_clip(c, x, 0, knobs, W - x, st::kAccent);
  // Line 1: the last step's numbers.
  if (last) {
    int clipped = 0;
    for (const LiveStep& r : s.history) clipped += r.clipped;
    std::string val = "-";
    for (auto it = s.history.rbegin(); it != s.history.rend(); ++it)
      if (it->val_loss) {
        val = fmt::format("{:.3f}", *it->val_loss);
        break;
      }
    st::text_clip(
        c, 0, 1,
        fmt::format("loss {:.3f} main {:.3f} mtp {:.3f} val {} · |g| {:.2f} clip {:.0f}% · "
                    "ckpt {}",
                    last->loss, last->loss_main, last->loss_mtp, val, last->grad_norm,
                    100.0 * clipped / static_cast<double>(s.history.size()), s.last_saved),
        W);
  } else {
    st::text_clip(c, 0, 1, "no steps yet · s steps once, p runs", W, st::kDim);
  }
  std::string foot = s.message;
  if (shown_step >= 0)
    foot = fmt::format("panels 1-8: step {}'s weights{}{}", shown_step, foot.empty() ? "" : " · ",
                       foot);
  if (!foot.empty()) st::text_clip(c, 0, H - 1, foot, W, st::kDim);
  const int L = static_cast<int>(s.moe_layers.size());
  const int E = static_cast<int>(s.experts);
  const int D = static_cast<int>(s.domains.size());
  const bool wide = W >= 120 && H >= 30;
  // Below the charts: the lr row, then (narrow) the load rows with Figure 9 beside them when it
  // fits, else under them when there is room, else left out; (wide) a heat map per MoE layer
  // and Figure 9 per MoE layer. The charts take the rows left (at least 4).
  int name_w = 4;  // as domains() lays its rows out
  for (const std::string& d : s.domains) name_w = std::min(10, std::max(name_w, display_width(d)));
  const int load_w = 4 + E + 21, dom_w = name_w + 1 + E + 10;
  const bool side = D > 0 && load_w + 2 + dom_w <= W;
  int below = 1 + (L + 1);  // lr, load rows
  bool stacked = false;
  if (wide) {
    below = 1 + 1 + (E + 1) + (D > 0 ? D + 1 : 0);
  } else if (side) {
    below = 1 + std::max(L + 1, D + 1);
  } else if (D > 0 && H - 3 - below - (D + 1) >= 4) {
    stacked = true;
    below += D + 1;
  }
  const int chart_h = std::clamp(H - 3 - below, 4, wide ? 16 : H);
  const int nchart = wide ? 3 : 2;
  const int cw = W / nchart;
  const int cols = cw - 9;  // 6 for the axis labels, 3 between charts
  std::vector<Series> loss{
      // drawn in this order: the main loss over MTP, validation on top
      {columns(s.history, cols, [](const LiveStep& r) { return r.loss_mtp; }), U'·',
       Style{141, kDefault, kNone}},
      {columns(s.history, cols, [](const LiveStep& r) { return r.loss_main; }), U'●',
       Style{75, kDefault, kNone}},
      {columns(s.history, cols, [](const LiveStep& r) { return r.val_loss ? *r.val_loss : kNaN; }),
       U'◆', Style{221, kDefault, kBold}}};
  chart(
      c, 0, 2, cw - 3, chart_h, "loss (log) ● main · MTP ◆ val", loss, true,
      shown_step >= 0 ? train_plot::column_of(s.history, shown_step, s.history.size(), cols) : -1);
  static const char32_t kLayerGlyphs[] = {U'1', U'2', U'3', U'4', U'5', U'6', U'7', U'8', U'9'};
  std::vector<Series> vio;
  for (int l = 0; l < L && l < 9; ++l)
    vio.push_back({columns(s.history, cols,
                           [l](const LiveStep& r) {
                             return l < static_cast<int>(r.max_vio.size()) ? r.max_vio[l] : kNaN;
                           }),
                   kLayerGlyphs[l], Style{static_cast<Color>(114 + 6 * l), kDefault, kNone}});
  chart(c, cw, 2, cw - 3, chart_h, "MaxVio per MoE layer (1..n)", vio, false);
  if (wide)
    chart(c, 2 * cw, 2, W - 2 * cw, chart_h, "grad norm (log) ● ×=clipped",
          {{columns(s.history, cols, [](const LiveStep& r) { return r.grad_norm; }), U'●',
            Style{180, kDefault, kNone}},
           {columns(s.history, cols,
                    [](const LiveStep& r) { return r.clipped ? r.grad_norm : kNaN; }),
            U'×', st::kBad}},
          true);
  int y = 2 + chart_h;
  lr_row(c, 0, y++, W, s);
  if (!wide) {
    load_rows(c, 0, y, side ? load_w : W, L + 1, s);
    if (side) domains(c, load_w + 2, y, W - load_w - 2, D + 1, s, 0);
    if (stacked) domains(c, 0, y + L + 1, W, D + 1, s, 0);
    return c;
  }
  // Wide: a heat map per MoE layer (as many as fit side by side), then Figure 9.
  const int map_h = E + 1;
  const int per = L > 0 ? std::max(30, W / std::max(1, std::min(L, W / 30))) : W;
  for (int l = 0, xx = 0; l < L && xx + 30 <= W; ++l, xx += per)
    train_plot::heatmap(c, xx, y + 1, std::min(per - 1, W - xx), std::min(map_h, H - 2 - y), s, l,
                        s.history.size());
  y += 1 + map_h;
  if (D > 0 && y + D + 1 < H) {
    const int dw = std::max(40, W / std::max(1, std::min(L, W / 40)));
    for (int l = 0, xx = 0; l < L && xx + 40 <= W; ++l, xx += dw)
      domains(c, xx, y, std::min(dw - 1, W - xx), D + 1, s, l);
  }
  return c;
}

}  // namespace dsv3::viz
