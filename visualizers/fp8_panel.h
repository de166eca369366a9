// The explorer's FP8 panel: one token through one linear layer in FP8 (tile scales, quantized
// value histogram, error per accumulation mode). Pure function: view -> Canvas.
#pragma once

#include "reference/fp8/panel.h"
#include "visualizers/canvas.h"

namespace dsv3::viz {

// Draws into a width x height canvas (at least 40 x 12; smaller sizes clip).
Canvas draw_fp8_panel(const fp8::LayerFp8View& view, int width, int height);

}  // namespace dsv3::viz
