// Panel 9 (Train) drawn from a recorded training run (tests/data/train-live: trainer_state.json
// and log.jsonl of a short `train` run in the explorer, with a γ change and the domain lines):
// snapshots at 80x24 and 160x48, the numbers on the screen checked against the log, and every
// size from 40x8 up drawn inside its box. DSV3_UPDATE_SNAPSHOTS=1 rewrites the snapshots.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "reference/train/live_run.h"
#include "tests/support/snapshot.h"
#include "tests/visualizers/explorer_fixture.h"
#include "visualizers/explorer_screen.h"
#include "visualizers/train_panel.h"

namespace dsv3::viz {
namespace {

const std::string kRun = std::string(DSV3_TEST_DATA) + "/train-live";

using dsv3::test_support::expect_snapshot;

std::string screen(const train::TrainSnapshot& run, int w, int h) {
  auto f = testing::make_fixture();
  ExplorerView v = f.view();
  v.train_panel = [&](int pw, int ph) { return train_panel(run, pw, ph); };
  ScreenState s;
  s.active = Panel::kTrain;
  s.hints = "p pause/run  s step  + - γ  q quit";
  return render_plain(compose_screen(v, s, w, h).canvas);
}

TEST(TrainPanel, RecordedRunSnapshots) {
  const train::TrainSnapshot run = train::snapshot_from_log(kRun);
  for (auto [w, h] : {std::pair{80, 24}, std::pair{160, 48}}) {
    const std::string t = screen(run, w, h);
    EXPECT_EQ(std::count(t.begin(), t.end(), '\n'), h);
    expect_snapshot("train_run_" + std::to_string(w) + "x" + std::to_string(h), t);
  }
}

TEST(TrainPanel, NumbersOnTheScreenAreTheLogs) {
  const train::TrainSnapshot run = train::snapshot_from_log(kRun);
  ASSERT_FALSE(run.history.empty());
  const train::LiveStep& last = run.history.back();
  for (auto [w, h] : {std::pair{80, 24}, std::pair{160, 48}}) {
    const std::string t = screen(run, w, h);
    EXPECT_NE(t.find(fmt::format("step {}/{}", run.step, run.steps)), std::string::npos) << t;
    // The model trained, since the explorer's header names the session's model, not this one.
    EXPECT_NE(t.find(fmt::format("· {} · step", run.options.model)), std::string::npos) << t;
    EXPECT_NE(t.find(fmt::format("loss {:.3f} main {:.3f}", last.loss, last.loss_main)),
              std::string::npos)
        << t;
    int clipped = 0;
    for (const auto& r : run.history) clipped += r.clipped;
    EXPECT_NE(t.find(fmt::format("clip {:.0f}%", 100.0 * clipped / run.history.size())),
              std::string::npos);
    // γ after the recorded change, and the schedule's learning rate at the cursor.
    EXPECT_NE(t.find(fmt::format("γ={:g}", run.options.bias_gamma)), std::string::npos);
    EXPECT_NE(t.find(fmt::format("{:.2e}", run.lr_at(run.steps - 1))), std::string::npos);
    // MaxVio of the first MoE layer at the last step, as the 80x24 load rows print it.
    if (w == 80) {
      EXPECT_NE(t.find(fmt::format(" {:.2f}", last.max_vio[0])), std::string::npos);
    }
    // Figure 9 names each domain.
    for (const std::string& d : run.domains) EXPECT_NE(t.find(d), std::string::npos) << d;
  }
  // The recorded run: balancing off for 20 steps, then loss-free with γ = 0.01.
  ASSERT_EQ(run.changes.size(), 2u);
  EXPECT_EQ(run.changes[0].key, "balance");
  EXPECT_EQ(run.changes[1].key, "bias_gamma");
  EXPECT_EQ(run.changes[1].step, 20);
  EXPECT_DOUBLE_EQ(run.history[19].bias_gamma, 0.0);  // balance=none: no bias update
  EXPECT_DOUBLE_EQ(run.history[20].bias_gamma, 0.01);
}

TEST(TrainPanel, EverySizeStaysInsideItsBox) {
  const train::TrainSnapshot run = train::snapshot_from_log(kRun);
  for (int w = 40; w <= 170; w += 13)
    for (int h = 8; h <= 50; h += 7) {
      Canvas c = train_panel(run, w, h);
      EXPECT_EQ(c.width(), w);
      EXPECT_EQ(c.height(), h);
    }
  train::TrainSnapshot empty;
  empty.steps = 10;
  empty.options.steps = 10;
  const std::string t = render_plain(train_panel(empty, 76, 16));
  EXPECT_NE(t.find("no steps yet"), std::string::npos);
}

TEST(TrainPanel, TimeBucketsCoverEveryStepOnce) {
  for (size_t n : {1u, 7u, 60u, 61u, 500u})
    for (int cols : {1, 10, 60}) {
      size_t covered = 0, next = 0;
      for (int c = 0; c < cols; ++c) {
        Bucket b = time_bucket(n, cols, c);
        if (b.first == b.last) continue;
        EXPECT_EQ(b.first, next);
        next = b.last;
        covered += b.last - b.first;
      }
      EXPECT_EQ(covered, n) << n << " steps in " << cols << " columns";
    }
}

}  // namespace
}  // namespace dsv3::viz
