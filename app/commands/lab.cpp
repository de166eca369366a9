// Lab commands: the explorer-language wrappers over the reference modules that the lessons
// use (MLA shapes, YaRN, the balance toys, MTP, FP8, DualPipe, accounting), and `lesson N`.
// Each prints a picture or a table, and with --json the numbers a lesson's checks read.
// The commands live in lab_model.cpp, lab_balance_mtp.cpp and lab_fp8_pipeline.cpp; this file
// holds their shared declaration helpers, `lesson`, and the table that registers them all.
#include "app/commands/lab.h"

#include <curses.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "app/commands/registry.h"
#include "app/commands/util.h"
#include "app/explorer/session.h"
#include "app/lesson/player.h"
#include "reference/accounting/accounting.h"
#include "reference/balance/metrics.h"
#include "reference/balance/toy_a.h"
#include "reference/balance/toy_c.h"
#include "reference/fp8/analysis.h"
#include "reference/fp8/format.h"
#include "reference/fp8/quant.h"
#include "reference/model/generate.h"
#include "reference/model/mtp.h"
#include "reference/model/rope.h"
#include "reference/model/speculative.h"
#include "reference/pipeline/export.h"
#include "reference/pipeline/overlap.h"
#include "reference/pipeline/schedule.h"
#include "reference/pipeline/simulator.h"
#include "reference/pipeline/table.h"
#include "visualizers/balance_plot.h"
#include "visualizers/explorer_style.h"
#include "visualizers/mtp_panel.h"
#include "visualizers/pipeline_overlap.h"
#include "visualizers/pipeline_timeline.h"

