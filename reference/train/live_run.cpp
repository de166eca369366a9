#include "reference/train/live_run.h"

#include <fmt/format.h>
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>

namespace dsv3::train {
namespace fs = std::filesystem;

const char* to_string(RunState s) {
  switch (s) {
    case RunState::kPaused:
      return "paused";
    case RunState::kRunning:
      return "running";
    case RunState::kDone:
      return "done";
    case RunState::kStopped:
      return "stopped";
    case RunState::kFailed:
      return "failed";
  }
  return "?";
}

double TrainSnapshot::lr_at(int64_t k) const {
  return learning_rate(options.schedule, options.lr, k, options.steps, options.warmup_steps());
}

namespace {

LiveStep live_step(const StepRecord& r) {
  LiveStep s;
  s.step = r.step;
  s.loss = r.loss.total;
  s.loss_main = r.loss.main;
  for (double m : r.loss.mtp) s.loss_mtp += m / static_cast<double>(r.loss.mtp.size());
  s.loss_balance = r.loss.balance;
  s.val_loss = r.val_loss;
  s.lr = r.lr;
  s.grad_norm = r.grad_norm;
  s.bias_gamma = r.bias_gamma;
  s.tokens_per_s = r.tokens_per_s;
  s.clipped = r.clipped;
  s.max_vio = r.max_vio;
  s.expert_load = r.loss.expert_counts;
  return s;
}

void log_domains(const std::string& save, const TrainSnapshot& s) {
  nlohmann::json j = {
      {"step", s.domain_step}, {"domains", s.domains}, {"domain_load", s.domain_load}};
  std::ofstream(fs::path(save) / "log.jsonl", std::ios::app) << j.dump() << "\n";
}

}  // namespace

LiveRun::LiveRun(TrainOptions opt, bool start_paused, std::shared_ptr<Lockstep> pair, int side)
    : paused_(start_paused), pair_(std::move(pair)), side_(side) {
  trainer_ = std::make_unique<Trainer>(std::move(opt));
  replay_ = trainer_->options().changes;
  for (const OptionChange& c : replay_)  // a resumed run: made in its earlier part
    if (c.step < trainer_->step()) apply_change(trainer_->mutable_options(), c);
  const TrainOptions& o = trainer_->options();
  const model::Config& c = trainer_->config();
  rope_ = model::make_rope_table(c);
  eval_every_ = o.eval_every > 0 ? o.eval_every : std::max<int64_t>(1, o.steps / 10);
  next_.steps = o.steps;
  next_.step = trainer_->step();
  next_.save = o.save;
  next_.options = o;
  next_.tokens_per_step = o.batch * o.seq_len;
  next_.experts = c.n_routed_experts;
  data_ = std::make_unique<BatchSource>(o.data, c.vocab_size, o.val_data);
  if (data_->domains().size() > 1) next_.domains = data_->domains();
  if (o.resume) {
    try {
      next_.history = snapshot_from_log(o.save).history;
    } catch (const TrainError&) {
    }
  }
  if (trainer_->step() == 0) {
    trainer_->save_checkpoint();  // as `dsv3 train`: a good checkpoint from the start
    next_.last_saved = 0;
  }
  measure_domains();
  next_.state = start_paused ? RunState::kPaused : RunState::kRunning;
  publish(start_paused ? "paused before the first step" : "started");
  if (pair_) pair_->attach(side_, this, trainer_->step());
  worker_ = std::thread([this] { work(); });
}

LiveRun::~LiveRun() {
  stop();
}

void LiveRun::measure_domains() {
  if (next_.domains.empty()) return;
  const model::Config& c = trainer_->config();
  const TrainOptions& o = trainer_->options();
  next_.domain_load.clear();
  for (size_t d = 0; d < next_.domains.size(); ++d) {
    std::optional<Batch> b = data_->val_batch_of(static_cast<int64_t>(d), 0, o.batch, o.seq_len);
    LossParts lp;
    if (b) lp = loss_and_grad<float>(c, rope_, trainer_->weights(), *b, o.objective, nullptr);
    if (next_.moe_layers.empty()) next_.moe_layers = lp.moe_layers;
    next_.domain_load.resize(lp.expert_counts.size());
    for (size_t l = 0; l < lp.expert_counts.size(); ++l) {
      next_.domain_load[l].resize(next_.domains.size());
      next_.domain_load[l][d] = lp.expert_counts[l];
    }
  }
  next_.domain_step = trainer_->step();
  log_domains(o.save, next_);
}

void LiveRun::publish(const std::string& message) {
  const model::Config& c = trainer_->config();
  const model::ModelWeights& w = trainer_->weights();
  next_.step = trainer_->step();
  next_.options = trainer_->options();
  next_.message = message;  // the last event only
  next_.bias.clear();
  for (int layer : next_.moe_layers) {
    const VecT<float>* b = correction_bias(c, w, layer);
    next_.bias.push_back(b ? std::vector<float>(b->data(), b->data() + b->size())
                           : std::vector<float>{});
  }
  auto s = std::make_shared<const TrainSnapshot>(next_);
  std::lock_guard<std::mutex> lock(mu_);
  snap_ = std::move(s);
  ++version_;
}

bool LiveRun::has_work() const {
  return stop_ || save_ || !pending_.empty() || single_ > 0 || !paused_;
}

void LiveRun::work() {
  // One OpenMP thread: the explorer's own thread (and a compare run) keep the other cores. A
  // step opens ~160 parallel regions of microseconds each (mostly Eigen's GEMMs); with two
  // threads on a busy 2-core machine each region's barrier waits for a thread that is not
  // running, 10-30x slower (bench/bench_train_threads.cpp, docs/training.md).
  omp_set_num_threads(1);
  for (;;) {
    bool save = false, copy = false;
    std::deque<OptionChange> changes;
    {
      std::unique_lock<std::mutex> lock(mu_);
      busy_ = false;
      idle_cv_.notify_all();
      cv_.wait(lock, [&] {
        return stop_ || save_ || copy_ || !pending_.empty() || pair_due() ||
               ((single_ > 0 || !paused_) && next_.state != RunState::kDone &&
                next_.state != RunState::kFailed);
      });
      if (stop_) break;
      busy_ = true;
      save = std::exchange(save_, false);
      copy = std::exchange(copy_, false);
      changes.swap(pending_);
    }
    std::string msg;
    for (OptionChange c : changes) {
      c.step = trainer_->step();
      apply_change(trainer_->mutable_options(), c);
      log_change(trainer_->options().save, c);
      next_.changes.push_back(c);
      msg = fmt::format("set {}={} after step {}", c.key, c.value, c.step);
    }
    const bool pair_items = pair_due();
    if (pair_items) apply_pair_items(&msg, &save);
    if (save) {
      trainer_->save_checkpoint();
      next_.last_saved = trainer_->step();
      msg = fmt::format("saved step {} to {}", next_.last_saved, next_.save);
    }
    if (copy) {
      auto w = copy_weights();
      std::lock_guard<std::mutex> lock(mu_);
      copied_ = std::move(w);
      copy_cv_.notify_all();
    }
    auto wants_step = [&] {  // mu_ held
      return (single_ > 0 || !paused_) && next_.state != RunState::kDone &&
             next_.state != RunState::kFailed;
    };
    bool take_step = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      take_step = wants_step();
    }
    // Compare mode: wait for the other run to finish this step's predecessor (lockstep.h). An
    // item falling due or a stop ends the wait without a step; the loop takes it from the top.
    if (take_step && pair_ && !pair_->begin(side_, trainer_->step(), stopping_)) {
      if (!changes.empty() || save || pair_items) publish(msg);
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      const bool still = wants_step();
      if (take_step && !still && pair_) pair_->finished(side_, trainer_->step());  // not begun
      take_step = take_step && still;
      if (take_step && single_ > 0 && paused_) --single_;
      // A finished run stays finished: a change or a save after the last step runs no step.
      if (next_.state != RunState::kDone && next_.state != RunState::kFailed)
        next_.state = paused_ && single_ == 0 ? RunState::kPaused : RunState::kRunning;
    }
    if (!take_step) {
      if (!copy || save || !changes.empty() || pair_items) publish(msg);
      continue;
    }
    // --replay: the logged changes made before this step, applied and logged again.
    for (OptionChange c : replay_) {
      if (c.step != trainer_->step()) continue;
      apply_change(trainer_->mutable_options(), c);
      log_change(trainer_->options().save, c);
      next_.changes.push_back(c);
      msg = fmt::format("replayed {}={} after step {}", c.key, c.value, c.step);
    }
    StepRecord r;
    try {
      r = trainer_->train_step();
    } catch (const TrainError& e) {
      next_.state = RunState::kFailed;
      publish(fmt::format("{}; the last good checkpoint (step {}) is in {}", e.what(),
                          next_.last_saved, next_.save));
      if (pair_) pair_->ended(side_);  // the other run goes on alone
      continue;
    }
    const TrainOptions& o = trainer_->options();
    if (r.step % eval_every_ == 0 || r.step == o.steps) r.val_loss = trainer_->validate();
    trainer_->log(r);
    if (next_.moe_layers.empty()) next_.moe_layers = r.loss.moe_layers;
    next_.history.push_back(live_step(r));
    next_.tokens_per_s =
        next_.tokens_per_s == 0 ? r.tokens_per_s : 0.9 * next_.tokens_per_s + 0.1 * r.tokens_per_s;
    next_.eta_s = static_cast<double>((o.steps - r.step) * next_.tokens_per_step) /
                  std::max(next_.tokens_per_s, 1e-9);
    if (r.step % o.save_every == 0 || r.step == o.steps) {
      trainer_->save_checkpoint();
      next_.last_saved = r.step;
    }
    if (r.step % eval_every_ == 0 || r.step == o.steps) measure_domains();
    if (trainer_->done()) {
      next_.state = RunState::kDone;
      msg = fmt::format("done: {} steps, checkpoint in {}", r.step, next_.save);
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      next_.state = paused_ && single_ == 0 ? RunState::kPaused : RunState::kRunning;
    }
    publish(msg);
    if (pair_) pair_->finished(side_, trainer_->step());
  }
  // Stop: keep the last step's checkpoint.
  if (next_.last_saved != trainer_->step()) {
    trainer_->save_checkpoint();
    next_.last_saved = trainer_->step();
  }
  if (next_.state != RunState::kDone && next_.state != RunState::kFailed)
    next_.state = RunState::kStopped;
  publish(fmt::format("stopped after step {}; checkpoint in {}", trainer_->step(), next_.save));
  if (pair_) pair_->ended(side_);
  std::lock_guard<std::mutex> lock(mu_);
  busy_ = false;
  exited_ = true;
  idle_cv_.notify_all();
  copy_cv_.notify_all();
}

