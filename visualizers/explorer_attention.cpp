// Attention, logits and the pipeline placeholder: the panels about one token's context and output.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "visualizers/explorer_panels.h"
#include "visualizers/explorer_style.h"

namespace dsv3::viz {

namespace {
namespace st = style;
Canvas finish(Canvas& c, int h) {
  return h > 0 ? c : st::crop_rows(c, std::max(1, st::used_rows(c)));
}
}  // namespace

Canvas attention_panel(const ExplorerView& v, int w, int h) {
  Canvas c(w, h > 0 ? h : 200);
  if (!v.config || !v.has_trace()) {
    c.text(0, 0, "No token computed yet: press → or type `step`.", st::kDim);
    return finish(c, h);
  }
  const model::TokenTrace& tt = v.trace();
  if (v.layer < 0 || v.layer >= (int)tt.layers.size() || tt.layers[v.layer].attn.empty()) {
    c.text(0, 0, "No attention weights were traced for this layer.", st::kDim);
    return finish(c, h);
  }
  const auto& attn = tt.layers[v.layer].attn;  // [heads][positions 0..t]
  int n = static_cast<int>(attn[0].size());
  int label_w = 8;
  int pw = std::clamp((w - label_w) / std::max(1, n), 1, 3);
  int fit = (w - label_w) / pw;
  int first = std::max(0, n - fit);  // long contexts: the most recent positions
  st::text_clip(
      c, 0, 0,
      fmt::format("layer {} · {} at position {} attends to positions 0..{} (softmax, eq. 10)",
                  v.layer, token_label(v, v.cursor), v.cursor, n - 1),
      w, st::kBold);
  int y = 1;
  c.text(0, y, first > 0 ? fmt::format("…{}", first) : "token", st::kLabel);
  for (int p = first; p < n; ++p) {
    std::string t = p < (int)v.token_text.size() ? v.token_text[p] : "?";
    std::u32string u = utf8_decode(t);
    if (u.size() > 1 && u[0] == U'⟨') u = u.substr(1, 1);  // ⟨bos⟩ -> b
    if ((int)u.size() > std::max(1, pw - 1)) u.resize(std::max(1, pw - 1));
    int x = label_w + (p - first) * pw;
    for (size_t i = 0; i < u.size(); ++i)
      c.put(x + static_cast<int>(i), y, u[i], p == v.cursor ? st::kCursor : st::kLabel);
  }
  ++y;
  int heads = static_cast<int>(attn.size());
  int room = (h > 0 ? h : 200) - y - 2;
  int shown = std::min(heads, std::max(1, room));
  for (int hd = 0; hd < shown; ++hd, ++y) {
    c.text(0, y, fmt::format("head {:<2}", hd), st::kLabel);
    float mx = *std::max_element(attn[hd].begin(), attn[hd].end());
    for (int p = first; p < n; ++p) {
      double f = mx > 0 ? attn[hd][p] / mx : 0;
      Style s{st::heat_color(f), kDefault, attn[hd][p] == mx ? kBold : kNone};
      for (int i = 0; i < std::max(1, pw - 1); ++i)
        c.put(label_w + (p - first) * pw + i, y, st::shade(f), s);
    }
  }
  if (shown < heads)
    c.text(0, y++, fmt::format("(+{} more heads: `attn {} HEAD`)", heads - shown, v.layer),
           st::kDim);
  // Where each head looks most, in words.
  std::string most = "strongest:";
  for (int hd = 0; hd < heads; ++hd) {
    auto it = std::max_element(attn[hd].begin(), attn[hd].end());
    int p = static_cast<int>(it - attn[hd].begin());
    most += fmt::format(" h{}→{} {:.2f}", hd, token_label(v, p), *it);
  }
  st::text_clip(c, 0, y++, most, w, st::kDim);
  st::text_clip(c, 0, y++, "shade/colour = weight relative to the head's largest (bold)", w,
                st::kDim);
  return finish(c, h);
}

Canvas logits_panel(const ExplorerView& v, int w, int h) {
  Canvas c(w, h > 0 ? h : 200);
  if (!v.config || !v.has_trace()) {
    c.text(0, 0, "No token computed yet: press → or type `step`.", st::kDim);
    return finish(c, h);
  }
  const model::TokenTrace& tt = v.trace();
  st::text_clip(
      c, 0, 0,
      fmt::format("next-token candidates after {} at position {} (softmax over {} logits)",
                  token_label(v, v.cursor), v.cursor, v.config->vocab_size),
      w, st::kBold);
  int chosen = v.cursor + 1 < (int)v.token_ids.size() ? v.token_ids[v.cursor + 1] : -1;
  int y = 1;
  // Random weights, said out loud: their ranking is noise, not a language model's guess.
  if (!v.weights_note.empty())
    st::text_clip(c, 0, y++,
                  fmt::format("{}: this ranking says nothing about language", v.weights_note), w,
                  st::kWarn);
  c.text(0, y, "rank  token        id    probability", st::kLabel);
  ++y;
  int bar_w = std::max(4, w - 44);
  float top = tt.top_next.empty() ? 1.f : tt.top_next.front().second;
  for (size_t i = 0; i < tt.top_next.size() && y < c.height(); ++i, ++y) {
    auto [id, p] = tt.top_next[i];
    bool is_next = id == chosen;
    c.text(0, y, fmt::format("{:>4}", i + 1), st::kLabel);
    std::string label = v.describe_token ? "'" + v.describe_token(id) + "'" : std::to_string(id);
    st::text_clip(c, 6, y, label, 10, is_next ? st::kAccent : st::kPlain);
    c.text(17, y, fmt::format("{:>5}", id), st::kLabel);
    c.text(24, y, st::hbar(top > 0 ? p / top : 0, bar_w),
           Style{st::heat_color(p / std::max(top, 1e-9f)), kDefault, kNone});
    c.text(25 + bar_w, y, fmt::format("{:>6.2f}%", 100.0 * p));
    if (is_next) c.text(33 + bar_w, y, "◀ next", st::kAccent);
  }
  if (chosen < 0 && y < c.height()) {
    ++y;
    st::text_clip(c, 0, y, "→ computes the next token (greedy unless `set temperature T`).", w,
                  st::kDim);
  }
  return finish(c, h);
}

Canvas unavailable_panel(const std::string& what, int w, int h) {
  Canvas c(w, h > 0 ? h : 1);
  st::text_clip(c, 0, 0,
                fmt::format("The {} panel needs a session (the explorer, `dsv3 repl`).", what), w,
                st::kDim);
  return finish(c, h);
}

}  // namespace dsv3::viz
