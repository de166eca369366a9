// `dsv3 grad` and `dsv3 train`: the training objective's gradient for one batch, dumped in
// checkpoint naming, and the training loop (reference/train/). docs/training.md has the recipe.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "app/cli/cli.h"
#include "app/cli/model.h"
#include "app/explorer/session.h"
#include "app/explorer/tui.h"
#include "reference/fp8/format.h"
#include "reference/io/safetensors.h"
#include "reference/io/tokenizer.h"
#include "reference/train/objective.h"
#include "reference/train/trainer.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::app {
namespace {

struct GradArgs {
  std::string model;
  std::string batch;
  std::string dump;
  double lambda = 0.3;
  double alpha = 1e-4;
  std::string balance = "loss-free";
  uint64_t seed = 0;
};

train::Batch read_batch(const std::string& path, int64_t vocab) {
  std::unique_ptr<io::SafetensorsFile> f;
  try {
    f = std::make_unique<io::SafetensorsFile>(path);
  } catch (const io::FormatError& e) {
    throw UsageError(e.what());
  }
  const io::TensorView* t = f->find("ids");
  if (!t) throw UsageError(fmt::format("{}: no tensor 'ids' (int64 [B, T])", path));
  if (t->dtype != io::DType::kI64 || t->shape.size() != 2)
    throw UsageError(fmt::format("{}: 'ids' must be int64 [B, T], got {} with {} dimensions", path,
                                 io::to_string(t->dtype), t->shape.size()));
  train::Batch b{t->shape[0], t->shape[1], std::vector<int32_t>(t->numel())};
  for (int64_t i = 0; i < t->numel(); ++i) {
    int64_t v;
    std::memcpy(&v, t->data + 8 * i, 8);
    if (v < 0 || v >= vocab)
      throw UsageError(fmt::format("{}: 'ids' holds token id {}, outside the vocabulary [0, {})",
                                   path, v, vocab));
    b.ids[i] = static_cast<int32_t>(v);
  }
  return b;
}

void run_grad(const GradArgs& a) {
  model::Model m = load_model(a.model, a.seed);
  const model::Config& c = m.config();
  train::Batch batch = read_batch(a.batch, c.vocab_size);
  train::Objective obj;
  obj.mtp_lambda = a.lambda;
  obj.balance_alpha = a.alpha;
  obj.balance = train::parse_balance_mode(a.balance);
  model::ModelWeights grad = train::zeros_like(c, m.weights());
  train::LossParts lp;
  try {
    lp = train::loss_and_grad(c, m.rope(), m.weights(), batch, obj, &grad);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  io::SafetensorsWriter w;
  auto scalar = [&](const std::string& name, double v) {
    Vec x(1);
    x[0] = static_cast<float>(v);
    w.add(name, x);
  };
  scalar("loss", lp.total);
  scalar("loss.main", lp.main);
  for (size_t k = 0; k < lp.mtp.size(); ++k) scalar(fmt::format("loss.mtp.{}", k + 1), lp.mtp[k]);
  scalar("loss.balance", lp.balance);
  model::visit_model(c, grad, [&](const std::string& name, const auto& t) {
    if (name.find("e_score_correction_bias") == std::string::npos) w.add("grad." + name, t);
  });
  w.set_metadata("format", "pt");
  w.write(a.dump);
  std::string mtp;
  for (size_t k = 0; k < lp.mtp.size(); ++k)
    mtp += fmt::format(" · mtp.{} {:.6f}", k + 1, lp.mtp[k]);
  std::printf(
      "loss %.6f = main %.6f%s (lambda %g) + balance %.6f (alpha %g, %s); B=%lld T=%lld; "
      "gradients of %s written to %s\n",
      lp.total, lp.main, mtp.c_str(), a.lambda, lp.balance, obj.effective_alpha(),
      train::to_string(obj.balance), static_cast<long long>(batch.B),
      static_cast<long long>(batch.T), c.name.c_str(), a.dump.c_str());
}

std::atomic<bool> g_stop{false};
extern "C" void on_sigint(int) {
  g_stop.store(true);
}

struct TrainArgs {
  train::TrainOptions opt;
  std::string schedule = "cosine";
  std::string balance = "loss-free";
  std::string precision = "fp32", fp8_scaling = "tile", fp8_grad = "e4m3";  // fp8_linear.h
  std::string fp8_grad_scaling = "tile", val_precision = "train";
  std::string replay;   // a log.jsonl whose change lines to apply
  std::string compare;  // --tui --compare: a second run with this setting changed
  bool tui = false;
};

// `dsv3 train ... --tui`: the explorer on panel 9 with this run training on its worker (and the
// --compare run beside it; --replay changes applied at their steps); the other panels show the
// model named by --model (a fresh config: its random initialisation) until `o` opens the run's.
int run_train_tui(const train::TrainOptions& opt, const std::string& compare) {
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
    throw UsageError("--tui needs a terminal (drop --tui to train with a progress line)");
  SessionOptions so;
  so.model = opt.resume ? opt.save : opt.model;
  so.seed = opt.seed;
  std::unique_ptr<Session> s;
  try {
    s = std::make_unique<Session>(so);
    s->start_training(opt, false, compare);
  } catch (const train::TrainError& e) {
    throw UsageError(e.what());
  } catch (const std::exception& e) {
    throw UsageError(fmt::format("--tui: {}", e.what()));
  }
  const int rc = run_tui(*s, static_cast<int>(viz::Panel::kTrain));
  auto snap = s->train_snapshot();
  s->stop_training();  // q, Ctrl-C: finish the step in progress and keep its checkpoint
  if (snap)
    std::printf("trained %lld of %lld steps; checkpoint in %s (log: %s/log.jsonl)\n",
                static_cast<long long>(s->train_snapshot()->step),
                static_cast<long long>(snap->steps), opt.save.c_str(), opt.save.c_str());
  if (auto b = s->compare_snapshot())
    std::printf("compared with %s: %lld of %lld steps; checkpoint in %s\n", compare.c_str(),
                static_cast<long long>(b->step), static_cast<long long>(b->steps), b->save.c_str());
  return rc;
}

void run_train(TrainArgs& a) {
  a.opt.schedule = train::parse_schedule(a.schedule);
  a.opt.objective.balance = train::parse_balance_mode(a.balance);
  a.opt.precision.precision = train::parse_precision(a.precision);
  a.opt.precision.per_tensor = a.fp8_scaling == "tensor";
  a.opt.precision.grad_format = fp8::parse_format(a.fp8_grad);
  a.opt.precision.dgrad_blocks = a.fp8_grad_scaling == "block";
  a.opt.precision.validate();
  a.opt.val_fp32 = a.val_precision == "fp32";
  if (a.opt.batch < 1) throw UsageError("--batch must be at least 1");
  if (a.opt.seq_len < 2) throw UsageError("--seq-len must be at least 2");
  if (a.opt.save_every < 1) throw UsageError("--save-every must be at least 1");
  if (a.opt.clip < 0) throw UsageError("--clip must not be negative");
  if (a.opt.bias_gamma < 0) throw UsageError("--bias-gamma must not be negative");
  if (a.opt.objective.balance_alpha < 0) throw UsageError("--balance-alpha must not be negative");
  if (a.opt.objective.mtp_lambda < 0) throw UsageError("--mtp-lambda must not be negative");
  if (!a.replay.empty()) {
    try {
      a.opt.changes = train::read_changes(a.replay);
    } catch (const train::TrainError& e) {
      throw UsageError(e.what());
    }
  }
  if (!a.compare.empty() && !a.tui)
    throw UsageError("--compare needs --tui (the two runs are drawn side by side in panel 9)");
  if (a.tui) {
    int rc = run_train_tui(a.opt, a.compare);
    if (rc != 0) throw ExitStatus{rc};
    return;
  }
  g_stop.store(false);
  auto previous = std::signal(SIGINT, on_sigint);  // Ctrl-C: finish the step, save, exit
  int rc;
  try {
    rc = train::run_training(a.opt, g_stop);
  } catch (const train::TrainError& e) {
    std::signal(SIGINT, previous);
    throw UsageError(e.what());
  }
  std::signal(SIGINT, previous);
  if (rc != 0) throw ExitStatus{rc};
}

}  // namespace

void add_train_commands(CLI::App& app) {
  auto ga = std::make_shared<GradArgs>();
  CLI::App* g = app.add_subcommand(
      "grad", "Loss and raw gradient of the training objective for one batch, as safetensors");
  g->add_option("--model", ga->model, "Checkpoint folder, config.json, or built-in name")
      ->required();
  g->add_option("--batch", ga->batch, "safetensors file holding ids int64 [B, T]")->required();
  g->add_option("--dump", ga->dump,
                "Output .safetensors: loss, loss.main, loss.mtp.{k}, "
                "loss.balance and grad.{name}")
      ->required();
  g->option_defaults()->always_capture_default();
  g->add_option("--mtp-lambda", ga->lambda, "MTP loss weight lambda (V3: 0.3)");
  g->add_option("--balance-alpha", ga->alpha, "Sequence-wise balance loss weight alpha (V3: 1e-4)");
  g->add_option("--balance", ga->balance, "none | loss-free | aux (aux: routing ignores the bias)")
      ->check(CLI::IsMember({"none", "loss-free", "aux"}));
  g->add_option("--seed", ga->seed, "Random-weight seed when --model is not a checkpoint");
  g->callback([ga] { run_grad(*ga); });

  auto ta = std::make_shared<TrainArgs>();
  train::TrainOptions& o = ta->opt;
  CLI::App* t = app.add_subcommand("train", "Train a DeepSeek-V3 model (MLA, DeepSeekMoE, MTP)");
  t->add_option("--model", o.model,
                "Checkpoint folder to continue from, or a config.json / built-in name to "
                "initialise")
      ->required();
  t->add_option("--data", o.data,
                "safetensors with ids.step{k} int64 [B, T] (step k uses that batch) or a 1-D "
                "'tokens' stream (I64/I32/U16), optionally cut into domains by "
                "'domain_offsets' (windows stay inside one domain)")
      ->required();
  t->add_option("--val-data", o.val_data,
                "held-out stream in the same format (e.g. PREFIX.heldout.safetensors of "
                "`dsv3 tokenize --corpus`); default: the last 5% of every domain of --data");
  t->add_option("--steps", o.steps, "Optimizer steps in the run")->required();
  t->add_option("--lr", o.lr, "Peak learning rate")->required();
  t->option_defaults()->always_capture_default();  // --help shows the defaults from here on
  t->add_option("--schedule", ta->schedule,
                "constant | cosine (V3's shape: warm-up, constant to 67.6%, cosine to 0.1x)")
      ->check(CLI::IsMember({"constant", "cosine"}));
  t->add_option("--warmup", o.warmup, "Linear warm-up steps (default: 2% of --steps)");
  t->add_option("--batch", o.batch, "Sequences per step (token streams)");
  t->add_option("--seq-len", o.seq_len, "Tokens per sequence (token streams)");
  t->add_option("--mtp-lambda", o.objective.mtp_lambda, "MTP loss weight lambda (V3: 0.3)");
  t->add_option("--balance", ta->balance,
                "none | loss-free (bias update, V3) | aux (classic auxiliary loss, no bias)")
      ->check(CLI::IsMember({"none", "loss-free", "aux"}));
  t->add_option("--balance-alpha", o.objective.balance_alpha,
                "Sequence-wise balance loss weight alpha (V3: 1e-4)");
  t->add_option("--bias-gamma", o.bias_gamma, "Bias update speed gamma (V3: 0.001)");
  t->add_flag("--v3-phases", o.v3_phases,
              "V3's phase switches scaled to the run: lambda / 3 after 67.6% of the steps "
              "(0.3 -> 0.1), gamma 0 after 96.6%");
  t->add_option("--weight-decay", o.adamw.weight_decay, "AdamW weight decay (V3: 0.1)");
  t->add_option("--clip", o.clip, "Global gradient-norm clip (V3: 1.0; 0 = off)");
  t->add_option("--seed", o.seed, "Seed of the initialisation and the batch windows");
  t->add_option("--init-std", o.init_std,
                "Init std of every matrix (default 0.006*sqrt(7168/hidden_size))");
  t->add_option("--save", o.save,
                "Output folder: config.json, model.safetensors, optimizer "
                "state, log.jsonl")
      ->required();
  t->add_option("--save-every", o.save_every, "Checkpoint every K steps");
  t->add_option("--eval-every", o.eval_every, "Validation every K steps (default: 10 per run)");
  t->add_option("--eval-batches", o.eval_batches, "Validation batches");
  t->add_flag("--tui", ta->tui,
              "Train inside the explorer, on panel 9: watch the loss, the expert load and the "
              "biases as the steps finish; p pause, s step, + - gamma, w save, o open the weights "
              "of the last step in the other panels, q stop (keeps the last checkpoint); with "
              "--replay the logged changes are applied at their steps as you watch");
  t->add_option("--compare", ta->compare,
                "With --tui: train a second run from the same seed and data with one setting "
                "changed, saved in SAVE-WHAT, drawn beside the first on the same scales: none | "
                "loss-free | aux (balancing) or fp32 | bf16 | fp8 (precision)")
      ->check(CLI::IsMember({"none", "loss-free", "aux", "fp32", "bf16", "fp8"}));
  t->add_flag("--resume", o.resume, "Continue the run saved in --save, bit-identically");
  t->add_option("--precision", ta->precision,
                "fp32 | bf16 | fp8: the Linears DeepSeek-V3 runs in FP8 (attention projections, "
                "FFNs, experts) in BF16, or in emulated H100 FP8 with BF16 AdamW moments "
                "(docs/fp8.md)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp8"}));
  t->add_option("--fp8-tile", o.precision.tile,
                "FP8 scaling group g: 1xg activation tiles, gxg weight blocks, gx1 Wgrad tiles "
                "(a multiple of 32; paper: 128)");
  t->add_option("--fp8-promote", o.precision.promote,
                "N_C: promote the tensor-core sum to FP32 every N_C elements (paper: 128; 0 = "
                "never, which needs per-tensor scales)");
  t->add_option("--fp8-scaling", ta->fp8_scaling, "tile (DeepSeek-V3) | tensor (one scale each)")
      ->check(CLI::IsMember({"tile", "tensor"}));
  t->add_option("--fp8-grad-format", ta->fp8_grad,
                "e4m3 (DeepSeek-V3) | e5m2 (the hybrid format) for the output gradients")
      ->check(CLI::IsMember({"e4m3", "e5m2"}));
  t->add_option("--fp8-grad-scaling", ta->fp8_grad_scaling,
                "Dgrad's output gradient in 1xg tiles (DeepSeek-V3) | gxg blocks (the ablation "
                "that diverged at 16B, App. B.2)")
      ->check(CLI::IsMember({"tile", "block"}));
  t->add_option("--val-precision", ta->val_precision,
                "train: validation's forward in the training precision (FP8 Fprop GEMMs when "
                "--precision fp8) | fp32: in float32 (the master weights without FP8 error)")
      ->check(CLI::IsMember({"train", "fp32"}));
  t->add_option("--replay", ta->replay,
                "log.jsonl of an earlier run: apply its mid-run changes ({\"step\", \"set\", "
                "\"value\"} lines, e.g. made in the explorer's panel 9) at the same steps");
  t->callback([ta] { run_train(*ta); });
}

}  // namespace dsv3::app
