// The safetensors reader against deliberately broken files (each a clear FormatError naming the
// file, never a crash), sharded checkpoints, SafetensorsWriter round trips, and the scalar
// BF16/F16/F8 conversions checked exhaustively against independent decodings.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reference/io/safetensors.h"
#include "reference/model/config.h"
#include "reference/model/weights.h"

namespace dsv3::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dsv3_io_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // 8-byte little-endian length (or `len` when given), the header text, then the data bytes.
  std::string write_raw(const std::string& name, const std::string& header, const std::string& data,
                        int64_t len = -1) {
    std::string p = path(name);
    std::ofstream out(p, std::ios::binary);
    uint64_t n = len >= 0 ? static_cast<uint64_t>(len) : header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << header << data;
    return p;
  }
  std::string write_raw(const std::string& name, const json& header, size_t data_bytes) {
    return write_raw(name, header.dump(), std::string(data_bytes, '\x11'));
  }

  // Expects FormatError whose message names the file and contains every fragment.
  void expect_error(const std::function<void()>& f, const std::string& file,
                    std::vector<std::string> fragments) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one mentioning " << fragments.front();
    } catch (const FormatError& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(file), std::string::npos) << "file not named: " << msg;
      for (const std::string& frag : fragments)
        EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
    }
  }
  void expect_file_error(const std::string& p, std::vector<std::string> fragments) {
    expect_error([&] { SafetensorsFile f(p); }, p, std::move(fragments));
  }

  fs::path dir_;
};

json tensor(const char* dtype, std::vector<int64_t> shape, uint64_t begin, uint64_t end) {
  return {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

// --- Broken files ---------------------------------------------------------------------------

TEST_F(Safetensors, TooShortForTheLength) {
  std::string p = path("short.safetensors");
  std::ofstream(p, std::ios::binary) << "abc";
  expect_file_error(p, {"too short"});
  std::ofstream(path("empty.safetensors"), std::ios::binary);
  expect_file_error(path("empty.safetensors"), {"too short"});
}

TEST_F(Safetensors, MissingFile) {
  expect_file_error(path("absent.safetensors"), {"cannot open"});
}

TEST_F(Safetensors, HeaderLengthBeyondTheFile) {
  std::string p = write_raw("beyond.safetensors", std::string("{}"), "", /*len=*/100);
  expect_file_error(p, {"header length 100", "past the end"});
}

TEST_F(Safetensors, AbsurdHeaderLength) {
  std::string p = write_raw("absurd.safetensors", std::string("{}"), "", /*len=*/int64_t{1} << 62);
  expect_file_error(p, {"implausibly large"});
  p = write_raw("max.safetensors", std::string("{}"), "", std::numeric_limits<int64_t>::max());
  expect_file_error(p, {"implausibly large"});
}

TEST_F(Safetensors, MalformedJsonHeader) {
  expect_file_error(write_raw("trunc.safetensors", std::string("{\"a\": {"), ""),
                    {"not valid JSON"});
  expect_file_error(write_raw("zero.safetensors", std::string(""), ""), {"not valid JSON"});
  expect_file_error(write_raw("array.safetensors", std::string("[1,2]"), ""),
                    {"not a JSON object"});
  expect_file_error(write_raw("meta.safetensors", json{{"__metadata__", 5}}, 0), {"__metadata__"});
}

TEST_F(Safetensors, TensorEntriesMissingFields) {
  expect_file_error(
      write_raw("nooff.safetensors", json{{"w", {{"dtype", "F32"}, {"shape", {1}}}}}, 4),
      {"'w'", "data_offsets"});
  expect_file_error(write_raw("notobj.safetensors", json{{"w", 3}}, 0), {"'w'"});
  expect_file_error(
      write_raw("dtype.safetensors",
                json{{"w", {{"dtype", 4}, {"shape", {1}}, {"data_offsets", {0, 4}}}}}, 4),
      {"'w'", "dtype"});
  expect_file_error(
      write_raw("shape.safetensors",
                json{{"w", {{"dtype", "F32"}, {"shape", 1}, {"data_offsets", {0, 4}}}}}, 4),
      {"'w'", "shape"});
  expect_file_error(write_raw("neg.safetensors", json{{"w", tensor("F32", {-1}, 0, 4)}}, 4),
                    {"'w'", "non-negative"});
  expect_file_error(
      write_raw("offs.safetensors",
                json{{"w", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {0, 4, 8}}}}}, 8),
      {"'w'", "data_offsets"});
  expect_file_error(
      write_raw("offneg.safetensors",
                json{{"w", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {-4, 0}}}}}, 8),
      {"'w'", "data_offsets"});
}

