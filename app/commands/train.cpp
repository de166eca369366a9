// `train`: a training run inside the explorer (panel 9), driven from the TUI's prompt, the REPL,
// `dsv3 exec` and lessons. The steps run on the LiveRun's worker thread; `train step N` and
// `train wait` block until the steps are done (so scripts and lessons are deterministic),
// `train resume` returns at once and the TUI redraws from snapshots as steps finish.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/commands/registry.h"
#include "app/commands/util.h"
#include "app/explorer/session.h"
#include "reference/train/live_run.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::app {
namespace {
using json = nlohmann::json;
using viz::Panel;

int g_runs = 0;  // runs started by this process (their default folders)

// key=value words of `train start` into options; every key named in one error line.
train::TrainOptions start_options(const std::vector<std::string>& words, bool* paused,
                                  std::string* compare) {
  train::TrainOptions o;
  o.model = "tiny-random";
  o.steps = 200;
  o.lr = 3e-3;
  o.batch = 4;
  o.seq_len = 64;
  o.save_every = 50;
  o.eval_batches = 2;
  for (const std::string& w : words) {
    if (w == "paused") {
      *paused = true;
      continue;
    }
    const size_t eq = w.find('=');
    if (eq == std::string::npos || eq == 0)
      throw CommandError(fmt::format("train start: '{}' is not KEY=VALUE", w));
    const std::string k = w.substr(0, eq), v = w.substr(eq + 1);
    auto integer = [&](int64_t lo) {
      try {
        size_t used = 0;
        const int64_t n = std::stoll(v, &used);
        if (used == v.size() && n >= lo) return n;
      } catch (const std::exception&) {
      }
      throw CommandError(
          fmt::format("train start: {} must be an integer >= {}, got '{}'", k, lo, v));
    };
    auto real = [&] {
      try {
        size_t used = 0;
        const double x = std::stod(v, &used);
        if (used == v.size() && x >= 0) return x;
      } catch (const std::exception&) {
      }
      throw CommandError(
          fmt::format("train start: {} must be a non-negative number, got '{}'", k, v));
    };
    if (k == "model")
      o.model = v;
    else if (k == "data")
      o.data = v;
    else if (k == "val")
      o.val_data = v;
    else if (k == "save")
      o.save = v;
    else if (k == "compare")
      *compare = v;
    else if (k == "precision") {
      try {
        o.precision.precision = train::parse_precision(v);
      } catch (const std::exception& e) {
        throw CommandError(fmt::format("train start: {}", e.what()));
      }
    } else if (k == "steps")
      o.steps = integer(1);
    else if (k == "batch")
      o.batch = integer(1);
    else if (k == "seq")
      o.seq_len = integer(2);
    else if (k == "seed")
      o.seed = static_cast<uint64_t>(integer(0));
    else if (k == "save-every")
      o.save_every = integer(1);
    else if (k == "eval-every")
      o.eval_every = integer(1);
    else if (k == "warmup")
      o.warmup = integer(0);
    else if (k == "lr")
      o.lr = real();
    else if (k == "gamma")
      o.bias_gamma = real();
    else if (k == "lambda")
      o.objective.mtp_lambda = real();
    else if (k == "alpha")
      o.objective.balance_alpha = real();
    else if (k == "clip")
      o.clip = real();
    else if (k == "schedule" || k == "balance") {
      try {
        if (k == "schedule")
          o.schedule = train::parse_schedule(v);
        else
          o.objective.balance = train::parse_balance_mode(v);
      } catch (const std::exception& e) {
        throw CommandError(fmt::format("train start: {}", e.what()));
      }
    } else {
      throw CommandError(fmt::format(
          "train start: unknown key '{}' (model data val save steps batch seq seed save-every "
          "eval-every warmup lr gamma lambda alpha clip schedule balance precision compare, or "
          "`paused`)",
          k));
    }
  }
  namespace fs = std::filesystem;
  if (o.save.empty())  // a fresh folder per run of this process
    o.save = (fs::temp_directory_path() /
              fmt::format("dsv3-train-{}-{}", static_cast<long>(getpid()), ++g_runs))
                 .string();
  if (o.data.empty() || o.data == "demo") {
    fs::create_directories(o.save);
    o.data = (fs::path(o.save) / "demo-tokens.safetensors").string();
    train::write_demo_stream(o.data);
  }
  return o;
}

json status_json(const train::TrainSnapshot& s) {
  json j = {{"state", train::to_string(s.state)},
            {"step", s.step},
            {"steps", s.steps},
            {"tokens_per_step", s.tokens_per_step},
            {"last_saved", s.last_saved},
            {"save", s.save},
            {"balance", train::to_string(s.options.objective.balance)},
            {"gamma", s.options.bias_gamma},
            {"lambda", s.options.objective.mtp_lambda},
            {"alpha", s.options.objective.balance_alpha},
            {"lr", s.options.lr},
            {"tokens_per_s", s.tokens_per_s},
            {"eta_s", s.eta_s},
            {"message", s.message}};
  if (!s.history.empty()) {
    const train::LiveStep& r = s.history.back();
    j["loss"] = r.loss;
    j["loss_main"] = r.loss_main;
    j["loss_mtp"] = r.loss_mtp;
    j["grad_norm"] = r.grad_norm;
    j["max_vio"] = r.max_vio;
    double mean = 0;
    for (double v : r.max_vio) mean += v / static_cast<double>(r.max_vio.size());
    j["max_vio_mean"] = mean;
    // Over the last (first) ten steps: single steps are noisy.
    const size_t n = s.history.size(), k = std::min<size_t>(10, n);
    double vio = 0, recent = 0, first = 0;
    for (size_t i = n - k; i < n; ++i) {
      for (double v : s.history[i].max_vio)
        vio += v / static_cast<double>(s.history[i].max_vio.size() * k);
      recent += s.history[i].loss_main / static_cast<double>(k);
    }
    for (size_t i = 0; i < k; ++i) first += s.history[i].loss_main / static_cast<double>(k);
    j["max_vio_recent"] = vio;
    j["loss_recent"] = recent;
    j["loss_first"] = first;
  }
  json changes = json::array();
  for (const auto& c : s.changes)
    changes.push_back(json{{"step", c.step}, {"set", c.key}, {"value", c.value}});
  j["changes"] = changes;
  return j;
}

std::string status_text(const train::TrainSnapshot& s) {
  std::string t = fmt::format(
      "{} · step {}/{} · {} γ={:g} λ={:g} α={:g} lr={:g}\n", train::to_string(s.state), s.step,
      s.steps, train::to_string(s.options.objective.balance), s.options.bias_gamma,
      s.options.objective.mtp_lambda, s.options.objective.balance_alpha, s.options.lr);
  if (!s.history.empty()) {
    const train::LiveStep& r = s.history.back();
    t += fmt::format("loss {:.4f} (main {:.4f})\n", r.loss, r.loss_main);
  }
  if (!s.message.empty()) t += s.message + "\n";
  return t;
}

train::LiveRun& live(Session& s) {
  if (!s.training())
    throw CommandError("train: no run in progress (`train start data=... save=...` starts one)");
  return *s.training();
}

// The controls act on every live run (both in compare mode), so the two stay comparable.
std::vector<train::LiveRun*> runs(Session& s) {
  live(s);
  return s.training_runs();
}

Output train_cmd(Session& s, const Args& a, const Context& ctx) {
  const std::string action = a.str("ACTION");
  std::vector<std::string> words;
  bool as_json = a.flag("json");
  if (a.has("ARGS")) {
    std::istringstream in(a.str("ARGS"));
    for (std::string w; in >> w;)
      if (w == "--json")  // after the words: the registry left it in the text
        as_json = true;
      else
        words.push_back(w);
  }
  try {
    if (action == "start") {
      bool paused = false;
      std::string compare;
      train::TrainOptions o = start_options(words, &paused, &compare);
      s.start_training(std::move(o), paused, compare);
    } else if (action == "open") {
      if (words.empty() || words.size() > 2)
        throw CommandError("train open: a run folder (DIR of --save), and a second to compare");
      s.open_training_log(words[0], words.size() == 2 ? words[1] : "");
    } else if (action == "weights") {
      try {
        s.open_training_weights();
      } catch (const std::runtime_error& e) {
        throw CommandError(fmt::format("train weights: {}", e.what()));
      }
    } else if (action == "pause") {
      live(s);  // a run to steer, or the one-line error
      s.pause_training();
    } else if (action == "resume") {
      live(s);
      s.resume_training();
    } else if (action == "step") {
      int64_t n = 1;
      if (!words.empty()) {
        try {
          n = std::stoll(words[0]);
        } catch (const std::exception&) {
          n = 0;
        }
        if (n < 1)
          throw CommandError(fmt::format("train step: '{}' is not a step count >= 1", words[0]));
      }
      if (live(s).snapshot()->state == train::RunState::kDone)
        throw CommandError(
            fmt::format("train step: the run is done ({} steps); `train start` "
                        "begins another",
                        live(s).snapshot()->step));
      s.step_training(n);
      for (auto* r : runs(s)) r->wait_idle();
    } else if (action == "wait") {
      for (auto* r : runs(s)) r->wait_idle();
    } else if (action == "set") {
      if (words.empty()) throw CommandError("train set: KEY=VALUE (gamma lambda alpha lr balance)");
      live(s);
      for (const std::string& w : words) {
        const size_t eq = w.find('=');
        if (eq == std::string::npos)
          throw CommandError(fmt::format("train set: '{}' is not KEY=VALUE", w));
        s.set_training({0, w.substr(0, eq), w.substr(eq + 1)});
      }
      for (auto* r : runs(s))
        if (r->snapshot()->state == train::RunState::kPaused) r->wait_idle();
    } else if (action == "save") {
      live(s);
      s.save_training();
      for (auto* r : runs(s)) r->wait_idle();
    } else if (action == "stop") {
      live(s);
      s.stop_training();
    }
  } catch (const train::TrainError& e) {
    throw CommandError(e.what());
  }
  auto snap = s.train_snapshot();
  if (!snap) throw CommandError("train: no run (`train start ...` or `train open DIR`)");
  auto other = s.compare_snapshot();
  if (as_json) {
    Output o;
    json j = status_json(*snap);
    if (other) j["compare"] = status_json(*other);
    if (s.trained_step() >= 0) j["explorer_step"] = s.trained_step();
    o.text = j.dump(2);
    return o;
  }
  Output o;
  o.text = status_text(*snap);
  if (other) o.text += "compare: " + status_text(*other);
  if (action == "weights") o.text += fmt::format("panels 1-8 now show {}\n", s.model_name());
  o.canvas = viz::panel_canvas(s.view(), Panel::kTrain, s.real_config(), ctx.width, 0);
  o.panel = Panel::kTrain;
  return o;
}

}  // namespace

