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

// Issue 16: the panel said "N_C changes nothing here" for every K <= 128, above rows where N_C=32
// and N_C=128 differ. It may say so only when the rows are identical.
TEST(Fp8Panel, SaysNcChangesNothingOnlyWhenTheRowsAgree) {
  const RowVec x = random_matrix(1, 64, Dist::kRandn, 5).row(0);
  const Mat w = random_matrix(32, 64, Dist::kRandn, 6);
  const LayerFp8View v = analyze_layer(x, w, "model.layers.1.mlp.experts.0.gate_proj.weight");
  ASSERT_NE(v.errors[1].accum_rel, v.errors[2].accum_rel);  // N_C=32 promotes inside K = 64
  const std::string s = viz::render_plain(viz::draw_fp8_panel(v, 90, 30));
  EXPECT_EQ(s.find("changes nothing"), std::string::npos) << s;
  EXPECT_NE(s.find("N_C=32 promotes every 32 inside it"), std::string::npos) << s;
  EXPECT_NE(s.find("N_C=128 is one chain, the same as no promotion"), std::string::npos) << s;

  // K = 16: one 32-element block for every N_C, one tile and one weight block: all rows agree.
  const RowVec x16 = random_matrix(1, 16, Dist::kRandn, 7).row(0);
  const Mat w16 = random_matrix(8, 16, Dist::kRandn, 8);
  const LayerFp8View v16 = analyze_layer(x16, w16, "model.layers.0.self_attn.q_a_proj.weight");
  for (size_t i = 2; i < v16.errors.size(); ++i)
    ASSERT_EQ(v16.errors[i].accum_rel, v16.errors[1].accum_rel) << v16.errors[i].label;
  const std::string s16 = viz::render_plain(viz::draw_fp8_panel(v16, 90, 30));
  EXPECT_NE(s16.find("every h100 row is the same, so N_C changes nothing here"), std::string::npos)
      << s16;

  // K = 96 with 200 outputs: per-tensor weight scaling differs from the 128x128 blocks, so no
  // promotion is not N_C=128 here, and the panel says why.
  const RowVec x96 = random_matrix(1, 96, Dist::kRandn, 9).row(0);
  Mat w96 = random_matrix(200, 96, Dist::kRandn, 10);
  w96.row(150) *= 50.0f;  // an outlier row in the second weight block
  const LayerFp8View v96 = analyze_layer(x96, w96, "model.layers.0.self_attn.o_proj.weight");
  const std::string s96 = viz::render_plain(viz::draw_fp8_panel(v96, 90, 30));
  if (v96.errors[2].accum_rel != v96.errors[3].accum_rel ||
      v96.errors[2].total_rel != v96.errors[3].total_rel) {
    EXPECT_NE(s96.find("no promotion differs by its per-tensor scales"), std::string::npos) << s96;
  } else {
    EXPECT_NE(s96.find("the same as no promotion"), std::string::npos) << s96;
  }
}

}  // namespace
}  // namespace dsv3::fp8
