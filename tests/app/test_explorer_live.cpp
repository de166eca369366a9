// The explorer's live panels on a Session of the built-in tiny model: balancing while stepping
// (Load panel), speculative decoding with the MTP drafts (MTP panel), one token through one
// linear in FP8 (FP8 panel) and the pipeline time cursor and schedule switch (Pipeline panel),
// through the Session API and through the registry commands the TUI keys share.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "app/commands/registry.h"
#include "app/explorer/session.h"
#include "app/explorer/tui.h"
#include "reference/model/config.h"
#include "reference/model/model.h"
#include "tests/support/snapshot.h"
#include "visualizers/canvas.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::app {
namespace {

using json = nlohmann::json;

SessionOptions short_prompt() {
  SessionOptions o;
  o.model = "tiny-random";  // the numbers below are the random config's (byte tokenizer)
  o.prompt = "Experts, balanced.";
  return o;
}

std::string error_of(Session& s, const std::string& line) {
  try {
    registry().run(s, line);
  } catch (const CommandError& e) {
    return e.what();
  }
  return "(no error)";
}

json json_of(Session& s, const std::string& line) {
  return json::parse(registry().run(s, line).text);
}

std::string plain(const viz::Canvas& c) {
  return viz::render_plain(c);
}

// ---- balancing -------------------------------------------------------------------------------

TEST(LiveBalance, OneTokenMovesEveryMoeBiasByGammaSignOfTheMeanMinusTheCount) {
  Session s(short_prompt());
  s.set_balancing(true);
  s.set_gamma(0.01);
  const auto& c = s.config();
  std::vector<std::vector<float>> before;
  for (int l = 0; l < c.num_hidden_layers; ++l) before.push_back(s.bias(l));
  s.step(1);
  ASSERT_EQ(s.bias_updates(), 1);
  const auto& t = s.traces().back();
  // One token: c̄ = K/N, so its K chosen experts (count 1 > c̄) go down by γ, the rest up by γ.
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    if (!c.is_moe_layer(l)) continue;
    std::vector<float> want = before[l];
    std::vector<bool> chosen(want.size(), false);
    for (int e : t.layers[l].router.topk_idx) chosen[e] = true;
    for (size_t e = 0; e < want.size(); ++e) want[e] += chosen[e] ? -0.01f : 0.01f;
    auto got = s.bias(l);
    for (size_t e = 0; e < want.size(); ++e) EXPECT_FLOAT_EQ(got[e], want[e]) << l << "/" << e;
  }
  // The next token is routed with the new biases: biased = scores + b (eq. 16).
  auto b1 = s.bias(1);
  s.step(1);
  const auto& r = s.traces().back().layers[1].router;
  for (size_t e = 0; e < r.scores.size(); ++e) EXPECT_FLOAT_EQ(r.biased[e], r.scores[e] + b1[e]);
}

TEST(LiveBalance, OffStepsBackAndAttentionSwitchesLeaveTheBiasesAlone) {
  Session s(short_prompt());
  auto b0 = s.bias(1);
  s.step(3);
  EXPECT_EQ(s.bias(1), b0);  // off by default
  EXPECT_EQ(s.bias_updates(), 0);
  s.set_balancing(true);
  s.step(2);
  auto b1 = s.bias(1);
  EXPECT_NE(b1, b0);
  s.back(2);
  EXPECT_EQ(s.bias(1), b1);  // revisiting recomputes nothing
  s.set_attn(model::AttnImpl::kNaive);
  EXPECT_EQ(s.bias(1), b1);  // recomputing known tokens is no new batch
  EXPECT_EQ(s.bias_updates(), 2);
  s.reset_biases();
  EXPECT_EQ(s.bias(1), b0);
  EXPECT_EQ(s.bias_updates(), 0);
  EXPECT_TRUE(s.balancing());
}

TEST(LiveBalance, ANewPromptIsOneBatch) {
  Session s(short_prompt());
  s.set_balancing(true);
  s.set_prompt("A longer prompt: many tokens, one update.");
  EXPECT_EQ(s.bias_updates(), 1);
  EXPECT_EQ(s.balance_history().size(), 1u);
}

