// Routing panel: which experts each layer picks for the current token, and why.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "visualizers/explorer_columns.h"
#include "visualizers/explorer_panels.h"
#include "visualizers/explorer_style.h"

namespace dsv3::viz {

namespace {

namespace st = style;

using Columns = ExpertColumns;
Columns columns(const model::Config& c, int w) {
  return ExpertColumns::fit(c, w);
}

// Min and max of a layer's scores, so colour spreads over what this token actually saw.
std::pair<float, float> range(const std::vector<float>& s) {
  if (s.empty()) return {0.f, 1.f};
  auto [lo, hi] = std::minmax_element(s.begin(), s.end());
  return {*lo, *hi > *lo ? *hi : *lo + 1e-6f};
}

bool contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// The biases b_i in force when this token was routed (eq. 16), never today's: live balancing
// moves the model's biases after the token, and s + b must still equal the recorded s+b. Traces
// without a recorded bias (built by hand) give b = (s+b) - s.
std::vector<float> bias_at(const model::Config& cfg, const model::LayerTrace& lt) {
  if (!lt.bias.empty() || !cfg.has_correction_bias()) return lt.bias;
  const model::RouteResult& r = lt.router;
  std::vector<float> b(r.biased.size());
  for (size_t i = 0; i < b.size() && i < r.scores.size(); ++i) b[i] = r.biased[i] - r.scores[i];
  return b;
}

// A score's shade in a kept group: ░▒▓█ only, so the lowest score never looks like the `·` of a
// dropped group (style::shade starts at `·`), with or without colour.
char32_t score_glyph(double v) {
  static constexpr char32_t g[4] = {U'░', U'▒', U'▓', U'█'};
  return g[std::clamp(static_cast<int>(v * 4), 0, 3)];
}

int rank_of(const std::vector<int>& v, int x) {
  auto it = std::find(v.begin(), v.end(), x);
  return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}

void right(Canvas& c, int x, int y, int width, const std::string& s, Style style) {
  int n = display_width(s);
  c.text(x + std::max(0, width - n), y, s, style);
}

int draw_grid(Canvas& c, const ExplorerView& v, const Columns& k, int y, std::vector<Hit>* hits) {
  const model::TokenTrace& tt = v.trace();
  // Group and expert headers.
  c.text(0, y, "group", st::kLabel);
  for (int g = 0; g < k.groups; ++g) {
    int e0 = g * k.per_group;
    if (e0 >= k.shown) break;
    c.text(k.x(e0), y, k.per_group * k.cw >= 3 ? fmt::format("g{}", g) : "", st::kLabel);
  }
  ++y;
  c.text(0, y, "expert", st::kLabel);
  for (int e = 0; e < k.shown; ++e) {
    std::string num = std::to_string(e);
    const int room = k.cw - (k.cw > 2 ? 1 : 0);
    // Columns without a gap (cw <= 2) would run two-digit labels together ("1011"): label
    // every other expert there ("10  12").
    bool fits = (int)num.size() < room || ((int)num.size() == room && (k.cw > 2 || e % 2 == 0));
    if (!fits && e % k.per_group != 0) continue;
    Style s = e == v.expert ? Style{75, kDefault, kBold | kUnderline} : st::kLabel;
    right(c, k.x(e), y, std::max<int>(k.cw - 1, num.size()), num, s);
  }
  ++y;
  for (int l = 0; l < v.num_layers() && l < (int)tt.layers.size(); ++l, ++y) {
    const model::LayerTrace& lt = tt.layers[l];
    bool sel = l == v.layer;
    c.text(0, y, fmt::format("{}L{}", sel ? "▶ " : "  ", l), sel ? st::kAccent : st::kLabel);
    if (hits) hits->push_back(Hit{0, y, k.label_w, 1, Hit::kLayer, l});
    if (!lt.moe || lt.router.scores.empty()) {
      c.text(k.label_w, y, "dense FFN: every token takes the same path", st::kDim);
      continue;
    }
    auto [lo, hi] = range(lt.router.scores);
    for (int e = 0; e < k.shown; ++e) {
      double val = (lt.router.scores[e] - lo) / (hi - lo);
      int group = e / k.per_group;
      bool kept = lt.router.groups_kept.empty() || contains(lt.router.groups_kept, group);
      bool chosen = contains(lt.router.topk_idx, e);
      int body = std::max(1, k.cw - (k.cw > 2 ? 1 : 0));
      for (int i = 0; i < body; ++i) {
        if (chosen)
          c.put(k.x(e) + i, y, U'●', Style{231, st::heat_color(val), kBold});
        else if (!kept)
          c.put(k.x(e) + i, y, U'·', st::kDim);
        else
          c.put(k.x(e) + i, y, score_glyph(val), Style{st::heat_color(val), kDefault, kNone});
      }
      if (hits) hits->push_back(Hit{k.x(e), y, k.cw, 1, Hit::kExpert, e, l});
    }
    for (int g = 1; g < k.groups && g * k.per_group < k.shown; ++g)
      c.put(k.x(g * k.per_group) - 1, y, U'│', st::kFrame);
  }
  if (k.shown < k.experts)
    c.text(0, y++,
           fmt::format("(experts {}..{} do not fit; `route` prints all)", k.shown, k.experts - 1),
           st::kDim);
  st::text_clip(c, 0, y, "● chosen   ░▒▓█ score s (low→high, per layer)   · dropped group (eq. 16)",
                c.width(), st::kDim);
  return y + 1;
}

// The selected layer's gate, one row per step of the paper's equations.
int draw_table(Canvas& c, const ExplorerView& v, const Columns& k, const model::LayerTrace& lt,
               int y) {
  const model::RouteResult& r = lt.router;
  const model::Config& cfg = *v.config;
  int nw = k.cw - 1;
  double scale = 1.0;
  auto row = [&](const char* eq, const char* name, auto value_of, Style vs) {
    c.text(0, y, eq, st::kEquation);
    // Names start at column 5; a longer one (b×100) moves left to keep a gap before the values.
    c.text(std::min(5, k.x(0) - 1 - display_width(name)), y, name, st::kLabel);
    for (int e = 0; e < k.shown; ++e) {
      auto [text, style] = value_of(e);
      right(c, k.x(e), y, nw, text, style.fg == kDefault && style.attr == kNone ? vs : style);
    }
    ++y;
  };
  row(
      "(15)", "s",
      [&](int e) {
        return std::pair{st::fit_num(r.scores[e], nw), Style{}};
      },
      st::kPlain);
  const std::vector<float> bias = bias_at(cfg, lt);
  if (!bias.empty()) {
    float mx = 0;
    for (float b : bias) mx = std::max(mx, std::fabs(b));
    // Cells of 3-4 characters print -0.14 as "-.1", so s + b would not add up to the s+b row:
    // below 1, b×100 keeps two decimals ("-14"), as s and s+b have.
    scale = (mx < 1.0f && nw <= 4) ? 100.0 : 1.0;
    // The scale sits in the row label (as the Load panel's `b×100`), never on a line of its own
    // that a short panel cuts.
    row(
        "", scale == 100.0 ? "b×100" : "b",
        [&](int e) {
          double b = bias[e] * scale;
          return std::pair{st::fit_num(b, nw), b > 0   ? st::kGood
                                               : b < 0 ? Style{203, kDefault, kNone}
                                                       : st::kPlain};
        },
        st::kPlain);
    row(
        "(16)", "s+b",
        [&](int e) {
          bool chosen = contains(r.topk_idx, e);
          return std::pair{st::fit_num(r.biased[e], nw), chosen ? st::kBold : Style{}};
        },
        st::kPlain);
  }
  // Group-limited routing: one score per group, the best topk_group groups survive.
  if (k.groups > 1 && !r.group_scores.empty()) {
    c.text(5, y, "grp", st::kLabel);
    for (int g = 0; g < k.groups && g * k.per_group < k.shown; ++g) {
      bool kept = contains(r.groups_kept, g);
      std::string s =
          fmt::format("{} {}", st::fit_num(r.group_scores[g], 4), kept ? "kept" : "drop");
      st::text_clip(c, k.x(g * k.per_group), y, s, k.per_group * k.cw - 1,
                    kept ? st::kGood : st::kDim);
    }
    ++y;
  }
  row(
      "(16)", "top",
      [&](int e) {
        int rk = rank_of(r.topk_idx, e);
        return std::pair{rk < 0 ? std::string("") : fmt::format("#{}", rk + 1), st::kAccent};
      },
      st::kAccent);
  row(
      "(13)", "g",
      [&](int e) {
        int rk = rank_of(r.topk_idx, e);
        return std::pair{rk < 0 ? std::string("") : st::fit_num(r.topk_weight[rk], nw), st::kBold};
      },
      st::kBold);
  std::string why =
      cfg.has_correction_bias()
          ? fmt::format("s+b only picks the experts; the weights use s: g = s/Σs × {}",
                        cfg.routed_scaling_factor)
          : fmt::format("weights g = s{} × {}", cfg.norm_topk_prob ? "/Σs" : "",
                        cfg.routed_scaling_factor);
  st::text_clip(c, 0, y++, why, c.width(), st::kDim);
  return y;
}

// Narrow fallback: the chosen experts as a list.
int draw_list(Canvas& c, const ExplorerView& v, const model::LayerTrace& lt, int y) {
  const model::RouteResult& r = lt.router;
  const std::vector<float> bias = bias_at(*v.config, lt);
  if (!r.groups_kept.empty()) {
    std::string g = "groups kept (top-2 sum of s+b):";
    for (int x : r.groups_kept) g += fmt::format(" g{} ({:.3f})", x, r.group_scores[x]);
    st::text_clip(c, 0, y++, g, c.width(), st::kGood);
  }
  for (size_t i = 0; i < r.topk_idx.size(); ++i) {
    int e = r.topk_idx[i];
    float b = e < (int)bias.size() ? bias[e] : 0.f;
    std::string s =
        fmt::format("#{} expert {:>3}  (15) s={:.3f}  b={:+.4f}  (16) s+b={:.3f}  (13) g={:.3f}",
                    i + 1, e, r.scores[e], b, r.biased[e], r.topk_weight[i]);
    st::text_clip(c, 0, y++, s, c.width(), i == 0 ? st::kBold : st::kPlain);
  }
  return y;
}

}  // namespace

Canvas routing_panel(const ExplorerView& v, int w, int h, std::vector<Hit>* hits) {
  Canvas c(w, h > 0 ? h : 200);
  if (!v.config || !v.has_trace()) {
    c.text(0, 0, "No token computed yet: press → or type `step`.", st::kDim);
    return h > 0 ? c : st::crop_rows(c, 1);
  }
  const model::Config& cfg = *v.config;
  if (cfg.n_routed_experts == 0) {
    c.text(0, 0, "This model is dense: every layer is a plain SwiGLU FFN, nothing to route.",
           st::kDim);
    return h > 0 ? c : st::crop_rows(c, 1);
  }
  const model::TokenTrace& tt = v.trace();
  Columns k = columns(cfg, w);
  std::string head =
      fmt::format("token {} at position {} · top-{} of {} experts", token_label(v, v.cursor),
                  v.cursor, cfg.num_experts_per_tok, cfg.n_routed_experts);
  if (cfg.n_group > 1) head += fmt::format(" within {} of {} groups", cfg.topk_group, cfg.n_group);
  st::text_clip(c, 0, 0, head, w, st::kBold);
  int y = draw_grid(c, v, k, 1, hits);
  if (v.layer >= 0 && v.layer < (int)tt.layers.size() && y + 3 <= c.height()) {
    const model::LayerTrace& lt = tt.layers[v.layer];
    ++y;
    if (!lt.moe || lt.router.scores.empty()) {
      st::text_clip(
          c, 0, y++,
          fmt::format(
              "Layer {} is dense (first_k_dense_replace = {}): no gate. ↑↓ picks a MoE layer.",
              v.layer, cfg.first_k_dense_replace),
          w, st::kDim);
    } else {
      st::text_clip(
          c, 0, y++,
          fmt::format(
              "Layer {} gate, step by step (§2.1.2; {} + bias, group-limited top-{}):", v.layer,
              cfg.scoring_func == model::ScoringFunc::kSigmoid ? "sigmoid" : "softmax",
              cfg.num_experts_per_tok),
          w, st::kAccent);
      bool roomy = k.cw >= 4 && k.shown == k.experts;
      y = roomy ? draw_table(c, v, k, lt, y) : draw_list(c, v, lt, y);
    }
  }
  if (h > 0) {
    if (hits) std::erase_if(*hits, [&](const Hit& x) { return x.y >= h; });
    return st::crop_rows(c, h);
  }
  return st::crop_rows(c, st::used_rows(c));
}

}  // namespace dsv3::viz
