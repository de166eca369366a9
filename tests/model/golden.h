// Shared helpers for parity tests against reference data produced by Hugging Face transformers.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "reference/io/safetensors.h"
#include "reference/model/tensor.h"

namespace dsv3::testing {

inline std::string data_path(const std::string& rel) {
  return std::string(DSV3_TEST_DATA) + "/" + rel;
}

inline Mat golden_matrix(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorView* t = f.find(name);
  if (!t) throw std::runtime_error("golden tensor missing: " + name);
  std::vector<float> v = io::to_f32(*t);
  int64_t rows = t->shape.size() == 2 ? t->shape[0] : 1;
  return Eigen::Map<Mat>(v.data(), rows, static_cast<int64_t>(v.size()) / rows);
}

inline std::vector<int64_t> golden_i64(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorView* t = f.find(name);
  if (!t) throw std::runtime_error("golden tensor missing: " + name);
  std::vector<int64_t> v(static_cast<size_t>(t->numel()));
  std::memcpy(v.data(), t->data, v.size() * 8);
  return v;
}

}  // namespace dsv3::testing
