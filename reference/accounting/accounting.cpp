#include "reference/accounting/accounting.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace dsv3::accounting {
namespace fs = std::filesystem;
using model::Config;

int64_t AttentionParams::total() const {
  return matrices() + q_a_layernorm + kv_a_layernorm;
}

int64_t AttentionParams::matrices() const {
  return q_a_proj + q_b_proj + q_proj + kv_a_proj_with_mqa + kv_b_proj + o_proj;
}

int64_t swiglu_params(int64_t d, int64_t inter) {
  return 3 * d * inter;
}

int64_t LayerParams::dense_layer() const {
  return attention.total() + block_norms + dense_ffn;
}

int64_t LayerParams::moe_layer() const {
  return attention.total() + block_norms + router_weight + router_bias + shared_experts +
         routed_experts;
}

int64_t LayerParams::moe_layer_activated() const {
  return attention.total() + block_norms + router_weight + router_bias + shared_experts +
         routed_activated;
}

LayerParams layer_params(const Config& c) {
  const int64_t d = c.hidden_size;
  const int64_t h = c.num_attention_heads;
  LayerParams p;
  AttentionParams& a = p.attention;
  // V2 §2.1.2 / V3 eq. (6)-(8): the query is compressed to d'_c unless q_lora_rank is null.
  if (c.q_lora_rank > 0) {
    a.q_a_proj = c.q_lora_rank * d;
    a.q_a_layernorm = c.q_lora_rank;
    a.q_b_proj = h * c.qk_head_dim() * c.q_lora_rank;
  } else {
    a.q_proj = h * c.qk_head_dim() * d;
  }
  // eq. (1) and (3): one down-projection yields the latent c^{KV} and the shared RoPE key k^R.
  a.kv_a_proj_with_mqa = (c.kv_lora_rank + c.qk_rope_head_dim) * d;
  a.kv_a_layernorm = c.kv_lora_rank;
  // eq. (2) and (5): per head, d_h key rows then d_v value rows.
  a.kv_b_proj = h * (c.qk_nope_head_dim + c.v_head_dim) * c.kv_lora_rank;
  a.o_proj = d * h * c.v_head_dim;  // eq. (11)

  p.block_norms = 2 * d;
  p.dense_ffn = swiglu_params(d, c.intermediate_size);
  p.one_expert = swiglu_params(d, c.moe_intermediate_size);
  if (c.n_routed_experts > 0) {
    p.router_weight = c.n_routed_experts * d;
    p.router_bias = c.has_correction_bias() ? c.n_routed_experts : 0;
    p.shared_experts = c.n_shared_experts * p.one_expert;
    p.routed_experts = c.n_routed_experts * p.one_expert;
    p.routed_activated = c.num_experts_per_tok * p.one_expert;
  }
  return p;
}

const Component* ParamCount::find(const std::string& name) const {
  for (const Component& comp : components)
    if (comp.name == name) return &comp;
  return nullptr;
}

ParamCount count_params(const Config& c) {
  const int64_t d = c.hidden_size;
  const int64_t vd = c.vocab_size * d;
  const int64_t layers = c.num_hidden_layers;
  const LayerParams lp = layer_params(c);
  ParamCount pc;
  pc.moe_layers = c.num_moe_layers();
  pc.dense_layers = layers - pc.moe_layers;

  auto every_layer = [&](const char* name, int64_t per_layer) {
    pc.components.push_back({name, layers * per_layer, layers * per_layer});
  };
  pc.components.push_back({"embedding", vd, vd});
  const AttentionParams& a = lp.attention;
  if (c.q_lora_rank > 0) {
    every_layer("attention.q_a_proj", a.q_a_proj);
    every_layer("attention.q_a_layernorm", a.q_a_layernorm);
    every_layer("attention.q_b_proj", a.q_b_proj);
  } else {
    every_layer("attention.q_proj", a.q_proj);
  }
  every_layer("attention.kv_a_proj_with_mqa", a.kv_a_proj_with_mqa);
  every_layer("attention.kv_a_layernorm", a.kv_a_layernorm);
  every_layer("attention.kv_b_proj", a.kv_b_proj);
  every_layer("attention.o_proj", a.o_proj);
  every_layer("block_norms", lp.block_norms);
  const int64_t dense = pc.dense_layers * lp.dense_ffn;
  pc.components.push_back({"dense_ffn", dense, dense});
  const int64_t m = pc.moe_layers;
  pc.components.push_back(
      {"router", m * (lp.router_weight + lp.router_bias), m * (lp.router_weight + lp.router_bias)});
  pc.components.push_back({"shared_experts", m * lp.shared_experts, m * lp.shared_experts});
  pc.components.push_back({"routed_experts", m * lp.routed_experts, m * lp.routed_activated});
  pc.components.push_back({"final_norm", d, d});
  // Untied (tie_word_embeddings is false for every DeepSeek model; validate() insists).
  pc.components.push_back({"head", vd, vd});

  for (const Component& comp : pc.components) {
    pc.total += comp.total;
    pc.activated += comp.activated;
  }
  pc.activated_without_embedding = pc.activated - vd;
  return pc;
}

