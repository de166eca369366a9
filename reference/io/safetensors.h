// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {...}}, then the raw bytes.
// Files are read through mmap; every header field is validated before any byte is touched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "reference/model/tensor.h"

namespace dsv3::io {

// A malformed or inconsistent file: the message names the file and, where known, the tensor.
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class DType {
  kF64,
  kF32,
  kF16,
  kBF16,
  kF8E4M3,
  kF8E5M2,
  kI64,
  kI32,
  kI16,
  kI8,
  kU8,
  kBool,
  kU16
};
const char* to_string(DType d);
size_t dtype_size(DType d);

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapped file
  size_t nbytes = 0;
  std::string file;
  int64_t numel() const;
};

// One mapped .safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws FormatError
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorView* find(const std::string& name) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint folder: model.safetensors, or shards listed by model.safetensors.index.json,
// or every *.safetensors in the folder.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir);
  const TensorView* find(const std::string& name) const;
  const TensorView& get(const std::string& name) const;  // throws FormatError "missing tensor"
  std::vector<std::string> names() const;
  const std::string& dir() const { return dir_; }

  // Reads a 1-D or 2-D tensor as float32, converting BF16/F16/F8 and applying a
  // "<name>_scale_inv" block scale (F8) when present. `expect` checks the shape.
  Mat matrix(const std::string& name, std::vector<int64_t> expect = {}) const;
  Vec vector(const std::string& name, int64_t expect = -1) const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
  std::map<std::string, std::string> index_map_;  // tensor -> shard, from the index file
};

// Collects tensors and writes one .safetensors file (header padded to 8 bytes).
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
           size_t nbytes);
  void add(const std::string& name, const Mat& m);  // F32 [rows, cols]
  void add(const std::string& name, const Vec& v);  // F32 [n]
  void add_i64(const std::string& name, std::vector<int64_t> shape, const std::vector<int64_t>& v);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void write(const std::string& path) const;  // throws FormatError on I/O failure

 private:
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Scalar conversions used by the loader.
float bf16_to_f32(uint16_t b);
float f16_to_f32(uint16_t h);
float e4m3fn_to_f32(uint8_t code);
float e5m2_to_f32(uint8_t code);
// Converts any float dtype to float32 (copy).
std::vector<float> to_f32(const TensorView& t);

}  // namespace dsv3::io
