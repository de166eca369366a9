// Issue 16, "Prompt, status line, conventions": the command-line conventions people expect
// (--version, `color` beside `colour`, trailing `# comments`, pure JSON from `dsv3 exec`).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>

#include "app/commands/registry.h"
#include "app/explorer/repl.h"
#include "tests/support/shell.h"

namespace dsv3::app {
namespace {

using test_support::dsv3_cli;
using test_support::shell;

TEST(Conventions, VersionMatchesTheProjectVersion) {
  std::ifstream f(std::string(DSV3_TEST_DATA) + "/../../CMakeLists.txt");
  std::stringstream ss;
  ss << f.rdbuf();
  std::smatch m;
  const std::string cmake = ss.str();
  ASSERT_TRUE(
      std::regex_search(cmake, m, std::regex(R"(project\(dsv3_explorer VERSION ([0-9.]+))")));
  const auto r = dsv3_cli("--version");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "dsv3 " + m[1].str() + "\n");
}

TEST(Conventions, ColorAndColourAreTheSameSetting) {
  EXPECT_EQ(dsv3_cli("exec --model tiny-random 'set color mono'").status, 0);
  EXPECT_EQ(dsv3_cli("exec --model tiny-random 'set colour mono'").status, 0);
  EXPECT_NE(dsv3_cli("exec --model tiny-random 'set color purple'").status, 0);
}

TEST(Conventions, TrailingCommentsAreIgnored) {
  EXPECT_EQ(split_statements("step 2  # two more"), (std::vector<std::string>{"step 2"}));
  EXPECT_EQ(split_statements("step 1; route 1 # the first MoE layer"),
            (std::vector<std::string>{"step 1", "route 1"}));
  // A '#' inside a word or inside quotes is text.
  EXPECT_EQ(split_statements("prompt C#; prompt \"a # b\""),
            (std::vector<std::string>{"prompt C#", "prompt \"a # b\""}));
  const auto r = dsv3_cli("exec --model tiny-random 'step 2   # two more'");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("stepped 2"), std::string::npos) << r.out;
}

TEST(Conventions, ExecWithJsonPrintsOnlyJsonOnStdout) {
  EXPECT_TRUE(wants_json("route 1 --json"));
  EXPECT_FALSE(wants_json("prompt \"--json\""));
  // stdout alone (stderr dropped) must parse as one JSON document.
  const auto r = shell("'" + std::string(DSV3_BINARY) +
                       "' exec --model tiny-random 'step 2; route 1 --json' 2>/dev/null");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("layer").get<int>(), 1);
  // The other commands' lines still reach the user, on stderr.
  const auto e = shell("'" + std::string(DSV3_BINARY) +
                       "' exec --model tiny-random 'step 2; route 1 --json' 2>&1 >/dev/null");
  EXPECT_NE(e.out.find("stepped 2"), std::string::npos) << e.out;
}

}  // namespace
}  // namespace dsv3::app
