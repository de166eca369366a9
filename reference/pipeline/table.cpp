#include "reference/pipeline/table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace dsv3::pipeline {

TableFormula table_formula(ScheduleKind kind, int P, int N, const Costs& c) {
  TableFormula t;
  t.pp = kind == ScheduleKind::kDualPipeV ? 2 * P : P;
  const double pp = t.pp;
  switch (kind) {
    case ScheduleKind::kGPipe:
      t.bubble = "(PP-1)(F+B)";
      t.bubble_value = (pp - 1) * (c.f + c.b);
      t.activation = "N";
      t.activation_value = N;
      break;
    case ScheduleKind::k1F1B:
      t.bubble = "(PP-1)(F+B)";
      t.bubble_value = (pp - 1) * (c.f + c.b);
      t.activation = "PP";
      t.activation_value = t.pp;
      break;
    case ScheduleKind::kZB1P:
      t.bubble = "(PP-1)(F+B-2W)";
      t.bubble_value = (pp - 1) * (c.f + c.b - 2 * c.w);
      t.activation = "PP";
      t.activation_value = t.pp;
      break;
    case ScheduleKind::kDualPipe:
    case ScheduleKind::kDualPipeV:
      t.bubble = "(PP/2-1)(F&B+B-3W)";
      t.bubble_value = (pp / 2 - 1) * (c.fb + c.b - 3 * c.w);
      t.activation = "PP+1";
      t.activation_value = t.pp + 1;
      break;
  }
  t.param_copies = kind == ScheduleKind::kDualPipe || kind == ScheduleKind::kDualPipeV ? 2 : 1;
  t.params = fmt::format("{}x", t.param_copies);
  return t;
}

Exactness formula_exactness(ScheduleKind kind, const Costs& c, SimMode mode) {
  if (mode != SimMode::kIdeal) {
    bool dual = kind == ScheduleKind::kDualPipe || kind == ScheduleKind::kDualPipeV;
    Exactness ideal = formula_exactness(kind, c, SimMode::kIdeal);
    if (dual && ideal.exact && c.bi() >= c.f && c.w <= c.bi())
      return {true, ideal.why + "; blocking commits cost nothing here (B-W >= F, W <= B-W)"};
    return {false,
            "estimate only: the exact regimes hold in ideal mode; waiting for communication "
            "can only add bubble"};
  }
  if (c.comm > 0)
    return {false, "the formula ignores point-to-point latency; with C > 0 it is an estimate"};
  auto eq = [](double a, double b) { return std::abs(a - b) <= 1e-9 * std::max(1.0, std::abs(a)); };
  switch (kind) {
    case ScheduleKind::kGPipe:
    case ScheduleKind::k1F1B:
      return {true, "exact for any costs"};
    case ScheduleKind::kZB1P:
      if (c.w <= c.f && c.w <= c.bi()) return {true, "exact: W <= F and W <= B-W"};
      return {false, "estimate only: needs W <= F and W <= B-W; the real bubble is larger"};
    case ScheduleKind::kDualPipe:
    case ScheduleKind::kDualPipeV:
      if (eq(c.f, c.w) && eq(c.b, 2 * c.w) && c.fb >= std::max(c.f, c.b) - 1e-12 &&
          c.fb <= c.f + c.b + 1e-12)
        return {true, "exact (largest rank): F = W, B = 2W, max(F,B) <= F&B <= F+B"};
      return {false,
              "estimate only: exact when F = W, B = 2W and max(F,B) <= F&B <= F+B; "
              "the simulated bubble may be smaller or larger"};
  }
  return {false, ""};
}

namespace {

TableRow make_row(ScheduleKind kind, int P, int N, const Costs& c, SimMode mode) {
  Schedule s = build_schedule(kind, P, N);
  SimResult r = simulate(s, c, mode);
  TableRow row{kind, table_formula(kind, P, N, c), formula_exactness(kind, c, mode)};
  row.sim_bubble_max = r.max_bubble();
  row.sim_bubble_min = r.min_bubble();
  row.makespan = r.makespan;
  row.sim_peak_activations = r.max_peak_activations();
  row.ranks = P;
  row.micro_batches = N;
  return row;
}

}  // namespace

std::vector<TableRow> compare_schedules(int P, int N, const Costs& c, SimMode mode,
                                        std::vector<std::string>* skipped) {
  std::vector<TableRow> rows;
  for (ScheduleKind k : kAllSchedules) {
    std::string why = check_constraints(k, P, N);
    if (!why.empty()) {
      if (skipped) skipped->push_back(fmt::format("{}: {}", schedule_label(k), why));
      continue;
    }
    rows.push_back(make_row(k, P, N, c, mode));
  }
  // The README compares at the same number of stages: DualPipeV then needs only P/2 devices.
  if (P % 2 == 0 && N % 2 == 0 && check_constraints(ScheduleKind::kDualPipeV, P / 2, N / 2).empty())
    rows.push_back(make_row(ScheduleKind::kDualPipeV, P / 2, N / 2, c, mode));
  return rows;
}

}  // namespace dsv3::pipeline
