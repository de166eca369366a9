#include "visualizers/canvas.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace dsv3::viz {

Canvas::Canvas(int width, int height)
    : width_(std::max(0, width)),
      height_(std::max(0, height)),
      cells_(static_cast<size_t>(width_) * height_) {}

void Canvas::put(int x, int y, char32_t glyph, Style style) {
  if (inside(x, y)) at(x, y) = Cell{glyph, style};
}

int Canvas::text(int x, int y, std::string_view utf8, Style style) {
  for (char32_t c : utf8_decode(utf8)) {
    put(x, y, c, style);
    ++x;
  }
  return x;
}

void Canvas::fill(int x, int y, int w, int h, char32_t glyph, Style style) {
  for (int j = y; j < y + h; ++j)
    for (int i = x; i < x + w; ++i) put(i, j, glyph, style);
}

void Canvas::frame(int x, int y, int w, int h, std::string_view title, Style style) {
  if (w < 2 || h < 2) return;
  for (int i = x + 1; i < x + w - 1; ++i) {
    put(i, y, U'─', style);
    put(i, y + h - 1, U'─', style);
  }
  for (int j = y + 1; j < y + h - 1; ++j) {
    put(x, j, U'│', style);
    put(x + w - 1, j, U'│', style);
  }
  put(x, y, U'┌', style);
  put(x + w - 1, y, U'┐', style);
  put(x, y + h - 1, U'└', style);
  put(x + w - 1, y + h - 1, U'┘', style);
  if (!title.empty() && w > 4) {
    std::u32string t = utf8_decode(title);
    if (static_cast<int>(t.size()) > w - 4) t.resize(w - 4);
    Style ts = style;
    ts.attr |= kBold;
    put(x + 1, y, U' ', style);
    for (size_t i = 0; i < t.size(); ++i) put(x + 2 + static_cast<int>(i), y, t[i], ts);
    put(x + 2 + static_cast<int>(t.size()), y, U' ', style);
  }
}

void Canvas::blit(const Canvas& src, int x, int y) {
  for (int j = 0; j < src.height(); ++j)
    for (int i = 0; i < src.width(); ++i)
      if (inside(x + i, y + j)) at(x + i, y + j) = src.at(i, j);
}

std::string render_plain(const Canvas& c) {
  std::string out;
  for (int y = 0; y < c.height(); ++y) {
    std::string line;
    for (int x = 0; x < c.width(); ++x) line += utf8_encode(c.at(x, y).glyph);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

namespace {
std::string sgr(const Style& s) {
  std::string code = "\x1b[0";
  if (s.attr & kBold) code += ";1";
  if (s.attr & kDim) code += ";2";
  if (s.attr & kUnderline) code += ";4";
  if (s.attr & kReverse) code += ";7";
  if (s.fg >= 0) code += ";38;5;" + std::to_string(s.fg);
  if (s.bg >= 0) code += ";48;5;" + std::to_string(s.bg);
  return code + "m";
}
}  // namespace

std::string render_ansi(const Canvas& c) {
  std::string out;
  for (int y = 0; y < c.height(); ++y) {
    Style current;
    bool styled = false;
    int last = c.width() - 1;
    while (last >= 0 && c.at(last, y).glyph == U' ' && c.at(last, y).style == Style{}) --last;
    for (int x = 0; x <= last; ++x) {
      const Cell& cell = c.at(x, y);
      if (!styled || !(cell.style == current)) {
        out += sgr(cell.style);
        current = cell.style;
        styled = true;
      }
      out += utf8_encode(cell.glyph);
    }
    if (styled) out += "\x1b[0m";
    out += '\n';
  }
  return out;
}

std::u32string utf8_decode(std::string_view s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<unsigned char>(s[i]);
    char32_t c;
    int n;
    if (b < 0x80) {
      c = b;
      n = 1;
    } else if ((b >> 5) == 0x6) {
      c = b & 0x1F;
      n = 2;
    } else if ((b >> 4) == 0xE) {
      c = b & 0x0F;
      n = 3;
    } else if ((b >> 3) == 0x1E) {
      c = b & 0x07;
      n = 4;
    } else {
      out += U'?';
      ++i;
      continue;
    }  // stray continuation byte
    if (i + n > s.size()) {
      out += U'?';
      break;
    }
    for (int k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out += c;
    i += n;
  }
  return out;
}

std::string utf8_encode(char32_t c) {
  std::string out;
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
  return out;
}

int display_width(std::string_view utf8) {
  return static_cast<int>(utf8_decode(utf8).size());
}

bool colour_disabled(int fd) {
  const char* no = std::getenv("NO_COLOR");
  if (no && *no) return true;
  return !isatty(fd);
}

}  // namespace dsv3::viz
