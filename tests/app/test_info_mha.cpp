// Issue 16, KV sizes: the REPL's `info` names the same MHA cache as `dsv3 info --json` (each
// head's K and V of d_h), not the naive-MLA row it used to print as "MHA".
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/shell.h"

namespace {

using dsv3::test_support::dsv3_cli;
using dsv3::test_support::shell;

TEST(InfoCommand, MhaIsTheSameDefinitionAsDsv3Info) {
  for (const char* cfg : {"tiny", "tiny-random", "v3-671b"}) {
    const auto j =
        shell("'" + std::string(DSV3_BINARY) + "' info --config " + cfg + " --json 2>/dev/null");
    ASSERT_EQ(j.status, 0) << j.out;
    const auto info = nlohmann::json::parse(j.out);
    const auto mha = info.at("kv_elements_per_token_per_layer").at("mha").get<int64_t>();
    const auto naive = info.at("kv_elements_per_token_per_layer").at("mla_naive").get<int64_t>();
    ASSERT_NE(mha, naive) << cfg;  // the two definitions differ, so the check can fail
    const auto r = dsv3_cli(std::string("exec 'info ") + cfg + "'");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("(MHA with these heads: " + std::to_string(mha) + ")"), std::string::npos)
        << cfg << "\n"
        << r.out;
  }
}

}  // namespace
