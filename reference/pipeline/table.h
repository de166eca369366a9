// Table 2 of the DeepSeek-V3 report (and the DualPipe README's comparison table): the bubble,
// parameter and activation formulas of each schedule, the regime in which the bubble formula
// is exact, and the same quantities measured by the simulator.
#pragma once

#include <string>
#include <vector>

#include "reference/pipeline/schedule.h"
#include "reference/pipeline/simulator.h"

namespace dsv3::pipeline {

struct TableFormula {
  std::string bubble;  // "(PP-1)(F+B)"
  double bubble_value = 0;
  std::string params;  // "1x", "2x"
  int param_copies = 1;
  std::string activation;  // "PP", "PP+1", "N" (GPipe)
  int activation_value = 0;
  int pp = 0;  // the table's PP: pipeline stages (2P for DualPipeV)
};

// The published formula for `kind` on P ranks with N micro-batches. PP is the number of stages:
// P for every schedule except DualPipeV, whose P ranks hold 2P stages. GPipe is not in the
// table; its row is the textbook (PP-1)(F+B) with N activations.
TableFormula table_formula(ScheduleKind kind, int ranks, int micro_batches, const Costs& c);

// Whether the bubble formula is exact for these costs (ideal mode, no communication latency),
// with the reason; when not exact it is only an estimate (dualpipe.md, "Laws checked"):
//   GPipe, 1F1B: always exact.   ZB1P: exact iff W <= F and W <= B - W.
//   DualPipe(V): the formula is the largest per-rank bubble iff F = W, B = 2W and
//                max(F, B) <= F&B <= F + B (the figure's proportions).
struct Exactness {
  bool exact = false;
  std::string why;
};
// The regimes above are for ideal mode. In eager and rendezvous modes ranks also wait for
// communication, so the bubble can only grow: only DualPipe(V) stays exact, and only where the
// official commit placement costs nothing (B-W >= F and W <= B-W, which the figure's
// proportions satisfy).
Exactness formula_exactness(ScheduleKind kind, const Costs& c, SimMode mode = SimMode::kIdeal);

// One row of the reproduced table: formula beside simulation.
struct TableRow {
  ScheduleKind kind;
  TableFormula formula;
  Exactness exactness;
  double sim_bubble_max = 0;  // the largest per-rank bubble
  double sim_bubble_min = 0;
  double makespan = 0;
  int sim_peak_activations = 0;  // the largest per-rank peak
  int ranks = 0;                 // devices used (P)
  int micro_batches = 0;
};

// Simulates every schedule that accepts (P, N) and returns its row; schedules whose constraints
// (P, N) violate are skipped and their reason appended to `skipped` when given. When P is even a
// last row shows DualPipeV as the table compares it, at the same number of stages: P/2 ranks
// with N/2 micro-batches (the upper half of DualPipe(P, N): same work per device).
std::vector<TableRow> compare_schedules(int ranks, int micro_batches, const Costs& c,
                                        SimMode mode = SimMode::kIdeal,
                                        std::vector<std::string>* skipped = nullptr);

}  // namespace dsv3::pipeline
