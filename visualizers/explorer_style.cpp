#include "visualizers/explorer_style.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace dsv3::viz::style {

namespace {
double clamp01(double v) {
  return std::isfinite(v) ? std::clamp(v, 0.0, 1.0) : 0.0;
}
}  // namespace

Color heat_color(double v) {
  // Dark blue through teal and green to yellow: brightness rises with the value, so the ramp
  // still reads on terminals that fold it to fewer colours.
  static constexpr std::array<Color, 12> ramp{17, 18, 19, 25, 31, 37, 43, 78, 114, 150, 186, 226};
  int i = static_cast<int>(clamp01(v) * (ramp.size() - 1) + 0.5);
  return ramp[i];
}

char32_t shade(double v) {
  static constexpr std::array<char32_t, 5> g{U'·', U'░', U'▒', U'▓', U'█'};
  int i = static_cast<int>(clamp01(v) * (g.size() - 1) + 0.5);
  return g[i];
}

char32_t block8(double v) {
  static constexpr std::array<char32_t, 8> g{U'▁', U'▂', U'▃', U'▄', U'▅', U'▆', U'▇', U'█'};
  int i = static_cast<int>(clamp01(v) * (g.size() - 1) + 0.5);
  return g[i];
}

std::string hbar(double v, int width) {
  static constexpr std::array<const char*, 8> part{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  int eighths = static_cast<int>(clamp01(v) * width * 8 + 0.5);
  std::string out;
  for (int i = 0; i < eighths / 8; ++i) out += "█";
  out += part[eighths % 8];
  return out;
}

std::string fit_num(double v, int width) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  for (int prec = 3; prec >= 0; --prec) {
    std::string s = fmt::format("{:.{}f}", v, prec);
    if (s == "-0" || s == "-0.0" || s == "-0.00" || s == "-0.000") s.erase(0, 1);
    if ((int)s.size() > width && std::fabs(v) < 1.0 && prec > 0) {
      // Drop the leading zero: "0.52" -> ".52", "-0.05" -> "-.05".
      size_t z = s.find("0.");
      if (z == 0 || z == 1) s.erase(z, 1);
    }
    if ((int)s.size() <= width) return s;
  }
  std::string e = fmt::format("{:.0e}", v);
  return (int)e.size() <= width ? e : std::string("#");
}

std::string human_bytes(double b) {
  static constexpr std::array<const char*, 6> unit{"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t u = 0;
  while (std::fabs(b) >= 1024.0 && u + 1 < unit.size()) {
    b /= 1024.0;
    ++u;
  }
  if (u == 0) return fmt::format("{:.0f} B", b);
  int prec = b < 10 ? 2 : b < 100 ? 1 : 0;
  return fmt::format("{:.{}f} {}", b, prec, unit[u]);
}

std::string human_count(double n) {
  if (n >= 1024 * 1024 && std::fmod(n, 1024 * 1024) == 0)
    return fmt::format("{:.0f}M", n / (1024 * 1024));
  if (n >= 1024 && std::fmod(n, 1024) == 0) return fmt::format("{:.0f}K", n / 1024);
  return fmt::format("{:.0f}", n);
}

int used_rows(const Canvas& c) {
  for (int y = c.height() - 1; y >= 0; --y)
    for (int x = 0; x < c.width(); ++x)
      if (!(c.at(x, y) == Cell{})) return y + 1;
  return 0;
}

Canvas crop_rows(const Canvas& c, int rows) {
  Canvas out(c.width(), std::min(rows, c.height()));
  out.blit(c, 0, 0);
  return out;
}

int text_clip(Canvas& c, int x, int y, std::string_view utf8, int max_width, Style s) {
  if (max_width <= 0) return x;
  std::u32string t = utf8_decode(utf8);
  bool cut = static_cast<int>(t.size()) > max_width;
  if (cut) t.resize(max_width - 1);
  for (char32_t g : t) c.put(x++, y, g, s);
  if (cut) c.put(x++, y, U'…', s);
  return x;
}

}  // namespace dsv3::viz::style
