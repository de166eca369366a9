// Pictures and exports of a simulation: the text timeline (as plain text), the SVG, the Chrome
// trace and the JSON report; and the Figure 4 overlap model.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "reference/model/config.h"
#include "reference/pipeline/export.h"
#include "reference/pipeline/overlap.h"
#include "reference/pipeline/schedule.h"
#include "reference/pipeline/simulator.h"
#include "visualizers/pipeline_overlap.h"
#include "visualizers/pipeline_svg.h"
#include "visualizers/pipeline_timeline.h"

namespace dsv3 {
namespace {

pipeline::SimResult figure(int P = 4, int N = 8) {
  return pipeline::simulate(pipeline::build_dualpipe(P, N), pipeline::Costs{1, 2, 1, 3, 0});
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  for (size_t b; (b = s.find('\n', a)) != std::string::npos; a = b + 1)
    out.push_back(s.substr(a, b - a));
  return out;
}

// One column per time unit: every op occupies exactly its duration in cells and starts with its
// kind (upper case chunk 0, lower case chunk 1), so F, B, I and W differ without colour; the
// micro-batch number follows where the op has room. An F&B is its forward cell then its two
// backward cells.
TEST(PipelineTimeline, PlainSnapshotOneColumnPerUnit) {
  viz::PipelineTimelineOptions o;
  o.width = 40;
  o.bars = o.title = o.legend = false;
  o.columns_per_unit = 1;
  viz::Canvas c = viz::draw_pipeline_timeline(figure(), o);
  EXPECT_EQ(c.width(), 40);
  EXPECT_EQ(c.height(), 5);
  std::vector<std::string> l = lines(viz::render_plain(c));
  ASSERT_EQ(l.size(), 5u);
  // rank 0: F0(0) F0(1) F0(2) F1(0) Bi1(0) W1(0) F1(1) | FB(f:0/3,b:1/1) idle FB(f:1/2,b:0/0)
  // B1(2) idle FB(f:1/3,b:0/1) B1(3) | Bi0(2) W0(2) Bi0(3) W0(3).
  EXPECT_EQ(l[1], "r0 FFFfiwfFb1·fB0b2·fB1b3IWIW");
  EXPECT_EQ(l[4], "r3 fffFIWFfB1·Fb0B2·Fb1B3iwiw");  // the mirror image: directions swapped
  EXPECT_EQ(viz::display_width(l[1]) - 3, 26);       // makespan 26, one column per unit
  // Two columns per unit: every op has room for its micro-batch.
  o.columns_per_unit = 2;
  o.width = 60;
  l = lines(viz::render_plain(viz::draw_pipeline_timeline(figure(), o)));
  EXPECT_EQ(l[1].substr(0, 3 + 14), "r0 F0F1F2f0i0w0f1");
}

// The start cell of every op holds its kind's glyph, at every zoom: the user guide promises that
// glyphs carry the meaning in mono and with 8 colours (where B and b, I and w share a colour).
TEST(PipelineTimeline, EveryOpStartsWithItsKind) {
  for (auto kind : pipeline::kAllSchedules) {
    pipeline::SimResult r = pipeline::simulate(pipeline::build_schedule(kind, 4, 8), {});
    for (double cpu : {1.0, 2.0, 3.0}) {
      viz::PipelineTimelineOptions o;
      o.width = 200;
      o.bars = o.title = o.legend = false;
      o.columns_per_unit = cpu;
      viz::Canvas c = viz::draw_pipeline_timeline(r, o);
      for (int k = 0; k < r.ranks; ++k)
        for (const auto& t : r.ranks_result[k].timeline) {
          int x = 3 + static_cast<int>(std::lround(t.start * cpu));
          pipeline::OpKind shown =
              t.op.kind == pipeline::OpKind::kFB ? pipeline::OpKind::kF : t.op.kind;
          EXPECT_EQ(c.at(x, 1 + k).glyph, viz::pipeline_op_glyph(shown, t.op.chunk))
              << pipeline::schedule_label(kind) << " rank " << k << " t=" << t.start;
        }
    }
  }
}

TEST(PipelineTimeline, FitsWidthWithBarsLegendAndCursor) {
  pipeline::SimResult r = figure(8, 20);  // makespan 66
  for (int w : {40, 80, 100, 160, 240}) {
    viz::PipelineTimelineOptions o;
    o.width = w;
    o.cursor = 30;
    viz::Canvas c = viz::draw_pipeline_timeline(r, o);
    EXPECT_EQ(c.width(), w);
    bool windowed = w < 100;  // 66 units need 66 plot columns beside the bars
    EXPECT_EQ(c.height(), 1 + 1 + 8 + (windowed ? 1 : 0) + 2) << w;
    std::string plain = viz::render_plain(c);
    EXPECT_NE(plain.find("DualPipe"), std::string::npos);
    if (w >= 80) {
      EXPECT_NE(plain.find("makespan 66"), std::string::npos) << plain;  // never cut
    }
    EXPECT_NE(plain.find("r7"), std::string::npos);
    EXPECT_NE(plain.find("▼"), std::string::npos) << w;
    EXPECT_EQ(plain.find("time ") != std::string::npos, windowed) << plain;
    if (w >= 100) {
      EXPECT_NE(plain.find("overlapped F&B"), std::string::npos) << w;
    }
  }
  // The cursor column is drawn in reverse video on every rank row.
  viz::PipelineTimelineOptions o;
  o.width = 120;
  o.cursor = 10;
  o.columns_per_unit = 1;
  viz::Canvas c = viz::draw_pipeline_timeline(r, o);
  for (int k = 0; k < 8; ++k) EXPECT_TRUE(c.at(3 + 10, 2 + k).style.attr & viz::kReverse);
  EXPECT_FALSE(c.at(3 + 11, 2).style.attr & viz::kReverse);
  // Colour: chunk 1 differs from chunk 0, and ANSI output carries SGR codes.
  EXPECT_NE(viz::pipeline_op_style(pipeline::OpKind::kF, 0),
            viz::pipeline_op_style(pipeline::OpKind::kF, 1));
  EXPECT_NE(viz::render_ansi(c).find("\x1b[0;38;5;16;48;5;208m"), std::string::npos);
  EXPECT_EQ(viz::xterm_to_hex(208), "#ff8700");
  EXPECT_EQ(viz::xterm_to_hex(16), "#000000");
}

// A makespan wider than the panel: one column per time unit in a window that follows the
// cursor, with evenly spaced ticks and a row saying which part is shown (it used to be squeezed
// into runs like "FFF" and "IIWWW" with uneven ticks).
TEST(PipelineTimeline, AWideMakespanIsAWindowAroundTheCursor) {
  pipeline::SimResult r =
      pipeline::simulate(pipeline::build_schedule(pipeline::ScheduleKind::kDualPipeV, 8, 20), {});
  ASSERT_GT(r.makespan, 100);
  auto draw = [&](double cursor) {
    viz::PipelineTimelineOptions o;
    o.width = 80;
    o.cursor = cursor;
    return viz::draw_pipeline_timeline(r, o);
  };
  for (double t : {0.0, 40.0, 70.0, r.makespan}) {
    viz::Canvas c = draw(t);
    std::vector<std::string> l = lines(viz::render_plain(c));
    // The cursor is inside the window.
    EXPECT_NE(l[1].find("▼"), std::string::npos) << t << "\n" << viz::render_plain(c);
    // Ticks every 10 columns exactly (one column per unit).
    std::vector<int> ticks;
    for (int x = 0; x < c.width(); ++x)
      if (c.at(x, 1).glyph == U'┬' || c.at(x, 1).glyph == U'▼') ticks.push_back(x);
    for (size_t i = 2; i < ticks.size(); ++i)
      if (c.at(ticks[i], 1).glyph == U'┬' && c.at(ticks[i - 1], 1).glyph == U'┬') {
        EXPECT_EQ(ticks[i] - ticks[i - 1], 10) << t;
      }
    // The range row: "time A–B of 134" with the visible span, an arrow where more lies beyond.
    std::string range = l[1 + 1 + 8];
    EXPECT_NE(range.find(fmt::format("of {}", r.makespan)), std::string::npos) << range;
    EXPECT_EQ(range.find("◀") != std::string::npos, t >= 40) << t << " " << range;
    EXPECT_EQ(range.find("▶") != std::string::npos, t < r.makespan) << t << " " << range;
  }
  EXPECT_NE(lines(viz::render_plain(draw(0)))[10].find("time 0–"), std::string::npos);
  // An explicit start wins over the cursor.
  viz::PipelineTimelineOptions o;
  o.width = 80;
  o.view_start = 50;
  std::string plain = viz::render_plain(viz::draw_pipeline_timeline(r, o));
  EXPECT_NE(plain.find("time 50–"), std::string::npos) << plain;
  EXPECT_NE(plain.find("┬50"), std::string::npos) << plain;
}

// Bubble bars compare schedules: the bar is scaled to the largest bubble of any schedule on the
// same ranks and micro-batches, so GPipe's 21 fills it and DualPipeV's 14 does not.
TEST(PipelineTimeline, BubbleBarsShareTheLargestBubble) {
  auto filled = [](pipeline::ScheduleKind k) {
    pipeline::SimResult r = pipeline::simulate(pipeline::build_schedule(k, 8, 20), {});
    viz::PipelineTimelineOptions o;
    o.width = 200;
    std::vector<std::string> l = lines(viz::render_plain(viz::draw_pipeline_timeline(r, o)));
    int n = 0;
    for (size_t at = 0; (at = l[2].find("█", at)) != std::string::npos; at += 3) ++n;
    return n;
  };
  int gpipe = filled(pipeline::ScheduleKind::kGPipe);
  int dualpipev = filled(pipeline::ScheduleKind::kDualPipeV);
  int dualpipe = filled(pipeline::ScheduleKind::kDualPipe);
  EXPECT_EQ(gpipe, 8);
  EXPECT_LT(dualpipev, gpipe);
  EXPECT_LT(dualpipe, dualpipev);
  EXPECT_GE(dualpipe, 1);  // a bubble is never an empty bar
}

TEST(PipelineTimeline, DualPipeVSaysItsStagesAndRanks) {
  pipeline::SimResult r =
      pipeline::simulate(pipeline::build_schedule(pipeline::ScheduleKind::kDualPipeV, 8, 20), {});
  for (int w : {80, 160}) {
    viz::PipelineTimelineOptions o;
    o.width = w;
    std::string plain = viz::render_plain(viz::draw_pipeline_timeline(r, o));
    EXPECT_NE(plain.find("DualPipeV · 16 stages on 8 ranks"), std::string::npos) << plain;
    EXPECT_NE(plain.find("makespan 134"), std::string::npos) << plain;
  }
}

TEST(PipelineTimeline, BaselinesDraw) {
  for (pipeline::ScheduleKind k : pipeline::kAllSchedules) {
    pipeline::SimResult r = pipeline::simulate(pipeline::build_schedule(k, 4, 8), {});
    viz::PipelineTimelineOptions o;
    o.width = 90;
    std::string plain = viz::render_plain(viz::draw_pipeline_timeline(r, o));
    EXPECT_NE(plain.find(std::string(pipeline::schedule_label(k))), std::string::npos);
  }
}

TEST(PipelineExport, SvgAndChromeTrace) {
  pipeline::SimResult r = figure(8, 20);
  std::string svg = viz::draw_pipeline_svg(r);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("Device 7"), std::string::npos);
  size_t ops = 0;
  for (const auto& rr : r.ranks_result) ops += rr.timeline.size();
  size_t rects = 0;
  for (size_t p = 0; (p = svg.find("<rect", p)) != std::string::npos; ++p) ++rects;
  EXPECT_GT(rects, ops);