TEST(LiveBalance, CommandsToggleSetGammaAndReport) {
  Session s(short_prompt());
  auto out = registry().run(s, "balance on");
  EXPECT_TRUE(s.balancing());
  ASSERT_TRUE(out.canvas);
  EXPECT_NE(plain(*out.canvas).find("balancing ON"), std::string::npos);
  registry().run(s, "balance gamma 0.05");
  EXPECT_NEAR(s.gamma(), 0.05, 1e-9);
  registry().run(s, "step 4");
  json j = json_of(s, "balance status --json");
  EXPECT_EQ(j["balancing"], true);
  EXPECT_EQ(j["updates"], 4);
  EXPECT_EQ(j["layers"].size(), 3u);  // the tiny model's three MoE layers
  EXPECT_EQ(j["layers"][0]["bias"].size(), 16u);
  // A plot of the running MaxVio comes with the panel.
  out = registry().run(s, "balance");
  EXPECT_NE(plain(*out.canvas).find("MaxVio over positions"), std::string::npos);
  registry().run(s, "balance toggle");
  EXPECT_FALSE(s.balancing());
  EXPECT_NE(error_of(s, "balance gamma 0").find("(0, 1]"), std::string::npos);
  EXPECT_NE(error_of(s, "balance gamma fast").find("not a number"), std::string::npos);
  EXPECT_NE(error_of(s, "balance gamma 0.5x").find("not a number"), std::string::npos);
  EXPECT_NE(error_of(s, "balance gamma").find("give the value"), std::string::npos);
}

// ---- MTP -------------------------------------------------------------------------------------

// Greedy speculative decoding is lossless: the session's tokens and routing after `mtp step`s
// equal those of plain stepping, whatever D and whatever the drafts.
void expect_lossless(int depth, double agree, model::AttnImpl attn) {
  SessionOptions o = short_prompt();
  o.attn = attn;
  Session spec(o), plain_s(o);
  spec.settings().mtp_depth = depth;
  spec.settings().mtp_agree = agree;
  int appended = 0;
  while (appended < 20) appended += spec.mtp_step();
  plain_s.step(appended);
  ASSERT_EQ(spec.tokens(), plain_s.tokens());
  ASSERT_EQ(spec.computed(), plain_s.computed());
  EXPECT_EQ(spec.cursor(), spec.computed() - 1);
  for (int t = 0; t < spec.computed(); ++t)
    EXPECT_EQ(spec.traces()[t].layers[2].router.topk_idx,
              plain_s.traces()[t].layers[2].router.topk_idx);
  const auto& st = spec.speculative()->stats();
  EXPECT_EQ(st.proposed_total(), st.steps * depth);
  if (agree >= 0.7) {
    EXPECT_GT(st.acceptance_rate(), 0.3) << "stand-in drafts were rejected";
  }
}

TEST(LiveMtp, GreedySpeculativeStepsGiveThePlainTokens) {
  expect_lossless(1, -1, model::AttnImpl::kAbsorbed);
  expect_lossless(2, 0.8, model::AttnImpl::kAbsorbed);
  expect_lossless(3, 0.7, model::AttnImpl::kNaive);
}

TEST(LiveMtp, PanelShowsDraftsFateAndRate) {
  Session s(short_prompt());
  std::string before = plain(s.mtp_canvas(100, 0));
  EXPECT_NE(before.find("No speculative step yet"), std::string::npos) << before;
  s.settings().mtp_agree = 1.0;
  s.settings().mtp_depth = 2;
  s.mtp_step();
  s.mtp_step();
  std::string p = plain(s.mtp_canvas(100, 0));
  EXPECT_NE(p.find("D = 2"), std::string::npos) << p;
  EXPECT_NE(p.find("prefill"), std::string::npos) << p;
  EXPECT_NE(p.find("✓"), std::string::npos) << p;  // agree = 1: every draft accepted
  EXPECT_NE(p.find("100%"), std::string::npos) << p;
}

TEST(LiveMtp, CommandsStepSetDepthAndGiveJson) {
  Session s(short_prompt());
  registry().run(s, "mtp depth 2");
  registry().run(s, "mtp agree 1");
  registry().run(s, "mtp step 3");
  json j = json_of(s, "mtp --json");
  EXPECT_EQ(j["depth"], 2);
  EXPECT_EQ(j["steps"], 3);
  EXPECT_EQ(j["proposed"], 6);
  EXPECT_EQ(j["accepted"], 6);
  EXPECT_DOUBLE_EQ(j["tokens_per_step"].get<double>(), 3.0);  // D accepted + the bonus token
  EXPECT_EQ(j["history"].size(), 4u);                         // the prefill and three steps
  EXPECT_EQ(j["history"][1]["drafts"].size(), 2u);
  EXPECT_NE(error_of(s, "mtp depth 0").find("1..8"), std::string::npos);
  EXPECT_NE(error_of(s, "mtp agree 2").find("probability"), std::string::npos);
  EXPECT_NE(error_of(s, "mtp fly").find("step"), std::string::npos);
}

