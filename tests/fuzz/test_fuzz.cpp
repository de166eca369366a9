// Replays every fuzz target (targets.h) on its seeds and on each input that once made it fail
// (tests/fuzz/regressions/<target>/, one file per bug found; docs/reliability.md lists them).
// In the asan build this runs the parsers under AddressSanitizer and UBSan on those inputs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fuzz/targets.h"

namespace fs = std::filesystem;

namespace {

const fs::path kRoot = fs::path(DSV3_TEST_DATA).parent_path().parent_path();
const fs::path kFuzz = kRoot / "tests" / "fuzz";

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The real seed files of a target (tests/fuzz/seeds.txt).
std::vector<fs::path> listed_seeds(const std::string& target) {
  std::vector<fs::path> out;
  std::ifstream in(kFuzz / "seeds.txt");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream s(line);
    std::string name, path;
    if (!(s >> name >> path) || name != target) continue;
    if (path.back() == '/') {
      for (const fs::path& p : files_in(kRoot / path)) out.push_back(p);
    } else {
      out.push_back(kRoot / path);
    }
  }
  return out;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs the target with stdout sent to /dev/null (the CLI targets print their results).
void replay(dsv3::fuzz::Target run, const fs::path& p) {
  SCOPED_TRACE(p.string());
  const std::string bytes = read_bytes(p);
  fflush(stdout);
  const int saved = ::dup(STDOUT_FILENO);
  const int null = ::open("/dev/null", O_WRONLY);
  ::dup2(null, STDOUT_FILENO);
  ::close(null);
  EXPECT_NO_THROW(run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  fflush(stdout);
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
}

class FuzzReplay : public testing::TestWithParam<dsv3::fuzz::NamedTarget> {};

TEST_P(FuzzReplay, SeedsAndRegressions) {
  const auto& [name, run] = GetParam();
  std::vector<fs::path> inputs = files_in(kFuzz / "seeds" / name);
  for (const fs::path& p : listed_seeds(name)) inputs.push_back(p);
  for (const fs::path& p : files_in(kFuzz / "regressions" / name)) inputs.push_back(p);
  ASSERT_FALSE(inputs.empty()) << name << " has no seeds";
  for (const fs::path& p : inputs) {
    ASSERT_TRUE(fs::is_regular_file(p)) << p << " (listed in tests/fuzz/seeds.txt) is missing";
    replay(run, p);
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, testing::ValuesIn(dsv3::fuzz::all_targets()),
                         [](const auto& info) { return std::string(info.param.name); });

// Every folder of seeds and regressions belongs to a target (a renamed target would silently
// stop replaying its regressions).
TEST(FuzzReplay, EveryFolderIsATarget) {
  std::set<std::string> names;
  for (const auto& t : dsv3::fuzz::all_targets()) names.insert(t.name);
  for (const char* kind : {"seeds", "regressions"}) {
    if (!fs::is_directory(kFuzz / kind)) continue;
    for (const auto& e : fs::directory_iterator(kFuzz / kind))
      if (e.is_directory()) {
        EXPECT_TRUE(names.count(e.path().filename().string()))
            << e.path() << " is not a fuzz target";
      }
  }
}

}  // namespace
