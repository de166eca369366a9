// Issue 16 ("views that must not contradict themselves or the paper") on a live session of
// tiny-random: with live balancing the biases move as tokens are computed, yet `route --json`
// and the routing panel of an earlier position show the b_i in force when it was routed
// (bias + scores = biased, eq. 16); `show token.T...` reports T and refuses dense layers; the
// logits view says the weights are random.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "app/commands/registry.h"
#include "app/explorer/session.h"
#include "tests/support/routing_text.h"
#include "visualizers/canvas.h"

namespace dsv3::app {
namespace {

using nlohmann::json;

Session& session() {
  static Session s([] {
    SessionOptions o;
    o.model = "tiny-random";
    return o;
  }());
  return s;
}

Output run(const std::string& line, int width = 78) {
  return registry().run(session(), line, Context{width});
}

json run_json(const std::string& line) {
  return json::parse(run(line).text);
}

std::string error_of(const std::string& line) {
  try {
    run(line);
  } catch (const CommandError& e) {
    return e.what();
  }
  return "(no error)";
}

using test_support::gate_rows;
using test_support::GateRows;

// Balancing on, a prompt, then several stepped tokens: the biases of position 1 are long gone.
class BalancedSession : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    run("balance gamma 0.02");
    run("balance on");
    run("prompt Hello, routing");
    run("step 8");
  }
};

TEST_F(BalancedSession, RouteJsonBiasIsTheOneInForceAtThatPosition) {
  const int pos = 1, layer = 1;
  ASSERT_GT(session().computed(), pos + 8);
  json now = run_json(fmt::format("bias {} --json", layer));
  run(fmt::format("goto {}", pos));
  json r = run_json(fmt::format("route {} --json", layer));
  ASSERT_EQ(r["position"], pos);
  ASSERT_TRUE(r["moe"].get<bool>());
  auto s = r["scores"].get<std::vector<float>>();
  auto b = r["bias"].get<std::vector<float>>();
  auto sb = r["biased"].get<std::vector<float>>();
  ASSERT_EQ(b.size(), s.size());
  ASSERT_EQ(sb.size(), s.size());
  for (size_t e = 0; e < s.size(); ++e) EXPECT_EQ(s[e] + b[e], sb[e]) << "expert " << e;
  // Balancing did move the biases since position 1 (else this test could not fail).
  auto b_now = now["bias"].get<std::vector<float>>();
  ASSERT_EQ(b_now.size(), b.size());
  float moved = 0;
  for (size_t e = 0; e < b.size(); ++e) moved = std::max(moved, std::fabs(b_now[e] - b[e]));
  EXPECT_GT(moved, 0.05f);
  // Every position and MoE layer adds up, before and after the biases moved.
  for (int p = 0; p < session().computed(); ++p)
    for (int l = 0; l < session().config().num_hidden_layers; ++l) {
      if (!session().config().is_moe_layer(l)) continue;
      run(fmt::format("goto {}", p));
      json j = run_json(fmt::format("route {} --json", l));
      auto js = j["scores"].get<std::vector<float>>();
      auto jb = j["bias"].get<std::vector<float>>();
      auto jsb = j["biased"].get<std::vector<float>>();
      ASSERT_EQ(jb.size(), js.size()) << p << " " << l;
      for (size_t e = 0; e < js.size(); ++e)
        ASSERT_EQ(js[e] + jb[e], jsb[e]) << "position " << p << " layer " << l << " expert " << e;
    }
}

TEST_F(BalancedSession, RoutingPanelAgreesWithRouteJson) {
  const int pos = 1, layer = 1;
  run(fmt::format("goto {}", pos));
  json r = run_json(fmt::format("route {} --json", layer));
  Output o = run(fmt::format("route {}", layer));
  ASSERT_TRUE(o.canvas.has_value());
  std::string panel = viz::render_plain(*o.canvas);
  GateRows g = gate_rows(panel);
  auto b = r["bias"].get<std::vector<float>>();
  auto s = r["scores"].get<std::vector<float>>();
  auto sb = r["biased"].get<std::vector<float>>();
  ASSERT_EQ(g.b.size(), b.size()) << panel;
  ASSERT_EQ(g.s.size(), s.size()) << panel;
  ASSERT_EQ(g.sb.size(), sb.size()) << panel;
  for (size_t e = 0; e < b.size(); ++e) {
    // Each cell is its value rounded to the cell (0.01 or finer here).
    EXPECT_NEAR(g.b[e], b[e], 0.0051) << "b of expert " << e << "\n" << panel;
    EXPECT_NEAR(g.s[e], s[e], 0.0051) << "s of expert " << e;
    EXPECT_NEAR(g.sb[e], sb[e], 0.0051) << "s+b of expert " << e;
    EXPECT_NEAR(g.s[e] + g.b[e], g.sb[e], 3 * 0.0051) << "s + b = s+b, expert " << e;
  }
}

