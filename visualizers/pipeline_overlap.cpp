#include "visualizers/pipeline_overlap.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace dsv3::viz {

namespace {

// Figure 4's colours: orange forward, green backward for input, blue backward for weights,
// purple pipeline communication.
Style segment_style(const pipeline::OverlapSegment& s) {
  Style st;
  st.fg = 16;
  if (s.name == "PP")
    st.bg = 141;
  else if (s.name.rfind("MLP_W", 0) == 0 || s.name.rfind("ATTN_W", 0) == 0)
    st.bg = 33;
  else if (s.backward)
    st.bg = 78;
  else
    st.bg = 208;
  if (s.comm) st.attr |= kUnderline;
  return st;
}

void draw_row(Canvas& c, int y, int x0, double scale,
              const std::vector<pipeline::OverlapSegment>& segs, bool comm_row, bool any) {
  for (const auto& s : segs) {
    if (!any && s.comm != comm_row) continue;
    int a = x0 + static_cast<int>(std::lround(s.start * scale));
    int b = x0 + static_cast<int>(std::lround(s.end * scale));
    if (b <= a) continue;
    Style st = segment_style(s);
    c.fill(a, y, b - a, 1, U' ', st);
    std::string label = s.name;
    if (static_cast<int>(label.size()) > b - a) label = label.substr(0, label.find('('));
    if (static_cast<int>(label.size()) > b - a) label = label.substr(0, static_cast<size_t>(b - a));
    c.text(a + (b - a - static_cast<int>(label.size())) / 2, y, label, st);
    if (b - a >= 2) c.put(b - 1, y, U'▏', st);
  }
}

}  // namespace

Canvas draw_pipeline_overlap(const pipeline::OverlapResult& r, int width) {
  width = std::max(50, width);
  Canvas c(width, 7);
  Style bold;
  bold.attr = kBold;
  Style dim;
  dim.fg = 244;
  const int x0 = 9;
  const double span = std::max({r.serial_time, r.overlapped_time, 1e-12});
  const double scale = (width - x0 - 1) / span;
  c.text(0, 0, "Figure 4: a forward chunk (F) and a backward chunk (B) overlapped", bold);
  c.text(0, 1, "compute", dim);
  c.text(0, 2, "comm", dim);
  draw_row(c, 1, x0, scale, r.overlapped, false, false);
  draw_row(c, 2, x0, scale, r.overlapped, true, false);
  c.text(0, 4, "serial", dim);
  draw_row(c, 4, x0, scale, r.serial, false, true);
  c.text(0, 6,
         fmt::format("overlapped {:.2f} vs serial {:.2f} ({:.2f}x) · comm {:.2f}, exposed {:.2f} "
                     "({:.0f}% hidden)",
                     r.overlapped_time, r.serial_time,
                     r.overlapped_time > 0 ? r.serial_time / r.overlapped_time : 0, r.comm_time,
                     r.exposed_comm, 100 * r.hidden_fraction));
  return c;
}

}  // namespace dsv3::viz