TEST(LiveMtp, ManyStepsReportProgressAndStopWhenAsked) {
  Session s(short_prompt());
  int tokens = 0, calls = 0;
  const int done = s.mtp_steps(50, &tokens, [&](int d, int total) {
    ++calls;
    EXPECT_EQ(total, 50);
    return d < 3;  // a key press after the third step
  });
  EXPECT_EQ(done, 3);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(s.speculative()->stats().steps, 3);
  EXPECT_EQ(tokens, static_cast<int>(s.speculative()->output().size()));
}

// Progress is reported between units of work, never after the last one: the TUI's progress
// call reads a key to stop on, and after the last unit that key belongs to the user's next
// command (a ':' typed as `step 2` finished was eaten, and the rest ran as panel keys).
TEST(LiveSession, ProgressIsReportedBetweenStepsNeverAfterTheLast) {
  Session s(short_prompt());
  std::vector<int> seen;
  auto record = [&](int d, int total) {
    EXPECT_EQ(total, 3);
    seen.push_back(d);
    return true;
  };
  EXPECT_EQ(s.generate(3, record), 3);
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  seen.clear();
  s.go_to(s.computed() - 4);
  EXPECT_EQ(s.step(3, record), 3);
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  seen.clear();
  int tokens = 0;
  EXPECT_EQ(s.mtp_steps(3, &tokens, record), 3);
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  // One unit: nothing to report.
  seen.clear();
  EXPECT_EQ(s.generate(1,
                       [&](int d, int) {
                         seen.push_back(d);
                         return true;
                       }),
            1);
  EXPECT_TRUE(seen.empty());
}

TEST(LiveMtp, AModelWithoutMtpModulesSaysSo) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("dsv3_nomtp_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  Session s(short_prompt());
  json c = model::to_json(s.config());
  c["num_nextn_predict_layers"] = 0;
  std::ofstream(dir / "config.json") << c.dump(2);
  s.load((dir / "config.json").string());
  EXPECT_NE(error_of(s, "mtp step").find("no MTP module"), std::string::npos);
  EXPECT_NE(plain(s.mtp_canvas(90, 0)).find("no MTP module"), std::string::npos);
  fs::remove_all(dir);
}

// ---- FP8 -------------------------------------------------------------------------------------

TEST(LiveFp8, LinearsAreTheCursorTokensInputsToThisLayersGemms) {
  Session s(short_prompt());
  s.set_layer(1);
  s.go_to(5);
  const auto& lin = s.fp8_linears();
  const auto& c = s.config();
  // MLA's five projections, K routed experts and the shared expert, three GEMMs each.
  ASSERT_EQ(lin.size(), 5u + 3u * c.num_experts_per_tok + 3u);
  EXPECT_EQ(lin[0].name, "model.layers.1.self_attn.q_a_proj.weight");
  EXPECT_EQ(lin[3].name, "model.layers.1.self_attn.kv_b_proj.weight");
  // The experts are the ones the trace routed this token to.
  for (int e : s.traces()[5].layers[1].router.topk_idx) {
    std::string want = "model.layers.1.mlp.experts." + std::to_string(e) + ".gate_proj.weight";
    bool found = false;
    for (const auto& l : lin) found |= l.name == want;
    EXPECT_TRUE(found) << want;
  }
  // x of q_a_proj is the RMS-normed residual stream entering layer 1 at position 5.
  std::vector<Mat> hidden;
  auto cache = s.model().new_cache(model::AttnImpl::kNaive);
  model::ForwardOptions fo;
  fo.hidden = &hidden;
  std::vector<int32_t> ids(s.tokens().begin(), s.tokens().begin() + 6);
  s.model().forward(ids, cache, fo);
  Mat x = model::rms_norm(hidden[1].row(5), s.model().weights().layers[1].input_layernorm,
                          c.rms_norm_eps);
  ASSERT_EQ(lin[0].x.size(), x.cols());
  EXPECT_LT((lin[0].x - x.row(0)).norm(), 1e-5 * x.norm());
  EXPECT_EQ(lin[0].w.rows(), c.q_lora_rank);
}

