// Hostile checkpoint and tokenizer files (docs/reliability.md): each is refused with one clear
// FormatError before anything large is allocated, and nothing blocks or reads outside the
// checkpoint folder.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "reference/io/bpe.h"
#include "reference/io/safetensors.h"

namespace dsv3::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class HostileFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dsv3_hostile_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A safetensors file: 8-byte length `len` (the header's own length when -1), header, data.
  std::string write(const std::string& name, const std::string& header, const std::string& data,
                    uint64_t len = ~uint64_t{0}) {
    const std::string p = (dir_ / name).string();
    std::ofstream out(p, std::ios::binary);
    const uint64_t n = len == ~uint64_t{0} ? header.size() : len;
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << header << data;
    return p;
  }

  static std::string error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const FormatError& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path dir_;
};

TEST_F(HostileFiles, HeaderClaimingTerabytesIsRefusedWithTheLengthAndTheLimit) {
  const std::string p = write("tb.safetensors", "{}", "", uint64_t{1} << 40);
  const std::string e = error_of([&] { SafetensorsFile f(p); });
  EXPECT_NE(e.find("1099511627776"), std::string::npos) << e;
  EXPECT_NE(e.find("268435456"), std::string::npos) << e;  // the limit, 256 MiB
}

TEST_F(HostileFiles, TensorClaimingTerabytesOfDataIsRefused) {
  const json h = {{"w",
                   {{"dtype", "F32"},
                    {"shape", {1 << 20, 1 << 20}},
                    {"data_offsets", {0, uint64_t{1} << 42}}}}};
  const std::string e = error_of([&] { SafetensorsFile f(write("w.safetensors", h.dump(), "")); });
  EXPECT_NE(e.find("4398046511104"), std::string::npos) << e;  // what it claims
  EXPECT_NE(e.find("outside the 0-byte data section"), std::string::npos) << e;
}

// A zero-size dimension makes a tensor empty, but the other sizes must still be sane: a shape
// [2^60, 0] would make numel() and the FP8 scale loop overflow or run for ever.
TEST_F(HostileFiles, HugeDimensionBesideAZeroIsRefused) {
  const json h = {
      {"w", {{"dtype", "F8_E4M3"}, {"shape", {uint64_t{1} << 60, 0}}, {"data_offsets", {0, 0}}}}};
  const std::string e = error_of([&] { SafetensorsFile f(write("z.safetensors", h.dump(), "")); });
  EXPECT_NE(e.find("overflows"), std::string::npos) << e;
  EXPECT_NE(e.find("2^53"), std::string::npos) << e;
}

// An empty FP8 weight of many rows with its (empty) block scale loads at once.
TEST_F(HostileFiles, EmptyWeightWithManyRowsLoadsAtOnce) {
  const uint64_t rows = uint64_t{1} << 40;
  const json h = {
      {"l.weight", {{"dtype", "F8_E4M3"}, {"shape", {rows, 0}}, {"data_offsets", {0, 0}}}},
      {"l.weight_scale_inv",
       {{"dtype", "F32"}, {"shape", {rows / 128, 0}}, {"data_offsets", {0, 0}}}}};
  Checkpoint ck(write("e.safetensors", h.dump(), ""));
  EXPECT_EQ(ck.matrix("l.weight").size(), 0);
}

TEST_F(HostileFiles, IndexNamingAPathOrAFifoIsRefusedWithoutBlocking) {
  const std::string fifo = (dir_ / "pipe.safetensors").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string shard : {"../outside.safetensors", "/dev/zero", "sub/x.safetensors"}) {
    std::ofstream(dir_ / "model.safetensors.index.json")
        << json{{"weight_map", {{"w", shard}}}}.dump();
    const std::string e = error_of([&] { Checkpoint ck(dir_.string()); });
    EXPECT_NE(e.find("not a file of the folder"), std::string::npos) << shard << ": " << e;
  }
  // A FIFO in the folder would block a plain open(); it is refused as not a regular file.
  std::ofstream(dir_ / "model.safetensors.index.json")
      << json{{"weight_map", {{"w", "pipe.safetensors"}}}}.dump();
  const std::string e = error_of([&] { Checkpoint ck(dir_.string()); });
  EXPECT_NE(e.find("not a regular file"), std::string::npos) << e;
}

// A tokenizer.json of two tokens cannot make the id table a gigabyte long.
TEST_F(HostileFiles, TokenizerIdFarBeyondItsTokensIsRefused) {
  const std::string j = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 10000000},
                            "merges": []}})";
  try {
    (void)BpeTokenizer::from_json(j, "far.json");
    FAIL() << "accepted";
  } catch (const FormatError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("10000000"), std::string::npos) << what;
    EXPECT_NE(what.find("65538"), std::string::npos) << what;  // 2 listed + 65536
  }
  // Gaps up to the allowance are fine (reserved ids are unused in real files).
  EXPECT_NO_THROW((void)BpeTokenizer::from_json(
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 60000}, "merges": []}})", "gap.json"));
}

}  // namespace
}  // namespace dsv3::io
