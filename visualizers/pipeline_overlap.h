// Figure 4 as a picture: the compute and communication streams of an overlapped forward and
// backward chunk pair, above the same work run one after the other with blocking all-to-all.
#pragma once

#include "reference/pipeline/overlap.h"
#include "visualizers/canvas.h"

namespace dsv3::viz {

// Rows: heading, "compute", "comm", blank, "serial", summary; exactly `width` columns wide.
Canvas draw_pipeline_overlap(const pipeline::OverlapResult& r, int width = 100);

}  // namespace dsv3::viz
