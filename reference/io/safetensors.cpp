#include "reference/io/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace dsv3::io {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
// A header larger than this is certainly corrupt (the 671B index headers are ~10 MB).
constexpr uint64_t kMaxHeader = 256ull << 20;

struct DTypeName {
  const char* name;
  DType dtype;
  size_t size;
};
constexpr DTypeName kDTypes[] = {
    {"F64", DType::kF64, 8},   {"F32", DType::kF32, 4},        {"F16", DType::kF16, 2},
    {"BF16", DType::kBF16, 2}, {"F8_E4M3", DType::kF8E4M3, 1}, {"F8_E5M2", DType::kF8E5M2, 1},
    {"I64", DType::kI64, 8},   {"I32", DType::kI32, 4},        {"I16", DType::kI16, 2},
    {"I8", DType::kI8, 1},     {"U8", DType::kU8, 1},          {"BOOL", DType::kBool, 1},
    {"U16", DType::kU16, 2},
};

DType parse_dtype(const std::string& s, const std::string& file, const std::string& tensor) {
  for (const auto& d : kDTypes)
    if (s == d.name) return d.dtype;
  throw FormatError(fmt::format("{}: tensor '{}' has unsupported dtype '{}'", file, tensor, s));
}
}  // namespace

const char* to_string(DType d) {
  for (const auto& x : kDTypes)
    if (x.dtype == d) return x.name;
  return "?";
}

size_t dtype_size(DType d) {
  for (const auto& x : kDTypes)
    if (x.dtype == d) return x.size;
  return 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: a FIFO named as a shard must not block the open; it is refused just below.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw FormatError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw FormatError(fmt::format("{}: cannot stat", path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FormatError(fmt::format("{}: not a regular file", path));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw FormatError(
        fmt::format("{}: file is {} bytes, too short for a safetensors header", path, size_));
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw FormatError(fmt::format("{}: mmap failed", path));
  }
  const auto* base = static_cast<const uint8_t*>(map_);
  uint64_t header_len = 0;
  std::memcpy(&header_len, base, 8);  // little-endian on every platform we build for
  auto fail = [&](const std::string& what) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw FormatError(fmt::format("{}: {}", path, what));
  };
  if (header_len > kMaxHeader)
    fail(fmt::format("header length {} is implausibly large: the limit is {} bytes (corrupt file?)",
                     header_len, kMaxHeader));
  if (header_len > size_ - 8)
    fail(fmt::format("header length {} runs past the end of the {}-byte file", header_len, size_));
  json header;
  try {
    header = json::parse(base + 8, base + 8 + header_len);
  } catch (const json::parse_error& e) {
    fail(fmt::format("header is not valid JSON (byte {})", e.byte));
  } catch (const json::exception& e) {  // a number beyond double range (out_of_range.406)
    fail(fmt::format("header is not valid JSON ({})", e.what()));
  }
  if (!header.is_object()) fail("header is not a JSON object");
  const uint64_t data_size = size_ - 8 - header_len;
  const uint8_t* data = base + 8 + header_len;

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) fail("__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m->is_string()) metadata_[m.key()] = m->get<std::string>();
      continue;
    }
    const json& t = *it;
    if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") ||
        !t.contains("data_offsets"))
      fail(fmt::format("tensor '{}' needs dtype, shape and data_offsets", name));
    if (!t["dtype"].is_string()) fail(fmt::format("tensor '{}': dtype is not a string", name));
    TensorView v;
    v.name = name;
    v.file = path;
    try {
      v.dtype = parse_dtype(t["dtype"].get<std::string>(), path, name);
    } catch (const FormatError&) {
      ::munmap(map_, size_);
      map_ = nullptr;
      throw;
    }
    if (!t["shape"].is_array()) fail(fmt::format("tensor '{}': shape is not a list", name));
    // The product of the non-zero sizes must stay below 2^53 elements (8 bytes each fit in
    // int64), whatever the data offsets say: a shape [2^40, 2^40] is refused here, before
    // numel() or a conversion could overflow; a 0 size makes the tensor empty, not larger.
    constexpr uint64_t kMaxElements = uint64_t{1} << 53;
    uint64_t numel = 1, nonzero = 1;
    for (const json& s : t["shape"]) {
      if (!s.is_number_unsigned())
        fail(fmt::format("tensor '{}': shape entries must be non-negative integers", name));
      uint64_t d = s.get<uint64_t>();
      if (d != 0 && nonzero > kMaxElements / d)
        fail(fmt::format("tensor '{}': shape {} overflows: more than 2^53 elements", name,
                         t["shape"].dump()));
      if (d != 0) nonzero *= d;
      numel *= d;
      v.shape.push_back(static_cast<int64_t>(d));
    }
    const json& off = t["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      fail(fmt::format("tensor '{}': data_offsets must be [begin, end]", name));
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail(fmt::format("tensor '{}': data_offsets [{}, {}) lie outside the {}-byte data section",
                       name, begin, end, data_size));
    uint64_t expect = numel * dtype_size(v.dtype);
    if (end - begin != expect)
      fail(fmt::format("tensor '{}': {} bytes stored but shape x dtype size needs {}", name,
                       end - begin, expect));
    v.data = data + begin;
    v.nbytes = end - begin;
    if (v.nbytes > 0) ranges.emplace_back(begin, end);
    tensors_.emplace(name, std::move(v));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      fail(fmt::format("two tensors overlap at data bytes [{}, {})", ranges[i].first,
                       ranges[i - 1].second));
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  fs::path d(dir);
  std::vector<std::string> files;
  if (fs::is_regular_file(d)) {
    files.push_back(d.string());
    dir_ = d.parent_path().string();
  } else if (fs::exists(d / "model.safetensors.index.json")) {
    std::string index_path = (d / "model.safetensors.index.json").string();
    std::ifstream in(index_path);
    json j;
    try {
      j = json::parse(in);
    } catch (const json::parse_error& e) {
      throw FormatError(fmt::format("{}: not valid JSON (byte {})", index_path, e.byte));
    } catch (const json::exception& e) {  // a number beyond double range (out_of_range.406)
      throw FormatError(fmt::format("{}: not valid JSON ({})", index_path, e.what()));
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw FormatError(fmt::format("{}: missing 'weight_map' object", index_path));
    std::set<std::string> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string())
        throw FormatError(
            fmt::format("{}: weight_map entry '{}' is not a file name", index_path, it.key()));
      // Shards live in the checkpoint folder: a path ("../x", "/dev/zero") is not a shard.
      const std::string shard = it->get<std::string>();
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
          shard.find('\0') != std::string::npos)
        throw FormatError(
            fmt::format("{}: weight_map entry '{}' names '{}', not a file of the folder",
                        index_path, it.key(), shard));
      shards.insert(shard);
      index_map_[it.key()] = it->get<std::string>();
    }
    for (const std::string& s : shards) {
      if (!fs::exists(d / s))
        throw FormatError(
            fmt::format("{}: shard '{}' listed in the index does not exist", index_path, s));
      files.push_back((d / s).string());
    }
  } else if (fs::exists(d / "model.safetensors")) {
    files.push_back((d / "model.safetensors").string());
  } else if (fs::is_directory(d)) {
    for (const auto& e : fs::directory_iterator(d))
      if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
  }
  if (files.empty()) throw FormatError(fmt::format("{}: no safetensors files found", dir));
  for (const std::string& f : files) {
    files_.push_back(std::make_unique<SafetensorsFile>(f));
    for (const auto& [name, view] : files_.back()->tensors()) {
      if (index_.count(name))
        throw FormatError(fmt::format("{}: tensor '{}' appears in two shards", dir, name));
      index_[name] = &view;
    }
  }
  // Every tensor the index names must be in the shard it names.
  for (const auto& [name, shard] : index_map_) {
    auto it = index_.find(name);
    if (it == index_.end() || fs::path(it->second->file).filename() != fs::path(shard).filename())
      throw FormatError(
          fmt::format("{}/model.safetensors.index.json: tensor '{}' is listed in '{}' but that "
                      "shard does not hold it",
                      dir_, name, shard));
  }
}

