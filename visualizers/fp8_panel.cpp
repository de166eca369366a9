#include "visualizers/fp8_panel.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace dsv3::viz {
namespace {

constexpr Style kTitle{kDefault, kDefault, kBold};
constexpr Style kDimmed{kDefault, kDefault, kDim};
constexpr Style kBar{39, kDefault, kNone};   // blue
constexpr Style kGood{34, kDefault, kNone};  // green
constexpr Style kBad{196, kDefault, kBold};  // red

// A horizontal bar of `cells` cells for fraction f in [0, 1], in eighths.
std::string bar(double f, int cells) {
  static const char* kEighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  f = std::clamp(f, 0.0, 1.0);
  const int eighths = static_cast<int>(std::lround(f * cells * 8));
  std::string s;
  for (int i = 0; i < eighths / 8; ++i) s += "█";
  s += kEighths[eighths % 8];
  return s;
}

}  // namespace

Canvas draw_fp8_panel(const fp8::LayerFp8View& v, int width, int height) {
  Canvas c(std::max(width, 1), std::max(height, 1));
  c.frame(0, 0, c.width(), c.height(), "FP8 · " + v.name, kTitle);
  const int x0 = 2, inner = std::max(10, c.width() - 4);
  int y = 1;
  auto line = [&](const std::string& s, Style st = {}) {
    if (y < c.height() - 1) c.text(x0, y, s, st);
    ++y;
  };
  line(fmt::format("x [1, {}] in {} tiles of 1x128 · W [{}, {}] in 128x128 blocks · E4M3",
                   v.in_features, v.tile_scales.size(), v.out_features, v.in_features),
       kDimmed);
  line(fmt::format("quantization error of x: {:.2e} (E4M3 step 2^-3)", v.quant_rel));

  // Error per accumulation mode first: the point of the panel (why N_C = 128 matters).
  line("accumulation       vs exact FP8   vs float32   bias", kTitle);
  double worst = 0;
  for (const auto& e : v.errors) worst = std::max(worst, e.accum_rel);
  for (const auto& e : v.errors) {
    const Style st = e.accum_rel >= worst && worst > 0 && v.errors.size() > 1 ? kBad : kGood;
    line(fmt::format("  {:<17}{:>10.2e}   {:>10.2e}  {:+.1e}", e.label, e.accum_rel, e.total_rel,
                     e.mean_signed),
         st);
  }
  // What N_C changes here, read off the rows themselves (never claimed, always checked): rows
  // with the same error are the same computation for this K.
  auto same = [](const fp8::AccumError& a, const fp8::AccumError& b) {
    return a.accum_rel == b.accum_rel && a.total_rel == b.total_rel &&
           a.mean_signed == b.mean_signed;
  };
  std::vector<const fp8::AccumError*> h100;
  for (const auto& e : v.errors)
    if (e.label.rfind("h100", 0) == 0) h100.push_back(&e);
  bool all_same = !h100.empty();
  for (const auto* e : h100) all_same = all_same && same(*e, *h100.front());
  auto row = [&](const char* label) -> const fp8::AccumError* {
    for (const auto& e : v.errors)
      if (e.label == label) return &e;
    return nullptr;
  };
  const fp8::AccumError *nc32 = row("h100 N_C=32"), *nc128 = row("h100 N_C=128"),
                        *nopro = row("h100 no promotion");
  if (h100.size() > 1 && all_same) {
    line(fmt::format("K = {}: every h100 row is the same, so N_C changes nothing here",
                     v.in_features),
         kDimmed);
    line("(`load small` has K = 1024; `fp8-accum` shows K = 4096)", kDimmed);
  } else if (v.in_features <= 128 && nc128) {
    line(fmt::format("K = {} <= 128: N_C=128 is one chain{}", v.in_features,
                     !nopro                 ? ""
                     : same(*nc128, *nopro) ? ", the same as no promotion"
                                            : "; no promotion differs by its per-tensor scales"),
         kDimmed);
    line(!nc32                  ? "(`load small` has K = 1024; `fp8-accum` shows K = 4096)"
         : !same(*nc32, *nc128) ? "N_C=32 promotes every 32 inside it (`load small`: K = 1024)"
                                : "N_C=32 gives the same as N_C=128 here (`load small`: K = 1024)",
         kDimmed);
  } else {
    line(fmt::format("K = {} = {} blocks of 128: each tensor-core chain keeps 13 fraction bits;",
                     v.in_features, (v.in_features + 127) / 128),
         kDimmed);
    line("promoting to FP32 every N_C elements keeps the error from growing with K", kDimmed);
  }
  // Tile scales: one bar per tile, relative to the largest.
  line("activation tile scales  s = amax / 448", kTitle);
  const float smax =
      v.tile_scales.empty() ? 1.0f : *std::max_element(v.tile_scales.begin(), v.tile_scales.end());
  const size_t shown = std::min<size_t>(v.tile_scales.size(), 6);
  for (size_t t = 0; t < shown; ++t) {
    const std::string label = fmt::format("  tile {:>3}  {:9.3e} ", t, v.tile_scales[t]);
    if (y < c.height() - 1) {
      const int after = c.text(x0, y, label);
      c.text(after, y,
             bar(v.tile_scales[t] / smax, std::max(1, inner - static_cast<int>(label.size()) - 1)),
             kBar);
    }
    ++y;
  }
  if (v.tile_scales.size() > shown)
    line(fmt::format("  ... {} more tiles", v.tile_scales.size() - shown), kDimmed);

  // Histogram of |q| by binade: how much of E4M3's range each token's tiles use.
  line("quantized |x| by binade (E4M3 exponent)", kTitle);
  const int64_t hmax = v.code_histogram.empty()
                           ? 1
                           : std::max<int64_t>(1, *std::max_element(v.code_histogram.begin(),
                                                                    v.code_histogram.end()));
  for (int e = 15; e >= 0; --e) {
    if (e >= static_cast<int>(v.code_histogram.size()) || v.code_histogram[e] == 0) continue;
    const std::string label = e == 0 ? "  0/subn " : fmt::format("  2^{:<5}", e - 7);
    const std::string count = fmt::format(" {:>5} ", v.code_histogram[e]);
    if (y < c.height() - 1) {
      int after = c.text(x0, y, label + count);
      c.text(after, y,
             bar(static_cast<double>(v.code_histogram[e]) / static_cast<double>(hmax),
                 std::max(1, inner - static_cast<int>(label.size() + count.size()) - 1)),
             kBar);
    }
    ++y;
  }

  return c;
}

}  // namespace dsv3::viz
