#define NCURSES_WIDECHAR 1
#include "app/explorer/curses_painter.h"

#include <curses.h>

#include <algorithm>

namespace dsv3::app {

// Each RGB component is on when it is near the brightest of the three.
short xterm_to_8(viz::Color c) {
  if (c < 0) return -1;
  if (c < 16) return static_cast<short>(c % 8);
  int r, g, b;
  if (c >= 232) {
    int level = (c - 232) * 10 + 8;
    return level > 127 ? COLOR_WHITE : -1;
  }
  int i = c - 16;
  r = i / 36;
  g = (i / 6) % 6;
  b = i % 6;
  int m = std::max({r, g, b});
  if (m == 0) return -1;
  short out = 0;
  if (r * 3 >= m * 2) out |= COLOR_RED;
  if (g * 3 >= m * 2) out |= COLOR_GREEN;
  if (b * 3 >= m * 2) out |= COLOR_BLUE;
  return out == 0 ? -1 : out;
}

wchar_t ascii_stand_in(char32_t g) {
  switch (g) {
    case U'─':
      return '-';
    case U'│':
      return '|';
    case U'┌':
    case U'┐':
    case U'└':
    case U'┘':
    case U'┤':
      return '+';
    case U'█':
    case U'▇':
    case U'▓':
      return '#';
    case U'▆':
    case U'▅':
    case U'▒':
      return '+';
    case U'▄':
    case U'▃':
    case U'░':
      return ':';
    case U'▂':
    case U'▁':
    case U'·':
      return '.';
    case U'●':
      return '*';
    case U'▶':
      return '>';
    case U'◀':
      return '<';
    case U'…':
      return '~';
    case U'␣':
      return '_';
    case U'→':
      return '>';
    case U'←':
      return '<';
    case U'↑':
      return '^';
    case U'↓':
      return 'v';
    default:
      return g < 0x80 ? static_cast<wchar_t>(g) : '?';
  }
}

void CursesPainter::set_mode(const std::string& mode) {
  if (mode == mode_) return;
  mode_ = mode;
  pairs_.clear();
  next_ = 0;
}

short CursesPainter::pair_for(const viz::Style& st) {
  if (mode_ == "mono" || COLOR_PAIRS <= 1) return 0;
  short fg = mode_ == "256" ? st.fg : xterm_to_8(st.fg);
  short bg = mode_ == "256" ? st.bg : xterm_to_8(st.bg);
  if (fg < 0 && bg < 0) return 0;
  auto key = std::make_pair(fg, bg);
  auto it = pairs_.find(key);
  if (it != pairs_.end()) return it->second;
  short n = 0;
  if (from_ == Pairs::kFromBottom) {
    n = static_cast<short>(pairs_.size() + 1);
    if (n >= COLOR_PAIRS) return 0;
  } else {
    if (next_ == 0) next_ = static_cast<short>(std::min(COLOR_PAIRS, 32767) - 1);
    if (next_ < 1) return 0;
    n = next_--;
  }
  init_pair(n, fg, bg);
  pairs_[key] = n;
  return n;
}

void CursesPainter::blit(const viz::Canvas& c) {
  for (int y = 0; y < c.height() && y < LINES; ++y) {
    for (int x = 0; x < c.width() && x < COLS; ++x) {
      const viz::Cell& cell = c.at(x, y);
      attr_t a = A_NORMAL;
      if (cell.style.attr & viz::kBold) a |= A_BOLD;
      if (cell.style.attr & viz::kDim) a |= A_DIM;
      if (cell.style.attr & viz::kUnderline) a |= A_UNDERLINE;
      if (cell.style.attr & viz::kReverse) a |= A_REVERSE;
      // Without colour a background is the only thing marking bars and the cursor: reverse it.
      if (mode_ == "mono" && cell.style.bg >= 0) a |= A_REVERSE;
      wchar_t w[2] = {utf8_ ? static_cast<wchar_t>(cell.glyph) : ascii_stand_in(cell.glyph), 0};
      cchar_t cc;
      setcchar(&cc, w, a, pair_for(cell.style), nullptr);
      mvadd_wch(y, x, &cc);
    }
  }
}

}  // namespace dsv3::app
