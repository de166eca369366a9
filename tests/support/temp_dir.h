// An empty scratch folder for one test: <temp>/<prefix><name>_<pid>, emptied first. The prefix
// keeps the test programs that ctest runs side by side out of each other's folders.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace dsv3::test_support {

inline std::filesystem::path fresh_temp_dir(const std::string& prefix, const std::string& name) {
  std::filesystem::path p =
      std::filesystem::temp_directory_path() / (prefix + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace dsv3::test_support