TEST_F(Safetensors, UnknownDtype) {
  expect_file_error(write_raw("q4.safetensors", json{{"w", tensor("Q4_K", {2}, 0, 1)}}, 1),
                    {"'w'", "Q4_K"});
}

TEST_F(Safetensors, OffsetsOutsideTheFile) {
  expect_file_error(write_raw("past.safetensors", json{{"w", tensor("F32", {4}, 0, 16)}}, 12),
                    {"'w'", "outside"});
  expect_file_error(write_raw("far.safetensors",
                              json{{"w", tensor("F32", {1}, 1ull << 60, (1ull << 60) + 4)}}, 4),
                    {"'w'", "outside"});
  expect_file_error(write_raw("rev.safetensors", json{{"w", tensor("F32", {1}, 8, 4)}}, 8),
                    {"'w'", "outside"});
}

TEST_F(Safetensors, ByteLengthMustEqualShapeTimesDtypeSize) {
  expect_file_error(write_raw("len.safetensors", json{{"w", tensor("BF16", {3, 2}, 0, 8)}}, 12),
                    {"'w'", "8 bytes", "12"});
  expect_file_error(write_raw("f8.safetensors", json{{"w", tensor("F8_E4M3", {4, 4}, 0, 32)}}, 32),
                    {"'w'", "32 bytes", "16"});
  // A shape whose element count overflows 64 bits.
  expect_file_error(
      write_raw("ovf.safetensors", json{{"w", tensor("F32", {1ll << 40, 1ll << 40}, 0, 4)}}, 4),
      {"'w'", "overflow"});
}

TEST_F(Safetensors, OverlappingTensors) {
  json h = {{"a", tensor("F32", {4}, 0, 16)}, {"b", tensor("F32", {2}, 8, 16)}};
  expect_file_error(write_raw("overlap.safetensors", h, 16), {"overlap"});
  // Touching ranges and empty tensors are fine.
  json ok = {{"a", tensor("F32", {2}, 0, 8)},
             {"b", tensor("F32", {2}, 8, 16)},
             {"e", tensor("F32", {0}, 8, 8)}};
  SafetensorsFile f(write_raw("touch.safetensors", ok, 16));
  EXPECT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.find("e")->numel(), 0);
}

