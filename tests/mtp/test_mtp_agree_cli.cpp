// `--agree P` on `dsv3 generate --mtp` and `dsv3 mtp-demo`: the explorer's `mtp agree P`
// stand-in drafter (model::stand_in_draft) on the command line, lossless check included.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/shell.h"

namespace {

using dsv3::test_support::ShellResult;

ShellResult dsv3(const std::string& args, bool with_stderr = true) {
  return dsv3::test_support::shell(std::string("NO_COLOR=1 '") + DSV3_BINARY + "' " + args +
                                   (with_stderr ? " 2>&1" : " 2>/dev/null") + " < /dev/null");
}

nlohmann::json generate_json(const std::string& extra) {
  ShellResult r =
      dsv3("generate --model tiny-random --ids 0,5,6 -n 12 --json --mtp " + extra, false);
  EXPECT_EQ(r.status, 0) << r.out;
  return r.status == 0 ? nlohmann::json::parse(r.out) : nlohmann::json();
}

// Random weights draft almost nothing right; the stand-in at P = 1 drafts the main model's own
// tokens, so nearly every draft is accepted, and the ids stay plain greedy decoding's.
TEST(MtpAgreeCli, GenerateAcceptsWhatTheStandInDrafts) {
  const nlohmann::json plain = generate_json("");
  const nlohmann::json all = generate_json("--agree 1 --draft-depth 2");
  const nlohmann::json half = generate_json("--agree 0.5 --draft-depth 2");
  ASSERT_TRUE(all.contains("mtp") && half.contains("mtp") && plain.contains("mtp"));
  EXPECT_EQ(all["ids"], plain["ids"]);
  EXPECT_EQ(half["ids"], plain["ids"]);
  EXPECT_EQ(all["mtp"]["plain_ids_match"], true);
  EXPECT_EQ(all["mtp"]["agree"], 1.0);
  EXPECT_EQ(half["mtp"]["agree"], 0.5);
  EXPECT_TRUE(plain["mtp"]["agree"].is_null());
  const double a1 = all["mtp"]["acceptance_rate"], a05 = half["mtp"]["acceptance_rate"],
               a0 = plain["mtp"]["acceptance_rate"];
  EXPECT_GE(a1, 0.75) << all.dump();  // only drafts past the last generated token miss
  EXPECT_GT(a1, a05);
  EXPECT_GT(a05, a0);
  EXPECT_GT(all["mtp"]["tokens_per_step"].get<double>(),
            plain["mtp"]["tokens_per_step"].get<double>());
}

TEST(MtpAgreeCli, GenerateTextSaysTheDraftsAreAStandIn) {
  ShellResult r = dsv3("generate --model tiny-random --prompt hi -n 6 --mtp --agree 0.8");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("drafts: a stand-in that proposes the main model's own token with "
                       "probability 0.8"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("identical to plain greedy decoding (checked)"), std::string::npos) << r.out;
}

TEST(MtpAgreeCli, DemoTakesAgree) {
  ShellResult r = dsv3("mtp-demo --model tiny-random -n 8 --draft-depth 2 --agree 1 --no-color");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("MTP speculative decoding"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("probability 1 (--agree)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("identical to plain greedy decoding (checked)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("drafts are noise"), std::string::npos) << r.out;
  // The same ids as without the stand-in: only the acceptance differs.
  ShellResult plain = dsv3("mtp-demo --model tiny-random -n 8 --draft-depth 2 --no-color");
  ASSERT_EQ(plain.status, 0) << plain.out;
  auto ids = [](const std::string& out) {
    const size_t at = out.find("\nids: ");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at + 1) - at);
  };
  EXPECT_FALSE(ids(r.out).empty());
  EXPECT_EQ(ids(r.out), ids(plain.out));
}

TEST(MtpAgreeCli, MisuseIsOneLine) {
  ShellResult r = dsv3("generate --model tiny-random --ids 3 -n 2 --agree 0.5");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, "dsv3: --agree needs --mtp\n");
  for (const char* cmd : {"generate --model tiny-random --ids 3 -n 2 --mtp --temperature 1",
                          "mtp-demo --model tiny-random -n 2 --temperature 1"}) {
    r = dsv3(std::string(cmd) + " --agree 0.5");
    EXPECT_EQ(r.status, 2) << cmd;
    EXPECT_EQ(r.out.rfind("dsv3: --agree needs greedy decoding (--temperature 0)", 0), 0u) << r.out;
  }
  for (const char* cmd : {"generate --model tiny-random --ids 3 -n 2 --mtp --agree 1.5",
                          "mtp-demo --model tiny-random -n 2 --agree -0.1"}) {
    r = dsv3(cmd);
    EXPECT_EQ(r.status, 2) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find("--agree"), std::string::npos) << r.out;
  }
}

}  // namespace
