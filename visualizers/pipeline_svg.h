// The pipeline timeline as an SVG picture in the layout of Fig. 5 of the DeepSeek-V3 report: one
// row per device, cells coloured by op kind and direction, micro-batch numbers in the cells, and
// an overlapped forward-backward pair enclosed by one shared black border.
#pragma once

#include <string>

#include "reference/pipeline/simulator.h"

namespace dsv3::viz {

// unit_px: width of one time unit in pixels.
std::string draw_pipeline_svg(const pipeline::SimResult& r, double unit_px = 24);

}  // namespace dsv3::viz