const TensorView* Checkpoint::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& Checkpoint::get(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) throw FormatError(fmt::format("{}: missing tensor '{}'", dir_, name));
  return *t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : index_) out.push_back(k);
  return out;
}

float bf16_to_f32(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(man), -24);
  else if (exp == 31)
    v = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    v = std::ldexp(static_cast<float>(man | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

float e4m3fn_to_f32(uint8_t code) {
  // E4M3 "fn": bias 7, no infinities, S.1111.111 is NaN, max 448.
  uint32_t sign = code >> 7, exp = (code >> 3) & 0xF, man = code & 0x7;
  if (exp == 0xF && man == 0x7) return std::numeric_limits<float>::quiet_NaN();
  float v = exp == 0 ? std::ldexp(static_cast<float>(man), -9)
                     : std::ldexp(static_cast<float>(man | 0x8), static_cast<int>(exp) - 10);
  return sign ? -v : v;
}

float e5m2_to_f32(uint8_t code) {
  // E5M2: IEEE-like, bias 15, infinities and NaNs at exponent 31.
  uint32_t sign = code >> 7, exp = (code >> 2) & 0x1F, man = code & 0x3;
  float v;
  if (exp == 0x1F)
    v = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else if (exp == 0)
    v = std::ldexp(static_cast<float>(man), -16);
  else
    v = std::ldexp(static_cast<float>(man | 0x4), static_cast<int>(exp) - 17);
  return sign ? -v : v;
}

std::vector<float> to_f32(const TensorView& t) {
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<float> out(n);
  const uint8_t* p = t.data;
  switch (t.dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(out.data(), p, n * 4);  // empty: out.data() may be null (UB)
      break;
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, p + 2 * i, 2);
        out[i] = bf16_to_f32(b);
      }
      break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, p + 2 * i, 2);
        out[i] = f16_to_f32(b);
      }
      break;
    case DType::kF8E4M3:
      for (size_t i = 0; i < n; ++i) out[i] = e4m3fn_to_f32(p[i]);
      break;
    case DType::kF8E5M2:
      for (size_t i = 0; i < n; ++i) out[i] = e5m2_to_f32(p[i]);
      break;
    default:
      throw FormatError(fmt::format("{}: tensor '{}' has dtype {}, expected a floating-point type",
                                    t.file, t.name, to_string(t.dtype)));
  }
  return out;
}

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}
}  // namespace

