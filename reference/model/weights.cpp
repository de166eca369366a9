#include "reference/model/weights.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>

#include "reference/io/safetensors.h"

namespace dsv3::model {

namespace {

// Visits every tensor of the model in checkpoint naming, with its shape already allocated.
struct Visitor {
  std::function<void(const std::string&, Mat&)> mat;
  std::function<void(const std::string&, Vec&)> vec;
};

void alloc_ffn(FfnWeights& f, int64_t d, int64_t inter) {
  f.gate_proj = Mat::Zero(inter, d);
  f.up_proj = Mat::Zero(inter, d);
  f.down_proj = Mat::Zero(d, inter);
}

void visit_ffn(const std::string& p, FfnWeights& f, const Visitor& v) {
  v.mat(p + "gate_proj.weight", f.gate_proj);
  v.mat(p + "up_proj.weight", f.up_proj);
  v.mat(p + "down_proj.weight", f.down_proj);
}

void alloc_layer(const Config& c, LayerWeights& w, bool moe) {
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  w.input_layernorm = Vec::Ones(d);
  w.post_attention_layernorm = Vec::Ones(d);
  AttentionWeights& a = w.attn;
  if (c.q_lora_rank > 0) {
    a.q_a_proj = Mat::Zero(c.q_lora_rank, d);
    a.q_a_layernorm = Vec::Ones(c.q_lora_rank);
    a.q_b_proj = Mat::Zero(h * c.qk_head_dim(), c.q_lora_rank);
  } else {
    a.q_proj = Mat::Zero(h * c.qk_head_dim(), d);
  }
  a.kv_a_proj_with_mqa = Mat::Zero(c.kv_lora_rank + c.qk_rope_head_dim, d);
  a.kv_a_layernorm = Vec::Ones(c.kv_lora_rank);
  a.kv_b_proj = Mat::Zero(h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
  a.o_proj = Mat::Zero(d, h * c.v_head_dim);
  if (moe) {
    MoeWeights m;
    m.gate = Mat::Zero(c.n_routed_experts, d);
    if (c.has_correction_bias()) m.e_score_correction_bias = Vec::Zero(c.n_routed_experts);
    m.experts.resize(c.n_routed_experts);
    for (FfnWeights& e : m.experts) alloc_ffn(e, d, c.moe_intermediate_size);
    if (c.n_shared_experts > 0) {
      m.shared.emplace();
      alloc_ffn(*m.shared, d, c.moe_intermediate_size * c.n_shared_experts);
    }
    w.moe = std::move(m);
  } else {
    w.dense.emplace();
    alloc_ffn(*w.dense, d, c.intermediate_size);
  }
}

void visit_layer(const std::string& p, LayerWeights& w, const Visitor& v) {
  v.vec(p + "input_layernorm.weight", w.input_layernorm);
  v.vec(p + "post_attention_layernorm.weight", w.post_attention_layernorm);
  AttentionWeights& a = w.attn;
  const std::string s = p + "self_attn.";
  if (a.q_proj.size() == 0) {
    v.mat(s + "q_a_proj.weight", a.q_a_proj);
    v.vec(s + "q_a_layernorm.weight", a.q_a_layernorm);
    v.mat(s + "q_b_proj.weight", a.q_b_proj);
  } else {
    v.mat(s + "q_proj.weight", a.q_proj);
  }
  v.mat(s + "kv_a_proj_with_mqa.weight", a.kv_a_proj_with_mqa);
  v.vec(s + "kv_a_layernorm.weight", a.kv_a_layernorm);
  v.mat(s + "kv_b_proj.weight", a.kv_b_proj);
  v.mat(s + "o_proj.weight", a.o_proj);
  if (w.moe) {
    MoeWeights& m = *w.moe;
    v.mat(p + "mlp.gate.weight", m.gate);
    if (m.e_score_correction_bias.size())
      v.vec(p + "mlp.gate.e_score_correction_bias", m.e_score_correction_bias);
    for (size_t e = 0; e < m.experts.size(); ++e)
      visit_ffn(fmt::format("{}mlp.experts.{}.", p, e), m.experts[e], v);
    if (m.shared) visit_ffn(p + "mlp.shared_experts.", *m.shared, v);
  } else {
    visit_ffn(p + "mlp.", *w.dense, v);
  }
}

void alloc_model(const Config& c, ModelWeights& w, int64_t mtp_depth) {
  const int64_t d = c.hidden_size;
  w.embed_tokens = Mat::Zero(c.vocab_size, d);
  w.layers.resize(c.num_hidden_layers);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) alloc_layer(c, w.layers[l], c.is_moe_layer(l));
  w.norm = Vec::Ones(d);
  w.lm_head = Mat::Zero(c.vocab_size, d);
  w.mtp.resize(mtp_depth);
  for (MtpWeights& m : w.mtp) {
    m.enorm = Vec::Ones(d);
    m.hnorm = Vec::Ones(d);
    m.eh_proj = Mat::Zero(d, 2 * d);
    m.shared_head_norm = Vec::Ones(d);
    // The MTP block is a MoE block whenever the model has routed experts (V3 layer 61).
    alloc_layer(c, m.block, c.n_routed_experts > 0);
  }
}

void visit_model(const Config& c, ModelWeights& w, const Visitor& v) {
  v.mat("model.embed_tokens.weight", w.embed_tokens);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    visit_layer(fmt::format("model.layers.{}.", l), w.layers[l], v);
  v.vec("model.norm.weight", w.norm);
  v.mat("lm_head.weight", w.lm_head);
  for (size_t k = 0; k < w.mtp.size(); ++k) {
    // MTP module k sits at layer index num_hidden_layers + k (V3: layer 61).
    const std::string p =
        fmt::format("model.layers.{}.", c.num_hidden_layers + static_cast<int64_t>(k));
    MtpWeights& m = w.mtp[k];
    v.vec(p + "enorm.weight", m.enorm);
    v.vec(p + "hnorm.weight", m.hnorm);
    v.mat(p + "eh_proj.weight", m.eh_proj);
    visit_layer(p, m.block, v);
    v.vec(p + "shared_head.norm.weight", m.shared_head_norm);
  }
}

// splitmix64: a per-tensor seed from the model seed and the tensor name, so the weights do not
// depend on visiting order or thread count.
uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// Standard normal samples from a counter-based generator (identical on every platform).
void fill_normal(float* out, int64_t n, uint64_t seed, float stddev) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i += 2) {
    uint64_t a = splitmix(seed ^ static_cast<uint64_t>(i));
    uint64_t b = splitmix(a);
    double u1 = (static_cast<double>(a >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = static_cast<double>(b >> 11) * (1.0 / 9007199254740992.0);
    double r = std::sqrt(-2.0 * std::log(u1));
    out[i] = static_cast<float>(r * std::cos(2.0 * M_PI * u2)) * stddev;
    if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(2.0 * M_PI * u2)) * stddev;
  }
}

// transformers v5 saves the routed experts of a layer fused: "mlp.experts.gate_up_proj"
// [E, 2*inter, d] (gate rows, then up rows) and "mlp.experts.down_proj" [E, d, inter].
// Reads expert e's slice for a per-expert checkpoint name; false when there is none.
bool read_fused_expert(const io::Checkpoint& ckpt, const std::string& name, Mat& m,
                       std::map<std::string, std::vector<float>>& decoded) {
  const std::string key = "mlp.experts.";
  size_t at = name.find(key);
  if (at == std::string::npos) return false;
  size_t dot = name.find('.', at + key.size());
  if (dot == std::string::npos) return false;
  const int64_t e = std::stoll(name.substr(at + key.size(), dot - at - key.size()));
  const std::string part =
      name.substr(dot + 1);  // gate_proj.weight | up_proj.weight | down_proj.weight
  const std::string base = name.substr(0, at + key.size());
  const bool down = part == "down_proj.weight";
  const io::TensorView* t = ckpt.find(base + (down ? "down_proj" : "gate_up_proj"));
  if (!t) return false;
  const int64_t rows = m.rows(), cols = m.cols();
  const std::vector<int64_t> want =
      down ? std::vector<int64_t>{t->shape.empty() ? 0 : t->shape[0], rows, cols}
           : std::vector<int64_t>{t->shape.empty() ? 0 : t->shape[0], 2 * rows, cols};
  if (t->shape != want || e >= t->shape[0])
    throw io::FormatError(fmt::format(
        "{}: fused expert tensor '{}' has the wrong shape for expert {}", t->file, t->name, e));
  std::vector<float>& all = decoded[t->name];  // decode each fused tensor once
  if (all.empty()) all = io::to_f32(*t);
  const int64_t per_expert = want[1] * want[2];
  const int64_t row0 = part == "up_proj.weight" ? rows : 0;
  m = Eigen::Map<Mat>(all.data() + e * per_expert + row0 * cols, rows, cols);
  return true;
}

}  // namespace