TEST(LiveFp8, PanelAndCommand) {
  Session s(short_prompt());
  s.set_layer(2);
  std::string p = plain(s.fp8_canvas(100, 0));
  EXPECT_NE(p.find("q_a_proj"), std::string::npos) << p;
  EXPECT_NE(p.find("h100 N_C=128"), std::string::npos) << p;
  json j = json_of(s, "fp8 o_proj --json");
  EXPECT_EQ(j["name"], "model.layers.2.self_attn.o_proj.weight");
  EXPECT_EQ(j["in_features"], s.config().num_attention_heads * s.config().v_head_dim);
  EXPECT_EQ(j["errors"].size(), 4u);
  EXPECT_GT(j["quant_rel"].get<double>(), 0.0);
  EXPECT_EQ(s.settings().fp8_linear, 4);
  j = json_of(s, "fp8 2 --json");
  EXPECT_EQ(j["name"], "model.layers.2.self_attn.q_b_proj.weight");
  EXPECT_NE(error_of(s, "fp8 99").find("out of range"), std::string::npos);
  EXPECT_NE(error_of(s, "fp8 nothing").find("no linear 'nothing'"), std::string::npos);
}

// ---- pipeline --------------------------------------------------------------------------------

TEST(LivePipeline, TimeCursorClampsAndSchedulesCycleThroughValidOnes) {
  Session s(short_prompt());
  EXPECT_DOUBLE_EQ(s.pipeline_makespan(), 66);  // DualPipe, 8 ranks, 20 micro-batches (Fig. 5)
  s.move_pipeline_time(5);                      // the first move puts the cursor at 0
  EXPECT_DOUBLE_EQ(s.settings().pipeline_time, 0);
  s.move_pipeline_time(10);
  EXPECT_DOUBLE_EQ(s.settings().pipeline_time, 10);
  std::string p = plain(s.pipeline_canvas(100, 0));
  EXPECT_NE(p.find("time 10 of 66"), std::string::npos) << p;
  EXPECT_NE(p.find("▼"), std::string::npos) << p;
  s.move_pipeline_time(1000);
  EXPECT_DOUBLE_EQ(s.settings().pipeline_time, 66);
  s.move_pipeline_time(-1000);
  EXPECT_DOUBLE_EQ(s.settings().pipeline_time, 0);
  EXPECT_EQ(s.cycle_schedule(1), "dualpipev");
  EXPECT_EQ(s.cycle_schedule(1), "gpipe");
  EXPECT_EQ(s.cycle_schedule(-1), "dualpipev");
  // 3 ranks: DualPipe needs an even count, so the cycle skips it.
  s.settings().ranks = 3;
  s.settings().micro_batches = 6;
  s.settings().schedule = "zb1p";
  EXPECT_EQ(s.cycle_schedule(1), "dualpipev");
  registry().run(s, "pipeline 1f1b 4 8 --time 7");
  EXPECT_DOUBLE_EQ(s.settings().pipeline_time, 7);
  EXPECT_EQ(s.settings().schedule, "1f1b");
  registry().run(s, "pipeline --time -1");
  EXPECT_LT(s.settings().pipeline_time, 0);
}

// ---- whole screens ---------------------------------------------------------------------------

using dsv3::test_support::expect_snapshot;

std::string screen_of(Session& s, viz::Panel p, int w, int h, bool help = false) {
  s.set_keys_shown(true);  // as the explorer shows it
  viz::ScreenState st;
  st.active = p;
  st.help = help;
  st.keys = &key_table();
  st.hints = "snapshot";
  return viz::render_plain(viz::compose_screen(s.view(), st, w, h).canvas);
}

TEST(LiveScreens, PipelineMtpAndFp8PanelsOfASession) {
  Session s(short_prompt());
  s.set_layer(1);
  s.settings().pipeline_time = 17;
  expect_snapshot("live_pipeline_100x30", screen_of(s, viz::Panel::kPipeline, 100, 30));
  s.settings().mtp_depth = 2;
  s.settings().mtp_agree = 0.7;
  for (int i = 0; i < 4; ++i) s.mtp_step();
  expect_snapshot("live_mtp_100x30", screen_of(s, viz::Panel::kMtp, 100, 30));
  s.settings().fp8_linear = 5;  // the first routed expert's gate_proj
  expect_snapshot("live_fp8_100x30", screen_of(s, viz::Panel::kFp8, 100, 30));
}

TEST(LiveScreens, TheWholeKeyTableFitsTheSmallestTerminal) {
  Session s(short_prompt());
  std::string t = screen_of(s, viz::Panel::kRouting, 80, 24, true);
  for (const auto& k : key_table())
    EXPECT_NE(t.find(k.action.substr(0, 20)), std::string::npos) << k.action << "\n" << t;
}

}  // namespace
}  // namespace dsv3::app
