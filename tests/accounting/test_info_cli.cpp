// `dsv3 info` run as a subprocess: the JSON keys scripts rely on, the human table, and errors
// (one line on stderr, exit status 2).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "reference/model/config.h"
#include "reference/model/weights.h"

namespace {

struct CliRun {
  int status = -1;
  std::string out;
  std::string err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CliRun run_dsv3(const std::string& args) {
  namespace fs = std::filesystem;
  static int counter = 0;
  std::string base = (fs::temp_directory_path() /
                      ("dsv3_info_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)))
                         .string();
  std::string cmd =
      std::string("'") + DSV3_BINARY + "' " + args + " >'" + base + ".out' 2>'" + base + ".err'";
  int rc = std::system(cmd.c_str());
  CliRun r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  fs::remove(base + ".out");
  fs::remove(base + ".err");
  return r;
}

TEST(InfoCli, JsonOfTheV3Config) {
  CliRun r = run_dsv3("info --config v3-671b --json");
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("params_total").get<int64_t>(), 671'026'419'200);
  EXPECT_EQ(j.at("params_activated").get<int64_t>(), 37'552'297'472);
  EXPECT_EQ(j.at("params_activated_without_embedding").get<int64_t>(), 36'625'618'432);
  EXPECT_EQ(j.at("params_mtp").get<int64_t>(), 11'610'068'224);
  EXPECT_EQ(j.at("params_mtp_stored").get<int64_t>(), 13'463'426'304);
  EXPECT_EQ(j.at("kv_cache_bytes_per_token").get<int64_t>(), 70'272);
  EXPECT_EQ(j.at("kv_cache_bytes_per_token_mha").get<int64_t>(), 3'997'696);
  EXPECT_EQ(j.at("kv_cache_bytes_per_token_naive").get<int64_t>(), 4'997'120);
  EXPECT_EQ(j.at("kv_cache_bytes_per_token_mqa").get<int64_t>(), 31'232);
  EXPECT_EQ(j.at("context").get<int64_t>(), 4096);
  EXPECT_EQ(j.at("flops_per_token_linear").get<int64_t>(), 73'249'193'984);
  EXPECT_EQ(j.at("flops_per_token").get<int64_t>(),
            73'249'193'984 + 61LL * 2 * 128 * 4096 * (192 + 128));
  EXPECT_EQ(j.at("checkpoint").at("tensors").get<int64_t>(), 91'991);
  EXPECT_EQ(j.at("checkpoint").at("bytes").get<int64_t>(), 688'574'839'360);
  EXPECT_TRUE(j.at("breakdown").is_array());
  int64_t sum = 0;
  for (const auto& c : j.at("breakdown")) sum += c.at("total").get<int64_t>();
  EXPECT_EQ(sum, 671'026'419'200);
}

TEST(InfoCli, ContextAndDtypeOptions) {
  CliRun r =
      run_dsv3("info --config v3-671b --json --context 131072 --kv-dtype fp8 --gqa-groups 16");
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("kv_cache_bytes_per_token").get<int64_t>(), 35'136);
  EXPECT_EQ(j.at("kv_cache_bytes_at_context").at("mla").get<int64_t>(), 35'136LL * 131'072);
  EXPECT_EQ(j.at("kv_cache_bytes_per_token_gqa").get<int64_t>(), 2LL * 16 * 128 * 61);
}

TEST(InfoCli, OtherConfigsByNameAndPath) {
  CliRun lite = run_dsv3("info --config v2-lite-16b --json");
  ASSERT_EQ(lite.status, 0) << lite.err;
  EXPECT_EQ(nlohmann::json::parse(lite.out).at("params_total").get<int64_t>(), 15'706'484'224);
  EXPECT_EQ(nlohmann::json::parse(lite.out).at("params_mtp").get<int64_t>(), 0);
  std::string path = std::string(DSV3_SOURCE_DIR) + "/tiny-configs/official/config_236B.json";
  CliRun v2 = run_dsv3("info --config '" + path + "' --json");
  ASSERT_EQ(v2.status, 0) << v2.err;
  EXPECT_EQ(nlohmann::json::parse(v2.out).at("params_total").get<int64_t>(), 235'741'434'880);
  CliRun tiny = run_dsv3("info --config tiny-random --json");
  ASSERT_EQ(tiny.status, 0) << tiny.err;
  EXPECT_GT(nlohmann::json::parse(tiny.out).at("params_total").get<int64_t>(), 0);
  // The config may also be given as the positional argument, as the REPL's `info` takes it.
  CliRun positional = run_dsv3("info tiny-random --json");
  ASSERT_EQ(positional.status, 0) << positional.err;
  EXPECT_EQ(positional.out, tiny.out);
  CliRun both = run_dsv3("info tiny-random --config small");
  EXPECT_EQ(both.status, 2);
  EXPECT_NE(both.err.find("two configs"), std::string::npos) << both.err;
}

TEST(InfoCli, HumanTable) {
  CliRun r = run_dsv3("info --config v3-671b --context 4096");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("671,026,419,200"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("37,552,297,472"), std::string::npos);
  EXPECT_NE(r.out.find("36,625,618,432"), std::string::npos);
  EXPECT_NE(r.out.find("11,610,068,224"), std::string::npos);
  EXPECT_NE(r.out.find("70,272"), std::string::npos);
  EXPECT_NE(r.out.find("routed_experts"), std::string::npos);
  EXPECT_NE(r.out.find("MQA"), std::string::npos);
  EXPECT_NE(r.out.find("GQA"), std::string::npos);
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(InfoCli, CountsARealCheckpoint) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("dsv3_info_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  dsv3::model::Config c = dsv3::model::resolve_config("tiny-random");
  dsv3::model::save_weights(c, dsv3::model::random_weights(c, 5),
                            (dir / "model.safetensors").string());
  std::ofstream(dir / "config.json") << dsv3::model::to_json(c).dump(2);
  CliRun r = run_dsv3("info --checkpoint '" + dir.string() + "' --json");
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("checkpoint_actual").at("params").get<int64_t>(),
            j.at("params_total").get<int64_t>() + j.at("params_mtp").get<int64_t>());
  CliRun t = run_dsv3("info --config tiny-random --checkpoint '" + dir.string() + "'");
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_NE(t.out.find("holds"), std::string::npos) << t.out;
  fs::remove_all(dir);
}

void expect_one_line_error(const CliRun& r, const std::string& fragment) {
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.rfind("dsv3: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;  // exactly one line
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
}

TEST(InfoCli, Errors) {
  expect_one_line_error(run_dsv3("info --config no-such-model"), "no-such-model");
  expect_one_line_error(run_dsv3("info --config v3 --context -1"), "--context");
  expect_one_line_error(run_dsv3("info --config v3 --kv-dtype int3"), "int3");
  expect_one_line_error(run_dsv3("info --config v3 --gqa-groups -3"), "--gqa-groups");
  expect_one_line_error(run_dsv3("info"), "config");
  namespace fs = std::filesystem;
  fs::path bad =
      fs::temp_directory_path() / ("dsv3_info_bad_" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream out(bad);
    out << "{\"hidden_size\": 7168,";
  }
  expect_one_line_error(run_dsv3("info --config '" + bad.string() + "'"), "malformed JSON");
  fs::remove(bad);
}

}  // namespace
