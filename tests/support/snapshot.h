// Whole-screen snapshot files under tests/data/snapshots/: compare, or rewrite them all with
// DSV3_UPDATE_SNAPSHOTS=1 (then read the diff before committing).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace dsv3::test_support {

inline std::string snapshot_path(const std::string& name) {
  return std::string(DSV3_TEST_DATA) + "/snapshots/" + name + ".txt";
}

inline void expect_snapshot(const std::string& name, const std::string& actual) {
  const std::string path = snapshot_path(name);
  const char* update = std::getenv("DSV3_UPDATE_SNAPSHOTS");
  if (update && *update == '1') {
    std::ofstream(path) << actual;
    return;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing snapshot " << path << " (DSV3_UPDATE_SNAPSHOTS=1 creates it)";
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), actual) << "snapshot " << name << " differs; actual:\n" << actual;
}

}  // namespace dsv3::test_support
