#include "reference/train/lockstep.h"

#include <algorithm>

#include "reference/train/live_run.h"

namespace dsv3::train {

void Lockstep::attach(int side, LiveRun* run, int64_t completed) {
  std::lock_guard<std::mutex> lock(mu_);
  run_[side] = run;
  completed_[side] = begun_[side] = completed;
  ended_[side] = false;
}

void Lockstep::ended(int side) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_[side] = true;
    run_[side] = nullptr;
    items_[side].clear();
    due_[side] = 0;
  }
  wake();
}

std::vector<Lockstep::Item> Lockstep::take_due(int side, int64_t completed) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Item> due, later;
  for (Item& it : items_[side]) (it.at <= completed ? due : later).push_back(std::move(it));
  items_[side] = std::move(later);
  due_[side] = static_cast<int>(items_[side].size());
  return due;
}

bool Lockstep::begin(int side, int64_t completed, const std::atomic<bool>& cancel) {
  const int other = 1 - side;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (cancel.load()) return false;
    for (const Item& it : items_[side])
      if (it.at <= completed) return false;
    if (ended_[other] || completed_[other] >= completed) break;
    cv_.wait(lock);
  }
  begun_[side] = completed + 1;
  return true;
}

void Lockstep::finished(int side, int64_t completed) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    completed_[side] = begun_[side] = completed;
  }
  wake();
}

void Lockstep::wake() {
  // Under mu_, so that a run cannot go away in between (ended() takes mu_ first). The lock
  // order is always Lockstep, then LiveRun: no worker holds its run's mutex when it calls here.
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
  for (LiveRun* r : run_)
    if (r) r->wake();
}

void Lockstep::schedule(Item item) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The run further ahead has begun (or finished) step T; the other is at most one behind and
    // cannot begin past T before it has taken the item.
    item.at = std::max(begun_[0], begun_[1]);
    last_at_ = item.at;
    for (int s = 0; s < 2; ++s) {
      if (ended_[s]) continue;
      items_[s].push_back(item);
      due_[s] = static_cast<int>(items_[s].size());
    }
  }
  wake();
}

int64_t Lockstep::last_at() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_at_;
}

}  // namespace dsv3::train
