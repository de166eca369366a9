// Issue 16, pipeline panel: + - zoom (Settings::pipeline_zoom, columns per time unit). At a zoom
// wider than the panel the timeline shows a window of the makespan around the time cursor, with
// a range row saying which part is visible; zoom 0 fits the whole makespan.
#include <gtest/gtest.h>

#include <string>

#include "app/explorer/session.h"
#include "visualizers/canvas.h"

namespace dsv3::app {
namespace {

TEST(PipelineZoom, AWideZoomShowsAWindowAroundTheCursor) {
  SessionOptions o;
  o.model = "tiny-random";
  Session s(o);
  s.settings().pipeline_time = 40;
  const std::string fit = viz::render_plain(s.pipeline_canvas(100, 30));
  EXPECT_EQ(fit.find("◀"), std::string::npos) << fit;  // DualPipe 8x20: makespan 66 fits
  s.settings().pipeline_zoom = 3;
  const std::string zoomed = viz::render_plain(s.pipeline_canvas(100, 30));
  EXPECT_NE(zoomed.find("◀"), std::string::npos) << zoomed;  // more lies left of the window
  EXPECT_NE(zoomed, fit);
}

}  // namespace
}  // namespace dsv3::app