void add_training_commands(Registry& r) {
  r.add({"train",
         {},
         "train the model here and watch it (panel 9): start, pause, resume, step, set, save, stop",
         "`train start [data=TOKENS|demo] [save=DIR] [steps=200 lr=3e-3 batch=4 seq=64\n"
         "model=tiny-random balance=loss-free gamma=0.001 lambda=0.3 alpha=1e-4 ... paused]`\n"
         "starts a run on a worker thread with the options of `dsv3 train` (data: a token stream\n"
         "of `dsv3 tokenize`, default the built-in three-domain demo text; save: default a fresh\n"
         "temporary folder); `train step [N]` runs N steps and\n"
         "waits; `pause`, `resume`, `wait` (until paused or done); `train set gamma=0.01` (also\n"
         "lambda, alpha, lr, balance=none|loss-free|aux) applies before the next step and is\n"
         "logged, so `dsv3 train ... --replay DIR/log.jsonl` repeats the run bit for bit; `save`\n"
         "writes a checkpoint now; `stop` ends the run keeping the last step's checkpoint; `open\n"
         "DIR [DIR2]` shows a finished run (two: compared); `weights` puts the run's weights of\n"
         "the last finished step into the other panels (routing, attention, experts, MTP: the\n"
         "header names the step); `start ... compare=aux` (none, loss-free, aux, fp32, bf16, fp8)\n"
         "trains a second run from the same seed and data with that one setting changed (saved in\n"
         "SAVE-aux), drawn beside the first on the same scales, both steered together;\n"
         "`status [--json]`.",
         {arg("ACTION", ArgKind::kChoice, "what to do", "status", false,
              {"start", "pause", "resume", "step", "wait", "set", "save", "stop", "status", "open",
               "weights"}),
          arg("ARGS", ArgKind::kText, "KEY=VALUE words (start, set), N (step), DIR [DIR2] (open)")},
         {json_flag()},
         train_cmd});
}

}  // namespace dsv3::app