TEST_F(Safetensors, CorruptFilesNeverCrash) {
  // Every truncation of a valid file is either readable or a FormatError.
  SafetensorsWriter w;
  Mat m = Mat::Random(3, 5);
  w.add("m", m);
  w.set_metadata("format", "pt");
  w.write(path("good.safetensors"));
  std::ifstream in(path("good.safetensors"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::string p = path("cut.safetensors");
    std::ofstream(p, std::ios::binary) << bytes.substr(0, cut);
    EXPECT_THROW(SafetensorsFile f(p), FormatError) << "cut at " << cut;
  }
  // Single flipped header bytes: never a crash (an exception or a consistent file).
  size_t header_end =
      8 + static_cast<unsigned char>(bytes[0]) + 256 * static_cast<unsigned char>(bytes[1]);
  for (size_t i = 8; i < header_end && i < bytes.size(); ++i) {
    std::string b = bytes;
    b[i] = static_cast<char>(b[i] ^ 0x5a);
    std::string p = path("flip.safetensors");
    std::ofstream(p, std::ios::binary) << b;
    try {
      SafetensorsFile f(p);
      for (const auto& [name, t] : f.tensors()) EXPECT_LE(t.nbytes, bytes.size());
    } catch (const FormatError&) {
    }
  }
}

// --- Checkpoints ----------------------------------------------------------------------------

TEST_F(Safetensors, ShardedIndexPointingToAMissingShard) {
  SafetensorsWriter w;
  w.add("a", Vec(Vec::Ones(2)));
  w.write(path("model-00001-of-00002.safetensors"));
  std::ofstream(path("model.safetensors.index.json")) << json{
      {"metadata", json::object()},
      {"weight_map",
       {{"a", "model-00001-of-00002.safetensors"},
        {"b", "model-00002-of-00002.safetensors"}}}}.dump();
  expect_error([&] { Checkpoint c(dir_.string()); }, "model.safetensors.index.json",
               {"model-00002-of-00002.safetensors", "does not exist"});
}

TEST_F(Safetensors, BrokenIndexFiles) {
  std::string idx = path("model.safetensors.index.json");
  std::ofstream(idx) << "{\"weight_map\": {";
  expect_error([&] { Checkpoint c(dir_.string()); }, idx, {"not valid JSON"});
  std::ofstream(idx) << "{\"metadata\": {}}";
  expect_error([&] { Checkpoint c(dir_.string()); }, idx, {"weight_map"});
  std::ofstream(idx) << "{\"weight_map\": {\"a\": 3}}";
  expect_error([&] { Checkpoint c(dir_.string()); }, idx, {"'a'"});
}

TEST_F(Safetensors, ShardedCheckpointReadsEveryShard) {
  SafetensorsWriter w1, w2;
  Mat a = Mat::Random(4, 3);
  Vec b = Vec::LinSpaced(5, -1.0f, 1.0f);
  w1.add("a", a);
  w2.add("b", b);
  w1.write(path("s1.safetensors"));
  w2.write(path("s2.safetensors"));
  std::ofstream(path("model.safetensors.index.json"))
      << json{{"weight_map", {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}}}}.dump();
  Checkpoint c(dir_.string());
  EXPECT_EQ(c.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.matrix("a", {4, 3}), a);
  EXPECT_EQ(c.vector("b", 5), b);
  expect_error([&] { c.get("nope"); }, dir_.string(), {"missing tensor 'nope'"});
  expect_error([&] { c.matrix("a", {3, 4}); }, "s1.safetensors", {"'a'", "[4, 3]", "[3, 4]"});
  expect_error([&] { c.matrix("b"); }, "s2.safetensors", {"'b'", "2 dimensions"});
  expect_error([&] { c.vector("a"); }, "s1.safetensors", {"'a'", "1 dimension"});
  expect_error([&] { c.vector("b", 6); }, "s2.safetensors", {"'b'", "[6]"});
}

TEST_F(Safetensors, TensorInTwoShardsAndEmptyFolders) {
  expect_error([&] { Checkpoint c(dir_.string()); }, dir_.string(), {"no safetensors"});
  SafetensorsWriter w;
  w.add("a", Vec(Vec::Ones(2)));
  w.write(path("x.safetensors"));
  w.write(path("y.safetensors"));
  expect_error([&] { Checkpoint c(dir_.string()); }, dir_.string(), {"'a'", "two shards"});
}

TEST_F(Safetensors, MissingModelTensorsAreListedByName) {
  model::Config c = model::resolve_config("tiny-random");
  model::ModelWeights w = model::random_weights(c, 7);
  std::string full = path("full.safetensors");
  model::save_weights(c, w, full);
  // Copy every tensor but two into a new checkpoint.
  SafetensorsFile src(full);
  SafetensorsWriter partial;
  const std::string gone1 = "model.layers.1.mlp.experts.3.up_proj.weight";
  const std::string gone2 = "lm_head.weight";
  ASSERT_NE(src.find(gone1), nullptr);
  ASSERT_NE(src.find(gone2), nullptr);
  for (const auto& [name, t] : src.tensors())
    if (name != gone1 && name != gone2) partial.add(name, t.dtype, t.shape, t.data, t.nbytes);
  fs::create_directories(dir_ / "partial");
  partial.write((dir_ / "partial" / "model.safetensors").string());
  expect_error([&] { model::load_weights(c, (dir_ / "partial").string()); }, "partial",
               {"missing tensors", gone1, gone2});
}

