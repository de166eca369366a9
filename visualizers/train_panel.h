// The explorer's panel 9 (Train): a training run as it happens, drawn from one immutable
// snapshot (reference/train/live_run.h). Loss curves on a log axis (main, MTP, validation),
// tokens/s and ETA, MaxVio per MoE layer over time, expert load per MoE layer as a heat map
// (experts x time) beside the current biases b_i, the learning-rate schedule with a cursor, the
// gradient norm and the share of clipped steps, and per corpus domain the experts each domain
// uses (DeepSeek-V3 Figure 9). At 80x24 it shows less, at 160x48 all of it.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "reference/train/live_run.h"
#include "visualizers/canvas.h"

namespace dsv3::viz {

// `shown_step` >= 0: the step whose weights the explorer's other panels show (`train weights`,
// key o), marked on the loss chart and named on the last line.
Canvas train_panel(const train::TrainSnapshot& s, int width, int height, int64_t shown_step = -1);

// Compare mode: two runs from the same seed and data (train_compare.cpp). Both on one loss axis
// and one MaxVio axis, over one step axis; a legend names each run by what differs (balancing
// or precision).
Canvas train_compare_panel(const train::TrainSnapshot& a, const train::TrainSnapshot& b, int width,
                           int height, int64_t shown_step = -1);

// Time compression of the plots: step range of column `col` of `cols` over n steps.
struct Bucket {
  size_t first = 0, last = 0;  // [first, last) indices into the history
};
Bucket time_bucket(size_t n, int cols, int col);

// The pieces both panels draw with (train_panel.cpp).
namespace train_plot {
struct Series {
  std::vector<double> y;  // one value per column (NaN: none)
  char32_t glyph;
  Style style;
};
// A chart in the box (x, y, w, h): the left 6 columns hold the axis labels (top = max, bottom =
// min), the rest one column per time bucket; every series on the one axis. Log axis: positions
// by log10 of the value. `marker` >= 0: a dim rule at that column (the step panels 1-8 show).
void chart(Canvas& c, int x, int y, int w, int h, const std::string& title,
           const std::vector<Series>& series, bool log_axis, int marker = -1);
// Mean of f over the steps of each column, the columns cutting `n` steps (>= h.size(): a shorter
// run leaves the right columns empty), NaN where no step has a value.
template <class F>
std::vector<double> columns(const std::vector<train::LiveStep>& h, size_t n, int cols, F f) {
  std::vector<double> out(std::max(cols, 0), std::numeric_limits<double>::quiet_NaN());
  for (int col = 0; col < cols; ++col) {
    Bucket b = time_bucket(std::max(n, h.size()), cols, col);
    double sum = 0;
    int k = 0;
    for (size_t i = b.first; i < b.last && i < h.size(); ++i) {
      const double v = f(h[i]);
      if (std::isfinite(v)) sum += v, ++k;
    }
    if (k) out[col] = sum / k;
  }
  return out;
}
// The column of the history entry of step `step` among `cols` columns over n steps; -1 when
// the history has no such step (step 0: before the first).
int column_of(const std::vector<train::LiveStep>& h, int64_t step, size_t n, int cols);
// Load of expert i as a share of the mean load (1 = balanced), mapped to [0, 1] over 0..2x.
double load_shade(const std::vector<int64_t>& c, size_t i);
// "L3": the checkpoint index of MoE layer l.
std::string layer_name(const train::TrainSnapshot& s, size_t l);
// The learning-rate schedule (current peak) with a cursor at the current step.
void lr_row(Canvas& c, int x, int y, int w, const train::TrainSnapshot& s);
// Expert load of MoE layer l over time (experts x columns over n steps) beside the current b_i;
// `title` empty: the single-run title.
void heatmap(Canvas& c, int x, int y, int w, int h, const train::TrainSnapshot& s, size_t l,
             size_t n, const std::string& title = "");
}  // namespace train_plot

}  // namespace dsv3::viz
