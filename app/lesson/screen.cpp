// Pictures of a lesson step: the prose pane (a Markdown subset, wrapped), the live panel pane
// (the commands' canvases and text, then the checks), and the TUI's whole screen. Pure
// functions of the lesson and a step's results, so the TUI only blits them.
#include <fmt/format.h>

#include <algorithm>

#include "app/lesson/player.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::app::lesson {

namespace {

using viz::Canvas;
using viz::Style;

constexpr Style kPlain{};
constexpr Style kBoldStyle{viz::kDefault, viz::kDefault, viz::kBold};
constexpr Style kCode{180, viz::kDefault, viz::kNone};
constexpr Style kVerbatim{109, viz::kDefault, viz::kNone};
constexpr Style kPaper{75, viz::kDefault, viz::kBold};
constexpr Style kSource{114, viz::kDefault, viz::kBold};
constexpr Style kCite{250, viz::kDefault, viz::kNone};
constexpr Style kThink{221, viz::kDefault, viz::kBold};
constexpr Style kCommand{75, viz::kDefault, viz::kBold};
constexpr Style kPass{114, viz::kDefault, viz::kNone};
constexpr Style kFail{203, viz::kDefault, viz::kBold};
constexpr Style kDimStyle{245, viz::kDefault, viz::kDim};

struct StyledChar {
  char32_t c;
  Style s;
};
using Line = std::vector<StyledChar>;

void append(Line& out, std::string_view utf8, Style s) {
  for (char32_t c : viz::utf8_decode(utf8)) out.push_back({c, s});
}

// **bold** and `code` spans over a base style; plain keeps the backticks.
void append_inline(Line& out, std::string_view text, Style base, bool plain) {
  bool bold = false, code = false;
  std::u32string t = viz::utf8_decode(text);
  for (size_t i = 0; i < t.size(); ++i) {
    if (!code && t[i] == U'*' && i + 1 < t.size() && t[i + 1] == U'*') {
      bold = !bold;
      ++i;
      continue;
    }
    if (t[i] == U'`') {
      code = !code;
      if (!plain) continue;
    }
    Style s = code ? kCode : base;
    if (bold) s.attr |= viz::kBold;
    out.push_back({t[i], s});
  }
}

// Greedy word wrap; continuation lines start with `indent` spaces.
std::vector<Line> wrap(const Line& l, int width, int indent) {
  std::vector<Line> out;
  size_t start = 0;
  bool first = true;
  while (start < l.size()) {
    int avail = std::max(8, width - (first ? 0 : indent));
    size_t end = start + static_cast<size_t>(avail);
    Line piece(first ? 0 : static_cast<size_t>(indent), StyledChar{U' ', kPlain});
    if (end >= l.size()) {
      piece.insert(piece.end(), l.begin() + start, l.end());
      out.push_back(std::move(piece));
      break;
    }
    size_t brk = end;
    while (brk > start && l[brk].c != U' ') --brk;
    if (brk == start) brk = end;  // one long word: cut it
    piece.insert(piece.end(), l.begin() + start, l.begin() + brk);
    out.push_back(std::move(piece));
    start = brk;
    while (start < l.size() && l[start].c == U' ') ++start;
    first = false;
  }
  if (out.empty()) out.push_back({});
  return out;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

Canvas to_canvas(const std::vector<Line>& lines, int width) {
  Canvas c(width, std::max<int>(1, static_cast<int>(lines.size())));
  for (size_t y = 0; y < lines.size(); ++y)
    for (size_t x = 0; x < lines[y].size() && static_cast<int>(x) < width; ++x)
      c.put(static_cast<int>(x), static_cast<int>(y), lines[y][x].c, lines[y][x].s);
  return c;
}

void add_labelled(std::vector<Line>& out, const char* label, Style ls, const std::string& text,
                  Style ts, int width, bool plain) {
  Line l;
  append(l, label, ls);
  append_inline(l, text, ts, plain);
  auto w = wrap(l, width, static_cast<int>(viz::utf8_decode(label).size()));
  out.insert(out.end(), w.begin(), w.end());
}

}  // namespace

Canvas prose_canvas(const Step& step, const StepResult& r, int width, bool think, bool plain) {
  std::vector<Line> out;
  Line para;
  int para_indent = 0;
  auto flush = [&] {
    if (para.empty()) return;
    auto w = wrap(para, width, para_indent);
    out.insert(out.end(), w.begin(), w.end());
    para.clear();
    para_indent = 0;
  };
  bool verbatim = false;
  for (const std::string& raw : r.prose) {
    std::string t = trim(raw);
    if (t == "```") {
      flush();
      verbatim = !verbatim;
      continue;
    }
    if (verbatim) {
      Line l;
      append(l, "  " + raw, kVerbatim);
      out.push_back(std::move(l));
      continue;
    }
    if (t.empty()) {
      flush();
      if (!out.empty() && !out.back().empty()) out.push_back({});
      continue;
    }
    bool bullet = t.rfind("- ", 0) == 0 || t.rfind("* ", 0) == 0;
    size_t dot = t.find(". ");
    bool numbered = dot != std::string::npos && dot > 0 && dot < 3 &&
                    std::all_of(t.begin(), t.begin() + static_cast<long>(dot),
                                [](char c) { return c >= '0' && c <= '9'; });
    if (t.rfind("### ", 0) == 0) {
      flush();
      append_inline(para, t.substr(4), kPaper, plain);
      flush();
      continue;
    }
    if (bullet || numbered) {
      flush();
      if (bullet) {
        append(para, "• ", kPlain);
        append_inline(para, t.substr(2), kPlain, plain);
        para_indent = 2;
      } else {
        append(para, t.substr(0, dot + 2), kPlain);
        append_inline(para, t.substr(dot + 2), kPlain, plain);
        para_indent = static_cast<int>(dot) + 2;
      }
      continue;
    }
    if (!para.empty()) para.push_back({U' ', kPlain});
    append_inline(para, t, kPlain, plain);
  }
  flush();
  if (!step.paper.empty() || !step.code.empty()) {
    if (!out.empty() && !out.back().empty()) out.push_back({});
    if (!step.paper.empty()) add_labelled(out, "Paper: ", kPaper, step.paper, kCite, width, plain);
    if (!step.code.empty()) add_labelled(out, "Code:  ", kSource, step.code, kCite, width, plain);
  }
  if (think && !r.think.empty()) {
    if (!out.empty() && !out.back().empty()) out.push_back({});
    add_labelled(out, "Think: ", kThink, r.think, kThink, width, plain);
  }
  return to_canvas(out, width);
}

Canvas outputs_canvas(const StepResult& r, int width) {
  std::vector<Line> lines;
  std::vector<std::pair<int, const Canvas*>> pictures;  // row where a command's canvas goes
  for (const Shown& s : r.shown) {
    if (!lines.empty()) lines.push_back({});
    Line title;
    append(title, "› " + s.command, kCommand);
    lines.push_back(std::move(title));
    if (!s.error.empty()) {
      Line e;
      append(e, "✗ " + s.error, kFail);
      auto w = wrap(e, width, 2);
      lines.insert(lines.end(), w.begin(), w.end());
      continue;
    }
    if (s.out.canvas) {
      pictures.emplace_back(static_cast<int>(lines.size()), &*s.out.canvas);
      lines.resize(lines.size() + static_cast<size_t>(s.out.canvas->height()));
    }
    std::string text = s.out.text;
    size_t at = 0;
    while (at < text.size()) {
      size_t nl = text.find('\n', at);
      std::string l = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
      Line t;
      append(t, l, kPlain);
      while (!t.empty() && t.back().c == U' ') t.pop_back();
      // A line wider than the pane wraps (continuation indented) rather than losing its end:
      // a table row cut at the pane's edge would cut its numbers.
      auto w = wrap(t, width, 4);
      lines.insert(lines.end(), w.begin(), w.end());
      if (nl == std::string::npos) break;
      at = nl + 1;
    }
  }
  auto checks = check_lines(r);
  if (!checks.empty()) {
    if (!lines.empty()) lines.push_back({});
    for (const auto& c : checks) {
      Line l;
      append(l, c, c.rfind("✓", 0) == 0 ? kPass : c.rfind("✗", 0) == 0 ? kFail : kDimStyle);
      auto w = wrap(l, width, 4);
      lines.insert(lines.end(), w.begin(), w.end());
    }
  }
  if (!r.error.empty()) {
    Line e;
    append(e, "✗ " + r.error, kFail);
    auto w = wrap(e, width, 2);
    lines.insert(lines.end(), w.begin(), w.end());
  }
  if (lines.empty()) {
    Line l;
    append(l, "(this step runs no commands)", kDimStyle);
    lines.push_back(std::move(l));
  }
  Canvas c = to_canvas(lines, width);
  for (auto [row, pic] : pictures) c.blit(*pic, 0, row);
  return c;
}

int panel_width(int w) {
  return w >= 120 ? w - std::min(72, w * 2 / 5) - 1 : w;
}

namespace {

// Rows [scroll, scroll + h) of src at (x, y); a "↓"/"↑" marker when more is hidden.
void blit_window(Canvas& dst, const Canvas& src, int x, int y, int w, int h, int scroll,
                 bool focused) {
  scroll = std::clamp(scroll, 0, std::max(0, src.height() - h));
  for (int r = 0; r < h && scroll + r < src.height(); ++r)
    for (int c = 0; c < w && c < src.width(); ++c) dst.at(x + c, y + r) = src.at(c, scroll + r);
  Style mark{focused ? viz::Color(221) : viz::Color(245), viz::kDefault, viz::kBold};
  if (scroll > 0) dst.text(x + w - 3, y, " ↑ ", mark);
  if (scroll + h < src.height()) dst.text(x + w - 9, y + h - 1, " ↓ more ", mark);
}

}  // namespace

Canvas lesson_screen(const Lesson& l, const StepResult& r, const ScreenView& v, int w, int h) {
  if (w < viz::kMinWidth || h < viz::kMinHeight)
    return viz::size_message(w, h, viz::kMinWidth, viz::kMinHeight);
  Canvas c(w, h);
  const Step& st = l.steps[v.step];
  Style bar{viz::kDefault, 24, viz::kBold};
  c.fill(0, 0, w, 1, U' ', bar);
  c.text(1, 0, fmt::format("dsv3 lesson {} · {}", l.number, l.title), bar);
  std::string where = fmt::format(" step {}/{} ", v.step + 1, l.steps.size());
  c.text(w - viz::display_width(where), 0, where, bar);
  c.text(1, 1, fmt::format("{}. {}", v.step + 1, st.title), Style{221, viz::kDefault, viz::kBold});

  int top = 2, body_h = h - 3;
  bool wide = w >= 120;
  int pw = wide ? std::min(72, w * 2 / 5) : w;
  Canvas prose = prose_canvas(st, r, pw - 2, true, false);
  Canvas panels = outputs_canvas(r, panel_width(w));
  if (wide) {
    blit_window(c, prose, 1, top, pw - 2, body_h, v.prose_scroll, v.focus == 0);
    for (int y = top; y < top + body_h; ++y) c.put(pw, y, U'│', kDimStyle);
    blit_window(c, panels, pw + 1, top, w - pw - 1, body_h, v.panel_scroll, v.focus == 1);
  } else {
    int ph = std::min(prose.height(), std::max(6, body_h * 2 / 5));
    blit_window(c, prose, 1, top, w - 2, ph, v.prose_scroll, v.focus == 0);
    int rule = top + ph;
    c.fill(0, rule, w, 1, U'─', kDimStyle);
    c.text(2, rule, v.focus == 1 ? " live ▾ " : " live ", kDimStyle);
    blit_window(c, panels, 0, rule + 1, w, top + body_h - rule - 1, v.panel_scroll, v.focus == 1);
  }

  Style status{viz::kDefault, 236, viz::kNone};
  c.fill(0, h - 1, w, 1, U' ', status);
  if (!v.busy.empty()) {
    // A slow step (a model to load, a long prompt) says so instead of looking frozen.
    Style busy{16, 221, viz::kBold};
    c.fill(0, h - 1, w, 1, U' ', busy);
    c.text(1, h - 1, v.busy, busy);
    return c;
  }
  int failed = r.error.empty() ? 0 : 1;  // a failed command or interpolation
  for (const auto& ck : r.checks) failed += ck.pass ? 0 : 1;
  std::string verdict = failed             ? fmt::format(" ✗ {} failed ", failed)
                        : r.checks.empty() ? ""
                                           : fmt::format(" ✓ {} checks ", r.checks.size());
  std::string keys = v.message.empty() ? std::string(kLessonKeys) : v.message;
  if (v.message.empty() && 2 + viz::display_width(keys) + viz::display_width(verdict) > w)
    keys = kLessonKeysShort;
  c.text(1, h - 1, keys, status);
  if (!verdict.empty())
    c.text(w - viz::display_width(verdict), h - 1, verdict,
           failed ? Style{231, 160, viz::kBold} : Style{16, 114, viz::kNone});
  return c;
}

}  // namespace dsv3::app::lesson