TEST_F(Safetensors, Fp8ScalesAreCheckedAndAppliedPerBlock) {
  // A 3 x 130 FP8 weight: two column blocks, the second only 2 wide (ceil at the edge).
  std::vector<uint8_t> q(3 * 130, 0x38);  // 1.0 in E4M3
  std::vector<float> scale = {0.5f, 4.0f};
  SafetensorsWriter w;
  w.add("w.weight", DType::kF8E4M3, {3, 130}, q.data(), q.size());
  w.add("w.weight_scale_inv", DType::kF32, {1, 2}, scale.data(), 8);
  w.add("noscale.weight", DType::kF8E4M3, {3, 130}, q.data(), q.size());
  w.add("bad.weight", DType::kF8E4M3, {3, 130}, q.data(), q.size());
  w.add("bad.weight_scale_inv", DType::kF32, {2, 1}, scale.data(), 8);
  std::vector<uint16_t> bf(4, 0x3f80);
  w.add("bf.weight", DType::kBF16, {2, 2}, bf.data(), 8);
  w.add("bf.weight_scale_inv", DType::kF32, {1, 1}, scale.data(), 4);
  w.write(path("model.safetensors"));
  Checkpoint c(dir_.string());
  Mat m = c.matrix("w.weight", {3, 130});
  EXPECT_EQ(m(0, 0), 0.5f);
  EXPECT_EQ(m(2, 127), 0.5f);
  EXPECT_EQ(m(0, 128), 4.0f);
  EXPECT_EQ(m(2, 129), 4.0f);
  expect_error([&] { c.matrix("noscale.weight"); }, "model.safetensors",
               {"'noscale.weight'", "weight_scale_inv"});
  expect_error([&] { c.matrix("bad.weight"); }, "model.safetensors",
               {"bad.weight_scale_inv", "[1, 2]"});
  expect_error([&] { c.matrix("bf.weight"); }, "model.safetensors", {"'bf.weight'", "BF16"});
}

// --- Writer round trips ---------------------------------------------------------------------

