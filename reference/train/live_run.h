// A training run you watch and steer: the Trainer's steps on a worker thread (std::thread), each
// finished step published as an immutable TrainSnapshot that the explorer's panel 9 reads under a
// mutex. Controls between steps: pause/resume, single steps, set γ/λ/α/lr/balancing mode (each
// change logged in log.jsonl with its step, changes.h), save a checkpoint, stop (keeps the last
// checkpoint). The checkpoints and the log are those of `dsv3 train`: the same options and the
// same changes (`dsv3 train --replay LOG`) give the same weights bit for bit.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "reference/train/changes.h"
#include "reference/train/lockstep.h"
#include "reference/train/trainer.h"

namespace dsv3::train {

// One finished step, as the panel plots it.
struct LiveStep {
  int64_t step = 0;                                                // 1-based
  double loss = 0, loss_main = 0, loss_mtp = 0, loss_balance = 0;  // loss_mtp: mean over D
  std::optional<double> val_loss;
  double lr = 0, grad_norm = 0, bias_gamma = 0, tokens_per_s = 0;
  bool clipped = false;
  std::vector<double> max_vio;                    // [MoE layers]
  std::vector<std::vector<int64_t>> expert_load;  // [MoE layers][experts]: c_i of this step
};

enum class RunState { kPaused, kRunning, kDone, kStopped, kFailed };
const char* to_string(RunState s);

struct TrainSnapshot {
  RunState state = RunState::kPaused;
  std::string message;  // the last event ("saved step 40", "set bias_gamma=0.01 at step 12")
  int64_t step = 0, steps = 0, last_saved = -1;
  int64_t tokens_per_step = 0;           // B * T
  std::string save;                      // the run's folder
  TrainOptions options;                  // as in force now (changes applied)
  std::vector<int> moe_layers;           // checkpoint layer index of each MoE layer
  int64_t experts = 0;                   // routed experts per MoE layer
  std::vector<std::vector<float>> bias;  // [MoE layers][experts]: b_i now
  std::vector<LiveStep> history;         // every step so far
  std::vector<OptionChange> changes;     // made in this run, in order
  // Figure 9: per domain of the corpus, tokens routed to each expert of each MoE layer on that
  // domain's held-out windows, measured at step `domain_step` ([MoE layers][domains][experts]).
  std::vector<std::string> domains;
  std::vector<std::vector<std::vector<int64_t>>> domain_load;
  int64_t domain_step = -1;
  double tokens_per_s = 0;        // smoothed (0.9 / 0.1, as `dsv3 train`)
  double eta_s = 0;               // steps left at that rate
  double lr_at(int64_t k) const;  // the schedule with the current peak at step k (0-based)
};

// Reads a run's folder (trainer_state.json + log.jsonl, including change lines and the domain
// lines the live run writes) into the snapshot the run had at its end. Biases are rebuilt from
// the logged loads and γ (b starts at 0). Throws TrainError.
TrainSnapshot snapshot_from_log(const std::string& run_dir);

// A small built-in corpus for demos and lessons (`train start data=demo`): three domains
// (code, prose, arithmetic) of generated text as byte-tokenizer ids (byte b = id b + 3), `tokens` +
// `domain_offsets` + "domains" in the format BatchSource reads; deterministic. Writes `path`,
// throws TrainError.
void write_demo_stream(const std::string& path, int64_t tokens_per_domain = 6000);

// The weights after one finished step, copied between two steps (never mid-step), with the
// config and the run they belong to: what the explorer's other panels show (`train weights`).
struct WeightsAt {
  int64_t step = 0;
  std::string save;  // the run's folder (its tokenizer, if any, is the checkpoint's)
  model::Config config;
  model::ModelWeights weights;
};

class LiveRun {
 public:
  // Builds the Trainer on the calling thread (TrainError on bad options) and starts the worker,
  // paused when `start_paused`. `opt.changes` (--replay) are applied before the steps they name,
  // as `dsv3 train --replay` does, and logged again.
  // With `pair`, this run is side `side` (0 or 1) of two compare runs that step together
  // (lockstep.h); the pair's controls then go through `pair->schedule`.
  explicit LiveRun(TrainOptions opt, bool start_paused = false,
                   std::shared_ptr<Lockstep> pair = nullptr, int side = 0);
  ~LiveRun();  // stop() without waiting for more steps
  LiveRun(const LiveRun&) = delete;
  LiveRun& operator=(const LiveRun&) = delete;

  void pause();
  void resume();
  void step(int64_t n = 1);  // while paused: run n more steps, then pause again
  // Checks the change (TrainError) and queues it; the worker applies it before the next step.
  void set(const OptionChange& c);
  void save();  // a checkpoint after the current step
  // Finishes the step in progress, saves when the last checkpoint is older, joins the worker.
  void stop();
  // The weights of the last finished step: copied by the worker before its next step (waits for
  // at most the step in progress), or directly once the worker has ended.
  std::shared_ptr<const WeightsAt> current_weights();

  std::shared_ptr<const TrainSnapshot> snapshot() const;
  uint64_t version() const;  // grows with every published snapshot
  // Blocks until the worker has nothing to do (paused with no queued work, done, stopped or
  // failed); returns the snapshot then. For tests and `train step --wait`.
  std::shared_ptr<const TrainSnapshot> wait_idle();
  void wake();  // the worker looks again (Lockstep)

 private:
  void work();
  void publish(const std::string& message);  // called by the worker with mu_ NOT held
  void measure_domains();
  bool has_work() const;  // mu_ held
  bool pair_due() const { return pair_ && pair_->has_due(side_); }
  void apply_pair_items(std::string* msg, bool* save);    // the worker, mu_ NOT held
  std::shared_ptr<const WeightsAt> copy_weights() const;  // worker, or after it ended

  std::unique_ptr<Trainer> trainer_;
  std::unique_ptr<BatchSource> data_;  // for the per-domain windows (Figure 9)
  model::RopeTable rope_;
  int64_t eval_every_ = 1;

  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_, copy_cv_;
  bool paused_ = false, stop_ = false, save_ = false, busy_ = false;
  bool copy_ = false, exited_ = false;  // current_weights: asked for, worker gone
  std::shared_ptr<const WeightsAt> copied_;
  std::vector<OptionChange> replay_;  // opt.changes, applied at their steps
  int64_t single_ = 0;
  std::deque<OptionChange> pending_;
  std::shared_ptr<const TrainSnapshot> snap_;
  uint64_t version_ = 0;

  std::shared_ptr<Lockstep> pair_;
  int side_ = 0;
  std::atomic<bool> stopping_{false};  // stop() asked: ends a wait in Lockstep::begin

  TrainSnapshot next_;  // the worker's copy, published by value
  std::thread worker_;
};

}  // namespace dsv3::train
