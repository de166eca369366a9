// The simulator against the published numbers: Fig. 5 (makespan 66, bubble 6 on every rank),
// Table 2's formulas in the regimes where they are exact, and activation peaks.
#include <gtest/gtest.h>

#include <random>

#include "reference/pipeline/schedule.h"
#include "reference/pipeline/simulator.h"
#include "reference/pipeline/table.h"

namespace dsv3::pipeline {
namespace {

constexpr SimMode kModes[] = {SimMode::kIdeal, SimMode::kEager, SimMode::kRendezvous};

// Fig. 5 of the report: 8 ranks, 20 micro-batches, F = Bi = W = 1, B = 2, F&B = 3.
TEST(PipelineSimulator, Figure5MakespanAndBubble) {
  Costs c{1, 2, 1, 3, 0};
  for (SimMode m : kModes) {
    SimResult r = simulate(build_dualpipe(8, 20), c, m);
    EXPECT_DOUBLE_EQ(r.makespan, 66) << sim_mode_id(m);
    for (int k = 0; k < 8; ++k) {
      EXPECT_DOUBLE_EQ(r.ranks_result[k].busy, 60) << "rank " << k;
      EXPECT_DOUBLE_EQ(r.ranks_result[k].bubble, 6) << "rank " << k;
      EXPECT_EQ(r.ranks_result[k].peak_activations, 9) << "rank " << k;  // PP+1
      EXPECT_EQ(r.ranks_result[k].param_copies, 2);
    }
    EXPECT_DOUBLE_EQ(table_formula(ScheduleKind::kDualPipe, 8, 20, c).bubble_value, 6);
  }
  // dualpipev.png: 4 ranks, 10 micro-batches, the top half of the same picture.
  SimResult v = simulate(build_dualpipev(4, 10), c);
  EXPECT_DOUBLE_EQ(v.makespan, 66);
  for (const auto& rr : v.ranks_result) EXPECT_DOUBLE_EQ(rr.bubble, 6);
  SimResult d = simulate(build_dualpipe(8, 20), c);
  for (int k = 0; k < 4; ++k)
    for (size_t i = 0; i < v.ranks_result[k].timeline.size(); ++i) {
      EXPECT_DOUBLE_EQ(v.ranks_result[k].timeline[i].start, d.ranks_result[k].timeline[i].start);
    }
}

// Neither the bubble nor the activations grow with the number of micro-batches.
TEST(PipelineSimulator, DualPipeBubbleIndependentOfN) {
  Costs c{1, 2, 1, 3, 0};
  for (int N : {16, 20, 32, 40}) {
    SimResult r = simulate(build_dualpipe(8, N), c);
    EXPECT_DOUBLE_EQ(r.max_bubble(), 6) << N;
    EXPECT_EQ(r.max_peak_activations(), 9) << N;
  }
}

Costs random_costs(std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.2, 3.0);
  Costs c;
  c.f = u(rng);
  c.b = u(rng) + 0.2;
  std::uniform_real_distribution<double> frac(0.0, 1.0);
  c.w = c.b * frac(rng);
  c.fb = std::max(c.f, c.b) + frac(rng) * std::min(c.f, c.b);
  return c;
}

// 1F1B: (PP-1)(F+B) on every rank for any costs and any N; GPipe too.
TEST(PipelineSimulator, OneFOneBMatchesFormulaForAnyCosts) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 60; ++trial) {
    Costs c = random_costs(rng);
    int P = 1 + trial % 9, N = 1 + (trial * 7) % 23;
    for (ScheduleKind k : {ScheduleKind::k1F1B, ScheduleKind::kGPipe}) {
      SimResult r = simulate(build_schedule(k, P, N), c);
      double want = table_formula(k, P, N, c).bubble_value;
      for (const auto& rr : r.ranks_result) EXPECT_NEAR(rr.bubble, want, 1e-9) << schedule_id(k);
    }
  }
}

// ZB-H1: (PP-1)(F+B-2W) exactly when W <= F and W <= B-W; larger otherwise.
TEST(PipelineSimulator, ZeroBubbleH1Regime) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 80; ++trial) {
    Costs c = random_costs(rng);
    int P = 2 + trial % 7, N = P + trial % 5;
    SimResult r = simulate(build_zb1p(P, N), c);
    double want = table_formula(ScheduleKind::kZB1P, P, N, c).bubble_value;
    if (formula_exactness(ScheduleKind::kZB1P, c).exact) {
      for (const auto& rr : r.ranks_result) EXPECT_NEAR(rr.bubble, want, 1e-9);
    } else {
      EXPECT_GE(r.max_bubble(), want - 1e-9);
    }
  }
}