ModelWeights random_weights(const Config& c, uint64_t seed) {
  ModelWeights w;
  alloc_model(c, w, c.num_nextn_predict_layers);
  Visitor v;
  v.mat = [&](const std::string& name, Mat& m) {
    // Embedding rows N(0, 1); projections N(0, 1/in) so activations keep their scale.
    float stddev = name.find("embed_tokens") != std::string::npos
                       ? 1.0f
                       : 1.0f / std::sqrt(static_cast<float>(m.cols()));
    fill_normal(m.data(), m.size(), splitmix(seed ^ name_hash(name)), stddev);
  };
  v.vec = [&](const std::string& name, Vec& x) {
    if (name.find("e_score_correction_bias") != std::string::npos) {
      // Small biases, as a trained model's would be relative to sigmoid scores.
      fill_normal(x.data(), x.size(), splitmix(seed ^ name_hash(name)), 0.02f);
    } else {
      // Norm weights near 1.
      fill_normal(x.data(), x.size(), splitmix(seed ^ name_hash(name)), 0.1f);
      x.array() += 1.0f;
    }
  };
  visit_model(c, w, v);
  return w;
}

ModelWeights load_weights(const Config& c, const std::string& dir) {
  io::Checkpoint ckpt(dir);
  // The MTP modules are loaded when the checkpoint has them (layer index num_hidden_layers + k).
  int64_t depth = 0;
  while (depth < c.num_nextn_predict_layers &&
         ckpt.find(fmt::format("model.layers.{}.eh_proj.weight", c.num_hidden_layers + depth)))
    ++depth;
  ModelWeights w;
  alloc_model(c, w, depth);
  std::vector<std::string> missing;
  std::map<std::string, std::vector<float>> fused;
  Visitor v;
  v.mat = [&](const std::string& name, Mat& m) {
    if (ckpt.find(name)) {
      m = ckpt.matrix(name, {m.rows(), m.cols()});
    } else if (!read_fused_expert(ckpt, name, m, fused)) {
      missing.push_back(name);
    }
  };
  v.vec = [&](const std::string& name, Vec& x) {
    if (!ckpt.find(name)) {
      missing.push_back(name);
      return;
    }
    x = ckpt.vector(name, x.size());
  };
  visit_model(c, w, v);
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 8) list += fmt::format(", ... ({} in all)", missing.size());
    throw io::FormatError(fmt::format("{}: missing tensors: {}", dir, list));
  }
  return w;
}

void save_weights(const Config& c, const ModelWeights& w, const std::string& path) {
  io::SafetensorsWriter out;
  Visitor v;
  v.mat = [&](const std::string& name, Mat& m) { out.add(name, m); };
  v.vec = [&](const std::string& name, Vec& x) { out.add(name, x); };
  visit_model(c, const_cast<ModelWeights&>(w), v);  // the visitor only reads here
  out.set_metadata("format", "pt");
  out.write(path);
}

}  // namespace dsv3::model
