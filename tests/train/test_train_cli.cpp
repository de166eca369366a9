// `dsv3 grad`, `dsv3 train` and `dsv3 tokenize` as a user runs them: the dump format, the
// checkpoint every other command loads, Ctrl-C, a diverging run, and one-line errors (exit 2).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "reference/io/safetensors.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"

namespace dsv3::train {
namespace {
namespace fs = std::filesystem;
using test_support::dsv3_cli;
using test_support::shell;

const std::string kData = DSV3_TEST_DATA;

fs::path temp_dir(const std::string& name) {
  return test_support::fresh_temp_dir("dsv3_cli_", name);
}

// `dsv3 tokenize` of a sentence repeated n times; returns the tokens file.
std::string tokenized(const fs::path& dir, const std::string& sentence, int n) {
  {
    std::ofstream f(dir / "text.txt");
    for (int i = 0; i < n; ++i) f << sentence;
  }
  const std::string out = (dir / "tokens.safetensors").string();
  auto r = dsv3_cli("tokenize " + (dir / "text.txt").string() + " --out " + out);
  EXPECT_EQ(r.status, 0) << r.out;
  return out;
}

int lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

TEST(TrainCli, GradDumpsTheContractInCheckpointNaming) {
  fs::path dir = temp_dir("grad");
  const std::string out = (dir / "g.safetensors").string();
  auto r =
      dsv3_cli("grad --model " + kData + "/tiny-yarn-groups --batch " + kData +
               "/train-ref/batch.safetensors --mtp-lambda 0.3 --balance-alpha 0.01 --dump " + out);
  ASSERT_EQ(r.status, 0) << r.out;
  io::SafetensorsFile ours(out), ref(kData + "/train-ref/grad.safetensors");
  for (const char* name : {"loss", "loss.main", "loss.mtp.1", "loss.balance"})
    EXPECT_NEAR(io::to_f32(*ours.find(name))[0], io::to_f32(*ref.find(name))[0], 1e-4) << name;
  int grads = 0;
  for (const auto& [name, t] : ours.tensors()) {
    if (name.rfind("grad.", 0) != 0) continue;
    ++grads;
    EXPECT_TRUE(ref.find(name)) << name;  // same names as the PyTorch reference
    EXPECT_EQ(name.find("e_score_correction_bias"), std::string::npos);
  }
  EXPECT_EQ(grads, 202);  // no separate entries for the MTP module's embedding and head copies
  EXPECT_FALSE(ours.find("grad.model.layers.3.embed_tokens.weight"));
  fs::remove_all(dir);
}

TEST(TrainCli, TrainsTokenizesAndSavesACheckpointEveryCommandLoads) {
  fs::path dir = temp_dir("train");
  const std::string tokens =
      tokenized(dir, "Multi-head latent attention caches a small latent. ", 30);
  const std::string save = (dir / "run").string();
  auto r = dsv3_cli(
      "train --model tiny-random --data " + tokens +
      " --steps 12 --lr 3e-3 --batch 2 --seq-len 32 --save-every 5 --eval-every 6 --save " + save);
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* f : {"config.json", "model.safetensors", "optimizer.safetensors",
                        "trainer_state.json", "log.jsonl"})
    EXPECT_TRUE(fs::exists(fs::path(save) / f)) << f;
  std::ifstream log(fs::path(save) / "log.jsonl");
  std::string line;
  int n = 0;
  nlohmann::json last;
  while (std::getline(log, line)) {
    last = nlohmann::json::parse(line);
    ++n;
  }
  EXPECT_EQ(n, 12);
  EXPECT_EQ(last["step"], 12);
  for (const char* key : {"loss", "loss_main", "loss_mtp", "loss_balance", "grad_norm", "lr",
                          "max_vio", "val_loss", "tokens_per_s"})
    EXPECT_TRUE(last.contains(key)) << key;
  EXPECT_EQ(last["max_vio"].size(), 4u);  // three MoE layers and the MTP block
  // The checkpoint is a model folder like any other: biases and the MTP module included.
  auto gen = dsv3_cli("generate --model " + save + " --prompt Multi -n 8 --mtp");
  EXPECT_EQ(gen.status, 0) << gen.out;
  auto info = dsv3_cli("info " + save);
  EXPECT_EQ(info.status, 0) << info.out;
  io::SafetensorsFile m(save + "/model.safetensors");
  EXPECT_TRUE(m.find("model.layers.4.eh_proj.weight"));
  EXPECT_TRUE(m.find("model.layers.1.mlp.gate.e_score_correction_bias"));
  fs::remove_all(dir);
}

TEST(TrainCli, CtrlCSavesAndExitsCleanly) {
  fs::path dir = temp_dir("sigint");
  const std::string tokens =
      tokenized(dir, "Every token goes to eight of 256 routed experts. ", 200);
  const std::string save = (dir / "run").string();
  // A run far too long to finish: Ctrl-C once its log shows a finished step.
  const std::string cmd =
      "'" + std::string(DSV3_BINARY) + "' train --model tiny-random --data " + tokens +
      " --steps 1000000 --lr 1e-3 --batch 2 --seq-len 32 " +
      "--save-every 1000000 --eval-every 1000000 --save " + save + " > " +
      (dir / "out.txt").string() + " 2>&1 & pid=$!; " + "for i in $(seq 600); do [ -s " + save +
      "/log.jsonl ] && break; sleep 0.1; done; " + "kill -INT $pid; wait $pid; echo $?";
  auto r = shell(cmd);
  std::ifstream f(dir / "out.txt");
  std::string out((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(r.out, "130\n") << out;
  EXPECT_NE(out.find("interrupted after step"), std::string::npos) << out;
  std::ifstream st(fs::path(save) / "trainer_state.json");
  const nlohmann::json state = nlohmann::json::parse(st);
  EXPECT_GE(state["step"].get<int>(), 1);  // the steps done, not the step-0 checkpoint
  // What was saved continues: --resume picks it up (and stops at once, --steps reached).
  auto resumed = dsv3_cli("train --model tiny-random --data " + tokens + " --steps " +
                          std::to_string(state["step"].get<int>()) +
                          " --lr 1e-3 --batch 2 --seq-len 32 --resume --save " + save);
  EXPECT_EQ(resumed.status, 0) << resumed.out;
  fs::remove_all(dir);
}

TEST(TrainCli, ADivergingRunStopsAndKeepsTheLastGoodCheckpoint) {
  fs::path dir = temp_dir("nan");
  const std::string save = (dir / "run").string();
  auto r = dsv3_cli("train --model tiny-random --data " + kData +
                    "/train-ref/batch.safetensors --steps 3 --lr 1e30 --clip 0 --warmup 0 "
                    "--schedule constant --save-every 1 --save " +
                    save);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("last good checkpoint (step 1)"), std::string::npos) << r.out;
  std::ifstream st(fs::path(save) / "trainer_state.json");
  EXPECT_EQ(nlohmann::json::parse(st)["step"], 1);
  fs::remove_all(dir);
}

TEST(TrainCli, BadArgumentsGetOneLineAndExitTwo) {
  fs::path dir = temp_dir("args");
  const std::string batch = kData + "/train-ref/batch.safetensors";
  const std::string save = " --save " + (dir / "x").string();
  for (const std::string& args : {
           "train --model tiny-random --data /nonexistent.safetensors --steps 2 --lr 1e-3" + save,
           "train --model tiny-random --data " + batch +
               " --steps 2 --lr 1e-3 --balance sometimes" + save,
           "train --model tiny-random --data " + batch + " --steps 0 --lr 1e-3" + save,
           "train --model tiny-random --data " + batch + " --steps 2 --lr -1" + save,
           "train --model nosuchmodel --data " + batch + " --steps 2 --lr 1e-3" + save,
           "train --model tiny-random --data " + batch + " --steps 2 --lr 1e-3 --resume" + save,
           "train --model tiny-random --data " + kData +
               "/train-ref/grad.safetensors --steps 2 --lr 1" + save,
           "grad --model tiny-random --batch " + kData +
               "/train-ref/grad.safetensors --dump /tmp/x",
           "grad --model tiny-random --batch " + batch,
       }) {
    auto r = dsv3_cli(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.out;
    EXPECT_EQ(lines(r.out), 1) << args << "\n" << r.out;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::train
