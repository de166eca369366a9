// Panel 9 in compare mode drawn from two recorded runs (tests/data/train-compare: the same 60
// steps of the tiny model on the demo text from seed 0, one balancing loss-free with γ = 0.01,
// the other with the auxiliary loss): snapshots at 80x24 and 160x48, both runs' numbers on the
// screen checked against their logs, one axis for both, and every size drawn inside its box.
// DSV3_UPDATE_SNAPSHOTS=1 rewrites the snapshots.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "reference/train/live_run.h"
#include "tests/support/snapshot.h"
#include "tests/visualizers/explorer_fixture.h"
#include "visualizers/explorer_screen.h"
#include "visualizers/train_panel.h"

namespace dsv3::viz {
namespace {

const std::string kRuns = std::string(DSV3_TEST_DATA) + "/train-compare";

using dsv3::test_support::expect_snapshot;

std::string screen(const train::TrainSnapshot& a, const train::TrainSnapshot& b, int w, int h,
                   int64_t shown = -1) {
  auto f = testing::make_fixture();
  ExplorerView v = f.view();
  v.train_panel = [&](int pw, int ph) { return train_compare_panel(a, b, pw, ph, shown); };
  ScreenState s;
  s.active = Panel::kTrain;
  s.hints = "p pause/run  s step  + - γ  b balance  w save  o weights  x stop  q quit";
  return render_plain(compose_screen(v, s, w, h).canvas);
}

double mean_vio(const train::LiveStep& r) {
  double m = 0;
  for (double v : r.max_vio) m += v / static_cast<double>(r.max_vio.size());
  return m;
}

// The lines of t that contain `needle`.
std::vector<std::string> lines_with(const std::string& t, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(t);
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

TEST(TrainCompare, RecordedRunsSnapshots) {
  const auto a = train::snapshot_from_log(kRuns + "/loss-free");
  const auto b = train::snapshot_from_log(kRuns + "/aux");
  for (auto [w, h] : {std::pair{80, 24}, std::pair{160, 48}}) {
    const std::string t = screen(a, b, w, h);
    EXPECT_EQ(std::count(t.begin(), t.end(), '\n'), h);
    expect_snapshot("train_compare_" + std::to_string(w) + "x" + std::to_string(h), t);
  }
}

TEST(TrainCompare, EachRunsNumbersAreItsLog) {
  const auto a = train::snapshot_from_log(kRuns + "/loss-free");
  const auto b = train::snapshot_from_log(kRuns + "/aux");
  // The recording: same seed, data and steps; only the balancing differs.
  ASSERT_EQ(a.history.size(), 60u);
  ASSERT_EQ(b.history.size(), 60u);
  EXPECT_EQ(a.options.seed, b.options.seed);
  EXPECT_EQ(a.options.objective.balance, train::BalanceMode::kLossFree);
  EXPECT_EQ(b.options.objective.balance, train::BalanceMode::kAux);
  // Step 1 runs on the same initial weights and the same batch: the main losses agree.
  EXPECT_NEAR(a.history[0].loss_main, b.history[0].loss_main, 1e-9);
  for (auto [w, h] : {std::pair{80, 24}, std::pair{160, 48}}) {
    const std::string t = screen(a, b, w, h);
    EXPECT_NE(t.find("● loss-free vs ○ aux"), std::string::npos) << t;
    for (const auto* s : {&a, &b}) {
      const train::LiveStep& r = s->history.back();
      const std::string label = train::to_string(s->options.objective.balance);
      auto rows = lines_with(t, label + ": done step 60/60");
      ASSERT_EQ(rows.size(), 1u) << label << "\n" << t;
      EXPECT_NE(rows[0].find(fmt::format("loss {:.3f} main {:.3f} val {:.3f}", r.loss, r.loss_main,
                                         *r.val_loss)),
                std::string::npos)
          << rows[0];
      EXPECT_NE(rows[0].find(fmt::format("MaxVio {:.2f}", mean_vio(r))), std::string::npos)
          << rows[0];
    }
    // One axis for both runs: the loss chart's labels are the largest and smallest column
    // means (main or validation) of either run, MaxVio's likewise.
    const int cols = (w - 4) / (w >= 120 ? 3 : 2) - 9;  // as the panel lays out, in its box
    const size_t n = a.history.size();
    double lo = 1e9, hi = 0, vio_lo = 1e9, vio_hi = 0;
    for (const auto* s : {&a, &b}) {
      for (auto f : {+[](const train::LiveStep& r) { return r.loss_main; },
                     +[](const train::LiveStep& r) { return r.val_loss.value_or(NAN); }})
        for (double v : train_plot::columns(s->history, n, cols, f))
          if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
      for (double v : train_plot::columns(s->history, n, cols, mean_vio))
        if (std::isfinite(v)) vio_lo = std::min(vio_lo, v), vio_hi = std::max(vio_hi, v);
    }
    EXPECT_NE(t.find(fmt::format("│ {:.3f}│", hi)), std::string::npos) << hi << "\n" << t;
    EXPECT_NE(t.find(fmt::format("│ {:.3f}│", lo)), std::string::npos) << lo << "\n" << t;
    EXPECT_NE(t.find(fmt::format(" {:.3f}│", vio_hi)), std::string::npos) << vio_hi << "\n" << t;
    EXPECT_NE(t.find(fmt::format(" {:.3f}│", vio_lo)), std::string::npos) << vio_lo << "\n" << t;
    // And only one loss axis: two labels at the left edge (the top and the bottom of one chart).
    int labels = 0;
    std::istringstream rows(t);
    for (std::string line; std::getline(rows, line);)
      labels += line.rfind("│ ", 0) == 0 && line.size() > 9 &&  // "│ 5.744│" (│ is 3 bytes)
                std::isdigit(static_cast<unsigned char>(line[4])) && line.find("│", 4) == 9;
    EXPECT_EQ(labels, 2) << t;
    // Each MoE layer's MaxVio of the last step, for both runs, on its load row.
    for (size_t l = 0; l < a.moe_layers.size(); ++l) {
      auto rows = lines_with(t, fmt::format("L{}  ●", a.moe_layers[l]));
      ASSERT_EQ(rows.size(), 1u) << t;
      const size_t at_b = rows[0].find("○");
      ASSERT_NE(at_b, std::string::npos) << rows[0];
      EXPECT_NE(rows[0].substr(0, at_b).find(fmt::format(" {:.2f}", a.history.back().max_vio[l])),
                std::string::npos)
          << rows[0];
      EXPECT_NE(rows[0].substr(at_b).find(fmt::format(" {:.2f}", b.history.back().max_vio[l])),
                std::string::npos)
          << rows[0];
    }
  }
  // What the class should see: loss-free balancing ends far better balanced than the aux loss
  // at V3's α, at about the same loss.
  EXPECT_LT(mean_vio(a.history.back()), mean_vio(b.history.back()));
}

TEST(TrainCompare, MarksTheStepThePanelsShow) {
  const auto a = train::snapshot_from_log(kRuns + "/loss-free");
  const auto b = train::snapshot_from_log(kRuns + "/aux");
  const std::string t = screen(a, b, 160, 48, 30);
  EXPECT_NE(t.find("panels 1-8: step 30's weights of ● loss-free"), std::string::npos) << t;
  EXPECT_NE(t.find("┊"), std::string::npos);
  EXPECT_EQ(screen(a, b, 160, 48).find("┊"), std::string::npos);
}

TEST(TrainCompare, EverySizeStaysInsideItsBox) {
  const auto a = train::snapshot_from_log(kRuns + "/loss-free");
  auto b = train::snapshot_from_log(kRuns + "/aux");
  b.history.resize(17);  // a slower second run: the same step axis, its columns end early
  for (int w = 40; w <= 170; w += 13)
    for (int h = 8; h <= 50; h += 7) {
      Canvas c = train_compare_panel(a, b, w, h);
      EXPECT_EQ(c.width(), w);
      EXPECT_EQ(c.height(), h);
    }
  train::TrainSnapshot empty = b;
  empty.history.clear();
  const std::string t = render_plain(train_compare_panel(empty, empty, 80, 20));
  EXPECT_NE(t.find("no steps yet"), std::string::npos) << t;
}

}  // namespace
}  // namespace dsv3::viz
