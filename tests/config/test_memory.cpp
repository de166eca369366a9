// Configs too large for the machine are refused before any weight is allocated, with the size
// their float32 weights need (reference/model/memory.h).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <string>

#include "reference/model/config.h"
#include "reference/model/memory.h"
#include "reference/model/weights.h"
#include "tests/support/shell.h"

namespace dsv3::model {
namespace {

constexpr int64_t kGiB = 1024LL * 1024 * 1024;

int64_t allocated_floats(const Config& c) {
  ModelWeights w;
  alloc_model(c, w, c.num_nextn_predict_layers);
  int64_t n = 0;
  visit_model(c, w, [&](const std::string&, const auto& t) { n += t.size(); });
  return n;
}

// The count is exactly what alloc_model allocates, for every small shipped config (dense and
// MoE layers, q_lora or not, with and without an MTP module).
TEST(WeightMemory, CountMatchesTheAllocation) {
  for (const char* name : {"tiny", "tiny-random", "small", "tiny-yarn"}) {
    const Config c = resolve_config(name);
    EXPECT_EQ(weight_floats(c, c.num_nextn_predict_layers), allocated_floats(c)) << name;
  }
}

// The large configs agree with reference/accounting (tests/accounting): the main model is
// count_params().total, and V3's MTP module is its stored count less the shared embedding and
// head (684,489,845,504 - 671,026,419,200 - 2 x 926,679,040).
TEST(WeightMemory, CountMatchesTheAccountingOfThePublishedConfigs) {
  EXPECT_EQ(weight_floats(resolve_config("v3-671b"), 0), 671'026'419'200);
  EXPECT_EQ(weight_floats(resolve_config("v3-671b"), 1), 671'026'419'200 + 11'610'068'224);
  EXPECT_EQ(weight_floats(resolve_config("v2-236b"), 0), 235'741'434'880);
  EXPECT_EQ(weight_floats(resolve_config("v2-lite-16b"), 0), 15'706'484'224);
}

TEST(WeightMemory, RefusesWithTheSizeNeededAndTheSizeAvailable) {
  const Config c = resolve_config("v2-lite-16b");  // 15.7B parameters: 58.5 GiB in float32
  const int64_t available = static_cast<int64_t>(21.3 * kGiB);
  try {
    check_weights_fit(c, c.num_nextn_predict_layers, available);
    FAIL() << "v2-lite-16b was not refused with 21.3 GiB";
  } catch (const InsufficientMemory& e) {
    EXPECT_EQ(std::string(e.what()),
              "v2-lite-16b needs 58.5 GiB for its float32 weights; this machine has 21.3 GiB "
              "available");
  }
  // A ConfigError, so every front end reports it as its usual one line.
  EXPECT_THROW(check_weights_fit(c, 0, available), ConfigError);
  EXPECT_NO_THROW(check_weights_fit(c, 0, 60 * kGiB));
  EXPECT_NO_THROW(check_weights_fit(c, 0, -1));  // unknown: not checked
  const Config tiny = resolve_config("tiny-random");
  EXPECT_NO_THROW(check_weights_fit(tiny, 1, 64LL * 1024 * 1024));
}

TEST(WeightMemory, AvailableMemoryIsKnownOnLinux) {
  EXPECT_GT(available_memory_bytes(), 0);
}

// random_weights checks before allocating: V3's 2.7 TB are refused at once.
TEST(WeightMemory, RandomWeightsRefuseBeforeAllocating) {
  const Config v3 = resolve_config("v3-671b");
  ASSERT_GT(4 * weight_floats(v3, 1), available_memory_bytes());
  EXPECT_THROW(random_weights(v3, 0), InsufficientMemory);
  ::setenv("DSV3_NO_MEMORY_CHECK", "1", 1);
  EXPECT_NO_THROW(check_weights_fit(v3, 1));
  ::unsetenv("DSV3_NO_MEMORY_CHECK");
  EXPECT_THROW(check_weights_fit(v3, 1), InsufficientMemory);
}

// The command line: one line, a non-zero exit, and no time spent allocating.
void expect_refused(const std::string& model, const std::string& command) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = test_support::dsv3_cli(command);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_EQ(r.out.rfind("dsv3: " + model + " needs ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(" GiB for its float32 weights; this machine has "), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(" GiB available\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "more than one line: " << r.out;
  EXPECT_LT(seconds, 20.0) << r.out;
}

TEST(WeightMemory, CliRefusesAConfigLargerThanTheMachine) {
  expect_refused("v3-671b", "generate --model v3-671b --prompt x -n 1");
  expect_refused("v3-671b", "mtp-demo --model v3-671b -n 1");
  const Config lite = resolve_config("v2-lite-16b");
  if (4 * weight_floats(lite, lite.num_nextn_predict_layers) <= available_memory_bytes())
    GTEST_SKIP() << "this machine has room for v2-lite-16b's weights";
  expect_refused("v2-lite-16b", "generate --model v2-lite-16b --prompt x -n 1");
}

}  // namespace
}  // namespace dsv3::model
