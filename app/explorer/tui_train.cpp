// Panel 9's keys: the training run steered from the keyboard (the `train` command does the
// same from the prompt). Every key only queues work for the run's worker thread (both runs in
// compare mode), so the explorer answers at once and redraws from the run's snapshots; o waits
// for at most the step in progress, to copy the weights between two steps.
#include <fmt/format.h>

#include "app/explorer/session.h"
#include "app/explorer/tui_impl.h"

namespace dsv3::app::tui_impl {

bool Tui::train_key(wint_t key) {
  train::LiveRun* run = s_.training();
  if (key != 'p' && key != 's' && key != '+' && key != '=' && key != '-' && key != 'b' &&
      key != 'w' && key != 'x' && key != 'o')
    return false;
  if (key == 'o') {  // also for a finished run: its last checkpoint
    try {
      const int64_t n = s_.open_training_weights();
      say(fmt::format("panels 1-8 now show the weights of step {} (1 routing, 2 attention, ...)",
                      n));
    } catch (const std::exception& e) {
      say(e.what(), true);
    }
    return true;
  }
  if (!run) {
    say("no training run: `:train start` (demo text) or `dsv3 train ... --tui`", true);
    return true;
  }
  auto snap = run->snapshot();
  const std::vector<train::LiveRun*> runs = s_.training_runs();
  const train::TrainOptions& o = snap->options;
  switch (key) {
    case 'p':
      if (snap->state == train::RunState::kRunning) {
        s_.pause_training();
        say(fmt::format("paused after the step in progress (step {})", snap->step));
      } else {
        s_.resume_training();
        say("running");
      }
      break;
    case 's':
      s_.step_training(1);
      say(fmt::format("one step: {} -> {}", snap->step, snap->step + 1));
      break;
    case '+':
    case '=':
    case '-': {
      const double g = o.bias_gamma > 0 ? o.bias_gamma : 1e-4;
      const double next = key == '-' ? g / 2 : (o.bias_gamma > 0 ? g * 2 : g);
      s_.set_training({0, "bias_gamma", fmt::format("{:g}", next)});
      say(fmt::format("γ {:g} -> {:g} from step {}", o.bias_gamma, next, snap->step + 1));
      break;
    }
    case 'b': {
      if (runs.size() > 1) {
        say("compare mode: each run keeps its balancing (`:train set balance=X` sets both)", true);
        break;
      }
      // none -> loss-free -> aux -> none
      const char* next = o.objective.balance == train::BalanceMode::kNone       ? "loss-free"
                         : o.objective.balance == train::BalanceMode::kLossFree ? "aux"
                                                                                : "none";
      s_.set_training({0, "balance", next});
      say(fmt::format("balancing: {} from step {}", next, snap->step + 1));
      break;
    }
    case 'w':
      s_.save_training();
      say(fmt::format("saving a checkpoint after step {} to {}", snap->step, snap->save));
      break;
    case 'x':
      s_.stop_training();
      say("stopped; the last step's checkpoint is kept");
      break;
  }
  return true;
}

}  // namespace dsv3::app::tui_impl
