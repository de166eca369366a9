// Issue 16: `yarn --config C` lists each sampled RoPE pair once (the ramp of tiny starts at pair
// 0, which used to print pair 0 twice), in increasing order.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "tests/support/shell.h"

namespace {

TEST(YarnTable, EachSampledPairOnce) {
  for (const char* cfg : {"tiny", "tiny-yarn", "v3-671b"}) {
    const auto r = dsv3::test_support::dsv3_cli(std::string("exec 'yarn --config ") + cfg + "'");
    ASSERT_EQ(r.status, 0) << r.out;
    std::istringstream in(r.out);
    std::vector<int> pairs;
    bool table = false;
    for (std::string line; std::getline(in, line);) {
      if (line.find("pair") != std::string::npos && line.find("wavelength") != std::string::npos) {
        table = true;
        continue;
      }
      if (!table) continue;
      std::istringstream row(line);
      int p = -1;
      if (!(row >> p)) break;  // the summary line ends the table
      pairs.push_back(p);
    }
    ASSERT_GE(pairs.size(), 2u) << cfg << "\n" << r.out;
    for (size_t i = 1; i < pairs.size(); ++i)
      EXPECT_LT(pairs[i - 1], pairs[i]) << cfg << "\n" << r.out;
  }
}

}  // namespace
