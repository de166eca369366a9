// The FP8 panel: its numbers (reference/fp8/panel.h) and its drawing (visualizers/fp8_panel.h).
#include <gtest/gtest.h>

#include <string>

#include "reference/fp8/analysis.h"
#include "reference/fp8/panel.h"
#include "visualizers/fp8_panel.h"

namespace dsv3::fp8 {
namespace {

TEST(Fp8Panel, AnalyzesOneTokenThroughOneLayer) {
  RowVec x = random_matrix(1, 1024, Dist::kRandnPlusHalf, 1).row(0);
  x[300] = 40.0f;  // an outlier channel: its tile gets a large scale, the others do not care
  const Mat w = random_matrix(64, 1024, Dist::kRandn, 2) * 0.02f;
  const LayerFp8View v = analyze_layer(x, w, "model.layers.3.mlp.experts.5.up_proj.weight");
  ASSERT_EQ(v.tile_scales.size(), 8u);
  EXPECT_EQ(v.tile_scales[2], 40.0f / 448.0f);
  EXPECT_EQ(v.tile_amax[2], 40.0f);
  int64_t total = 0;
  for (int64_t n : v.code_histogram) total += n;
  EXPECT_EQ(total, 1024);
  EXPECT_GE(v.code_histogram[15], 8);  // every tile's amax lands on 448 = 1.75 * 2^8 (field 15)
  ASSERT_EQ(v.errors.size(), 4u);
  EXPECT_LT(v.errors[0].accum_rel, 1e-6);                         // fp32
  EXPECT_LT(v.errors[1].accum_rel, v.errors[2].accum_rel * 1.5);  // N_C=32 no worse than 128
  EXPECT_GT(v.errors[3].accum_rel, v.errors[2].accum_rel);        // no promotion is worst
  EXPECT_GT(v.quant_rel, 0.005);
  EXPECT_LT(v.quant_rel, 0.1);
}

TEST(Fp8Panel, DrawsEverySection) {
  const RowVec x = random_matrix(1, 512, Dist::kRandn, 3).row(0);
  const Mat w = random_matrix(32, 512, Dist::kRandn, 4);
  const LayerFp8View v = analyze_layer(x, w, "model.layers.0.self_attn.o_proj.weight");
  const std::string s = viz::render_plain(viz::draw_fp8_panel(v, 72, 40));
  for (const char* want :
       {"FP8 · model.layers.0.self_attn.o_proj.weight", "activation tile scales", "tile   3",
        "quantized |x| by binade", "2^8", "h100 N_C=128", "h100 no promotion", "fp32"}) {
    EXPECT_NE(s.find(want), std::string::npos) << want << "\n" << s;
  }
  // Small canvases clip instead of failing.
  EXPECT_EQ(viz::draw_fp8_panel(v, 20, 5).height(), 5);
}

}  // namespace
}  // namespace dsv3::fp8