MtpParams count_mtp_params(const Config& c) {
  MtpParams m;
  m.depth = c.num_nextn_predict_layers;
  if (m.depth == 0) return m;
  const int64_t d = c.hidden_size;
  const LayerParams lp = layer_params(c);
  // The module k sits at layer index num_hidden_layers + k - 1; its block follows the same
  // dense/MoE rule as any layer (MoE for V3).
  const bool moe = c.is_moe_layer(c.num_hidden_layers);
  m.block = moe ? lp.moe_layer() : lp.dense_layer();
  m.block_activated = moe ? lp.moe_layer_activated() : lp.dense_layer();
  m.eh_proj = d * 2 * d;  // eq. (21): M_k in R^{d x 2d}
  m.norms = 3 * d;
  m.embedding = c.vocab_size * d;
  m.head = c.vocab_size * d;
  m.unique = m.depth * (m.block + m.eh_proj + m.norms);
  m.stored = m.unique + m.depth * (m.embedding + m.head);
  m.activated = m.depth * (m.block_activated + m.eh_proj + m.norms);
  return m;
}

int64_t default_gqa_groups(const Config& c) {
  return std::clamp<int64_t>(c.num_attention_heads / 2, 1, 8);
}

KvElements kv_elements_per_layer(const Config& c, int64_t gqa_groups) {
  if (gqa_groups == 0) gqa_groups = default_gqa_groups(c);
  if (gqa_groups < 0 || gqa_groups > c.num_attention_heads)
    throw std::invalid_argument(
        fmt::format("GQA groups must be in [1, {}], got {}", c.num_attention_heads, gqa_groups));
  const int64_t h = c.num_attention_heads;
  const int64_t dh = c.qk_nope_head_dim;  // the report's d_h
  KvElements e;
  e.mla = c.kv_lora_rank + c.qk_rope_head_dim;           // (d_c + d^R_h)
  e.mla_naive = h * c.qk_head_dim() + h * c.v_head_dim;  // full K and V per head
  e.mha = 2 * h * dh;                                    // 2 n_h d_h
  e.gqa = 2 * gqa_groups * dh;                           // 2 n_g d_h
  e.mqa = 2 * dh;                                        // 2 d_h
  return e;
}

namespace {
KvElements scale(const KvElements& e, int64_t f) {
  return {e.mla * f, e.mla_naive * f, e.mha * f, e.gqa * f, e.mqa * f};
}
}  // namespace

KvCache kv_cache(const Config& c, int64_t context, int64_t bytes_per_element, int64_t gqa_groups) {
  if (context < 0)
    throw std::invalid_argument(fmt::format("context must be >= 0, got {}", context));
  if (bytes_per_element <= 0)
    throw std::invalid_argument(
        fmt::format("bytes per element must be positive, got {}", bytes_per_element));
  if (gqa_groups == 0) gqa_groups = default_gqa_groups(c);
  if (gqa_groups < 0 || gqa_groups > c.num_attention_heads)
    throw std::invalid_argument(
        fmt::format("GQA groups must be in [1, {}], got {}", c.num_attention_heads, gqa_groups));
  KvCache k;
  k.layers = c.num_hidden_layers;
  k.bytes_per_element = bytes_per_element;
  k.gqa_groups = gqa_groups;
  k.context = context;
  k.per_layer = kv_elements_per_layer(c, gqa_groups);
  k.per_token_bytes = scale(k.per_layer, k.layers * bytes_per_element);
  k.at_context_bytes = scale(k.per_token_bytes, context);
  return k;
}

