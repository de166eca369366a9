// Panel 9 in compare mode: two runs from the same seed and data side by side (loss-free vs
// auxiliary-loss balancing, or fp32 vs fp8), every chart on one axis for both and one step axis,
// so a gap on screen is a gap in the numbers. Run A draws ●, run B ○.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <utility>

#include "visualizers/explorer_style.h"
#include "visualizers/train_panel.h"

namespace dsv3::viz {
namespace {
namespace st = style;
using train::LiveStep;
using train::TrainSnapshot;
using train_plot::chart;
using train_plot::columns;
using train_plot::Series;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr Style kA{75, kDefault, kNone}, kB{209, kDefault, kNone};

// What tells the runs apart: the balancing mode, else the precision, else A and B.
std::pair<std::string, std::string> labels(const TrainSnapshot& a, const TrainSnapshot& b) {
  const auto& oa = a.options;
  const auto& ob = b.options;
  if (oa.objective.balance != ob.objective.balance)
    return {train::to_string(oa.objective.balance), train::to_string(ob.objective.balance)};
  if (oa.precision.precision != ob.precision.precision)
    return {train::to_string(oa.precision.precision), train::to_string(ob.precision.precision)};
  return {"A", "B"};
}

double mean_vio(const LiveStep& r) {
  if (r.max_vio.empty()) return kNaN;
  double m = 0;
  for (double v : r.max_vio) m += v / static_cast<double>(r.max_vio.size());
  return m;
}

// One run's line: state, step, the last step's losses, the latest validation loss, MaxVio,
// tokens/s; on a narrow line the speed goes first, then the total loss.
std::string run_line(const TrainSnapshot& s, int width) {
  std::string t = fmt::format("{} step {}/{}", train::to_string(s.state), s.step, s.steps);
  if (s.history.empty()) return t + " · no steps yet";
  const LiveStep& r = s.history.back();
  std::string val = "-";
  for (auto it = s.history.rbegin(); it != s.history.rend(); ++it)
    if (it->val_loss) {
      val = fmt::format("{:.3f}", *it->val_loss);
      break;
    }
  const std::string loss = fmt::format(" · loss {:.3f}", r.loss);
  const std::string rest =
      fmt::format(" main {:.3f} val {} · MaxVio {:.2f}", r.loss_main, val, mean_vio(r));
  const std::string speed = fmt::format(" · {:.0f} tok/s", s.tokens_per_s);
  const int n = display_width(t + loss + rest);
  if (n + display_width(speed) <= width) return t + loss + rest + speed;
  if (n <= width) return t + loss + rest;
  return t + " ·" + rest;
}

// The last step's load of MoE layer l as shades (experts as columns) and its MaxVio.
int load_cells(Canvas& c, int x, int y, const TrainSnapshot& s, size_t l, Style s_glyph,
               char32_t glyph) {
  c.put(x, y, glyph, s_glyph);
  int xx = x + 2;
  if (s.history.empty() || l >= s.history.back().expert_load.size()) return xx;
  const LiveStep& r = s.history.back();
  for (size_t e = 0; e < r.expert_load[l].size(); ++e, ++xx) {
    const double v = train_plot::load_shade(r.expert_load[l], e);
    c.put(xx, y, st::shade(v), Style{st::heat_color(v), kDefault, kNone});
  }
  return c.text(xx, y, fmt::format(" {:.2f}", l < r.max_vio.size() ? r.max_vio[l] : 0.0));
}

}  // namespace

Canvas train_compare_panel(const TrainSnapshot& a, const TrainSnapshot& b, int W, int H,
                           int64_t shown_step) {
  Canvas c(std::max(W, 1), std::max(H, 1));
  if (W < 40 || H < 10) {
    c.text(0, 0, "train compare: needs at least 40x10", st::kDim);
    return c;
  }
  const auto [la, lb] = labels(a, b);
  const std::string data = std::filesystem::path(a.options.data).filename().string();
  // The data file's name gives way first when the line is narrow.
  std::string what = fmt::format(" · {} · seed {} · {} · ", a.options.model, a.options.seed, data);
  if (7 + display_width(what) + display_width(la) + display_width(lb) + 8 > W)
    what = fmt::format(" · {} · seed {} · ", a.options.model, a.options.seed);
  int x = c.text(0, 0, "compare", st::kBold);
  x = c.text(x, 0, what);
  x = c.text(x, 0, "● " + la, Style{75, kDefault, kBold});
  x = c.text(x, 0, " vs ");
  st::text_clip(c, x, 0, "○ " + lb, W - x, Style{209, kDefault, kBold});
  c.put(0, 1, U'●', kA);
  st::text_clip(c, 2, 1, la + ": " + run_line(a, W - 4 - display_width(la)), W - 2);
  c.put(0, 2, U'○', kB);
  st::text_clip(c, 2, 2, lb + ": " + run_line(b, W - 4 - display_width(lb)), W - 2);

  const int L = static_cast<int>(std::max(a.moe_layers.size(), b.moe_layers.size()));
  const bool wide = W >= 120 && H >= 30;
  const int E = static_cast<int>(std::max(a.experts, b.experts));
  // Below the charts: the lr row, the load rows (one per MoE layer, both runs), and (wide) the
  // first MoE layer's heat map for each run.
  int below = 1 + (L + 1) + 1;
  if (wide) below += E + 2;
  const int chart_h = std::clamp(H - 3 - below, 4, wide ? 18 : H);
  const int nchart = wide ? 3 : 2;
  const int cw = W / nchart, cols = cw - 9;
  // One step axis: the longer history sets the columns of both.
  const size_t n = std::max(a.history.size(), b.history.size());
  auto col = [&](const TrainSnapshot& s, auto f) { return columns(s.history, n, cols, f); };
  auto main_loss = [](const LiveStep& r) { return r.loss_main; };
  auto val = [](const LiveStep& r) { return r.val_loss ? *r.val_loss : kNaN; };
  const int marker = shown_step >= 0 ? train_plot::column_of(a.history, shown_step, n, cols) : -1;
  chart(c, 0, 3, cw - 3, chart_h, "main loss (log), ◆◇ val",
        {{col(b, main_loss), U'○', kB},
         {col(a, main_loss), U'●', kA},
         {col(b, val), U'◇', Style{209, kDefault, kBold}},
         {col(a, val), U'◆', Style{75, kDefault, kBold}}},
        true, marker);
  chart(c, cw, 3, cw - 3, chart_h, "MaxVio, mean of MoE layers",
        {{col(b, mean_vio), U'○', kB}, {col(a, mean_vio), U'●', kA}}, false);
  if (wide) {
    auto gn = [](const LiveStep& r) { return r.grad_norm; };
    chart(c, 2 * cw, 3, W - 2 * cw, chart_h, "grad norm (log)",
          {{col(b, gn), U'○', kB}, {col(a, gn), U'●', kA}}, true);
  }
  int y = 3 + chart_h;
  train_plot::lr_row(c, 0, y++, W, a);
  st::text_clip(c, 0, y++, "load/mean of the last step per MoE layer (·0 █2x) and its MaxVio", W,
                st::kLabel);
  const int xb = 4 + E + 10;  // run B's cells, after A's and its MaxVio
  for (int l = 0; l < L && y < H - 1; ++l, ++y) {
    c.text(0, y, train_plot::layer_name(a, l), st::kDim);
    load_cells(c, 4, y, a, l, kA, U'●');
    if (xb + E + 8 <= W) load_cells(c, xb, y, b, l, kB, U'○');
  }
  if (wide && L > 0 && y + 2 < H - 1) {
    const int hw = W / 2;
    const int mh = std::min(E + 1, H - 2 - y);
    train_plot::heatmap(c, 0, y + 1, hw - 1, mh, a, 0, n,
                        fmt::format("● {} · {} load/mean, experts x steps · b_i", la,
                                    train_plot::layer_name(a, 0)));
    train_plot::heatmap(c, hw, y + 1, W - hw, mh, b, 0, n,
                        fmt::format("○ {} · {} load/mean, experts x steps · b_i", lb,
                                    train_plot::layer_name(b, 0)));
  }
  std::string foot = a.message.empty() ? b.message : a.message;
  if (shown_step >= 0)
    foot = fmt::format("panels 1-8: step {}'s weights of ● {}{}{}", shown_step, la,
                       foot.empty() ? "" : " · ", foot);
  if (!foot.empty()) st::text_clip(c, 0, H - 1, foot, W, st::kDim);
  return c;
}

}  // namespace dsv3::viz
