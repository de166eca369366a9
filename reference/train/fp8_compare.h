// `dsv3 fp8 train-compare`: the paper's Figure 10 at tiny scale. The same config, seed and
// batches are trained in several precisions; each run's training loss is compared step by step
// with the BF16 baseline's:
//
//   gap_k        = (L_k - L_k^bf16) / L_k^bf16         (training loss L_main on step k's batch)
//   relative_gap = mean of gap_k over the last 10% of the steps (at least one step)
//   running gap  = gap_k smoothed with an EMA of 0.9, as the paper's curves
//
// Every run is a Trainer with its own folder, checkpointed as it goes, so a comparison that
// stops (a time limit, Ctrl-C) resumes where it stopped when called again with the same folder.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "reference/train/fp8_linear.h"
#include "reference/train/trainer.h"

namespace dsv3::train {

// A mode: fp32 | bf16 | fp8[:option...], options t<G> (tile/block size G), tensor (per-tensor
// scaling), no-promote (the whole K in the tensor core; implies per-tensor), nc<N> (N_C), e5m2
// (E5M2 for the gradients), block-dgrad (Dgrad's dy in g x g blocks, App. B.2). Examples: fp8,
// fp8:t32, fp8:tensor, fp8:no-promote, fp8:e5m2, fp8:t32:block-dgrad.
struct CompareMode {
  std::string name;
  LowPrecision precision;
};
CompareMode parse_compare_mode(const std::string& name);  // throws std::invalid_argument
// A comma-separated list; bf16 (the baseline) is put first, added when missing; duplicates are
// an error.
std::vector<CompareMode> parse_compare_modes(const std::string& list);

struct CompareRun {
  std::string mode, describe;
  std::vector<double> loss;  // L_main per step
  std::vector<double> gap;   // gap_k against the baseline (empty for the baseline)
  double final_loss = 0;     // mean loss over the last-10% window
  double relative_gap = 0;   // mean gap over the window
  double seconds_per_step = 0;
};

struct CompareResult {
  int64_t steps = 0;
  int64_t window = 0;  // steps in the last-10% window
  CompareRun baseline;
  std::vector<CompareRun> runs;
  bool complete = true;  // false: stopped early; run again with the same folder to go on
};

// The window of the last 10% of n steps (at least 1).
int64_t last_window(int64_t n);
// gap_k = (loss_k - base_k) / base_k, k < min(size).
std::vector<double> relative_gaps(const std::vector<double>& loss, const std::vector<double>& base);
double window_mean(const std::vector<double>& v, int64_t window);
std::vector<double> ema(const std::vector<double>& v, double beta = 0.9);  // debiased

struct CompareOptions {
  TrainOptions train;  // model, data, steps, seed, batch...; save = the comparison's folder
  std::vector<CompareMode> modes;
  double max_seconds = 0;  // > 0: checkpoint and stop after this much wall time
  int64_t save_every = 50;
};

// Trains every mode in turn (resuming any run already in opt.train.save/<mode>), then compares.
// Each run validates as `dsv3 train` does (val_loss in its log.jsonl, in the training precision).
// progress(mode, record) is called after every step. stop is polled after every step.
CompareResult train_compare(
    const CompareOptions& opt, std::atomic<bool>& stop,
    const std::function<void(const std::string&, const StepRecord&)>& progress = {});

// {"baseline": {"mode", "final_loss"}, "runs": [{"mode", "final_loss", "relative_gap"}...]}
std::string compare_json(const CompareResult& r);
// A markdown table for docs/fp8.md: mode, precision, final loss, relative gap over the window,
// the running gap at 25/50/75/100% of the run, seconds per step.
std::string compare_table(const CompareResult& r);
// Two panels: the loss curves and the running relative gap (%) with the paper's +-0.25%.
std::string compare_svg(const CompareResult& r);

}  // namespace dsv3::train
