// The explorer's live training run (reference/train/live_run.h): steered from another thread
// (pause, single steps, γ changed mid-run, resume), it writes the checkpoint `dsv3 train` writes
// with the same options and the same change replayed (--replay), bit for bit.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "reference/io/safetensors.h"
#include "reference/train/live_run.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"

namespace dsv3::train {
namespace {
namespace fs = std::filesystem;
// `dsv3 ARGS` with one OpenMP thread, as the live run steps (live_run.cpp): the same thread
// count gives the same bits.
test_support::ShellResult dsv3_cli(const std::string& args) {
  return test_support::shell("OMP_NUM_THREADS=1 '" + std::string(DSV3_BINARY) + "' " + args +
                             " 2>&1 < /dev/null");
}

fs::path temp_dir(const std::string& name) {
  return test_support::fresh_temp_dir("dsv3_live_", name);
}

// Three domains of different token patterns (bytes of the tiny vocabulary), 1,200 tokens each.
std::string domain_stream(const fs::path& dir) {
  std::vector<int64_t> tokens, offsets{0};
  for (int d = 0; d < 3; ++d) {
    for (int i = 0; i < 1200; ++i) tokens.push_back(32 + (d * 29 + (i * (d + 3)) % 41) % 90);
    offsets.push_back(static_cast<int64_t>(tokens.size()));
  }
  io::SafetensorsWriter w;
  w.add_i64("tokens", {static_cast<int64_t>(tokens.size())}, tokens);
  w.add_i64("domain_offsets", {static_cast<int64_t>(offsets.size())}, offsets);
  w.set_metadata("domains", "code,prose,math");
  const std::string path = (dir / "tokens.safetensors").string();
  w.write(path);
  return path;
}

std::string bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

TrainOptions options(const std::string& data, const std::string& save) {
  TrainOptions o;
  o.model = "tiny-random";
  o.data = data;
  o.steps = 8;
  o.lr = 3e-3;
  o.batch = 2;
  o.seq_len = 16;
  o.save = save;
  o.save_every = 100;
  o.eval_every = 4;
  o.eval_batches = 1;
  return o;
}

TEST(TrainLive, SteeredRunEqualsDsv3TrainWithTheChangeReplayed) {
  const fs::path dir = temp_dir("replay");
  const std::string data = domain_stream(dir);
  const std::string live = (dir / "live").string(), cli = (dir / "cli").string();
  {
    LiveRun run(options(data, live), /*start_paused=*/true);
    run.step(3);
    auto s = run.wait_idle();
    EXPECT_EQ(s->step, 3);
    EXPECT_EQ(s->state, RunState::kPaused);
    run.set({0, "gamma", "0.01"});
    run.set({0, "lr", "0.002"});
    run.resume();
    s = run.wait_idle();
    EXPECT_EQ(s->state, RunState::kDone);
    ASSERT_EQ(s->history.size(), 8u);
    EXPECT_DOUBLE_EQ(s->history[2].bias_gamma, 1e-3);
    EXPECT_DOUBLE_EQ(s->history[3].bias_gamma, 0.01);  // step 4 is the first under the change
    ASSERT_EQ(s->changes.size(), 2u);
    EXPECT_EQ(s->changes[0].step, 3);
    EXPECT_EQ(s->changes[0].key, "bias_gamma");
    EXPECT_EQ(s->domains, (std::vector<std::string>{"code", "prose", "math"}));
    ASSERT_FALSE(s->domain_load.empty());
    EXPECT_EQ(s->domain_step, 8);
    ASSERT_EQ(s->bias.size(), s->moe_layers.size());
    EXPECT_NE(s->bias[0], std::vector<float>(s->experts, 0.0f));  // γ moved them
    // A change after the last step is applied, but no step runs past the end.
    run.set({0, "gamma", "0.02"});
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    s = run.wait_idle();
    EXPECT_EQ(s->state, RunState::kDone);
    EXPECT_EQ(s->step, 8);
  }
  auto r = dsv3_cli("train --model tiny-random --data " + data +
                    " --steps 8 --lr 3e-3 --batch 2 --seq-len 16 --save-every 100 --eval-every 4 "
                    "--eval-batches 1 --replay " +
                    live + "/log.jsonl --save " + cli);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(bytes(fs::path(live) / "model.safetensors"),
            bytes(fs::path(cli) / "model.safetensors"));
  EXPECT_EQ(bytes(fs::path(live) / "optimizer.safetensors"),
            bytes(fs::path(cli) / "optimizer.safetensors"));
  // Without the change the weights differ: the test can fail.
  auto plain = dsv3_cli("train --model tiny-random --data " + data +
                        " --steps 8 --lr 3e-3 --batch 2 --seq-len 16 --save-every 100 "
                        "--eval-every 4 --eval-batches 1 --save " +
                        (dir / "plain").string());
  ASSERT_EQ(plain.status, 0) << plain.out;
  EXPECT_FALSE(bytes(dir / "plain" / "model.safetensors") ==
               bytes(fs::path(cli) / "model.safetensors"));
  // The replayed log holds the changes too, at the same steps.
  EXPECT_EQ(read_changes(cli + "/log.jsonl").size(), 2u);
  fs::remove_all(dir);
}

TEST(TrainLive, StopKeepsTheLastStepsCheckpointAndTheLogReadsBack) {
  const fs::path dir = temp_dir("stop");
  const std::string save = (dir / "run").string();
  {
    LiveRun run(options(domain_stream(dir), save), true);
    run.step(2);
    run.wait_idle();
    run.set({0, "balance", "aux"});
    run.step(1);
    run.wait_idle();
    run.stop();
    auto s = run.snapshot();
    EXPECT_EQ(s->state, RunState::kStopped);
    EXPECT_EQ(s->last_saved, 3);
    EXPECT_EQ(s->options.objective.balance, BalanceMode::kAux);
  }
  std::ifstream st(fs::path(save) / "trainer_state.json");
  EXPECT_EQ(nlohmann::json::parse(st).at("step").get<int64_t>(), 3);
  TrainSnapshot back = snapshot_from_log(save);
  EXPECT_EQ(back.step, 3);
  ASSERT_EQ(back.history.size(), 3u);
  EXPECT_EQ(back.changes.size(), 1u);
  EXPECT_EQ(back.domains.size(), 3u);
  fs::remove_all(dir);
}

TEST(TrainLive, BadChangesAreOneLineErrors) {
  const fs::path dir = temp_dir("bad");
  LiveRun run(options(domain_stream(dir), (dir / "run").string()), true);
  EXPECT_THROW(run.set({0, "beta", "1"}), TrainError);
  EXPECT_THROW(run.set({0, "gamma", "-1"}), TrainError);
  EXPECT_THROW(run.set({0, "gamma", "fast"}), TrainError);
  EXPECT_THROW(run.set({0, "balance", "sometimes"}), TrainError);
  run.stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::train
