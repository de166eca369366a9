// The Session's training run for panel 9 and the `train` command (session.h): one live run, or
// two side by side (compare mode), or a finished run read back from its folder; and panels 1-8
// under the weights of the run's step N.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "app/explorer/session.h"
#include "visualizers/explorer_style.h"
#include "visualizers/train_panel.h"

namespace dsv3::app {

void Session::start_training(train::TrainOptions opt, bool paused, const std::string& compare) {
  // Both from the same seed and data: the one setting `compare` names is all that differs.
  // Checked before the running run is stopped: a bad word loses nothing.
  std::optional<train::TrainOptions> second;
  if (!compare.empty()) second = train::compare_options(opt, compare);
  stop_training();
  // Compare mode: the two runs step together and every control lands after the same step in
  // both (reference/train/lockstep.h).
  if (second) lockstep_ = std::make_shared<train::Lockstep>();
  live_run_ = std::make_unique<train::LiveRun>(std::move(opt), paused, lockstep_, 0);
  if (second) {
    try {
      compare_run_ = std::make_unique<train::LiveRun>(std::move(*second), paused, lockstep_, 1);
    } catch (...) {
      lockstep_->ended(1);
      live_run_.reset();
      lockstep_.reset();
      throw;
    }
  }
  opened_run_.reset();
  opened_compare_.reset();
}

std::vector<train::LiveRun*> Session::training_runs() {
  std::vector<train::LiveRun*> runs;
  if (live_run_) runs.push_back(live_run_.get());
  if (compare_run_) runs.push_back(compare_run_.get());
  return runs;
}

void Session::pause_training() {
  if (lockstep_) return lockstep_->schedule({0, train::Lockstep::Kind::kPause, {}, 0});
  if (live_run_) live_run_->pause();
}

void Session::resume_training() {
  for (train::LiveRun* r : training_runs()) r->resume();
}

void Session::step_training(int64_t n) {
  if (lockstep_) return lockstep_->schedule({0, train::Lockstep::Kind::kStep, {}, n});
  if (live_run_) live_run_->step(n);
}

void Session::set_training(const train::OptionChange& c) {
  if (lockstep_) {
    train::normalise_change(c);  // a bad key or value: TrainError before anything is queued
    return lockstep_->schedule({0, train::Lockstep::Kind::kChange, c, 0});
  }
  if (live_run_) live_run_->set(c);
}

void Session::save_training() {
  if (lockstep_) return lockstep_->schedule({0, train::Lockstep::Kind::kSave, {}, 0});
  if (live_run_) live_run_->save();
}

void Session::stop_training() {
  if (compare_run_) {
    compare_run_->stop();
    opened_compare_ = compare_run_->snapshot();
    compare_run_.reset();
  }
  if (!live_run_) return;
  live_run_->stop();
  opened_run_ = live_run_->snapshot();  // the panel keeps showing where it ended
  live_run_.reset();
  lockstep_.reset();
}

void Session::open_training_log(const std::string& run_dir, const std::string& compare_dir) {
  auto s = std::make_shared<const train::TrainSnapshot>(train::snapshot_from_log(run_dir));
  std::shared_ptr<const train::TrainSnapshot> b;
  if (!compare_dir.empty())
    b = std::make_shared<const train::TrainSnapshot>(train::snapshot_from_log(compare_dir));
  stop_training();
  opened_run_ = std::move(s);
  opened_compare_ = std::move(b);
}

std::shared_ptr<const train::TrainSnapshot> Session::train_snapshot() const {
  if (live_run_) return live_run_->snapshot();
  return opened_run_;
}

std::shared_ptr<const train::TrainSnapshot> Session::compare_snapshot() const {
  if (compare_run_) return compare_run_->snapshot();
  return live_run_ ? nullptr : opened_compare_;
}

int64_t Session::open_training_weights() {
  std::unique_ptr<model::Model> m;
  std::string model_name, save;
  int64_t step = 0;
  if (live_run_) {
    auto snap = live_run_->snapshot();
    auto w = live_run_->current_weights();  // between two steps: one moment, never a mix
    model_name = snap->options.model;
    save = w->save;
    step = w->step;
    // The tokenizer the checkpoint folder gives (Model::load reads the same).
    m = std::make_unique<model::Model>(w->config, w->weights, io::load_tokenizer(save));
  } else if (opened_run_) {
    // A finished run: its last checkpoint, at the step trainer_state.json names.
    namespace fs = std::filesystem;
    save = opened_run_->save;
    std::ifstream st(fs::path(save) / "trainer_state.json");
    auto j = nlohmann::json::parse(st, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !fs::exists(fs::path(save) / "model.safetensors"))
      throw std::runtime_error(
          fmt::format("{}: no checkpoint to open (model.safetensors, trainer_state.json)", save));
    step = j.value("step", int64_t{0});
    model_name = opened_run_->options.model;
    m = std::make_unique<model::Model>(model::Model::load(save));
  } else {
    throw std::runtime_error("no training run: `train start` or `train open DIR` first");
  }
  adopt(std::move(m), fmt::format("{} @ step {} of {}", model_name, step, save));
  trained_step_ = step;
  return step;
}

viz::Canvas Session::train_canvas(int w, int h) const {
  auto s = train_snapshot();
  if (s) {
    auto b = compare_snapshot();
    const int hh = h > 0 ? h : (b ? 30 : 24);
    viz::Canvas c = b ? viz::train_compare_panel(*s, *b, w, hh, trained_step_)
                      : viz::train_panel(*s, w, hh, trained_step_);
    return h > 0 ? c : viz::style::crop_rows(c, viz::style::used_rows(c));
  }
  viz::Canvas c(std::max(w, 1), std::max(h > 0 ? h : 3, 3));
  viz::style::text_clip(c, 0, 0, "No training run.", w, viz::style::kBold);
  viz::style::text_clip(
      c, 0, 1,
      "`:train start` trains the tiny model on a demo text here (data=TOKENS save=DIR); "
      "`:train open DIR` shows a finished run; `dsv3 train ... --tui`.",
      w, viz::style::kDim);
  return c;
}

}  // namespace dsv3::app