// DualPipe in the figure's proportions (F = W, B = 2W, max(F,B) <= F&B <= F+B): closed forms
// with H = PP/2 and n micro-batches per direction,
//   makespan = (2H+1)(F+B) + (2n-2H-1) F&B + (H-1)(F&B-W),
//   bubble(h) = (H-1)(F&B-W) - max(0, H-h-2)(F+B-F&B),
// whose largest value (ranks h >= H-2) is Table 2's (PP/2-1)(F&B+B-3W).
TEST(PipelineSimulator, DualPipeClosedFormInExactRegime) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0.3, 2.0), frac(0.0, 1.0);
  for (int trial = 0; trial < 40; ++trial) {
    double w = u(rng);
    Costs c{w, 2 * w, w, 2 * w + frac(rng) * w, 0};
    int P = 2 * (1 + trial % 6);
    int N = 2 * P + 2 * (trial % 4);
    int H = P / 2, n = N / 2;
    for (SimMode m : {SimMode::kIdeal, SimMode::kRendezvous}) {
      SimResult r = simulate(build_dualpipe(P, N), c, m);
      double F = c.f, B = c.b, FB = c.fb, W = c.w;
      EXPECT_NEAR(r.makespan, (2 * H + 1) * (F + B) + (2 * n - 2 * H - 1) * FB + (H - 1) * (FB - W),
                  1e-9);
      for (int k = 0; k < P; ++k) {
        int h = std::min(k, P - 1 - k);
        double want = (H - 1) * (FB - W) - std::max(0, H - h - 2) * (F + B - FB);
        EXPECT_NEAR(r.ranks_result[k].bubble, want, 1e-9) << "P=" << P << " rank " << k;
      }
      EXPECT_NEAR(r.max_bubble(), table_formula(ScheduleKind::kDualPipe, P, N, c).bubble_value,
                  1e-9);
      // DualPipeV on P/2 ranks has the same per-rank bubbles as DualPipe's upper half.
      if (m == SimMode::kIdeal) {
        SimResult v = simulate(build_dualpipev(H, n), c);
        for (int k = 0; k < H; ++k)
          EXPECT_NEAR(v.ranks_result[k].bubble, r.ranks_result[k].bubble, 1e-9);
      }
    }
  }
}

// A published non-exact case (dualpipe.md, bubble check table): F/B/W/F&B = 2/4/1/5 gives 16 in
// simulation, 18 by the formula; 1/2/1/2 gives per-rank 1 2 3 3 3 3 2 1.
TEST(PipelineSimulator, DualPipeOutsideExactRegime) {
  SimResult r = simulate(build_dualpipe(8, 20), Costs{2, 4, 1, 5, 0});
  EXPECT_DOUBLE_EQ(r.max_bubble(), 16);
  EXPECT_DOUBLE_EQ(table_formula(ScheduleKind::kDualPipe, 8, 20, Costs{2, 4, 1, 5, 0}).bubble_value,
                   18);
  EXPECT_FALSE(formula_exactness(ScheduleKind::kDualPipe, Costs{2, 4, 1, 5, 0}).exact);
  SimResult q = simulate(build_dualpipe(8, 20), Costs{1, 2, 1, 2, 0});
  double want[] = {1, 2, 3, 3, 3, 3, 2, 1};
  for (int k = 0; k < 8; ++k) EXPECT_DOUBLE_EQ(q.ranks_result[k].bubble, want[k]);
}

TEST(PipelineSimulator, PeakActivations) {
  Costs c;
  SimResult g = simulate(build_gpipe(4, 8), c);
  for (const auto& rr : g.ranks_result) EXPECT_EQ(rr.peak_activations, 8);
  SimResult o = simulate(build_1f1b(4, 8), c);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(o.ranks_result[k].peak_activations, 4 - k);
  SimResult z = simulate(build_zb1p(4, 8), c);
  for (const auto& rr : z.ranks_result) EXPECT_EQ(rr.peak_activations, 4);
  SimResult v = simulate(build_dualpipev(4, 8), c);
  for (const auto& rr : v.ranks_result) EXPECT_EQ(rr.peak_activations, 9);  // 2P+1
  // The cursor view: nothing held at t=0-, everything released at the end.
  EXPECT_EQ(v.activations_at(0, -1), 0);
  EXPECT_EQ(v.activations_at(0, v.makespan), 0);
  EXPECT_GT(v.activations_at(0, 10), 0);
}

