// Two runs compared side by side (compare mode, `dsv3 train --tui --compare`) train in lockstep.
// Neither begins step k+1 before the other has finished step k, so their step counts differ by at
// most one. A control made to the pair (a pause, N single steps, a change of γ/λ/α/lr/balancing,
// a save) lands after the same step T in both: T is the step the run further ahead has begun
// (or finished), which the other reaches at most one step later. The loss curves, the changes
// in log.jsonl and the checkpoints therefore line up step for step, as a comparison needs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "reference/train/changes.h"

namespace dsv3::train {

class LiveRun;

class Lockstep {
 public:
  enum class Kind { kChange, kPause, kStep, kSave };
  struct Item {
    int64_t at = 0;  // applied once the run has finished this many steps, before the next
    Kind kind = Kind::kPause;
    OptionChange change;  // kChange
    int64_t steps = 0;    // kStep: pause, then run this many steps
  };

  // LiveRun's constructor: `run` is side 0 or 1 and has finished `completed` steps.
  void attach(int side, LiveRun* run, int64_t completed);
  // The side's worker is gone (stopped, or its constructor failed): the partner no longer waits.
  void ended(int side);

  // ---- the workers ---------------------------------------------------------------------------
  // The items due for `side` now that it has finished `completed` steps, in the order made.
  std::vector<Item> take_due(int side, int64_t completed);
  // Before beginning step completed+1: waits while the partner has finished fewer steps (and
  // has not ended). Returns true, marking the step begun, or false without beginning when an
  // item fell due for this side or `cancel` became true (the worker loops and sees why).
  bool begin(int side, int64_t completed, const std::atomic<bool>& cancel);
  void finished(int side, int64_t completed);
  bool has_due(int side) const { return due_[side].load() > 0; }
  void wake();  // both workers (and any begin() waiting) look again

  // ---- the pair's controls (the explorer's thread) ---------------------------------------------
  void schedule(Item item);  // `at` is computed here
  int64_t last_at() const;   // the step of the last scheduled item (tests)

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  LiveRun* run_[2] = {nullptr, nullptr};
  int64_t completed_[2] = {0, 0}, begun_[2] = {0, 0}, last_at_ = -1;
  bool ended_[2] = {false, false};
  std::vector<Item> items_[2];
  std::atomic<int> due_[2] = {0, 0};  // items_ sizes, read by the workers' wait predicates
};

}  // namespace dsv3::train
