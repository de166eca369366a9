// The explorer's panel 9 (Train): a training run as it happens, drawn from one immutable
// snapshot (reference/train/live_run.h). Loss curves on a log axis (main, MTP, validation),
// tokens/s and ETA, MaxVio per MoE layer over time, expert load per MoE layer as a heat map
// (experts x time) beside the current biases b_i, the learning-rate schedule with a cursor, the
// gradient norm and the share of clipped steps, and per corpus domain the experts each domain
// uses (DeepSeek-V3 Figure 9). At 80x24 it shows less, at 160x48 all of it.
#pragma once

#include "reference/train/live_run.h"
#include "visualizers/canvas.h"

namespace dsv3::viz {

Canvas train_panel(const train::TrainSnapshot& s, int width, int height);

// Time compression of the plots: step range of column `col` of `cols` over n steps.
struct Bucket {
  size_t first = 0, last = 0;  // [first, last) indices into the history
};
Bucket time_bucket(size_t n, int cols, int col);

}  // namespace dsv3::viz
