// `dsv3 fp8 ...` as a user runs it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/support/shell.h"

namespace {

using CmdResult = dsv3::test_support::ShellResult;

CmdResult run(const std::string& args) {
  return dsv3::test_support::dsv3_cli(args);
}

TEST(Fp8Cli, Decode) {
  EXPECT_EQ(run("fp8 decode 0x7e 0x7f 0x80 1 255").out, "448\nnan\n-0\n0.001953125\nnan\n");
  // Exact decimals, not 8 significant digits: E5M2 code 1 is 2^-16, code 3 is 3 * 2^-16.
  EXPECT_EQ(run("fp8 decode --format e5m2 0x7b 0x7c 0xfc 0x01 0x03 0x83").out,
            "57344\ninf\n-inf\n0.0000152587890625\n0.0000457763671875\n-0.0000457763671875\n");
  EXPECT_EQ(run("fp8 decode 0x3f 0x09 0x07").out, "1.875\n0.017578125\n0.013671875\n");
  const auto j = nlohmann::json::parse(run("fp8 decode --json 0x08").out);
  EXPECT_EQ(j[0]["value"], "0.015625");
  EXPECT_EQ(j[0]["hex"], "0x1p-6");
  EXPECT_EQ(j[0]["bits"], "0x3c800000");
  const auto k = nlohmann::json::parse(run("fp8 decode --json --format e5m2 1 0x7b 0x7f").out);
  EXPECT_EQ(k[0]["value"], "0.0000152587890625");
  EXPECT_EQ(k[0]["hex"], "0x1p-16");
  EXPECT_EQ(k[1]["hex"], "0x1.cp+15");
  EXPECT_EQ(k[2]["value"], "nan");
}

TEST(Fp8Cli, DecodeIsExactForEveryCode) {
  // Every finite code's printed decimal parses back to the same value, and its digits stop
  // where the binary expansion does (a value with lowest bit 2^-n has exactly n decimals).
  for (const char* fmt : {"e4m3", "e5m2"}) {
    std::string args = std::string("fp8 decode --json --format ") + fmt;
    for (int c = 0; c < 256; ++c) args += " " + std::to_string(c);
    const auto j = nlohmann::json::parse(run(args).out);
    ASSERT_EQ(j.size(), 256u);
    for (const auto& row : j) {
      const std::string v = row["value"], hex = row["hex"];
      if (v == "nan" || v == "inf" || v == "-inf") continue;
      EXPECT_EQ(std::strtod(v.c_str(), nullptr), std::strtod(hex.c_str(), nullptr)) << v;
      const size_t dot = v.find('.');
      if (dot == std::string::npos) continue;
      EXPECT_NE(v.back(), '0') << v;
      const double x = std::fabs(std::strtod(hex.c_str(), nullptr));
      const int decimals = static_cast<int>(v.size() - dot - 1);
      EXPECT_EQ(std::ldexp(x, decimals), std::floor(std::ldexp(x, decimals))) << v;
      EXPECT_NE(std::ldexp(x, decimals - 1), std::floor(std::ldexp(x, decimals - 1))) << v;
    }
  }
}

TEST(Fp8Cli, EncodeShowsBothOverflowPolicies) {
  // Lesson 6's 1000 -> 448 is the saturating cast; a plain cast gives NaN. Both, labelled.
  const CmdResult r = run("fp8 encode 1000 0.001");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("saturating: clamp to ±448"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("plain cast: overflow to NaN"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1000   0x7e = 448                  0x7f = nan   <- the policies differ"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("0x01 = 0.001953125          0x01 = 0.001953125\n"), std::string::npos)
      << r.out;
  const auto j = nlohmann::json::parse(run("fp8 encode --json 1000 464.00003").out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["saturating"]["code"], "0x7e");
  EXPECT_EQ(j[0]["saturating"]["value"], "448");
  EXPECT_EQ(j[0]["saturating"]["hex"], "0x1.cp+8");
  EXPECT_EQ(j[0]["nonsaturating"]["code"], "0x7f");
  EXPECT_EQ(j[0]["nonsaturating"]["value"], "nan");
  EXPECT_EQ(j[1]["input_exact"], "464.000030517578125");  // the binary32 the cast sees
  EXPECT_EQ(j[1]["nonsaturating"]["code"], "0x7f");
  const auto e = nlohmann::json::parse(run("fp8 encode --json --format e5m2 61440").out);
  EXPECT_EQ(e[0]["saturating"]["value"], "57344");
  EXPECT_EQ(e[0]["nonsaturating"]["value"], "inf");
  const auto one = nlohmann::json::parse(run("fp8 encode --json --policy sat 1000").out);
  EXPECT_TRUE(one[0].contains("saturating"));
  EXPECT_FALSE(one[0].contains("nonsaturating"));
}

TEST(Fp8Cli, EncodeOnePolicyPrintsOneCodePerLine) {
  EXPECT_EQ(run("fp8 encode --policy nonsat -- 448 464 464.00003 -1.5 -0 nan -inf").out,
            "0x7e\n0x7e\n0x7f\n0xbc\n0x80\n0x7f\n0xff\n");
  EXPECT_EQ(run("fp8 encode --saturate -- 1e9 -inf").out, "0x7e\n0xfe\n");
  EXPECT_EQ(run("fp8 encode --policy sat -- 1e9 -inf").out, "0x7e\n0xfe\n");
  EXPECT_EQ(run("fp8 encode --format e5m2 --policy nonsat 61440 0.0000152587890625").out,
            "0x7c\n0x01\n");
  EXPECT_EQ(run("fp8 encode --format e5m2 --saturate 61440").out, "0x7b\n");
}

TEST(Fp8Cli, DotReproducesAHardwareCase) {
  // The first K=128 E4M3 x E5M2 randn case with promotion from the H100 data file.
  std::ifstream in(std::string(DSV3_TEST_DATA) + "/fp8/h100_dot_cases.txt");
  std::string line;
  bool found = false;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string fa, fb, k, promote, cb, ob, dist, a, b;
    ss >> fa >> fb >> k >> promote >> cb >> ob >> dist >> a >> b;
    if (fa != "e4m3" || fb != "e5m2" || k != "128" || promote != "32" || dist != "randn" ||
        cb != "00000000")
      continue;
    const CmdResult r =
        run("fp8 dot --format-a e4m3 --format-b e5m2 --promote 32 --a " + a + " --b " + b);
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out.substr(0, 11), "0x" + ob + " ") << r.out;
    found = true;
    break;
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(run("fp8 dot --a 00 --b 00 --c -1.5000009").out, "0xbfc00000 -1.5\n");
}

TEST(Fp8Cli, GemmErrorJson) {
  const CmdResult r = run("fp8 gemm-error --m 16 --n 16 --k 4096 --dist uniform --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"rel_fro", "max_rel", "p99_rel", "mean_signed_rel"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_LT(j["mean_signed_rel"].get<double>(), -0.06);  // no promotion: ~7.45% shrink
  const auto p = nlohmann::json::parse(
      run("fp8 gemm-error --m 16 --n 16 --k 4096 --dist uniform --promote 128 --json").out);
  EXPECT_GT(p["mean_signed_rel"].get<double>(), -0.001);
}

TEST(Fp8Cli, ErrorsAreOneLineAndExitTwo) {
  for (const char* args :
       {"fp8 decode 256", "fp8 decode --format e3m4 1", "fp8 encode abc", "fp8 dot --a 0011 --b 00",
        "fp8 dot --a 00 --b 00 --promote 48", "fp8 gemm-error --scaling tile --promote 0",
        "fp8 gemm-error --dist normal", "fp8 encode --policy clamp 1",
        "fp8 encode --policy nonsat --saturate 1"}) {
    const CmdResult r = run(args);
    EXPECT_EQ(r.status, 2) << args;
    EXPECT_EQ(r.out.rfind("dsv3: ", 0), 0u) << args << ": " << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << ": " << r.out;
  }
}

TEST(Fp8Cli, ModelErrorReportsEveryMode) {
  const CmdResult r = run("fp8 model-error --model tiny-random --tokens 4 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"], 4);
  ASSERT_EQ(j["rows"].size(), 5u);
  for (const auto& row : j["rows"]) {
    EXPECT_GT(row["rel_error"].get<double>(), 0.0);
    EXPECT_LE(row["top1_agreement"].get<double>(), 1.0);
    EXPECT_GE(row["route_flips"].get<double>(), 0.0);
    EXPECT_LE(row["route_flips"].get<double>(), 1.0);
    EXPECT_GE(row["rel_error_se"].get<double>(), 0.0);
  }
}

TEST(Fp8Cli, ModelErrorSaysWhatIsNoise) {
  // Issue 16: on 16 tokens of the trained model, h100 N_C=128 looked twice as close to float32
  // as exact accumulation of the same FP8 products. That gap is routing-flip noise; the output
  // must say so: the gap is below the noise threshold it prints.
  const CmdResult r = run("fp8 model-error --tokens 16 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  const auto& rows = j["rows"];
  ASSERT_EQ(rows.size(), 5u);
  const double exact = rows[0]["rel_error"], nc128 = rows[3]["rel_error"];
  EXPECT_LT(std::fabs(exact - nc128), j["noise"].get<double>());
  EXPECT_NE(j["reference"].get<std::string>().find("dequantized on load"), std::string::npos);
  const CmdResult t = run("fp8 model-error --tokens 16");
  for (const char* want :
       {"16 tokens (pseudo-random ids)", "reference: the float32 forward",
        "(2 s.e. of a difference) are noise", "use --tokens or --text", "flips", "same rt."})
    EXPECT_NE(t.out.find(want), std::string::npos) << want << "\n" << t.out;
}

TEST(Fp8Cli, ModelErrorRunsAText) {
  const std::string path = ::testing::TempDir() + "dsv3_fp8_model_error.txt";
  std::ofstream(path) << "The router picks experts. The tensor core keeps 13 fraction bits.";
  const CmdResult r = run("fp8 model-error --text '" + path + "' --tokens 8 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"], 8);
  EXPECT_EQ(j["rows"][0]["positions"], 8);
  EXPECT_NE(j["source"].get<std::string>().find("text of"), std::string::npos);
  EXPECT_EQ(run("fp8 model-error --prompt hi --ids 1,2").status, 2);
  EXPECT_EQ(run("fp8 model-error --text /nonexistent/file").status, 2);
}

}  // namespace
