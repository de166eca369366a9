// `dsv3 fp8 train-compare`: the paper's Figure 10 (FP8 vs BF16 training loss) at tiny scale,
// through reference/train/fp8_compare.h.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "app/cli/cli.h"
#include "reference/train/fp8_compare.h"
#include "visualizers/balance_plot.h"
#include "visualizers/canvas.h"

namespace dsv3::app {

void add_fp8_train_compare(CLI::App& fp8) {
  struct Args {
    train::CompareOptions c;
    std::string modes = "bf16,fp8", out = "train-compare";
    bool json = false, train_only = false;
  };
  auto a = std::make_shared<Args>();
  train::TrainOptions& o = a->c.train;
  o.model = "";
  o.lr = 2e-3;
  o.batch = 8;
  o.seq_len = 128;
  auto* cmd = fp8.add_subcommand(
      "train-compare",
      "Train one config from one seed on the same batches in several precisions and compare "
      "each run's training loss with the BF16 baseline's (the paper's Fig. 10)");
  cmd->add_option("--model", o.model, "config.json, built-in name or checkpoint to start from")
      ->required();
  cmd->add_option("--data", o.data, "token stream or fixed batches (.safetensors)")->required();
  cmd->add_option("--steps", o.steps, "optimizer steps per run")->required();
  cmd->add_option("--modes", a->modes,
                  "comma-separated: fp32, bf16, fp8[:t<G>][:tensor][:no-promote][:nc<N>][:e5m2]"
                  "[:block-dgrad] (bf16 is the baseline and always runs)")
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "seed of the initialisation and the batches")
      ->capture_default_str();
  cmd->add_option("--batch", o.batch, "sequences per step")->capture_default_str();
  cmd->add_option("--seq-len", o.seq_len, "tokens per sequence")->capture_default_str();
  cmd->add_option("--lr", o.lr, "peak learning rate (cosine schedule, V3 shape)")
      ->capture_default_str();
  cmd->add_option("--out", a->out,
                  "folder of the runs (one checkpointed Trainer per mode; calling again resumes), "
                  "the SVG and the table")
      ->capture_default_str();
  cmd->add_option("--max-seconds", a->c.max_seconds,
                  "checkpoint and stop after this much wall time (0 = no limit); run again to go "
                  "on");
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->add_flag("--train-only", a->train_only,
                "train the listed modes into --out and stop (to spread the modes over processes "
                "sharing --out; a later call without it compares)");
  cmd->callback([a] {
    train::CompareOptions c = a->c;
    if (c.train.steps < 1) throw UsageError("--steps must be at least 1");
    if (c.train.batch < 1 || c.train.seq_len < 2)
      throw UsageError("--batch must be at least 1 and --seq-len at least 2");
    if (!(c.train.lr > 0)) throw UsageError("--lr must be a positive number");
    if (c.max_seconds < 0) throw UsageError("--max-seconds must not be negative");
    if (!std::filesystem::exists(c.train.data))
      throw UsageError(fmt::format("--data {}: no such file", c.train.data));
    try {
      c.modes = train::parse_compare_modes(a->modes);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    if (a->train_only && ("," + a->modes + ",").find(",bf16,") == std::string::npos)
      c.modes.erase(c.modes.begin());  // the baseline was added, not asked for
    c.train.save = a->out;
    c.train.eval_every = 0;
    std::atomic<bool> stop{false};
    const bool tty = isatty(fileno(stderr));
    auto progress = [&](const std::string& mode, const train::StepRecord& r) {
      if (r.step % 10 != 0 && r.step != c.train.steps) return;
      fmt::print(stderr, "{}{:<16} step {:>5}/{}  loss {:.4f}  {:.2f} s/step{}", tty ? "\r" : "",
                 mode, r.step, c.train.steps, r.loss.main, r.seconds, tty ? "" : "\n");
    };
    train::CompareResult r;
    try {
      r = train::train_compare(c, stop, progress);
    } catch (const train::TrainError& e) {
      throw UsageError(e.what());
    }
    if (tty) fmt::print(stderr, "\n");
    const std::filesystem::path out(a->out);
    if (a->train_only) {
      fmt::print("trained {} into {}{}\n", a->modes, a->out,
                 r.complete ? "" : " (stopped early: run again to go on)");
      return;
    }
    {
      std::ofstream(out / "train-compare.svg") << train::compare_svg(r);
      std::ofstream(out / "train-compare.md") << train::compare_table(r);
      std::ofstream(out / "train-compare.json") << train::compare_json(r) << "\n";
    }
    if (a->json) {
      fmt::print("{}\n", train::compare_json(r));
    } else {
      std::vector<viz::PlotSeries> series;
      for (size_t i = 0; i < r.runs.size(); ++i) {
        std::vector<double> g = train::ema(r.runs[i].gap);
        for (double& v : g) v *= 100;
        series.push_back({r.runs[i].mode, g, {}, viz::kSeriesColors[i % 8]});
      }
      viz::PlotOptions po;
      po.title = fmt::format("relative loss gap to {} (%, EMA 0.9); the paper: within 0.25%",
                             r.baseline.mode);
      po.hlines = {{0.25, "+0.25%"}, {-0.25, "-0.25%"}};
      if (!series.empty()) {
        const viz::Canvas cv = viz::line_plot(series, po);
        fmt::print("{}\n", isatty(fileno(stdout)) ? viz::render_ansi(cv) : viz::render_plain(cv));
      }
      fmt::print("{}", train::compare_table(r));
      fmt::print(
          "relative gap: (L - L_bf16) / L_bf16 of the training loss L_main on the same batch, "
          "averaged over the last {} steps; final loss: the mean over the same steps.\n",
          r.window);
      fmt::print("curves: {}, table: {}\n", (out / "train-compare.svg").string(),
                 (out / "train-compare.md").string());
    }
    if (!r.complete)
      fmt::print(stderr, "stopped before {} steps: run the same command again to go on\n",
                 c.train.steps);
  });
}

}  // namespace dsv3::app