Flops flops_per_token(const Config& c, int64_t context) {
  if (context < 0)
    throw std::invalid_argument(fmt::format("context must be >= 0, got {}", context));
  const LayerParams lp = layer_params(c);
  const int64_t moe = c.num_moe_layers();
  const int64_t dense = c.num_hidden_layers - moe;
  // Matrices only: norms and the correction bias are element-wise, the embedding a lookup.
  // The absorbed form multiplies by W^{UK} and W^{UV} instead of kv_b_proj: the same
  // H (d_h + d_v) d_c multiply-adds per token, so both forms share this linear count.
  int64_t macs = c.num_hidden_layers * lp.attention.matrices() + dense * lp.dense_ffn +
                 moe * (lp.router_weight + lp.shared_experts + lp.routed_activated) +
                 c.vocab_size * c.hidden_size;
  const int64_t h = c.num_attention_heads;
  const int64_t t = context;
  Flops f;
  f.context = context;
  f.linear = 2 * macs;
  // Naive: q.k over d_h + d^R_h, then p.v over d_v, for each head and cached position.
  f.attention_naive = c.num_hidden_layers * 2 * h * t * (c.qk_head_dim() + c.v_head_dim);
  // Absorbed: scores against the latent (d_c) plus the RoPE key (d^R_h), values in the latent.
  f.attention_absorbed =
      c.num_hidden_layers * 2 * h * t * (2 * c.kv_lora_rank + c.qk_rope_head_dim);
  return f;
}

namespace {
int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
}  // namespace

Census checkpoint_census(const Config& c, bool include_mtp) {
  Census s;
  const bool fp8 = c.quantization.fp8;
  const int64_t br = c.quantization.block_rows, bc = c.quantization.block_cols;
  const int64_t d = c.hidden_size;
  const int64_t h = c.num_attention_heads;
  auto projection = [&](int64_t out, int64_t in) {
    if (fp8) {
      s.f8.tensors += 1;
      s.f8.elements += out * in;
      s.f32.tensors += 1;  // weight_scale_inv
      s.f32.elements += ceil_div(out, br) * ceil_div(in, bc);
    } else {
      s.bf16.tensors += 1;
      s.bf16.elements += out * in;
    }
  };
  auto bf16 = [&](int64_t n) {
    s.bf16.tensors += 1;
    s.bf16.elements += n;
  };
  auto ffn = [&](int64_t inter) {
    projection(inter, d);  // gate_proj
    projection(inter, d);  // up_proj
    projection(d, inter);  // down_proj
  };
  auto layer = [&](int64_t index) {
    bf16(d);  // input_layernorm
    if (c.q_lora_rank > 0) {
      projection(c.q_lora_rank, d);
      bf16(c.q_lora_rank);
      projection(h * c.qk_head_dim(), c.q_lora_rank);
    } else {
      projection(h * c.qk_head_dim(), d);
    }
    projection(c.kv_lora_rank + c.qk_rope_head_dim, d);
    bf16(c.kv_lora_rank);
    projection(h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
    projection(d, h * c.v_head_dim);
    bf16(d);  // post_attention_layernorm
    if (!c.is_moe_layer(index)) {
      ffn(c.intermediate_size);
      return;
    }
    bf16(c.n_routed_experts * d);  // mlp.gate.weight
    if (c.has_correction_bias()) {
      s.f32.tensors += 1;
      s.f32.elements += c.n_routed_experts;
    }
    for (int64_t e = 0; e < c.n_routed_experts; ++e) ffn(c.moe_intermediate_size);
    // The shared experts are stored fused as one SwiGLU of width N_s * moe_intermediate_size.
    if (c.n_shared_experts > 0) ffn(c.n_shared_experts * c.moe_intermediate_size);
  };
  bf16(c.vocab_size * d);  // embed_tokens
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) layer(l);
  bf16(d);                 // norm
  bf16(c.vocab_size * d);  // lm_head
  if (include_mtp) {
    for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
      layer(c.num_hidden_layers + k);
      bf16(c.vocab_size * d);  // embed_tokens (a copy of the main one)
      bf16(d);                 // enorm
      bf16(d);                 // hnorm
      bf16(d * 2 * d);         // eh_proj
      bf16(d);                 // shared_head.norm
      bf16(c.vocab_size * d);  // shared_head.head (a copy of lm_head)
    }
  }
  return s;
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Layer index of "model.layers.<i>.", or -1.
int64_t layer_index(const std::string& name) {
  static const std::string prefix = "model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  size_t end = name.find('.', prefix.size());
  if (end == std::string::npos) return -1;
  try {
    return std::stoll(name.substr(prefix.size(), end - prefix.size()));
  } catch (const std::exception&) {
    return -1;
  }
}

