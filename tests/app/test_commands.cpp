// The command registry: help, argument checking, "did you mean", completion, and the commands'
// effects on a Session of the built-in tiny model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/commands/registry.h"
#include "app/explorer/repl.h"
#include "app/explorer/session.h"
#include "reference/io/safetensors.h"

namespace dsv3::app {
namespace {

// One session for the whole suite: building it prefills the prompt once. The numbers below are
// those of the random-weight tiny config (byte tokenizer, 16 experts); the trained default is
// checked in tests/eval/test_trained_model.cpp.
Session& session() {
  static Session s([] {
    SessionOptions o;
    o.model = "tiny-random";
    return o;
  }());
  return s;
}

Output run(const std::string& line, int width = 100) {
  return registry().run(session(), line, Context{width});
}

std::string error_of(const std::string& line) {
  try {
    run(line);
  } catch (const CommandError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Registry, EveryCommandHasHelpAndAHandler) {
  const Registry& r = registry();
  for (const char* name :
       {"help",  "load",    "prompt", "ids",  "step",   "back",   "goto", "generate",
        "route", "experts", "bias",   "kv",   "attn",   "logits", "info", "pipeline",
        "set",   "show",    "export", "quit", "tokens", "panel"})
    ASSERT_NE(r.find(name), nullptr) << name;
  for (const Command& c : r.commands()) {
    EXPECT_FALSE(c.summary.empty()) << c.name;
    EXPECT_TRUE(static_cast<bool>(c.run)) << c.name;
    std::string h = r.help(c.name);
    EXPECT_NE(h.find("usage: " + c.name), std::string::npos) << h;
    EXPECT_NE(r.help().find(c.name), std::string::npos) << c.name;
  }
}

TEST(Registry, HelpExplainsArgumentsAndDefaults) {
  std::string h = registry().help("step");
  EXPECT_NE(h.find("usage: step [N]"), std::string::npos) << h;
  EXPECT_NE(h.find("[default 1]"), std::string::npos) << h;
  EXPECT_NE(registry().help("set").find("attn|temperature"), std::string::npos);
  EXPECT_NE(run("help route").text.find("eq. 15"), std::string::npos);
}

TEST(Registry, UnknownCommandSuggestsTheClosest) {
  EXPECT_EQ(error_of("rute 1"), "unknown command 'rute'; did you mean 'route'?");
  EXPECT_EQ(error_of("gnerate 2"), "unknown command 'gnerate'; did you mean 'generate'?");
  EXPECT_NE(error_of("xyzzy").find("`help` lists the commands"), std::string::npos);
  EXPECT_NE(error_of("help rute").find("did you mean 'route'"), std::string::npos);
}

TEST(Registry, ArgumentErrorsSayWhatAndHow) {
  EXPECT_EQ(error_of("route 9"), "route: LAYER 9 is out of range: expected a layer in 0..3");
  EXPECT_EQ(error_of("route one"), "route: LAYER must be a layer in 0..3, got 'one'");
  EXPECT_EQ(error_of("step 0"), "step: N 0 is out of range: expected an integer in 1..100000");
  EXPECT_EQ(error_of("step 1 2"), "step: too many arguments ('2'); usage: step [N]");
  EXPECT_EQ(error_of("goto"), "goto: missing T; usage: goto T");
  EXPECT_EQ(error_of("set colour pink"), "set colour: must be auto, 256, 8 or mono");
  EXPECT_EQ(
      error_of("set flavour x"),
      "set: KEY must be one of attn, temperature, top_p, seed, topk, colour, color, got 'flavour'");
  EXPECT_EQ(error_of("route --jsn"), "route: unknown option --jsn (options: --json)");
  EXPECT_EQ(error_of("generate 2 --temperature hot"),
            "generate: --temperature must be a number, got 'hot'");
  EXPECT_EQ(error_of("attn 1 7"), "attn: HEAD 7 is out of range: expected a head in 0..3");
  EXPECT_NE(error_of("export out.txt").find(".json or .safetensors"), std::string::npos);
  EXPECT_NE(error_of("show layer.1.nothing").find("no traced tensor"), std::string::npos);
}

TEST(Registry, SplitsStatementsAndWords) {
  auto st = split_statements("step 3; route 1 ;; prompt \"a; b\"");
  ASSERT_EQ(st.size(), 3u);
  EXPECT_EQ(st[2], "prompt \"a; b\"");
  auto w = split_words("prompt 'hello world' x");
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[1].text, "hello world");
}

std::vector<std::string> complete(const std::string& line) {
  return registry().complete(session(), line, line.size()).candidates;
}

TEST(Completion, CommandsArgumentsAndFlags) {
  EXPECT_EQ(complete("ro"), (std::vector<std::string>{"route"}));
  EXPECT_EQ(complete("route "), (std::vector<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(complete("set "), (std::vector<std::string>{"attn", "color", "colour", "seed",
                                                        "temperature", "top_p", "topk"}));
  EXPECT_EQ(complete("set attn a"), (std::vector<std::string>{"absorbed", "auto"}));
  EXPECT_EQ(complete("route 1 --"), (std::vector<std::string>{"--json"}));
  EXPECT_EQ(complete("panel k"), (std::vector<std::string>{"kv"}));
  EXPECT_EQ(complete("step 2; ro"), (std::vector<std::string>{"route"}));
  auto names = complete("show layer.1.router.s");
  EXPECT_EQ(names, (std::vector<std::string>{"layer.1.router.scores"}));
  EXPECT_TRUE(registry().complete(session(), "export ", 7).paths);
  auto c = registry().complete(session(), "route 1", 7);
  EXPECT_EQ(c.start, 6u);
}

TEST(Commands, StepBackAndGotoMoveTheCursorWithoutRecomputing) {
  Session& s = session();
  run("prompt Hi there");
  int end = s.cursor();
  EXPECT_EQ(end, 8);  // <BOS> + 8 bytes
  auto before = s.traces()[3].layers[1].router.topk_idx;
  run("back 5");
  EXPECT_EQ(s.cursor(), 3);
  EXPECT_EQ(s.computed(), 9);
  EXPECT_EQ(s.traces()[3].layers[1].router.topk_idx, before);
  run("step 5");
  EXPECT_EQ(s.cursor(), 8);
  EXPECT_EQ(s.computed(), 9);  // revisited, not recomputed
  run("step 2");
  EXPECT_EQ(s.cursor(), 10);
  EXPECT_EQ(s.computed(), 11);  // two new tokens
  run("goto 0");
  EXPECT_EQ(s.cursor(), 0);
  EXPECT_NE(error_of("goto 11").find("out of range"), std::string::npos);
}

TEST(Commands, GenerateIsGreedyAndReproducible) {
  Session& s = session();
  run("prompt abc");
  Output a = run("generate 4");
  auto first = s.tokens();
  run("prompt abc");
  run("generate 4");
  EXPECT_EQ(s.tokens(), first);
  EXPECT_EQ(s.cursor(), 7);
  EXPECT_NE(a.text.find("generated 4"), std::string::npos);
}

TEST(Commands, RouteSelectsTheLayerAndGivesJson) {
  Session& s = session();
  run("prompt routing");
  Output o = run("route 2");
  EXPECT_EQ(s.layer(), 2);
  ASSERT_TRUE(o.canvas.has_value());
  EXPECT_EQ(o.panel, viz::Panel::kRouting);
  auto j = nlohmann::json::parse(run("route 1 3 --json").text);
  EXPECT_EQ(j["layer"], 1);
  EXPECT_EQ(j["position"], 3);
  EXPECT_EQ(j["topk_idx"].size(), 4u);
  EXPECT_EQ(j["scores"].size(), 16u);
}

TEST(Commands, KvAtContextUsesTheRealConfig) {
  std::string t = run("kv --context 131072").text;
  EXPECT_NE(t.find("8.58 GiB"), std::string::npos) << t;  // MLA, BF16
  auto j = nlohmann::json::parse(run("kv --context 4096 --config v3-671b --json").text);
  EXPECT_EQ(j["forms"][0]["elements_per_token_per_layer"], 576);
}

TEST(Commands, SetAttnRecomputesInTheOtherForm) {
  Session& s = session();
  run("prompt kv");
  auto absorbed = s.traces().back().layers[1].router.topk_idx;
  run("set attn naive");
  EXPECT_EQ(s.attn(), model::AttnImpl::kNaive);
  EXPECT_EQ(s.traces().back().layers[0].cache_elements_per_token, 4 * (24 + 16));
  EXPECT_EQ(s.traces().back().layers[1].router.topk_idx, absorbed);  // same math, same routing
  run("set attn absorbed");
  EXPECT_EQ(s.traces().back().layers[0].cache_elements_per_token, 32 + 8);
}

TEST(Commands, ShowNamesAnyTracedTensor) {
  run("prompt show me");
  std::string t = run("show layer.1.router.scores").text;
  EXPECT_NE(t.find("shape [16]"), std::string::npos) << t;
  EXPECT_NE(run("show layer.2.attn").text.find("shape [4, 8]"), std::string::npos);
  EXPECT_NE(run("show token.0.layer.1.router.topk_idx").text.find("at position"),
            std::string::npos);
}

TEST(Commands, ExportWritesJsonAndSafetensors) {
  run("prompt export");
  auto dir = std::filesystem::temp_directory_path() / ("dsv3_export_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string js = (dir / "t.json").string(), st = (dir / "t.safetensors").string();
  run("export " + js);
  run("export " + st);
  std::ifstream in(js);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["traces"].size(), 7u);
  io::SafetensorsFile f(st);
  ASSERT_NE(f.find("layer.1.router.scores"), nullptr);
  EXPECT_EQ(f.find("layer.1.router.scores")->shape, (std::vector<int64_t>{7, 16}));
  EXPECT_EQ(f.find("layer.2.attn")->shape, (std::vector<int64_t>{7, 4, 7}));
  std::filesystem::remove_all(dir);
}

TEST(Script, StopsAtTheFirstErrorUnlessKeepGoing) {
  std::istringstream in("prompt ab\n# a comment\nstep\nrute 1\nstep\n");
  std::ostringstream out, err;
  EXPECT_EQ(run_script(session(), in, out, err, ScriptOptions{}), 1);
  EXPECT_NE(err.str().find("dsv3: line 4: unknown command 'rute'; did you mean 'route'?"),
            std::string::npos);
  EXPECT_EQ(session().cursor(), 3);  // the last `step` never ran
  std::istringstream in2("prompt ab\nrute 1\nstep; step\n");
  std::ostringstream out2, err2;
  EXPECT_EQ(run_script(session(), in2, out2, err2, ScriptOptions{true}), 1);
  EXPECT_EQ(session().cursor(), 4);
  std::istringstream in3("prompt ab\nquit\nstep\n");
  std::ostringstream out3, err3;
  EXPECT_EQ(run_script(session(), in3, out3, err3, ScriptOptions{}), 0);
  EXPECT_EQ(session().cursor(), 2);
}

TEST(Repl, HistoryFollowsXdgStateHome) {
  const char* old = std::getenv("XDG_STATE_HOME");
  std::string saved = old ? old : "";
  const char* home = std::getenv("HOME");
  std::string saved_home = home ? home : "";
  setenv("XDG_STATE_HOME", "/tmp/state-test", 1);
  EXPECT_EQ(history_path(), "/tmp/state-test/dsv3/history");
  unsetenv("XDG_STATE_HOME");
  setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(history_path(), "/home/someone/.local/state/dsv3/history");
  if (old) setenv("XDG_STATE_HOME", saved.c_str(), 1);
  if (home) setenv("HOME", saved_home.c_str(), 1);
}

}  // namespace
}  // namespace dsv3::app
