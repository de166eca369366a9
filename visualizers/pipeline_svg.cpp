#include "visualizers/pipeline_svg.h"

#include <fmt/format.h>

#include "visualizers/pipeline_timeline.h"

namespace dsv3::viz {

using pipeline::OpKind;

namespace {

void cell(std::string& out, double x, double y, double w, double h, OpKind kind, int chunk,
          int mb) {
  if (w <= 0) return;
  out += fmt::format(
      "<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\" "
      "stroke=\"#ffffff\" stroke-width=\"0.5\"/>\n",
      x, y, w, h, xterm_to_hex(pipeline_op_style(kind, chunk).bg));
  out += fmt::format(
      "<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"middle\" dominant-baseline=\"central\">{}"
      "</text>\n",
      x + w / 2, y + h / 2, mb);
}

}  // namespace

std::string draw_pipeline_svg(const pipeline::SimResult& r, double unit_px) {
  const double row_h = 26, left = 70, top = 40, legend_h = 40;
  const double width = left + r.makespan * unit_px + 20;
  const double height = top + r.ranks * row_h + legend_h;
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "viewBox=\"0 0 {:.0f} {:.0f}\" font-family=\"sans-serif\" font-size=\"11\">\n",
      width, height, width, height);
  out += fmt::format("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
  out += fmt::format(
      "<text x=\"{}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}: {} devices, {} "
      "micro-batches ({}), makespan {:g}, largest bubble {:g}</text>\n",
      left, pipeline::schedule_label(r.kind), r.ranks, r.micro_batches,
      pipeline::to_string(r.costs), r.makespan, r.max_bubble());
  for (int k = 0; k < r.ranks; ++k) {
    double y = top + k * row_h;
    out +=
        fmt::format("<text x=\"8\" y=\"{:.2f}\" dominant-baseline=\"central\">Device {}</text>\n",
                    y + row_h / 2, k);
    for (const pipeline::OpTiming& t : r.ranks_result[k].timeline) {
      double x0 = left + t.start * unit_px, x1 = left + t.end * unit_px;
      if (t.op.kind == OpKind::kFB) {
        double xs = left + t.fb_split() * unit_px;
        cell(out, x0, y + 1, xs - x0, row_h - 2, OpKind::kF, t.op.chunk, t.op.mb);
        cell(out, xs, y + 1, x1 - xs, row_h - 2, OpKind::kB, t.op.chunk_b, t.op.mb_b);
        out += fmt::format(
            "<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"none\" "
            "stroke=\"#000000\" stroke-width=\"2\"/>\n",
            x0 + 1, y + 2, x1 - x0 - 2, row_h - 4);
      } else {
        cell(out, x0, y + 1, x1 - x0, row_h - 2, t.op.kind, t.op.chunk, t.op.mb);
      }
    }
  }
  // Legend.
  double ly = top + r.ranks * row_h + 14, lx = left;
  struct Key {
    OpKind kind;
    int chunk;
    const char* text;
  };
  bool two =
      r.kind == pipeline::ScheduleKind::kDualPipe || r.kind == pipeline::ScheduleKind::kDualPipeV;
  std::vector<Key> keys = {{OpKind::kF, 0, "Forward"}};
  if (two) keys.push_back({OpKind::kF, 1, "Forward (chunk 1)"});
  keys.push_back({OpKind::kB, 0, "Backward"});
  if (two) keys.push_back({OpKind::kB, 1, "Backward (chunk 1)"});
  keys.push_back({OpKind::kBi, 0, "Backward for input"});
  keys.push_back({OpKind::kW, 0, "Backward for weights"});
  for (const Key& key : keys) {
    out += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"14\" height=\"14\" fill=\"{}\"/>\n<text "
        "x=\"{:.1f}\" y=\"{:.1f}\" dominant-baseline=\"central\">{}</text>\n",
        lx, ly, xterm_to_hex(pipeline_op_style(key.kind, key.chunk).bg), lx + 18, ly + 7, key.text);
    lx += 40 + 6.5 * std::char_traits<char>::length(key.text);
  }
  if (two)
    out += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"28\" height=\"14\" fill=\"none\" "
        "stroke=\"#000000\" stroke-width=\"2\"/>\n<text x=\"{:.1f}\" y=\"{:.1f}\" "
        "dominant-baseline=\"central\">Overlapped forward &amp; backward</text>\n",
        lx, ly, lx + 32, ly + 7);
  out += "</svg>\n";
  return out;
}

}  // namespace dsv3::viz
