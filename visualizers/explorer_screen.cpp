#include "visualizers/explorer_screen.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "visualizers/explorer_style.h"

namespace dsv3::viz {

namespace {
namespace st = style;

void offset_hits(std::vector<Hit>& from, std::vector<Hit>& to, int dx, int dy) {
  for (Hit h : from) {
    h.x += dx;
    h.y += dy;
    to.push_back(h);
  }
  from.clear();
}

// Panels shown beside the active one on a large terminal, in order of preference.
std::array<Panel, 3> companions(Panel active) {
  static constexpr std::array<Panel, 5> order{Panel::kLogits, Panel::kAttention, Panel::kLoad,
                                              Panel::kRouting, Panel::kKv};
  std::array<Panel, 3> out{};
  size_t n = 0;
  for (Panel p : order)
    if (p != active && n < out.size()) out[n++] = p;
  return out;
}

void framed_panel(Canvas& screen, std::vector<Hit>& hits, const ExplorerView& v,
                  const ScreenState& s, Panel p, int x, int y, int w, int h) {
  bool active = p == s.active;
  std::string title = fmt::format("{} {}", static_cast<int>(p) + 1, panel_title(p));
  screen.frame(x, y, w, h, title, active ? Style{75, kDefault, kNone} : st::kFrame);
  std::vector<Hit> local;
  Canvas body = panel_canvas(v, p, s.real, w - 4, h - 2, &local);
  screen.blit(body, x + 2, y + 1);
  offset_hits(local, hits, x + 2, y + 1);
  hits.push_back(Hit{x, y, w, 1, Hit::kTab, static_cast<int>(p)});
}

Canvas tab_bar(Panel active, int w, std::vector<Hit>* hits) {
  Canvas c(w, 1);
  c.fill(0, 0, w, 1, U' ', st::kTab);
  int full = 1;
  for (int i = 0; i < kPanelCount; ++i)
    full += display_width(fmt::format(" {} {} ", i + 1, panel_title(static_cast<Panel>(i)))) + 1;
  // Full titles with a gap between tabs; full titles without the gap (each tab keeps its own
  // padding); else the short titles.
  const int gap = full > w && full - kPanelCount <= w ? 0 : 1;
  bool shrt = full - (1 - gap) * kPanelCount > w;
  int x = 1;
  for (int i = 0; i < kPanelCount; ++i) {
    auto p = static_cast<Panel>(i);
    std::string t = fmt::format(" {} {} ", i + 1, shrt ? panel_short_title(p) : panel_title(p));
    int start = x;
    x = c.text(x, 0, t, i == static_cast<int>(active) ? st::kTabActive : st::kTab);
    if (hits) hits->push_back(Hit{start, 0, x - start, 1, Hit::kTab, i});
    x += gap;
  }
  return c;
}

Canvas status_line(const ScreenState& s, int w, int* cursor_x) {
  Canvas c(w, 1);
  c.fill(0, 0, w, 1, U' ', st::kTab);
  if (!s.input.empty()) {
    int x = c.text(0, 0, s.input, Style{231, 236, kNone});
    // What Tab would complete to, while typing (dim, never over the input).
    if (!s.input_hint.empty() && x + 3 < w)
      st::text_clip(c, x + 2, 0, s.input_hint, w - x - 3, Style{245, 236, kNone});
    if (cursor_x) *cursor_x = std::min(w - 1, s.input_cursor);
    return c;
  }
  if (!s.progress.empty()) {
    st::text_clip(c, 1, 0, s.progress, w - 2, Style{221, 236, kBold});
    return c;
  }
  // A message wins over the key hints: it gets the whole line, the hints only the room left.
  int hint_w = display_width(s.hints);
  int msg_room = w - 2;
  if (!s.message.empty())
    st::text_clip(c, 1, 0, s.message, msg_room,
                  s.message_error ? Style{203, 236, kBold} : Style{252, 236, kNone});
  if (hint_w + 2 <= w - 1 - (s.message.empty() ? 0 : std::min(msg_room, display_width(s.message))))
    c.text(w - 1 - hint_w, 0, s.hints, Style{245, 236, kNone});
  return c;
}

Canvas popup_box(const Popup& p, int w, int h) {
  int bw = std::min(w, std::max(p.body.width() + 4, 40));
  int bh = std::min(h, p.body.height() + 3);
  Canvas c(bw, bh);
  c.fill(0, 0, bw, bh, U' ');
  c.frame(0, 0, bw, bh, p.title, Style{75, kDefault, kNone});
  int rows = bh - 3;
  for (int j = 0; j < rows && p.scroll + j < p.body.height(); ++j)
    for (int i = 0; i < p.body.width() && i + 2 < bw - 1; ++i)
      c.at(i + 2, j + 1) = p.body.at(i, p.scroll + j);
  std::string foot = p.body.height() > rows
                         ? fmt::format(" ↑↓ scroll ({}-{} of {}) · Esc close ", p.scroll + 1,
                                       std::min(p.body.height(), p.scroll + rows), p.body.height())
                         : " Esc or Enter closes ";
  st::text_clip(c, 2, bh - 2, foot, bw - 4, st::kDim);
  return c;
}
}  // namespace

const char* panel_title(Panel p) {
  switch (p) {
    case Panel::kRouting:
      return "Routing";
    case Panel::kLoad:
      return "Expert load";
    case Panel::kKv:
      return "KV cache";
    case Panel::kAttention:
      return "Attention";
    case Panel::kPipeline:
      return "Pipeline";
    case Panel::kLogits:
      return "Logits";
    case Panel::kMtp:
      return "MTP";
    case Panel::kFp8:
      return "FP8";
    case Panel::kTrain:
      return "Train";
  }
  return "?";
}

const char* panel_short_title(Panel p) {
  switch (p) {
    case Panel::kRouting:
      return "Route";
    case Panel::kLoad:
      return "Load";
    case Panel::kKv:
      return "KV";
    case Panel::kAttention:
      return "Attn";
    case Panel::kPipeline:
      return "Pipe";
    case Panel::kLogits:
      return "Logit";  // nine tabs fit 80 columns
    default:
      return panel_title(p);
  }
}

Canvas panel_canvas(const ExplorerView& v, Panel p, const model::Config* real, int w, int h,
                    std::vector<Hit>* hits) {
  switch (p) {
    case Panel::kRouting:
      return routing_panel(v, w, h, hits);
    case Panel::kLoad:
      return load_panel(v, w, h, hits);
    case Panel::kKv:
      return kv_panel(v, real, w, h);
    case Panel::kAttention:
      return attention_panel(v, w, h);
    case Panel::kPipeline:
      return v.pipeline_panel ? v.pipeline_panel(w, h) : unavailable_panel("pipeline", w, h);
    case Panel::kLogits:
      return logits_panel(v, w, h);
    case Panel::kMtp:
      return v.mtp_panel ? v.mtp_panel(w, h) : unavailable_panel("MTP", w, h);
    case Panel::kFp8:
      return v.fp8_panel ? v.fp8_panel(w, h) : unavailable_panel("FP8", w, h);
    case Panel::kTrain:
      return v.train_panel ? v.train_panel(w, h) : unavailable_panel("train", w, h);
  }
  return Canvas(w, std::max(h, 1));
}

Canvas header_bar(const ExplorerView& v, int w) {
  Canvas c(w, 1);
  c.fill(0, 0, w, 1, U' ', st::kHeader);
  std::string left = w >= 100 ? " dsv3 explorer" : " dsv3";  // narrow: room for the model
  // A random-weight model says so first: its routing, load and MTP numbers are noise.
  const std::string name =
      v.weights_note.empty() ? v.model_name : fmt::format("{} ({})", v.model_name, v.weights_note);
  std::string model =
      v.config
          ? fmt::format("{} · {} layers · {} experts, top-{}", name, v.config->num_hidden_layers,
                        v.config->n_routed_experts, v.config->num_experts_per_tok)
          : "no model";
  int computed = v.traces ? static_cast<int>(v.traces->size()) : 0;
  std::string right = fmt::format(
      "{}pos {}/{} · {} · {} ", v.balancing ? fmt::format("balancing γ={:g} · ", v.gamma) : "",
      std::max(0, v.cursor), std::max(0, computed - 1), v.attn_impl, v.precision);
  int x = c.text(0, 0, left, st::kHeader);
  x = c.text(x, 0, " │ ", st::kHeader);
  int rw = display_width(right);
  st::text_clip(c, x, 0, model, w - x - rw - 1, Style{231, 24, kNone});
  if (rw < w) c.text(w - rw, 0, right, st::kHeader);
  return c;
}

Canvas token_strip(const ExplorerView& v, int w, std::vector<Hit>* hits) {
  Canvas c(w, 1);
  int n = static_cast<int>(v.token_text.size());
  std::vector<int> x0(n + 1, 0);
  for (int i = 0; i < n; ++i) x0[i + 1] = x0[i] + display_width(v.token_text[i]);
  // Scroll so that the cursor sits in view, about two thirds across when the text is long.
  int cur = std::clamp(v.cursor, 0, std::max(0, n - 1));
  int offset = 0;
  if (n > 0 && x0[n] > w) offset = std::clamp(x0[cur] - (2 * w) / 3, 0, x0[n] - w + 1);
  int computed = v.traces ? static_cast<int>(v.traces->size()) : 0;
  for (int i = 0; i < n; ++i) {
    int x = x0[i] - offset + (offset > 0 ? 1 : 0);
    if (x + display_width(v.token_text[i]) <= 0 || x >= w) continue;
    Style s = i < v.prompt_len ? st::kPlain : st::kGenerated;
    if (i > v.cursor) s.attr |= kDim;
    if (i >= computed) s = st::kDim;
    if (i == v.cursor) s = st::kCursor;
    c.text(x, 0, v.token_text[i], s);
    if (hits)
      hits->push_back(Hit{std::max(0, x), 0, display_width(v.token_text[i]), 1, Hit::kToken, i});
  }
  if (offset > 0) c.put(0, 0, U'…', st::kDim);
  return c;
}

Canvas help_overlay(const std::vector<KeyHelp>& keys, int w, int h) {
  int key_w = 4;
  for (const KeyHelp& k : keys) key_w = std::max(key_w, display_width(k.keys));
  int bw = std::min(w, 78);
  int bh = std::min(h, static_cast<int>(keys.size()) + 5);
  Canvas c(bw, bh);
  c.fill(0, 0, bw, bh, U' ');
  c.frame(0, 0, bw, bh, "Keys · dsv3 explorer", Style{75, kDefault, kNone});
  int y = 1;
  for (const KeyHelp& k : keys) {
    if (y >= bh - 4) break;
    c.text(2, y, k.keys, st::kAccent);
    st::text_clip(c, 3 + key_w, y, k.action, bw - key_w - 5);
    ++y;
  }
  ++y;
  st::text_clip(c, 2, y++, "Commands: `:help`, `:help CMD`; the same commands run in `dsv3 repl`.",
                bw - 4, st::kDim);
  st::text_clip(c, 2, y, "Press ? or Esc to close.", bw - 4, st::kDim);
  return c;
}

Canvas size_message(int w, int h, int need_w, int need_h) {
  Canvas c(std::max(w, 1), std::max(h, 1));
  std::array<std::string, 4> lines{"Terminal too small", fmt::format("now {}x{}", w, h),
                                   fmt::format("needs {}x{}", need_w, need_h), "q quits"};
  int y = std::max(0, h / 2 - 2);
  for (size_t i = 0; i < lines.size(); ++i) {
    int x = std::max(0, (w - display_width(lines[i])) / 2);
    Style s = i == 0   ? st::kBold
              : i == 1 ? Style{203, kDefault, kBold}
              : i == 2 ? st::kGood
                       : st::kDim;
    c.text(x, y + static_cast<int>(i), lines[i], s);
  }
  return c;
}

Screen compose_screen(const ExplorerView& v, const ScreenState& s, int w, int h) {
  Screen out;
  if (w < kMinWidth || h < kMinHeight) {
    out.canvas = size_message(w, h, kMinWidth, kMinHeight);
    return out;
  }
  out.canvas = Canvas(w, h);
  Canvas& c = out.canvas;
  std::vector<Hit> local;
  c.blit(header_bar(v, w), 0, 0);
  c.blit(tab_bar(s.active, w, &local), 0, 1);
  offset_hits(local, out.hits, 0, 1);
  // Token strip in a frame whose title counts the tokens.
  int computed = v.traces ? static_cast<int>(v.traces->size()) : 0;
  int generated = std::max(0, static_cast<int>(v.token_text.size()) - v.prompt_len);
  c.frame(0, 2, w, 3,
          fmt::format("tokens · prompt {} · generated {} · viewing {}", v.prompt_len, generated,
                      computed ? token_label(v, v.cursor) : "-"),
          st::kFrame);
  c.blit(token_strip(v, w - 4, &local), 2, 3);
  offset_hits(local, out.hits, 2, 3);
  // Panels.
  int top = 5, mh = h - top - 1;
  // The Train panel keeps the whole width: its time axes want every column.
  if (w >= 160 && mh >= 30 && !s.full && s.active != Panel::kTrain) {
    // A 2x2 grid: the active panel top left, three companions around it.
    int lw = w / 2;
    int lh = std::min(mh - 12, std::max(24, mh * 11 / 20));
    auto comp = companions(s.active);
    int h1 = mh / 2;
    framed_panel(c, out.hits, v, s, s.active, 0, top, lw, lh);
    framed_panel(c, out.hits, v, s, comp[2], 0, top + lh, lw, mh - lh);
    framed_panel(c, out.hits, v, s, comp[0], lw, top, w - lw, h1);
    framed_panel(c, out.hits, v, s, comp[1], lw, top + h1, w - lw, mh - h1);
  } else {
    framed_panel(c, out.hits, v, s, s.active, 0, top, w, mh);
  }
  int cx = -1;
  c.blit(status_line(s, w, &cx), 0, h - 1);
  if (cx >= 0) {
    out.cursor_x = cx;
    out.cursor_y = h - 1;
  }
  if (s.popup) {
    Canvas box = popup_box(*s.popup, w - 4, mh);
    c.blit(box, (w - box.width()) / 2, top + std::max(0, (mh - box.height()) / 2));
  }
  if (s.help && s.keys) {
    Canvas box = help_overlay(*s.keys, w - 4, h - 2);
    c.blit(box, (w - box.width()) / 2, std::max(1, (h - box.height()) / 2));
  }
  return out;
}

}  // namespace dsv3::viz