// Communication latency: every mode still completes, the makespan grows, and rendezvous is
// never faster than ideal.
TEST(PipelineSimulator, CommunicationModes) {
  Costs c{1, 2, 1, 3, 0.25};
  for (ScheduleKind k : kAllSchedules) {
    Schedule s = build_schedule(k, 4, 8);
    double zero = simulate(s, Costs{1, 2, 1, 3, 0}).makespan;
    double ideal = simulate(s, c, SimMode::kIdeal).makespan;
    double rv = simulate(s, c, SimMode::kRendezvous).makespan;
    EXPECT_GT(ideal, zero) << schedule_id(k);
    EXPECT_GE(rv + 1e-9, ideal) << schedule_id(k);
  }
  // Outside B-W >= F (here Bi = 0.5 < F), the official commit placement makes ranks wait.
  Costs odd{1, 1.5, 1, 2.5, 0};
  Schedule d = build_dualpipe(8, 20);
  EXPECT_GT(simulate(d, odd, SimMode::kRendezvous).makespan, simulate(d, odd).makespan);
}

TEST(PipelineSimulator, CostParsing) {
  Costs c = parse_costs("F=1.5,B=3,W=1,FB=4");
  EXPECT_DOUBLE_EQ(c.f, 1.5);
  EXPECT_DOUBLE_EQ(c.bi(), 2);
  EXPECT_DOUBLE_EQ(parse_costs("f&b=2.5").fb, 2.5);
  EXPECT_DOUBLE_EQ(parse_costs("C=0.1").comm, 0.1);
  EXPECT_THROW(parse_costs("F=x"), std::invalid_argument);
  EXPECT_THROW(parse_costs("Q=1"), std::invalid_argument);
  EXPECT_THROW(parse_costs("W=3"), std::invalid_argument);  // W > B
  EXPECT_THROW(parse_costs("F=-1"), std::invalid_argument);
  EXPECT_THROW(parse_sim_mode("fast"), std::invalid_argument);
}

TEST(PipelineTable, CompareSchedules) {
  std::vector<std::string> skipped;
  auto rows = compare_schedules(8, 20, Costs{1, 2, 1, 3, 0}, SimMode::kIdeal, &skipped);
  ASSERT_EQ(rows.size(), 6u);  // five schedules + DualPipeV on 4 ranks (same stages)
  EXPECT_TRUE(skipped.empty());
  double want[] = {21, 21, 7, 6, 14, 6};  // GPipe, 1F1B, ZB1P, DualPipe, DualPipeV(8), V(4)
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_DOUBLE_EQ(rows[i].sim_bubble_max, want[i]) << i;
  EXPECT_EQ(rows[4].formula.pp, 16);
  EXPECT_EQ(rows[5].ranks, 4);
  skipped.clear();
  rows = compare_schedules(3, 4, Costs{}, SimMode::kIdeal, &skipped);
  EXPECT_EQ(rows.size(), 3u);
  EXPECT_EQ(skipped.size(), 2u);
  // Rendezvous: the regimes are claimed only where they still hold.
  rows = compare_schedules(8, 20, Costs{1, 2, 1, 3, 0}, SimMode::kRendezvous);
  for (const auto& row : rows) {
    if (row.exactness.exact) {
      EXPECT_DOUBLE_EQ(row.sim_bubble_max, row.formula.bubble_value) << schedule_id(row.kind);
    } else {
      EXPECT_GE(row.sim_bubble_max + 1e-9, row.formula.bubble_value) << schedule_id(row.kind);
    }
  }
  EXPECT_TRUE(
      formula_exactness(ScheduleKind::kDualPipe, Costs{1, 2, 1, 3, 0}, SimMode::kRendezvous).exact);
  EXPECT_FALSE(formula_exactness(ScheduleKind::k1F1B, Costs{}, SimMode::kEager).exact);
}

}  // namespace
}  // namespace dsv3::pipeline