  nlohmann::json t = pipeline::to_chrome_trace(r);
  size_t x_events = 0;
  for (const auto& e : t["traceEvents"]) {
    if (e["ph"] == "X") {
      ++x_events;
      EXPECT_GE(e["dur"].get<double>(), 0);
    }
  }
  EXPECT_EQ(x_events, ops);
  EXPECT_DOUBLE_EQ(t["otherData"]["makespan"].get<double>(), 66);

  nlohmann::json j = pipeline::to_json(r, true);
  EXPECT_EQ(j["schedule"], "dualpipe");
  EXPECT_DOUBLE_EQ(j["makespan"].get<double>(), 66);
  EXPECT_EQ(j["per_rank"].size(), 8u);
  EXPECT_DOUBLE_EQ(j["per_rank"][3]["bubble"].get<double>(), 6);
  EXPECT_EQ(j["formula"]["bubble"], "(PP/2-1)(F&B+B-3W)");
  EXPECT_TRUE(j["formula"]["exact"].get<bool>());
  EXPECT_EQ(j["per_rank"][0]["timeline"][0]["op"], "F0(mb0)");
}

// Figure 4: with the communication no longer than the computation it hides under, all of it
// is hidden; the overlapped pair is faster than running F then B with blocking all-to-all.
TEST(PipelineOverlap, CommunicationHidden) {
  pipeline::BlockCosts c{1, 1, 1, 2, 2, 2, 1.5, 1.5, 1.5, 1.5, 0.5};
  pipeline::OverlapResult r = pipeline::simulate_overlap(c, 1, 132, 0);
  // One block: attention 1+1+1 and MLP 2+2+2 of computation, 1.5 x 4 + 0.5 of communication.
  EXPECT_NEAR(r.serial_time, 9 + 6.5, 1e-12);
  EXPECT_NEAR(r.compute_time, 9, 1e-12);
  EXPECT_LT(r.overlapped_time, r.serial_time);
  EXPECT_NEAR(r.comm_time, 6.5, 1e-12);
  // Communication that dwarfs the computation cannot be hidden.
  pipeline::BlockCosts slow = c;
  slow.dispatch_f = slow.dispatch_b = slow.combine_f = slow.combine_b = 10;
  pipeline::OverlapResult s = pipeline::simulate_overlap(slow, 2, 132, 20);
  EXPECT_GT(s.exposed_comm, 0);
  EXPECT_LT(s.hidden_fraction, 1);
  // Each segment respects the stream order: compute segments never overlap each other.
  for (const auto* segs : {&r.overlapped, &s.overlapped}) {
    double last_c = 0, last_m = 0;
    for (const auto& g : *segs) {
      double& last = g.comm ? last_m : last_c;
      EXPECT_GE(g.start + 1e-12, last) << g.name;
      last = g.end;
    }
  }
  // Zero communication: nothing exposed, overlapped = compute (with all SMs).
  pipeline::BlockCosts none{1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0};
  pipeline::OverlapResult z = pipeline::simulate_overlap(none, 3, 132, 0);
  EXPECT_NEAR(z.exposed_comm, 0, 1e-12);
  EXPECT_NEAR(z.overlapped_time, z.serial_time, 1e-12);
  EXPECT_THROW(pipeline::simulate_overlap(c, 0), std::invalid_argument);
  EXPECT_THROW(pipeline::simulate_overlap(c, 1, 132, 132), std::invalid_argument);
  EXPECT_THROW(pipeline::parse_block_costs("attn=1"), std::invalid_argument);
  EXPECT_DOUBLE_EQ(pipeline::parse_block_costs("pp=0.25,mlp_w=3").mlp_w, 3);

  viz::Canvas canvas = viz::draw_pipeline_overlap(r, 100);
  std::string plain = viz::render_plain(canvas);
  EXPECT_NE(plain.find("compute"), std::string::npos);
  EXPECT_NE(plain.find("MLP_B(0)"), std::string::npos);
  EXPECT_NE(plain.find("% hidden"), std::string::npos);
}

// Costs derived from a config: FLOPs of MLA and the MoE block per token, bytes of the
// all-to-all, for the tiny shipped config (always present).
TEST(PipelineOverlap, DerivedFromConfig) {
  model::Config cfg;
  try {
    cfg = model::resolve_config("tiny-random");
  } catch (const std::exception& e) {
    GTEST_SKIP() << "tiny config unavailable: " << e.what();
  }
  pipeline::HardwareModel hw;
  pipeline::BlockWork w = pipeline::block_work(cfg, hw);
  EXPECT_GT(w.attn_linear_flops, 0);
  EXPECT_GT(w.mlp_flops, 0);
  pipeline::BlockCosts b = pipeline::derive_block_costs(cfg, hw);
  EXPECT_NEAR(b.mlp_f, b.mlp_w, 1e-15);
  EXPECT_GT(b.attn_bi, b.attn_w);  // the score backward belongs to the input part
  EXPECT_NEAR(b.combine_f, 2 * b.dispatch_f, 1e-15);  // BF16 combine, FP8 dispatch
  hw.bandwidth_gbs *= 2;
  EXPECT_NEAR(pipeline::derive_block_costs(cfg, hw).dispatch_f, b.dispatch_f / 2, 1e-15);
}

}  // namespace
}  // namespace dsv3
