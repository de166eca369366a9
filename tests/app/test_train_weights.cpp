// Panels 1-8 under the weights of a training run's step N (`train weights`, key o in panel 9):
// the session's model becomes the run's weights after step N, copied between two steps, so the
// routing of the prompt is exactly the routing of step N's checkpoint loaded into a Model; later
// steps leave the session alone; the header names the run and the step. Also compare mode
// (`train start ... compare=aux`): two runs from the same seed and data, steered together, and
// the live run replaying a log's changes at their steps (`dsv3 train --tui --replay`).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "app/commands/registry.h"
#include "app/explorer/session.h"
#include "reference/model/model.h"
#include "reference/train/live_run.h"
#include "tests/support/temp_dir.h"

namespace dsv3::app {
namespace {
namespace fs = std::filesystem;

train::TrainOptions options(const fs::path& dir) {
  train::TrainOptions o;
  o.model = "tiny-random";
  o.data = (dir / "demo.safetensors").string();
  if (!fs::exists(o.data)) train::write_demo_stream(o.data, 3000);
  o.steps = 12;
  o.lr = 3e-3;
  o.batch = 2;
  o.seq_len = 16;
  o.bias_gamma = 0.01;  // biases move visibly in a few steps
  o.save = (dir / "run").string();
  o.save_every = 100;
  o.eval_every = 6;
  o.eval_batches = 1;
  return o;
}

// Every MoE routing decision of the traced tokens: chosen experts, their gate weights, and the
// biases in force.
struct Routing {
  std::vector<std::vector<int>> idx;
  std::vector<std::vector<float>> weight, bias;
  bool operator==(const Routing&) const = default;
};

Routing routing(const std::vector<model::TokenTrace>& traces) {
  Routing r;
  for (const auto& t : traces)
    for (const auto& l : t.layers)
      if (l.moe) {
        r.idx.push_back(l.router.topk_idx);
        r.weight.push_back(l.router.topk_weight);
        r.bias.push_back(l.bias);
      }
  return r;
}

// The prompt's routing under a checkpoint folder, loaded directly into a Model.
Routing routing_of_checkpoint(const std::string& dir, const std::vector<int32_t>& ids) {
  model::Model m = model::Model::load(dir);
  model::KVCache cache = m.new_cache(model::AttnImpl::kAbsorbed);
  model::Trace trace;
  model::ForwardOptions fo;
  fo.trace = &trace;
  m.forward(ids, cache, fo);
  return routing(trace.tokens);
}

TEST(TrainWeights, SessionRoutesLikeStepNsCheckpoint) {
  const fs::path dir = test_support::fresh_temp_dir("dsv3_trainw_", "live");
  SessionOptions so;
  so.model = "tiny-random";
  Session s(so);
  const Routing before = routing(s.traces());
  s.start_training(options(dir), /*paused=*/true);
  train::LiveRun* run = s.training();
  run->step(5);
  run->wait_idle();
  EXPECT_EQ(s.open_training_weights(), 5);
  EXPECT_EQ(s.trained_step(), 5);
  EXPECT_EQ(s.model_name(), "tiny-random @ step 5 of " + (dir / "run").string());
  const Routing opened = routing(s.traces());
  // Step 5's checkpoint, written after the copy, holds the same weights.
  run->save();
  run->wait_idle();
  EXPECT_EQ(opened, routing_of_checkpoint((dir / "run").string(), s.tokens()));
  EXPECT_FALSE(opened == before);  // the trained weights route differently: the test can fail
  // Later steps change the run, not the session's copy: its views stay at step 5.
  run->step(3);
  run->wait_idle();
  EXPECT_EQ(routing(s.traces()), opened);
  s.set_prompt(s.prompt());  // computed again, still under step 5's weights
  EXPECT_EQ(routing(s.traces()), opened);
  EXPECT_NE(s.view().model_name.find("@ step 5"), std::string::npos);
  // Opening again takes the newest step; then the checkpoint of step 8 agrees.
  EXPECT_EQ(s.open_training_weights(), 8);
  run->save();
  run->wait_idle();
  EXPECT_EQ(routing(s.traces()), routing_of_checkpoint((dir / "run").string(), s.tokens()));
  // Load another model: the session no longer shows a run's step.
  s.load("tiny-random");
  EXPECT_EQ(s.trained_step(), -1);
  s.stop_training();
  fs::remove_all(dir);
}

TEST(TrainWeights, WhileRunningAndAfterTheRunEnded) {
  const fs::path dir = test_support::fresh_temp_dir("dsv3_trainw_", "running");
  SessionOptions so;
  so.model = "tiny-random";
  Session s(so);
  s.start_training(options(dir), /*paused=*/false);
  // Copied between two steps while the worker runs: a whole step's weights, whatever N is.
  const int64_t n = s.open_training_weights();
  const Routing opened = routing(s.traces());
  s.training()->wait_idle();
  s.stop_training();
  // A finished run opens its last checkpoint (step 12), read from the folder.
  EXPECT_EQ(s.open_training_weights(), 12);
  EXPECT_EQ(routing(s.traces()), routing_of_checkpoint((dir / "run").string(), s.tokens()));
  EXPECT_GE(n, 0);
  EXPECT_LE(n, 12);
  if (n < 12) {
    EXPECT_FALSE(routing(s.traces()) == opened);
  }
  fs::remove_all(dir);
}

TEST(TrainWeights, TheCommandNamesTheStepAndErrorsAreOneLine) {
  const fs::path dir = test_support::fresh_temp_dir("dsv3_trainw_", "cmd");
  SessionOptions so;
  so.model = "tiny-random";
  Session s(so);
  const Registry& r = registry();
  Context ctx{100};
  EXPECT_THROW(r.run(s, "train weights", ctx), CommandError);  // no run yet
  train::write_demo_stream((dir / "demo.safetensors").string(), 3000);
  r.run(s,
        "train start data=" + (dir / "demo.safetensors").string() +
            " save=" + (dir / "run").string() + " steps=6 batch=2 seq=16 paused",
        ctx);
  r.run(s, "train step 2", ctx);
  Output o = r.run(s, "train weights", ctx);
  EXPECT_NE(o.text.find("panels 1-8 now show tiny-random @ step 2 of"), std::string::npos)
      << o.text;
  r.run(s, "train stop", ctx);
  fs::remove_all(dir);
}

bool same_file(const fs::path& a, const fs::path& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(fa), {}) ==
         std::string(std::istreambuf_iterator<char>(fb), {});
}

TEST(TrainCompareRuns, SameSeedAndDataOneSettingChangedSteeredTogether) {
  const fs::path dir = test_support::fresh_temp_dir("dsv3_trainw_", "compare");
  SessionOptions so;
  so.model = "tiny-random";
  Session s(so);
  const Registry& r = registry();
  Context ctx{100};
  train::write_demo_stream((dir / "demo.safetensors").string(), 3000);
  const std::string save = (dir / "run").string();
  r.run(s,
        "train start data=" + (dir / "demo.safetensors").string() + " save=" + save +
            " steps=6 batch=2 seq=16 paused compare=aux",
        ctx);
  ASSERT_EQ(s.training_runs().size(), 2u);
  r.run(s, "train step 3", ctx);
  r.run(s, "train set lambda=0.1", ctx);
  r.run(s, "train step 1", ctx);
  auto a = s.train_snapshot();
  auto b = s.compare_snapshot();
  ASSERT_TRUE(b);
  EXPECT_EQ(a->step, 4);
  EXPECT_EQ(b->step, 4);
  EXPECT_EQ(b->save, save + "-aux");
  EXPECT_EQ(b->options.objective.balance, train::BalanceMode::kAux);
  EXPECT_EQ(a->options.objective.balance, train::BalanceMode::kLossFree);
  ASSERT_EQ(b->changes.size(), 1u);  // the change went to both runs, at the same step
  EXPECT_EQ(b->changes[0].step, a->changes[0].step);
  // The first step: same initial weights, same batch; only the balancing differs.
  EXPECT_DOUBLE_EQ(a->history[0].loss_main, b->history[0].loss_main);
  Output o = r.run(s, "train status --json", ctx);
  EXPECT_NE(o.text.find("\"compare\""), std::string::npos);
  r.run(s, "train stop", ctx);
  EXPECT_TRUE(fs::exists(save + "-aux/model.safetensors"));
  EXPECT_FALSE(same_file(save + "/model.safetensors", save + "-aux/model.safetensors"));
  // After the stop the panel keeps both runs.
  EXPECT_TRUE(s.compare_snapshot());
  EXPECT_THROW(r.run(s, "train start compare=sometimes", ctx), CommandError);
  fs::remove_all(dir);
}

TEST(TrainReplayLive, TheLiveRunAppliesALogsChangesAtTheirSteps) {
  const fs::path dir = test_support::fresh_temp_dir("dsv3_trainw_", "replay");
  train::TrainOptions o = options(dir);
  {
    train::LiveRun steered(o, /*start_paused=*/true);
    steered.step(4);
    steered.wait_idle();
    steered.set({0, "gamma", "0.05"});
    steered.set({0, "balance", "aux"});
    steered.resume();
    steered.wait_idle();
  }
  train::TrainOptions again = o;
  again.save = (dir / "replayed").string();
  again.changes = train::read_changes(o.save + "/log.jsonl");
  ASSERT_EQ(again.changes.size(), 2u);
  {
    train::LiveRun replayed(again, /*start_paused=*/false);
    auto snap = replayed.wait_idle();
    EXPECT_EQ(snap->state, train::RunState::kDone);
    ASSERT_EQ(snap->changes.size(), 2u);
    EXPECT_EQ(snap->changes[0].step, 4);
    EXPECT_DOUBLE_EQ(snap->history[3].bias_gamma, 0.01);
    EXPECT_EQ(snap->options.objective.balance, train::BalanceMode::kAux);
  }
  EXPECT_TRUE(same_file(dir / "run" / "model.safetensors", dir / "replayed" / "model.safetensors"));
  EXPECT_TRUE(
      same_file(dir / "run" / "optimizer.safetensors", dir / "replayed" / "optimizer.safetensors"));
  // The replayed run's log holds the changes again, at the same steps.
  EXPECT_EQ(train::read_changes(again.save + "/log.jsonl").size(), 2u);
  // Without them the weights differ: the test can fail.
  train::TrainOptions plain = o;
  plain.save = (dir / "plain").string();
  {
    train::LiveRun run(plain, false);
    run.wait_idle();
  }
  EXPECT_FALSE(same_file(dir / "run" / "model.safetensors", dir / "plain" / "model.safetensors"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::app