std::shared_ptr<const WeightsAt> LiveRun::copy_weights() const {
  auto w = std::make_shared<WeightsAt>();
  w->step = trainer_->step();
  w->save = trainer_->options().save;
  w->config = trainer_->config();
  w->weights = trainer_->weights();
  return w;
}

std::shared_ptr<const WeightsAt> LiveRun::current_weights() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!exited_) {
      copied_.reset();
      copy_ = true;
      cv_.notify_all();
      copy_cv_.wait(lock, [&] { return copied_ != nullptr || exited_; });
      if (copied_) return std::exchange(copied_, nullptr);
    }
  }
  return copy_weights();  // the worker has ended: nothing else touches the trainer
}

void LiveRun::pause() {
  std::lock_guard<std::mutex> lock(mu_);
  paused_ = true;
  single_ = 0;
}

void LiveRun::resume() {
  std::lock_guard<std::mutex> lock(mu_);
  paused_ = false;
  cv_.notify_all();
}

void LiveRun::step(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  paused_ = true;
  single_ += std::max<int64_t>(0, n);
  busy_ = busy_ || n > 0;
  cv_.notify_all();
}

void LiveRun::set(const OptionChange& c) {
  OptionChange n = normalise_change(c);
  std::lock_guard<std::mutex> lock(mu_);
  pending_.push_back(n);
  busy_ = true;
  cv_.notify_all();
}

