// Canvas: a grid of styled cells. Every picture the explorer shows is drawn into one of these
// by a pure function (state -> Canvas); back ends turn it into ncurses calls, ANSI text or
// plain text (snapshot tests, NO_COLOR, pipes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::viz {

// Colours are xterm-256 palette indices; kDefault leaves the terminal's own colour.
using Color = int16_t;
inline constexpr Color kDefault = -1;

enum Attr : uint8_t { kNone = 0, kBold = 1, kDim = 2, kReverse = 4, kUnderline = 8 };

struct Style {
  Color fg = kDefault;
  Color bg = kDefault;
  uint8_t attr = kNone;
  bool operator==(const Style&) const = default;
};

struct Cell {
  char32_t glyph = U' ';
  Style style;
  bool operator==(const Cell&) const = default;
};

class Canvas {
 public:
  Canvas() = default;
  Canvas(int width, int height);

  int width() const { return width_; }
  int height() const { return height_; }

  Cell& at(int x, int y) { return cells_[static_cast<size_t>(y) * width_ + x]; }
  const Cell& at(int x, int y) const { return cells_[static_cast<size_t>(y) * width_ + x]; }
  bool inside(int x, int y) const { return x >= 0 && y >= 0 && x < width_ && y < height_; }

  // Writes UTF-8 text starting at (x, y), clipped at the right edge; returns the column after it.
  int text(int x, int y, std::string_view utf8, Style style = {});
  void put(int x, int y, char32_t glyph, Style style = {});
  void fill(int x, int y, int w, int h, char32_t glyph, Style style = {});
  // A box-drawing frame with an optional title in the top edge.
  void frame(int x, int y, int w, int h, std::string_view title = {}, Style style = {});
  // Copies another canvas in at (x, y), clipped.
  void blit(const Canvas& src, int x, int y);

 private:
  int width_ = 0;
  int height_ = 0;
  std::vector<Cell> cells_;
};

// Back ends that need no terminal library.
std::string render_plain(const Canvas& c);  // glyphs only, trailing spaces trimmed per line
std::string render_ansi(const Canvas& c);   // SGR escape sequences for colours and attributes

// UTF-8 helpers shared by the back ends.
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(char32_t c);
int display_width(std::string_view utf8);  // code points; every glyph we draw is one column

// True when colour output should be suppressed (NO_COLOR set, or not a terminal).
bool colour_disabled(int fd);

}  // namespace dsv3::viz
