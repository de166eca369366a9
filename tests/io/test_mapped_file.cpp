// Resident memory of mapped files (issue 18): RssFile grows with the pages read, not with the
// size of the mapping.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "reference/io/mapped_file.h"
#include "reference/io/safetensors.h"

namespace dsv3::io {
namespace {
namespace fs = std::filesystem;

TEST(MappedFile, ProcessMemoryIsReported) {
  const ProcessMemory before = process_memory();
  EXPECT_GT(before.rss_anon, 0u);        // this test binary's heap and stacks
  std::vector<char> block(64 << 20, 1);  // 64 MiB touched
  const ProcessMemory after = process_memory();
  EXPECT_GE(after.rss_anon, before.rss_anon + (48u << 20));
  EXPECT_EQ(block[12345], 1);
}

TEST(MappedFile, OpeningAShardMapsItWithoutReadingItsData) {
  // A 32 MiB tensor: opening the file parses the header; its data pages stay out of this
  // process's resident set until read.
  const fs::path dir = fs::temp_directory_path() / ("dsv3-mapped-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const size_t n = 32u << 20;
  {
    std::vector<uint8_t> bytes(n, 0x38);
    SafetensorsWriter w;
    w.add("w", DType::kF8E4M3, {static_cast<int64_t>(n)}, bytes.data(), bytes.size());
    w.write((dir / "model.safetensors").string());
  }
  const uint64_t before = process_memory().rss_file;
  SafetensorsFile f((dir / "model.safetensors").string());
  const TensorView* t = f.find("w");
  ASSERT_NE(t, nullptr);
  EXPECT_LT(process_memory().rss_file, before + (4u << 20)) << "open touched the data";
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i += 4096) sum += t->data[i];  // one byte per page
  EXPECT_EQ(sum, (n / 4096) * 0x38);
  EXPECT_GE(process_memory().rss_file, before + (24u << 20)) << "reading did not map the pages";
  EXPECT_GT(resident_bytes(t->data, t->nbytes), 0u);
  EXPECT_EQ(resident_bytes(nullptr, 10), 0u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::io