TEST_F(Safetensors, WriterRoundTripKeepsEveryDtypeByteForByte) {
  Mat m = Mat::Random(7, 9);
  Vec v = Vec::Random(11);
  std::vector<int64_t> ids = {3, -1, 1ll << 40, 0, 17, 5};
  std::vector<uint16_t> bf = {0x3f80, 0xc000, 0x7f80, 0x0001};
  std::vector<uint16_t> hf = {0x3c00, 0x7bff, 0x0001, 0x8000};
  std::vector<uint8_t> f8 = {0x00, 0x38, 0x7e, 0xfe, 0x01, 0x08};
  SafetensorsWriter w;
  w.add("m", m);
  w.add("v", v);
  w.add_i64("ids", {2, 3}, ids);
  w.add("bf", DType::kBF16, {4}, bf.data(), 8);
  w.add("hf", DType::kF16, {2, 2}, hf.data(), 8);
  w.add("f8", DType::kF8E4M3, {6}, f8.data(), 6);
  w.add("scalar", DType::kF32, {}, v.data(), 4);
  w.set_metadata("format", "pt");
  w.set_metadata("producer", "dsv3 test");
  std::string p = path("rt.safetensors");
  w.write(p);

  // The data section starts 8-byte aligned (numpy and torch memory-map it).
  std::ifstream in(p, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);

  SafetensorsFile f(p);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("producer"), "dsv3 test");
  EXPECT_EQ(f.tensors().size(), 7u);
  const TensorView* tm = f.find("m");
  ASSERT_NE(tm, nullptr);
  EXPECT_EQ(tm->dtype, DType::kF32);
  EXPECT_EQ(tm->shape, (std::vector<int64_t>{7, 9}));
  EXPECT_EQ(std::memcmp(tm->data, m.data(), 7 * 9 * 4), 0);  // row-major [out, in]
  EXPECT_EQ(f.find("v")->shape, (std::vector<int64_t>{11}));
  EXPECT_EQ(std::memcmp(f.find("v")->data, v.data(), 44), 0);
  const TensorView* ti = f.find("ids");
  EXPECT_EQ(ti->dtype, DType::kI64);
  EXPECT_EQ(ti->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(ti->data, ids.data(), 48), 0);
  EXPECT_EQ(std::memcmp(f.find("bf")->data, bf.data(), 8), 0);
  EXPECT_EQ(std::memcmp(f.find("hf")->data, hf.data(), 8), 0);
  EXPECT_EQ(std::memcmp(f.find("f8")->data, f8.data(), 6), 0);
  EXPECT_EQ(f.find("scalar")->shape.size(), 0u);
  EXPECT_EQ(f.find("scalar")->numel(), 1);
  EXPECT_EQ(f.find("nope"), nullptr);

  // The header is plain safetensors JSON that other tools read.
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  json j = json::parse(header);
  EXPECT_EQ(j["bf"]["dtype"], "BF16");
  EXPECT_EQ(j["hf"]["dtype"], "F16");
  EXPECT_EQ(j["f8"]["dtype"], "F8_E4M3");
  EXPECT_EQ(j["ids"]["dtype"], "I64");

  // Converted values.
  std::vector<float> bfv = to_f32(*f.find("bf"));
  EXPECT_EQ(bfv[0], 1.0f);
  EXPECT_EQ(bfv[1], -2.0f);
  EXPECT_TRUE(std::isinf(bfv[2]));
  EXPECT_EQ(bfv[3], std::ldexp(1.0f, -133));
  std::vector<float> hfv = to_f32(*f.find("hf"));
  EXPECT_EQ(hfv[0], 1.0f);
  EXPECT_EQ(hfv[1], 65504.0f);
  EXPECT_EQ(hfv[2], std::ldexp(1.0f, -24));
  EXPECT_TRUE(hfv[3] == 0.0f && std::signbit(hfv[3]));
  std::vector<float> f8v = to_f32(*f.find("f8"));
  EXPECT_EQ(f8v, (std::vector<float>{0.0f, 1.0f, 448.0f, -448.0f, std::ldexp(1.0f, -9),
                                     std::ldexp(1.0f, -6)}));
  expect_error([&] { to_f32(*ti); }, p, {"'ids'", "I64"});
}

TEST_F(Safetensors, WriterRejectsWrongSizes) {
  SafetensorsWriter w;
  float x[3] = {1, 2, 3};
  EXPECT_THROW(w.add("x", DType::kF32, {2, 2}, x, 12), FormatError);
  w.add("x", DType::kF32, {3}, x, 12);
  EXPECT_THROW(w.write((dir_ / "no-such-dir" / "x.safetensors").string()), FormatError);
}

TEST_F(Safetensors, ModelWeightsRoundTrip) {
  model::Config c = model::resolve_config("tiny-random");
  model::ModelWeights w = model::random_weights(c, 11);
  fs::create_directories(dir_ / "ckpt");
  model::save_weights(c, w, (dir_ / "ckpt" / "model.safetensors").string());
  model::ModelWeights r = model::load_weights(c, (dir_ / "ckpt").string());
  EXPECT_EQ(r.embed_tokens, w.embed_tokens);
  EXPECT_EQ(r.lm_head, w.lm_head);
  EXPECT_EQ(r.norm, w.norm);
  ASSERT_EQ(r.layers.size(), w.layers.size());
  EXPECT_EQ(r.layers[0].attn.q_b_proj, w.layers[0].attn.q_b_proj);
  EXPECT_EQ(r.layers[0].attn.kv_b_proj, w.layers[0].attn.kv_b_proj);
  ASSERT_TRUE(r.layers[1].moe.has_value());
  EXPECT_EQ(r.layers[1].moe->gate, w.layers[1].moe->gate);
  EXPECT_EQ(r.layers[1].moe->e_score_correction_bias, w.layers[1].moe->e_score_correction_bias);
  EXPECT_EQ(r.layers[1].moe->experts[5].down_proj, w.layers[1].moe->experts[5].down_proj);
}

