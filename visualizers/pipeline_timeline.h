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
  // The bubble that fills a bubble bar; 0 = the largest bubble of every schedule that runs on
  // these ranks and micro-batches with these costs, so bars of different schedules compare.
  double bubble_max = 0;
  // Several timelines drawn one under another: the time span after which their bars line up
  // (0 = this result's makespan), and the activations that fill a memory bar (0 = this
  // result's largest peak).
  double bubble_scale = 0;
  int memory_scale = 0;
  // Columns per time unit; 0 = as many whole columns as fit, and at least one: a makespan wider
  // than the plot is never squeezed into fractional columns but shown through a window (below).
  double columns_per_unit = 0;
  // When the makespan is wider than the plot, the window's first time unit; unset = centred on
  // the cursor (or time 0 without one). A row under the ranks shows which part is visible.
  std::optional<double> view_start;
};

// The canvas is exactly options.width wide; its height is ranks + 2 (+1 title, +2 legend, +1
// range row when only a window of the makespan is shown).
Canvas draw_pipeline_timeline(const pipeline::SimResult& r, const PipelineTimelineOptions& o = {});

// The layout draw_pipeline_timeline uses at these options: time units shown per window (the
// whole makespan when it fits) and whether the makespan needs a window.
struct PipelineTimelineWindow {
  double columns_per_unit = 1;
  double units = 0;  // time units the plot shows
  bool windowed = false;
};
PipelineTimelineWindow pipeline_timeline_window(const pipeline::SimResult& r,
                                                const PipelineTimelineOptions& o);

// The largest bubble of every schedule that runs on r's ranks and micro-batches with r's costs
// and mode (the default bubble_max).
double pipeline_largest_bubble(const pipeline::SimResult& r);

// Colours shared with the SVG drawing (xterm-256 indices). chunk selects the direction
// (DualPipe) or local chunk (DualPipeV): chunk 1 is drawn in a lighter shade.
Style pipeline_op_style(pipeline::OpKind kind, int chunk);
// The glyph that starts every op's cells, so kinds differ without colour: F/f, B/b, I/i (Bi),
// W/w (lower case: chunk 1). The micro-batch number follows it where the op has room.
char32_t pipeline_op_glyph(pipeline::OpKind kind, int chunk);

// An xterm-256 index as "#rrggbb" (for SVG).
std::string xterm_to_hex(Color c);

}  // namespace dsv3::viz
