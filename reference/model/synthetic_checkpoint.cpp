#include "reference/model/synthetic_checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "reference/io/safetensors.h"
#include "reference/model/native_weights.h"
#include "reference/model/sampling.h"

namespace dsv3::model {
namespace fs = std::filesystem;
using nlohmann::json;

uint8_t to_e4m3(float x) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  if (std::isnan(x)) return 0x7F;
  if (a >= 464.0f) return sign | 0x7E;  // past the tie 464 = (448 + 480) / 2: saturate
  if (a < 0x1p-6f) {
    // Subnormal range: multiples of 2^-9, rounded to nearest even (8 * 2^-9 is the min normal).
    return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));
  }
  int e2 = 0;
  const float f = std::frexp(a, &e2);  // a = f * 2^e2, f in [0.5, 1)
  int exp = e2 - 1;                    // a = (2f) * 2^exp, 2f in [1, 2)
  int man = static_cast<int>(std::nearbyint((2.0f * f - 1.0f) * 8.0f));  // ties to even
  if (man == 8) {
    man = 0;
    ++exp;
  }
  const int code = ((exp + 7) << 3) | man;
  return sign | static_cast<uint8_t>(std::min(code, 0x7E));
}

namespace {

uint16_t to_bf16(float x) {  // round to nearest even (finite inputs)
  const uint32_t b = std::bit_cast<uint32_t>(x);
  return static_cast<uint16_t>((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
}

uint64_t name_seed(const std::string& name, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h;
}

std::vector<float> normal(int64_t n, uint64_t seed, float stddev, float mean = 0.0f) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) {
    const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();  // Box-Muller
    x = mean + stddev * static_cast<float>(std::sqrt(-2.0 * std::log(u1)) *
                                           std::cos(6.283185307179586 * u2));
  }
  return v;
}

struct Tensor {
  std::string name;
  io::DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

Tensor bf16_tensor(const std::string& name, std::vector<int64_t> shape,
                   const std::vector<float>& v) {
  Tensor t{name, io::DType::kBF16, std::move(shape), std::vector<uint8_t>(v.size() * 2)};
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t b = to_bf16(v[i]);
    std::memcpy(&t.bytes[2 * i], &b, 2);
  }
  return t;
}

// W [rows, cols] as E4M3 codes and its weight_scale_inv: per 128x128 block,
// s = max(amax, 1e-4) / 448 and q = e4m3(x / s) (fp8.md §3.2, kernel.py's order).
std::pair<Tensor, Tensor> fp8_tensors(const std::string& name, int64_t rows, int64_t cols,
                                      const std::vector<float>& v) {
  const int64_t br = (rows + 127) / 128, bc = (cols + 127) / 128;
  Tensor q{name, io::DType::kF8E4M3, {rows, cols}, std::vector<uint8_t>(v.size())};
  std::vector<float> scale(static_cast<size_t>(br * bc));
  for (int64_t bi = 0; bi < br; ++bi)
    for (int64_t bj = 0; bj < bc; ++bj) {
      const int64_t r1 = std::min(rows, bi * 128 + 128), c1 = std::min(cols, bj * 128 + 128);
      float amax = 0;
      for (int64_t r = bi * 128; r < r1; ++r)
        for (int64_t c = bj * 128; c < c1; ++c) amax = std::max(amax, std::fabs(v[r * cols + c]));
      const float s = std::max(amax, 1e-4f) / 448.0f;
      scale[bi * bc + bj] = s;
      for (int64_t r = bi * 128; r < r1; ++r)
        for (int64_t c = bj * 128; c < c1; ++c)
          q.bytes[r * cols + c] = to_e4m3(v[r * cols + c] / s);
    }
  const std::string base = name.substr(0, name.size() - std::string(".weight").size());
  Tensor st{base + ".weight_scale_inv",
            io::DType::kF32,
            {br, bc},
            std::vector<uint8_t>(scale.size() * 4)};
  std::memcpy(st.bytes.data(), scale.data(), st.bytes.size());
  return {std::move(q), std::move(st)};
}

// The released checkpoint's precision rule (model_spec §2): FP8 for the projections of
// self_attn and mlp, BF16 for the embedding, head, router gate and MTP eh_proj.
bool fp8_matrix(const std::string& name) {
  if (name.find("embed_tokens") != std::string::npos || name.find("lm_head") != std::string::npos ||
      name.find("eh_proj") != std::string::npos || name.ends_with("mlp.gate.weight"))
    return false;
  return true;
}

}  // namespace

SyntheticSizes synthetic_small() {
  SyntheticSizes s;
  s.vocab_size = 32768;
  s.hidden_size = 1024;
  s.intermediate_size = 2816;
  s.moe_intermediate_size = 256;
  s.num_hidden_layers = 8;
  s.num_attention_heads = 16;
  s.q_lora_rank = 384;
  s.kv_lora_rank = 256;
  s.shards = 4;
  return s;
}