// --- Scalar conversions ---------------------------------------------------------------------

TEST(Conversions, Bf16IsTheUpperHalfOfAFloat) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    float f = bf16_to_f32(static_cast<uint16_t>(b));
    uint32_t want = b << 16;
    if (std::isnan(std::bit_cast<float>(want))) {
      EXPECT_TRUE(std::isnan(f)) << b;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(f), want) << b;
    }
  }
}

// IEEE half decoded by arithmetic from its fields, independently of the code under test.
double half_reference(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0    ? m / 1024.0 * std::pow(2.0, -14)
             : e == 31 ? (m ? std::nan("") : INFINITY)
                       : (1.0 + m / 1024.0) * std::pow(2.0, e - 15);
  return s ? -v : v;
}

TEST(Conversions, F16AllCodes) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16_to_f32(static_cast<uint16_t>(h));
    double want = half_reference(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(f)) << h;
    } else {
      EXPECT_EQ(static_cast<double>(f), want) << h;
      EXPECT_EQ(std::signbit(f), (h >> 15) != 0) << h;
    }
#if defined(__FLT16_MAX__)
    _Float16 x;
    uint16_t hh = static_cast<uint16_t>(h);
    std::memcpy(&x, &hh, 2);
    if (!std::isnan(f)) {
      EXPECT_EQ(f, static_cast<float>(x)) << h;
    }
#endif
  }
}

TEST(Conversions, E4m3fnAllCodes) {
  int nans = 0;
  float prev = -1.0f;
  for (uint32_t code = 0; code < 256; ++code) {
    float f = e4m3fn_to_f32(static_cast<uint8_t>(code));
    int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
    if (e == 15 && m == 7) {  // S.1111.111 is the only NaN; there are no infinities
      EXPECT_TRUE(std::isnan(f)) << code;
      ++nans;
      continue;
    }
    double v = e == 0 ? m / 8.0 * std::pow(2.0, -6) : (1.0 + m / 8.0) * std::pow(2.0, e - 7);
    EXPECT_EQ(static_cast<double>(f), s ? -v : v) << code;
    EXPECT_FALSE(std::isinf(f)) << code;
    if (code < 0x7f) {
      EXPECT_GT(f, prev) << code;  // positive codes increase monotonically
      prev = f;
    }
  }
  EXPECT_EQ(nans, 2);
  EXPECT_EQ(e4m3fn_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3fn_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3fn_to_f32(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(e4m3fn_to_f32(0x38), 1.0f);
  EXPECT_TRUE(std::signbit(e4m3fn_to_f32(0x80)));
}

TEST(Conversions, E5m2AllCodes) {
  for (uint32_t code = 0; code < 256; ++code) {
    float f = e5m2_to_f32(static_cast<uint8_t>(code));
    // E5M2 is the upper byte of an IEEE half.
    double want = half_reference(static_cast<uint16_t>(code << 8));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(f)) << code;
    } else {
      EXPECT_EQ(static_cast<double>(f), want) << code;
    }
  }
  EXPECT_EQ(e5m2_to_f32(0x7b), 57344.0f);
  EXPECT_TRUE(std::isinf(e5m2_to_f32(0x7c)));
}

TEST(Conversions, DtypeNamesAndSizes) {
  EXPECT_STREQ(to_string(DType::kBF16), "BF16");
  EXPECT_STREQ(to_string(DType::kF8E4M3), "F8_E4M3");
  EXPECT_EQ(dtype_size(DType::kF64), 8u);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kF8E5M2), 1u);
  EXPECT_EQ(dtype_size(DType::kBool), 1u);
}

}  // namespace
}  // namespace dsv3::io