TEST_F(BalancedSession, ShowReportsThePositionItReadAndTheBiasThen) {
  const int pos = 5, layer = 1;
  run(fmt::format("goto {}", session().computed() - 1));  // the cursor is elsewhere
  std::string t = run(fmt::format("show token.{}.layer.{}.bias", pos, layer)).text;
  EXPECT_NE(t.find(fmt::format("at position {}\n", pos)), std::string::npos) << t;
  json j = run_json(fmt::format("show token.{}.layer.{}.router.scores --json", pos, layer));
  EXPECT_EQ(j["position"], pos);
  json jb = run_json(fmt::format("show token.{}.layer.{}.bias --json", pos, layer));
  run(fmt::format("goto {}", pos));
  json r = run_json(fmt::format("route {} --json", layer));
  auto shown = jb["values"].get<std::vector<double>>();
  auto routed = r["bias"].get<std::vector<float>>();
  ASSERT_EQ(shown.size(), routed.size());
  for (size_t e = 0; e < shown.size(); ++e) EXPECT_EQ(static_cast<float>(shown[e]), routed[e]);
}

TEST_F(BalancedSession, ShowOnADenseLayerSaysItIsDense) {
  ASSERT_FALSE(session().config().is_moe_layer(0));
  for (const char* f : {"router.scores", "router.topk_idx", "bias"}) {
    std::string e = error_of(fmt::format("show token.2.layer.0.{}", f));
    EXPECT_NE(e.find("layer 0 is dense"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << "one line: " << e;
  }
  EXPECT_NE(error_of("show token.x.layer.1.bias").find("token.T.NAME"), std::string::npos);
  EXPECT_NE(error_of("show token.999.layer.1.bias").find("not computed"), std::string::npos);
}

// The JSON export: every MoE layer of every position carries its bias (bias + scores = biased);
// the decoded text holds lone bytes 0x80..0xFF (random tokens), which must not abort the export.
TEST_F(BalancedSession, ExportedTracesCarryTheBiasOfEachPosition) {
  auto path = std::filesystem::temp_directory_path() /
              ("dsv3_issue16_" + std::to_string(::getpid()) + ".json");
  run("export " + path.string());
  std::ifstream in(path);
  json j = json::parse(in);
  std::filesystem::remove(path);
  EXPECT_NE(j["text"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos)
      << "a lone byte, written as U+FFFD";
  int checked = 0;
  for (const json& tt : j["traces"])
    for (const json& l : tt["layers"]) {
      if (!l["moe"].get<bool>()) continue;
      auto s = l["router"]["scores"].get<std::vector<float>>();
      auto b = l["router"]["bias"].get<std::vector<float>>();
      auto sb = l["router"]["biased"].get<std::vector<float>>();
      ASSERT_EQ(b.size(), s.size());
      for (size_t e = 0; e < s.size(); ++e) ASSERT_EQ(s[e] + b[e], sb[e]);
      ++checked;
    }
  EXPECT_EQ(checked, session().computed() * 3);  // three MoE layers in tiny-random
}

TEST_F(BalancedSession, LogitsSayTheWeightsAreRandom) {
  Output o = run("logits 3");
  ASSERT_TRUE(o.canvas.has_value());
  std::string t = viz::render_plain(*o.canvas);
  EXPECT_NE(t.find("random weights, seed 0"), std::string::npos) << t;
  // The note costs no candidate: rows 1..3 are all there.
  for (const char* rank : {"\n   1  ", "\n   2  ", "\n   3  "})
    EXPECT_NE(t.find(rank), std::string::npos) << rank << "\n" << t;
}

// Outside the explorer (REPL, `dsv3 exec`, lessons) a panel names the commands that do what the
// explorer's keys do: "(+ -)" or ", . choose" would be keys nobody can press there.
TEST_F(BalancedSession, PanelsOutsideTheExplorerNameCommandsNotKeys) {
  auto plain = [](const std::string& line) {
    Output o = run(line, 120);
    EXPECT_TRUE(o.canvas.has_value()) << line;
    return o.canvas ? viz::render_plain(*o.canvas) : o.text;
  };
  ASSERT_FALSE(session().keys_shown());
  std::string load = plain("panel load"), pipe = plain("panel pipeline"), mtp = plain("panel mtp"),
              fp8 = plain("panel fp8");
  for (const std::string* t : {&load, &pipe, &mtp, &fp8}) {
    EXPECT_EQ(t->find("+ -"), std::string::npos) << *t;
    EXPECT_EQ(t->find(", . "), std::string::npos) << *t;
  }
  EXPECT_NE(load.find("`balance gamma G`"), std::string::npos) << load;
  EXPECT_NE(mtp.find("`mtp depth D`"), std::string::npos) << mtp;
  EXPECT_NE(fp8.find("`fp8 N` chooses"), std::string::npos) << fp8;
  // The explorer itself shows its keys on the same panels.
  session().set_keys_shown(true);
  std::string load_keys = plain("panel load"), pipe_keys = plain("panel pipeline"),
              fp8_keys = plain("panel fp8");
  session().set_keys_shown(false);
  EXPECT_NE(load_keys.find("+ -"), std::string::npos) << load_keys;
  EXPECT_NE(pipe_keys.find("+ - zoom"), std::string::npos) << pipe_keys;
  EXPECT_NE(fp8_keys.find(", . choose"), std::string::npos) << fp8_keys;
}

}  // namespace
}  // namespace dsv3::app