void count_file(const std::string& path, int64_t mtp_from, CheckpointCount& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", path));
  unsigned char len_bytes[8];
  if (!in.read(reinterpret_cast<char*>(len_bytes), 8))
    throw std::runtime_error(fmt::format("{}: shorter than the 8-byte header length", path));
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | len_bytes[i];
  const uint64_t file_size = fs::file_size(path);
  if (len > file_size - 8 || len > (uint64_t{100} << 20))
    throw std::runtime_error(fmt::format("{}: header length {} is impossible", path, len));
  std::string header(len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(len));
  nlohmann::json j = nlohmann::json::parse(header, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw std::runtime_error(fmt::format("{}: header is not a JSON object", path));
  static const std::map<std::string, int64_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U8", 1},      {"BOOL", 1}};
  for (const auto& [name, t] : j.items()) {
    if (name == "__metadata__") continue;
    if (!t.is_object() || !t.contains("shape") || !t["shape"].is_array() || !t.contains("dtype") ||
        !t["dtype"].is_string())
      throw std::runtime_error(fmt::format("{}: tensor '{}' has no dtype/shape", path, name));
    int64_t n = 1;
    for (const auto& dim : t["shape"]) {
      if (!dim.is_number_integer() || dim.get<int64_t>() < 0)
        throw std::runtime_error(fmt::format("{}: tensor '{}' has a bad shape", path, name));
      n *= dim.get<int64_t>();
    }
    auto it = sizes.find(t["dtype"].get<std::string>());
    if (it == sizes.end())
      throw std::runtime_error(
          fmt::format("{}: tensor '{}' has unknown dtype {}", path, name, t["dtype"].dump()));
    out.tensors += 1;
    out.bytes += n * it->second;
    if (ends_with(name, "_scale_inv")) {
      out.scale_elements += n;
      continue;
    }
    out.params += n;
    if (mtp_from >= 0 && layer_index(name) >= mtp_from) out.mtp_params += n;
  }
}

}  // namespace

CheckpointCount count_checkpoint(const std::string& path, int64_t num_hidden_layers) {
  CheckpointCount out;
  fs::path p(path);
  std::vector<std::string> files;
  if (fs::is_directory(p)) {
    fs::path index = p / "model.safetensors.index.json";
    if (fs::exists(index)) {
      std::ifstream in(index);
      nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
      if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object())
        throw std::runtime_error(fmt::format("{}: no weight_map", index.string()));
      std::set<std::string> shards;
      for (const auto& [name, shard] : j["weight_map"].items()) {
        if (!shard.is_string())
          throw std::runtime_error(
              fmt::format("{}: weight_map['{}'] is not a file name", index.string(), name));
        shards.insert(shard.get<std::string>());
      }
      for (const std::string& s : shards) files.push_back((p / s).string());
    } else {
      for (const auto& e : fs::directory_iterator(p))
        if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
    }
    if (files.empty()) throw std::runtime_error(fmt::format("{}: no .safetensors files", path));
  } else {
    files.push_back(path);
  }
  for (const std::string& f : files) count_file(f, num_hidden_layers, out);
  return out;
}

}  // namespace dsv3::accounting