uint64_t write_synthetic_v3(const std::string& dir, const SyntheticSizes& s) {
  // config.json: the released one, sizes replaced.
  const std::string v3_path = resolve_model_path("v3-671b");
  std::ifstream in(v3_path);
  if (!in) throw io::FormatError(fmt::format("{}: cannot read the DeepSeek-V3 config", v3_path));
  json j = json::parse(in);
  j["vocab_size"] = s.vocab_size;
  j["hidden_size"] = s.hidden_size;
  j["intermediate_size"] = s.intermediate_size;
  j["moe_intermediate_size"] = s.moe_intermediate_size;
  j["num_hidden_layers"] = s.num_hidden_layers;
  j["num_attention_heads"] = s.num_attention_heads;
  j["num_key_value_heads"] = s.num_attention_heads;
  j["q_lora_rank"] = s.q_lora_rank;
  j["kv_lora_rank"] = s.kv_lora_rank;
  j["qk_nope_head_dim"] = s.qk_nope_head_dim;
  j["qk_rope_head_dim"] = s.qk_rope_head_dim;
  j["v_head_dim"] = s.v_head_dim;
  j["n_routed_experts"] = s.n_routed_experts;
  const Config c = parse_config(j, dir + "/config.json");  // validates the sizes
  fs::create_directories(dir);
  {
    std::ofstream out(fs::path(dir) / "config.json");
    out << j.dump(2) << "\n";
    if (!out) throw io::FormatError(fmt::format("{}/config.json: cannot write", dir));
  }

  // Every tensor in checkpoint order: per layer its norms, attention, MLP; MTP at layer L.
  const int64_t d = c.hidden_size, L = c.num_hidden_layers;
  const int64_t depth = c.num_nextn_predict_layers;
  std::vector<Tensor> tensors;
  auto vec = [&](const std::string& name, int64_t n, bool bias) {
    if (bias) {
      std::vector<float> v = normal(n, name_seed(name, s.seed), 0.02f);
      Tensor t{name, io::DType::kF32, {n}, std::vector<uint8_t>(v.size() * 4)};
      std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
      tensors.push_back(std::move(t));
    } else {
      tensors.push_back(bf16_tensor(name, {n}, normal(n, name_seed(name, s.seed), 0.1f, 1.0f)));
    }
  };
  auto mat = [&](const MatrixShape& m) {
    const bool embed = m.name.find("embed_tokens") != std::string::npos;
    const float stddev = embed ? 1.0f : 1.0f / std::sqrt(static_cast<float>(m.cols));
    const std::vector<float> v = normal(m.rows * m.cols, name_seed(m.name, s.seed), stddev);
    if (fp8_matrix(m.name)) {
      auto [q, scale] = fp8_tensors(m.name, m.rows, m.cols, v);
      tensors.push_back(std::move(q));
      tensors.push_back(std::move(scale));
    } else {
      tensors.push_back(bf16_tensor(m.name, {m.rows, m.cols}, v));
    }
  };
  const std::vector<MatrixShape> shapes = matrix_shapes(c, depth);
  size_t next = 0;  // matrices are taken from `shapes` in order, prefix by prefix
  auto matrices_with_prefix = [&](const std::string& p) {
    while (next < shapes.size() && shapes[next].name.starts_with(p)) mat(shapes[next++]);
  };
  matrices_with_prefix("model.embed_tokens.");
  for (int64_t l = 0; l < L + depth; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    if (l >= L) {  // the MTP module (layer 61 in V3): its own copies of embedding and head
      const std::vector<float> emb =
          normal(c.vocab_size * d, name_seed("model.embed_tokens.weight", s.seed), 1.0f);
      tensors.push_back(bf16_tensor(p + "embed_tokens.weight", {c.vocab_size, d}, emb));
      vec(p + "enorm.weight", d, false);
      vec(p + "hnorm.weight", d, false);
      vec(p + "shared_head.norm.weight", d, false);
      const std::vector<float> head = normal(c.vocab_size * d, name_seed("lm_head.weight", s.seed),
                                             1.0f / std::sqrt(static_cast<float>(d)));
      tensors.push_back(bf16_tensor(p + "shared_head.head.weight", {c.vocab_size, d}, head));
    }
    vec(p + "input_layernorm.weight", d, false);
    vec(p + "post_attention_layernorm.weight", d, false);
    vec(p + "self_attn.q_a_layernorm.weight", c.q_lora_rank, false);
    vec(p + "self_attn.kv_a_layernorm.weight", c.kv_lora_rank, false);
    if (l >= L || c.is_moe_layer(l))
      vec(p + "mlp.gate.e_score_correction_bias", c.n_routed_experts, true);
    if (l == L) matrices_with_prefix("lm_head.");  // lm_head sits between the stack and MTP
    matrices_with_prefix(p);
  }
  matrices_with_prefix("lm_head.");
  vec("model.norm.weight", d, false);
  if (next != shapes.size())
    throw std::logic_error(
        fmt::format("synthetic checkpoint: matrix {} left out", shapes[next].name));

  // Shards of about equal size, in order; the index maps every tensor to its shard.
  uint64_t total = 0;
  for (const Tensor& t : tensors) total += t.bytes.size();
  const int n = std::max(1, s.shards);
  json index;
  index["metadata"]["total_size"] = total;
  index["weight_map"] = json::object();
  size_t t = 0;
  uint64_t written = 0;
  for (int k = 0; k < n; ++k) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", k + 1, n);
    io::SafetensorsWriter w;
    uint64_t bytes = 0;
    const uint64_t target = total * static_cast<uint64_t>(k + 1) / static_cast<uint64_t>(n);
    while (t < tensors.size() && (written + bytes < target || k == n - 1)) {
      const Tensor& x = tensors[t++];
      w.add(x.name, x.dtype, x.shape, x.bytes.data(), x.bytes.size());
      index["weight_map"][x.name] = file;
      bytes += x.bytes.size();
    }
    w.set_metadata("format", "pt");
    w.write((fs::path(dir) / file).string());
    written += bytes;
  }
  std::ofstream out(fs::path(dir) / "model.safetensors.index.json");
  out << index.dump(2) << "\n";
  if (!out)
    throw io::FormatError(fmt::format("{}/model.safetensors.index.json: cannot write", dir));
  return written;
}

}  // namespace dsv3::model
