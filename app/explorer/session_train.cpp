// The Session's training run for panel 9 and the `train` command (session.h).
#include <algorithm>

#include "app/explorer/session.h"
#include "visualizers/explorer_style.h"
#include "visualizers/train_panel.h"

namespace dsv3::app {

void Session::start_training(train::TrainOptions opt, bool paused) {
  stop_training();
  live_run_ = std::make_unique<train::LiveRun>(std::move(opt), paused);
  opened_run_.reset();
}

void Session::stop_training() {
  if (!live_run_) return;
  live_run_->stop();
  opened_run_ = live_run_->snapshot();  // the panel keeps showing where it ended
  live_run_.reset();
}

void Session::open_training_log(const std::string& run_dir) {
  auto s = std::make_shared<const train::TrainSnapshot>(train::snapshot_from_log(run_dir));
  stop_training();
  opened_run_ = std::move(s);
}

std::shared_ptr<const train::TrainSnapshot> Session::train_snapshot() const {
  if (live_run_) return live_run_->snapshot();
  return opened_run_;
}

viz::Canvas Session::train_canvas(int w, int h) const {
  auto s = train_snapshot();
  if (s) {
    viz::Canvas c = viz::train_panel(*s, w, h > 0 ? h : 24);
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