namespace dsv3::app {

namespace lab {

const std::vector<std::string> kConfigs = {"v3-671b",     "v2-236b", "v2-lite-16b", "tiny",
                                           "tiny-random", "small",   "tiny-yarn"};

FlagSpec config_flag() {
  return opt("config", ArgKind::kPath, "a built-in config name or config.json (default v3-671b)",
             kConfigs);
}

Command make(std::string name, std::string summary, std::string help, std::vector<ArgSpec> args,
             std::vector<FlagSpec> flags,
             std::function<Output(Session&, const Args&, const Context&)> run) {
  Command c;
  c.name = std::move(name);
  c.summary = std::move(summary);
  c.help = std::move(help);
  c.args = std::move(args);
  c.flags = std::move(flags);
  c.run = std::move(run);
  return c;
}

Output text(std::string t) {
  Output o;
  o.text = std::move(t);
  return o;
}

Output json_out(const json& j) {
  return text(j.dump(2));
}

model::Config config_of(const Args& a, const char* def) {
  std::string name = a.has("config") ? a.str("config") : def;
  try {
    model::Config c = model::resolve_config(name);
    if (c.name.empty()) c.name = name;
    return c;
  } catch (const std::exception& e) {
    throw CommandError(fmt::format("--config {}: {}", name, e.what()));
  }
}

int64_t int_flag(const Args& a, const char* name, int64_t def, int64_t lo, int64_t hi) {
  if (!a.has(name)) return def;
  int64_t v = a.integer(name);
  if (v < lo || v > hi)
    throw CommandError(fmt::format("--{} must be in {}..{}, got {}", name, lo, hi, v));
  return v;
}

double real_flag(const Args& a, const char* name, double def, double lo, double hi) {
  if (!a.has(name)) return def;
  double v = a.real(name);
  if (!(v >= lo && v <= hi))
    throw CommandError(fmt::format("--{} must be in {}..{}, got {}", name, lo, hi, v));
  return v;
}

std::string human(double bytes) {
  return viz::style::human_bytes(bytes);
}

std::string big(double n) {
  if (std::fabs(n) >= 1e9) return fmt::format("{:.1f}B", n / 1e9);
  if (std::fabs(n) >= 1e6) return fmt::format("{:.1f}M", n / 1e6);
  if (std::fabs(n) >= 1e3) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

// ---- the lesson player --------------------------------------------------------------------

Output lesson_cmd(Session&, const Args& a, const Context& ctx) {
  std::string dir = lesson::lessons_dir();
  if (!a.has("N")) return text(lesson::lesson_list(dir));
  lesson::Lesson l = lesson::load_lesson(lesson::resolve_lesson(a.str("N"), dir));
  bool curses_running = stdscr != nullptr && !isendwin();
  if (curses_running && !a.flag("plain")) {
    // Inside the explorer: the player borrows the screen and returns it on q.
    lesson::play_tui(l);
    return text(fmt::format("left lesson {}: {}", l.number, l.title));
  }
  std::ostringstream out;
  int failures = lesson::play_plain(l, out, std::max(60, ctx.width));
  if (failures) out << fmt::format("{} problem(s) in this lesson\n", failures);
  return text(out.str());
}

}  // namespace lab

void add_lab_commands(Registry& r) {
  using namespace lab;  // the commands and declaration helpers of lab.h
  r.add(make(
      "mla", "MLA's shapes, cached values and attention FLOPs per token (naive vs absorbed)",
      "The latent c^KV and the shared RoPE key k^R are all MLA caches (eq. 1-5); "
      "reference/accounting.",
      {},
      {config_flag(), opt("context", ArgKind::kInt, "context length for the FLOPs (default 4096)"),
       json_flag()},
      mla));
  r.add(
      make("yarn", "YaRN's per-pair RoPE frequency correction: the ramp, f'/f and mscale",
           "reference/model/rope.cpp make_rope_table; DeepSeek-V3 §4.3 extends 4K to 128K with it.",
           {}, {config_flag(), json_flag()}, yarn));
  r.add(make("balance-toy", "auxiliary-loss-free balancing on a skewed toy router: MaxVio per step",
             "Toy A of reference/balance: a fixed random router with a per-expert skew, fresh "
             "tokens each\n"
             "step, biases updated by b_i += γ·sign(c̄ − c_i). --gamma 0 switches balancing off.",
             {},
             {opt("steps", ArgKind::kInt, "bias updates (default 400)"),
              opt("gamma", ArgKind::kFloat, "bias update speed γ (default 0.001)"),
              opt("experts", ArgKind::kInt, "N_r (default 64)"),
              opt("topk", ArgKind::kInt, "K_r (default 6)"),
              opt("tokens", ArgKind::kInt, "tokens per batch (default 1024)"),
              opt("skew", ArgKind::kFloat, "σ of the logit skew (default 1)"),
              opt("seed", ArgKind::kInt, "random seed"), json_flag()},
             balance_toy));
  r.add(make("balance-tradeoff",
             "task loss vs balance: no balancing, aux loss at several α, loss-free",
             "Toy C of reference/balance: a learned router trained each way (short runs).", {},
             {opt("steps", ArgKind::kInt, "training steps (default 600)"),
              opt("seeds", ArgKind::kInt, "seeds averaged (default 1)"), json_flag()},
             balance_tradeoff));
  r.add(make("mtp-loss", "the multi-token prediction loss on the session's tokens (eq. 24-25)", "",
             {}, {opt("lambda", ArgKind::kFloat, "λ (default 0.3)"), json_flag()}, mtp_loss_cmd));
  r.add(make(
      "mtp-spec", "speculative decoding with the MTP drafts from the session's tokens",
      "Greedy; compares the output with plain greedy decoding (lossless). --agree P replaces a\n"
      "draft by the main model's own token with probability P, standing in for a trained module.",
      {arg("N", ArgKind::kInt, "new tokens", "16", false, {}, 1, 512)},
      {opt("depth", ArgKind::kInt, "drafts per step D (default 1)"),
       opt("agree", ArgKind::kFloat, "simulated draft accuracy 0..1"), json_flag()},
      mtp_spec));
  r.add(make(
      "fp8-bits", "one number in FP8, bit by bit: sign, exponent, mantissa, rounding error", "",
      {arg("VALUE", ArgKind::kFloat, "the number", "", true)},
      {opt("format", ArgKind::kChoice, "e4m3 (default) or e5m2", {"e4m3", "e5m2"}), json_flag()},
      fp8_bits));
  r.add(make("fp8-scaling", "an outlier against per-tensor and 1x128 tile scaling (§3.3.2)", "", {},
             {opt("outlier", ArgKind::kFloat, "the outlier's value (default 1000)"), json_flag()},
             fp8_scaling));
  r.add(make("fp8-accum", "FP8 GEMM accumulation error: tensor-core chain vs promotion every 128",
             "", {}, {opt("k", ArgKind::kInt, "inner dimension K (default 4096)"), json_flag()},
             fp8_accum));
  const std::vector<std::string> schedules = {"gpipe", "1f1b", "zb1p", "dualpipe", "dualpipev"};
  r.add(make("pp-sim", "simulate one pipeline schedule and draw its timeline",
             "Costs default to the paper's figures: F=1,B=2,W=1,FB=3.",
             {arg("SCHEDULE", ArgKind::kChoice, "the schedule", "", true, schedules),
              arg("P", ArgKind::kInt, "ranks", "4", false, {}, 1, 64),
              arg("N", ArgKind::kInt, "micro-batches", "8", false, {}, 1, 256)},
             {opt("costs", ArgKind::kWord, "F=..,B=..,W=..,FB=.."), json_flag()}, pp_sim));
  r.add(make("pp-table",
             "Table 2: bubble, parameters and activations of every schedule, formula vs simulation",
             "",
             {arg("P", ArgKind::kInt, "ranks", "8", false, {}, 1, 64),
              arg("N", ArgKind::kInt, "micro-batches", "20", false, {}, 1, 256)},
             {opt("costs", ArgKind::kWord, "F=..,B=..,W=..,FB=.."), json_flag()}, pp_table));
  r.add(make("pp-overlap",
             "Figure 4: all-to-all and pipeline communication hidden under computation", "", {},
             {config_flag(), json_flag()}, pp_overlap));
  r.add(make("params", "parameters (total and per token) by component, and FLOPs per token", "", {},
             {config_flag(), json_flag()}, params));
  r.add(make("memory", "what fits: weights and KV cache against GPU memory", "", {},
             {config_flag(), opt("gpu-gb", ArgKind::kFloat, "GPU memory in GB (default 80)"),
              opt("context", ArgKind::kInt, "tokens per sequence (default 32768)"),
              opt("batch", ArgKind::kInt, "sequences (default 16)"), json_flag()},
             memory));
  r.add(make(
      "lesson", "play a lesson (in the explorer: full screen, q returns); without N: list them",
      "`lesson N --plain` prints the whole lesson with every output (the REPL does this anyway).",
      {arg("N", ArgKind::kWord, "lesson number or name")}, {[] {
        FlagSpec f;
        f.name = "plain";
        f.help = "print the lesson as text";
        return f;
      }()},
      lesson_cmd));
}

}  // namespace dsv3::app
