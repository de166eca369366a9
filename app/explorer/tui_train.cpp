// Panel 9's keys: the training run steered from the keyboard (the `train` command does the
// same from the prompt). Every key only queues work for the run's worker thread, so the
// explorer answers at once and redraws from the run's snapshots.
#include <fmt/format.h>

#include "app/explorer/session.h"
#include "app/explorer/tui_impl.h"

namespace dsv3::app::tui_impl {

bool Tui::train_key(wint_t key) {
  train::LiveRun* run = s_.training();
  if (key != 'p' && key != 's' && key != '+' && key != '=' && key != '-' && key != 'b' &&
      key != 'w' && key != 'x')
    return false;
  if (!run) {
    say("no training run: `:train start` (demo text) or `dsv3 train ... --tui`", true);
    return true;
  }
  auto snap = run->snapshot();
  const train::TrainOptions& o = snap->options;
  switch (key) {
    case 'p':
      if (snap->state == train::RunState::kRunning) {
        run->pause();
        say(fmt::format("paused after the step in progress (step {})", snap->step));
      } else {
        run->resume();
        say("running");
      }
      break;
    case 's':
      run->step(1);
      say(fmt::format("one step: {} -> {}", snap->step, snap->step + 1));
      break;
    case '+':
    case '=':
    case '-': {
      const double g = o.bias_gamma > 0 ? o.bias_gamma : 1e-4;
      const double next = key == '-' ? g / 2 : (o.bias_gamma > 0 ? g * 2 : g);
      run->set({0, "bias_gamma", fmt::format("{:g}", next)});
      say(fmt::format("γ {:g} -> {:g} from step {}", o.bias_gamma, next, snap->step + 1));
      break;
    }
    case 'b': {
      // none -> loss-free -> aux -> none
      const char* next = o.objective.balance == train::BalanceMode::kNone       ? "loss-free"
                         : o.objective.balance == train::BalanceMode::kLossFree ? "aux"
                                                                                : "none";
      run->set({0, "balance", next});
      say(fmt::format("balancing: {} from step {}", next, snap->step + 1));
      break;
    }
    case 'w':
      run->save();
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
