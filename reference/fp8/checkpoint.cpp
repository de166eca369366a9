#include "reference/fp8/checkpoint.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "reference/fp8/format.h"
#include "reference/fp8/quant.h"
#include "reference/io/safetensors.h"

namespace dsv3::fp8 {

namespace fs = std::filesystem;

StoreFormat parse_store_format(const std::string& s) {
  if (s == "f32") return StoreFormat::kF32;
  if (s == "bf16") return StoreFormat::kBF16;
  if (s == "fp8") return StoreFormat::kFP8;
  throw std::invalid_argument(fmt::format("unknown storage format '{}' (f32, bf16 or fp8)", s));
}

const char* to_string(StoreFormat f) {
  switch (f) {
    case StoreFormat::kF32:
      return "f32";
    case StoreFormat::kBF16:
      return "bf16";
    case StoreFormat::kFP8:
      return "fp8";
  }
  return "?";
}

bool stored_in_fp8(const std::string& name) {
  // Every projection of attention and the MLPs, kv_a_proj_with_mqa ([W^DKV; W^KR], eq. 1, 3)
  // included (model_spec.md: [576, 7168] F8_E4M3 with a [5, 56] scale, partial edge block).
  const bool proj = name.ends_with("_proj.weight") || name.ends_with("_proj_with_mqa.weight");
  if (!proj || name.ends_with("eh_proj.weight")) return false;
  return name.find(".self_attn.") != std::string::npos || name.find(".mlp.") != std::string::npos;
}

namespace {

// Row-major copy of a column-major Eigen matrix (safetensors is row-major; Mat is row-major
// already in this project, but do not rely on it here).
std::vector<float> row_major(const Mat& m) {
  std::vector<float> v(static_cast<size_t>(m.size()));
  for (int64_t r = 0; r < m.rows(); ++r)
    for (int64_t c = 0; c < m.cols(); ++c) v[static_cast<size_t>(r * m.cols() + c)] = m(r, c);
  return v;
}

void add_bf16(io::SafetensorsWriter& out, const std::string& name, std::vector<int64_t> shape,
              const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = bf16_encode(v[i]);  // round to nearest even
  out.add(name, io::DType::kBF16, std::move(shape), b.data(), 2 * b.size());
}

}  // namespace

void save_checkpoint(const model::Config& c, const model::ModelWeights& w, StoreFormat f,
                     const std::string& dir) {
  io::SafetensorsWriter out;
  model::visit_model(c, w, [&](const std::string& name, const auto& t) {
    using T = std::decay_t<decltype(t)>;
    constexpr bool is_matrix = std::is_same_v<T, Mat>;
    const bool bias = name.ends_with("e_score_correction_bias");
    if (f == StoreFormat::kF32 || bias) {
      out.add(name, t);
      return;
    }
    if constexpr (is_matrix) {
      if (f == StoreFormat::kFP8 && stored_in_fp8(name)) {
        // 128x128 blocks (edge blocks partial), value = decode(code) * scale, eq. of Fig. 7a.
        QMatrix q = quantize_weights(t);
        out.add(name, io::DType::kF8E4M3, {q.rows, q.cols}, q.codes.data(), q.codes.size());
        const std::string base = name.substr(0, name.size() - std::string(".weight").size());
        out.add(base + ".weight_scale_inv", io::DType::kF32, {q.scale_rows(), q.scale_cols()},
                q.scales.data(), 4 * q.scales.size());
        return;
      }
      add_bf16(out, name, {t.rows(), t.cols()}, row_major(t));
    } else {
      add_bf16(out, name, {t.size()}, std::vector<float>(t.data(), t.data() + t.size()));
    }
  });
  out.set_metadata("format", "pt");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw io::FormatError(fmt::format("{}: cannot create folder: {}", dir, ec.message()));
  model::Config cc = c;
  cc.quantization = {};
  if (f == StoreFormat::kFP8) cc.quantization.fp8 = true;
  {
    std::ofstream cf(fs::path(dir) / "config.json");
    cf << model::to_json(cc).dump(2) << "\n";
    if (!cf) throw io::FormatError(fmt::format("{}/config.json: cannot write", dir));
  }
  out.write((fs::path(dir) / "model.safetensors").string());
}

}  // namespace dsv3::fp8
