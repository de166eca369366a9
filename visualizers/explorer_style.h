// Shared look of the explorer's panels: a small palette (xterm-256 indices; the ncurses back end
// folds them to 8 colours or drops them), a heat ramp whose glyphs alone still carry the value
// when colour is off, and number formatting that fits a fixed column width.
#pragma once

#include <string>
#include <string_view>

#include "visualizers/canvas.h"

namespace dsv3::viz::style {

inline constexpr Style kPlain{};
inline constexpr Style kBold{kDefault, kDefault, viz::kBold};
inline constexpr Style kDim{kDefault, kDefault, viz::kDim};
inline constexpr Style kLabel{245, kDefault, viz::kNone};
inline constexpr Style kAccent{75, kDefault, viz::kBold};
inline constexpr Style kEquation{141, kDefault, viz::kNone};  // "(15)" beside a step of the math
inline constexpr Style kGood{114, kDefault, viz::kNone};
inline constexpr Style kBad{203, kDefault, viz::kBold};
inline constexpr Style kWarn{221, kDefault, viz::kNone};
inline constexpr Style kGenerated{80, kDefault, viz::kNone};
inline constexpr Style kCursor{16, 221, viz::kBold};
inline constexpr Style kHeader{231, 24, viz::kBold};
inline constexpr Style kTab{250, 236, viz::kNone};
inline constexpr Style kTabActive{16, 75, viz::kBold};
inline constexpr Style kFrame{240, kDefault, viz::kNone};
inline constexpr Style kSelected{kDefault, 237, viz::kBold};

// v in [0, 1] -> a colour of the heat ramp (dark blue .. yellow).
Color heat_color(double v);
// v in [0, 1] -> a shade glyph: ' ' ░ ▒ ▓ █, readable without colour.
char32_t shade(double v);
// v in [0, 1] -> one of the eight lower block glyphs ▁..█ (sparklines, bars).
char32_t block8(double v);
// A horizontal bar of `width` cells filled to fraction v with eighth-blocks.
std::string hbar(double v, int width);

// The shortest faithful rendering of v in at most `width` characters ("0.52", ".52", "-.5",
// "12", "1e5"); '#' when nothing fits.
std::string fit_num(double v, int width);
std::string human_bytes(double bytes);  // "7.5 KiB", "8.6 GiB"
std::string human_count(double n);      // "4K", "128K", "1.5M"

// Crops a canvas to its first `rows` rows (used to trim panels drawn at their natural height).
Canvas crop_rows(const Canvas& c, int rows);
// The last row that holds anything but blanks, plus one.
int used_rows(const Canvas& c);

// Writes text clipped to `max_width` cells, ending with '…' when cut; returns the next column.
int text_clip(Canvas& c, int x, int y, std::string_view utf8, int max_width, Style s = {});

}  // namespace dsv3::viz::style