Mat Checkpoint::matrix(const std::string& name, std::vector<int64_t> expect) const {
  const TensorView& t = get(name);
  if (t.shape.size() != 2)
    throw FormatError(fmt::format("{}: tensor '{}' has shape {}, expected 2 dimensions", t.file,
                                  name, shape_str(t.shape)));
  if (!expect.empty() && t.shape != expect)
    throw FormatError(fmt::format("{}: tensor '{}' has shape {}, the config needs {}", t.file, name,
                                  shape_str(t.shape), shape_str(expect)));
  const int64_t rows = t.shape[0], cols = t.shape[1];
  std::vector<float> v = to_f32(t);
  Mat m = Eigen::Map<Mat>(v.data(), rows, cols);
  // FP8 weights carry a per-128x128-block multiplier "weight_scale_inv" (model_spec §9):
  // W[r, c] = float(Wq[r, c]) * scale_inv[r / 128, c / 128], edge blocks partial (ceil).
  std::string base = name;
  const std::string suffix = ".weight";
  if (base.size() > suffix.size() && base.ends_with(suffix))
    base.resize(base.size() - suffix.size());
  const TensorView* s = find(base + ".weight_scale_inv");
  if (s) {
    if (t.dtype != DType::kF8E4M3 && t.dtype != DType::kF8E5M2)
      throw FormatError(fmt::format("{}: '{}' has a weight_scale_inv but dtype {}", t.file, name,
                                    to_string(t.dtype)));
    const int64_t br = (rows + 127) / 128, bc = (cols + 127) / 128;
    if (s->shape != std::vector<int64_t>{br, bc})
      throw FormatError(
          fmt::format("{}: '{}' has shape {}, expected [{}, {}] for {} with 128x128 blocks",
                      s->file, s->name, shape_str(s->shape), br, bc, shape_str(t.shape)));
    std::vector<float> scale = to_f32(*s);
    if (m.size() > 0)  // an empty [2^50, 0] weight must not loop over its rows
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) m(r, c) *= scale[(r / 128) * bc + c / 128];
  } else if (t.dtype == DType::kF8E4M3 || t.dtype == DType::kF8E5M2) {
    throw FormatError(
        fmt::format("{}: FP8 tensor '{}' has no '{}.weight_scale_inv'", t.file, name, base));
  }
  return m;
}

Vec Checkpoint::vector(const std::string& name, int64_t expect) const {
  const TensorView& t = get(name);
  if (t.shape.size() != 1)
    throw FormatError(fmt::format("{}: tensor '{}' has shape {}, expected 1 dimension", t.file,
                                  name, shape_str(t.shape)));
  if (expect >= 0 && t.shape[0] != expect)
    throw FormatError(fmt::format("{}: tensor '{}' has shape {}, the config needs [{}]", t.file,
                                  name, shape_str(t.shape), expect));
  std::vector<float> v = to_f32(t);
  return Eigen::Map<Vec>(v.data(), static_cast<Eigen::Index>(v.size()));
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            const void* data, size_t nbytes) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  if (static_cast<size_t>(numel) * dtype_size(dtype) != nbytes)
    throw FormatError(fmt::format("writer: tensor '{}' has {} bytes but its shape needs {}", name,
                                  nbytes, numel * dtype_size(dtype)));
  Entry e{dtype, std::move(shape), {}};
  e.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + nbytes);
  entries_[name] = std::move(e);
}

void SafetensorsWriter::add(const std::string& name, const Mat& m) {
  add(name, DType::kF32, {m.rows(), m.cols()}, m.data(), static_cast<size_t>(m.size()) * 4);
}

void SafetensorsWriter::add(const std::string& name, const Vec& v) {
  add(name, DType::kF32, {v.size()}, v.data(), static_cast<size_t>(v.size()) * 4);
}

void SafetensorsWriter::add_i64(const std::string& name, std::vector<int64_t> shape,
                                const std::vector<int64_t>& v) {
  add(name, DType::kI64, std::move(shape), v.data(), v.size() * 8);
}

void SafetensorsWriter::write(const std::string& path) const {
  json header = json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto& [name, e] : entries_) {
    header[name] = {{"dtype", to_string(e.dtype)},
                    {"shape", e.shape},
                    {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h += ' ';  // keep the data section 8-byte aligned
  std::ofstream out(path, std::ios::binary);
  if (!out) throw FormatError(fmt::format("{}: cannot open for writing", path));
  uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& [name, e] : entries_)
    out.write(reinterpret_cast<const char*>(e.bytes.data()),
              static_cast<std::streamsize>(e.bytes.size()));
  if (!out) throw FormatError(fmt::format("{}: write failed", path));
}

}  // namespace dsv3::io
