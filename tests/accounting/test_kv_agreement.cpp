// One definition of the KV-cache baselines everywhere (issue 16): `dsv3 info --json`, the `kv`
// command's table and the explorer's KV panel give the same values per token per layer for MHA,
// naive MLA, GQA, MQA and MLA, on the session's model and at real scale.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>

#include "tests/support/shell.h"

namespace {

using nlohmann::json;

json cli_json(const std::string& args) {
  const auto r = dsv3::test_support::dsv3_cli(args);
  EXPECT_EQ(r.status, 0) << args << "\n" << r.out;
  return json::parse(r.out);
}

// `dsv3 info --config C --json`: form -> values per token per layer, under the panel's names.
std::map<std::string, int64_t> from_info(const std::string& config) {
  const json j = cli_json("info --config " + config + " --json");
  const json& e = j.at("kv_elements_per_token_per_layer");
  return {{"MLA", e.at("mla")},
          {"naive", e.at("mla_naive")},
          {"MHA", e.at("mha")},
          {"GQA-" + std::to_string(j.at("gqa_groups").get<int>()), e.at("gqa")},
          {"MQA", e.at("mqa")}};
}

// The registry's `kv --context N --config C --json` table.
std::map<std::string, int64_t> from_kv_command(const std::string& config) {
  const json j = cli_json("exec 'kv --context 4096 --config " + config + " --json'");
  std::map<std::string, int64_t> out;
  for (const json& f : j.at("forms"))
    out[f.at("form").get<std::string>()] = f.at("elements_per_token_per_layer").get<int64_t>();
  return out;
}

// The KV panel (`dsv3 exec kv`, the explorer's panel 3): its form rows for the session's model
// ("MHA     K, V 32 × 4    256 ...") and its real-scale header ("MHA (32768)").
struct PanelNumbers {
  std::map<std::string, int64_t> model, real;
};
PanelNumbers from_panel(const std::string& model) {
  const auto r = dsv3::test_support::dsv3_cli("exec --model " + model + " 'step 3; kv'");
  EXPECT_EQ(r.status, 0) << r.out;
  PanelNumbers p;
  const std::regex row(R"(^(MLA|MQA|GQA-\d+|MHA|naive) {2,}.*?\s(\d+)\s+[\d.]+ [KMG]?i?B )");
  const std::regex real(R"((MLA|MQA|GQA-\d+|MHA|naive) \((\d+)\))");
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, row)) p.model[m[1]] = std::stoll(m[2]);
    for (auto it = std::sregex_iterator(line.begin(), line.end(), real);
         it != std::sregex_iterator(); ++it)
      p.real[(*it)[1]] = std::stoll((*it)[2]);
  }
  return p;
}

TEST(KvAgreement, InfoKvCommandAndPanelGiveTheSameMha) {
  const PanelNumbers panel = from_panel("tiny");
  const auto info_tiny = from_info("tiny"), kv_tiny = from_kv_command("tiny");
  const auto info_v3 = from_info("v3-671b"), kv_v3 = from_kv_command("v3-671b");
  // The numbers themselves (tiny: 4 heads, d_h 32, rope 16, v 32, d_c 64; V3: DeepSeek-V2
  // Table 1's 2 n_h d_h = 32768 and the naive 128 (192 + 128) = 40960).
  EXPECT_EQ(info_tiny.at("MHA"), 2 * 4 * 32);
  EXPECT_EQ(info_tiny.at("naive"), 4 * (32 + 16) + 4 * 32);
  EXPECT_EQ(info_v3.at("MHA"), 32768);
  EXPECT_EQ(info_v3.at("naive"), 40960);
  // Every surface agrees on every form.
  EXPECT_EQ(kv_tiny, info_tiny);
  EXPECT_EQ(panel.model, info_tiny);
  EXPECT_EQ(kv_v3, info_v3);
  EXPECT_EQ(panel.real, info_v3);
}

TEST(KvAgreement, TheRowsSayWhichHeadSizes) {
  const auto r = dsv3::test_support::dsv3_cli("info --config v3-671b");
  EXPECT_NE(r.out.find("MHA (128 heads: K 128, V 128)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MLA naive (128 heads: K 128+64, V 128)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("d_h = qk_nope_head_dim = 128"), std::string::npos) << r.out;
  const json j = cli_json("info --config v3-671b --json");
  EXPECT_EQ(j.at("kv_head_dims").at("mha").at("k"), 128);
  EXPECT_EQ(j.at("kv_head_dims").at("mla_naive").at("k"), 192);
  const auto kv = dsv3::test_support::dsv3_cli("exec 'kv --context 4096 --config v3-671b'");
  EXPECT_NE(kv.out.find("MHA    K, V 128 × 128"), std::string::npos) << kv.out;
  EXPECT_NE(kv.out.find("naive  K 128+64, V 128 × 128"), std::string::npos) << kv.out;
}

}  // namespace
