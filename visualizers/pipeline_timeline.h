// The pipeline timeline as a picture: one row per rank, time to the right, each op a coloured
// run of cells labelled with its micro-batch (the layout of Fig. 5 of the DeepSeek-V3 report),
// with an optional time cursor and per-rank bubble and activation-memory bars. Pure: result ->
// Canvas, shared by `dsv3 pipeline simulate`, the explorer's pipeline panel and the lessons.
#pragma once

#include <optional>
#include <string>

#include "reference/pipeline/simulator.h"
#include "visualizers/canvas.h"

namespace dsv3::viz {

struct PipelineTimelineOptions {
  int width = 100;               // columns of the whole canvas (at least 40)
  std::optional<double> cursor;  // a time cursor: a marked column and memory held at that time
  bool bars = true;              // per-rank bubble and activation bars at the right
  bool title = true;             // a heading line with schedule, sizes, costs and makespan
  bool legend = true;            // a colour key under the rows
  // Scales for the bars, so that several schedules can be drawn comparably; 0 = this result's
  // own makespan (bubble) and largest peak (memory).
  double bubble_scale = 0;
  int memory_scale = 0;
  // Columns per time unit; 0 = fit the makespan into the width.
  double columns_per_unit = 0;
};

// The canvas is exactly options.width wide; its height is ranks + 2 (+1 title, +2 legend).
Canvas draw_pipeline_timeline(const pipeline::SimResult& r, const PipelineTimelineOptions& o = {});

// Colours shared with the SVG drawing (xterm-256 indices). chunk selects the direction
// (DualPipe) or local chunk (DualPipeV): chunk 1 is drawn in a lighter shade.
Style pipeline_op_style(pipeline::OpKind kind, int chunk);
// The cell glyph used for a kind when no micro-batch number fits: F/f, B/b, I/i (Bi), W/w.
char32_t pipeline_op_glyph(pipeline::OpKind kind, int chunk);

// An xterm-256 index as "#rrggbb" (for SVG).
std::string xterm_to_hex(Color c);

}  // namespace dsv3::viz