void LiveRun::save() {
  std::lock_guard<std::mutex> lock(mu_);
  save_ = true;
  busy_ = true;
  cv_.notify_all();
}

void LiveRun::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  stopping_ = true;
  if (pair_) pair_->wake();  // a worker waiting for the other run in Lockstep::begin
  if (worker_.joinable()) worker_.join();
}

void LiveRun::wake() {
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
}

void LiveRun::apply_pair_items(std::string* msg, bool* save) {
  for (const Lockstep::Item& it : pair_->take_due(side_, trainer_->step())) {
    switch (it.kind) {
      case Lockstep::Kind::kChange: {
        OptionChange c = it.change;
        c.step = trainer_->step();
        apply_change(trainer_->mutable_options(), c);
        log_change(trainer_->options().save, c);
        next_.changes.push_back(c);
        *msg = fmt::format("set {}={} after step {}", c.key, c.value, c.step);
        break;
      }
      case Lockstep::Kind::kPause:
      case Lockstep::Kind::kStep: {
        std::lock_guard<std::mutex> lock(mu_);
        paused_ = true;
        single_ = it.kind == Lockstep::Kind::kStep ? it.steps : 0;
        break;
      }
      case Lockstep::Kind::kSave:
        *save = true;
        break;
    }
  }
}

std::shared_ptr<const TrainSnapshot> LiveRun::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snap_;
}

uint64_t LiveRun::version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return version_;
}

std::shared_ptr<const TrainSnapshot> LiveRun::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] {
    const RunState st = snap_ ? snap_->state : RunState::kPaused;
    const bool finished =
        st == RunState::kDone || st == RunState::kFailed || st == RunState::kStopped;
    // A finished run never works again (queued steps are dropped), busy or not.
    return finished ||
           (!busy_ && paused_ && single_ == 0 && pending_.empty() && !save_ && !pair_due());
  });
  return snap_;
}

}  // namespace dsv3::train
