// The explorer's session on a checkpoint's weights as stored (`dsv3 explore --weights native`):
// the matrices stay FP8/BF16 in the mapped file, and every view shows the same numbers as the
// float32 session, because the compact products are bit-identical (model/compact_linear.h).
#include <gtest/gtest.h>

#include <string>

#include "app/commands/registry.h"
#include "app/explorer/session.h"
#include "visualizers/canvas.h"

namespace dsv3::app {
namespace {

Session session_of(model::WeightMode w) {
  SessionOptions o;
  o.model = "tiny";  // the trained default, stored in FP8 + BF16
  o.weights = w;
  return Session(o);
}

std::string run_text(Session& s, const std::string& line) {
  Output o = registry().run(s, line, Context{100});
  return o.canvas ? viz::render_plain(*o.canvas) : o.text;
}

TEST(NativeSession, EveryViewShowsTheFloat32Numbers) {
  Session f32 = session_of(model::WeightMode::kF32);
  Session native = session_of(model::WeightMode::kNative);
  ASSERT_NE(native.model().native(), nullptr);
  ASSERT_EQ(f32.model().native(), nullptr);
  for (const char* line : {"step 3", "route --json", "logits 5 --json", "attn 1 0 --json",
                           "experts --json", "generate 4", "tokens --json", "mtp step 2",
                           "mtp status --json", "fp8 3 --json", "panel routing", "panel fp8"}) {
    EXPECT_EQ(run_text(native, line), run_text(f32, line)) << line;
  }
}

TEST(NativeSession, ARandomConfigHasNoStoredWeightsToKeep) {
  Session native = session_of(model::WeightMode::kNative);
  EXPECT_THROW(registry().run(native, "load tiny-random", Context{100}), std::exception);
  // The session keeps the model it had.
  EXPECT_NE(native.model().native(), nullptr);
  EXPECT_FALSE(run_text(native, "tokens --json").empty());
}

}  // namespace
}  // namespace dsv3::app
