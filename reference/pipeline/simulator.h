// A discrete-event simulator over pipeline schedules: start and end of every op on every rank,
// busy time, bubble (makespan minus busy, per rank, as in Table 2), peak activation memory and
// parameter copies.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "reference/pipeline/schedule.h"

namespace dsv3::pipeline {

// Per-op durations in any time unit. Bi = B - W (the input-gradient half of a full backward).
// The figures of the paper use F = Bi = W = 1, B = 2, F&B = 3 (= F + B: no overlap gain).
struct Costs {
  double f = 1.0;
  double b = 2.0;
  double w = 1.0;
  double fb = 3.0;
  double comm = 0.0;  // point-to-point latency of one activation or gradient message

  double bi() const { return b - w; }
  double duration(OpKind k) const;
  // Throws std::invalid_argument when a cost is negative or W > B.
  void validate() const;
};

// "F=1,B=2,W=1,FB=3" (keys case-insensitive, any subset; "F&B" also accepted for FB).
// Throws std::invalid_argument naming the bad item.
Costs parse_costs(std::string_view spec, Costs base = {});
std::string to_string(const Costs& c);

enum class SimMode {
  kIdeal,       // only data dependencies (+ comm latency between ranks): reproduces the figures
  kEager,       // each compute waits for the receives posted before it; sends never block
  kRendezvous,  // as the official code: each compute waits for every send and receive posted
                // since the previous compute, and a transfer starts only when both sides commit
};
SimMode parse_sim_mode(std::string_view name);  // "ideal" | "eager" | "rendezvous"
std::string_view sim_mode_id(SimMode m);

struct OpTiming {
  Op op;
  double start = 0;
  double end = 0;
  // The split of an FB op into its forward and backward parts, for drawing (F/(F+B) of it).
  double fb_split() const { return start + (end - start) * split_fraction; }
  double split_fraction = 0;
};

struct RankResult {
  std::vector<OpTiming> timeline;  // program order
  double busy = 0;
  double bubble = 0;  // makespan - busy
  // Activations of one micro-batch through one stage held at peak: +1 when an F or F&B starts,
  // -1 when a full B or F&B ends or, for a split backward, when its W ends; the new forward in
  // an F&B is allocated before the backward frees (dualpipe.md §e, convention A).
  int peak_activations = 0;
  int param_copies = 1;  // stages of parameters held
};

struct SimResult {
  ScheduleKind kind = ScheduleKind::k1F1B;
  int ranks = 0;
  int micro_batches = 0;
  Costs costs;
  SimMode mode = SimMode::kIdeal;
  std::vector<RankResult> ranks_result;
  double makespan = 0;

  double max_bubble() const;
  double min_bubble() const;
  int max_peak_activations() const;
  // Activation count on rank r at time t (the state a time cursor shows).
  int activations_at(int rank, double t) const;
};

// Runs the schedule; throws std::logic_error if it deadlocks (a schedule bug), and
// std::invalid_argument on invalid costs.
SimResult simulate(const Schedule& s, const Costs& costs, SimMode mode = SimMode::kIdeal);

}  // namespace dsv3::pipeline
