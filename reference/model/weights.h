// Model weights in the Hugging Face checkpoint layout, dequantized to float32.
//
// The structs are templates on the scalar so that the trainer (reference/train/) can hold
// weights, gradients and optimizer moments in the same layout, in float32 for training and in
// double for gradient checks. Everything outside the trainer uses the float32 aliases.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "reference/model/config.h"
#include "reference/model/tensor.h"

namespace dsv3::model {

template <class S>
struct FfnWeightsT {  // SwiGLU: down( silu(gate x) * (up x) )
  MatT<S> gate_proj;  // [inter, d]   (official w1)
  MatT<S> up_proj;    // [inter, d]   (official w3)
  MatT<S> down_proj;  // [d, inter]   (official w2)
};

template <class S>
struct MoeWeightsT {
  MatT<S> gate;                          // router e_i as rows                [N_r, d]
  VecT<S> e_score_correction_bias;       // b_i (empty when the config has none) [N_r]
  std::vector<FfnWeightsT<S>> experts;   // routed experts                    N_r x
  std::optional<FfnWeightsT<S>> shared;  // all shared experts fused, inter = N_s * moe_inter
};

template <class S>
struct AttentionWeightsT {
  // Query path: low-rank (q_a_proj, q_a_layernorm, q_b_proj) or plain q_proj (q_lora_rank null).
  MatT<S> q_a_proj;            // W^{DQ}  [d'_c, d]
  VecT<S> q_a_layernorm;       //         [d'_c]
  MatT<S> q_b_proj;            // [W^{UQ}; W^{QR}] per head  [H*(d_h+d^R_h), d'_c]
  MatT<S> q_proj;              // V2-Lite  [H*(d_h+d^R_h), d]
  MatT<S> kv_a_proj_with_mqa;  // [W^{DKV}; W^{KR}]  [d_c + d^R_h, d]
  VecT<S> kv_a_layernorm;      //                   [d_c]
  MatT<S> kv_b_proj;           // [W^{UK}; W^{UV}] per head  [H*(d_h+d_v), d_c]
  MatT<S> o_proj;              // W^O  [d, H*d_v]
};

template <class S>
struct LayerWeightsT {
  VecT<S> input_layernorm;  // [d]
  AttentionWeightsT<S> attn;
  VecT<S> post_attention_layernorm;     // [d]
  std::optional<FfnWeightsT<S>> dense;  // first_k_dense_replace layers
  std::optional<MoeWeightsT<S>> moe;    // the rest
};

template <class S>
struct MtpWeightsT {  // one MTP module (eq. 21-23), stored at layer index num_hidden_layers + k
  VecT<S> enorm;      // RMSNorm of the embedding   [d]
  VecT<S> hnorm;      // RMSNorm of the hidden state [d]
  MatT<S> eh_proj;    // M_k  [d, 2d], input columns [embedding; hidden]
  LayerWeightsT<S> block;    // TRM_k
  VecT<S> shared_head_norm;  // [d]
};

template <class S>
struct ModelWeightsT {
  MatT<S> embed_tokens;  // [V, d]
  std::vector<LayerWeightsT<S>> layers;
  VecT<S> norm;                     // [d]
  MatT<S> lm_head;                  // [V, d]
  std::vector<MtpWeightsT<S>> mtp;  // empty when the checkpoint has no MTP module
};

using FfnWeights = FfnWeightsT<float>;
using MoeWeights = MoeWeightsT<float>;
using AttentionWeights = AttentionWeightsT<float>;
using LayerWeights = LayerWeightsT<float>;
using MtpWeights = MtpWeightsT<float>;
using ModelWeights = ModelWeightsT<float>;

// Deterministic random weights for a config: embedding N(0, 1), projections N(0, 1/in), norm
// weights 1 + N(0, 0.1^2), correction biases N(0, 0.02^2), drawn by fill_normal (normal.h): the
// same for the same seed on every machine and for any thread count.
ModelWeights random_weights(const Config& c, uint64_t seed);

// Training initialisation (V3 §4.2: "All learnable parameters are randomly initialized with a
// standard deviation of 0.006"): every matrix N(0, std^2), norm weights 1, correction biases 0.
// Counter-based like random_weights: the same values for a seed on every machine.
ModelWeights init_weights(const Config& c, uint64_t seed, double stddev);

// Loads a checkpoint folder (model.safetensors or a sharded index); FP8 weights are
// dequantized with their weight_scale_inv blocks. Throws io::FormatError naming the tensor.
ModelWeights load_weights(const Config& c, const std::string& dir);

// Writes weights in checkpoint naming (float32), e.g. for `dsv3 export-weights` and tests.
void save_weights(const Config& c, const ModelWeights& w, const std::string& path);

// ---- Layout: one place that knows every tensor's name and shape ---------------------------

// Allocates every tensor of the layout with its shape: matrices zero, norm weights one,
// correction biases zero. mtp_depth modules sit at layer index num_hidden_layers + k.
// With zero = false the matrices are left unset, for a caller that writes every one of them
// (random_weights, init_weights): zeroing 1.2 GB on one thread first would cost more than
// drawing them (issue 18).
template <class S>
MatT<S> alloc_mat(int64_t rows, int64_t cols, bool zero) {
  return zero ? MatT<S>::Zero(rows, cols) : MatT<S>(rows, cols);
}

template <class S>
void alloc_ffn(FfnWeightsT<S>& f, int64_t d, int64_t inter, bool zero = true) {
  f.gate_proj = alloc_mat<S>(inter, d, zero);
  f.up_proj = alloc_mat<S>(inter, d, zero);
  f.down_proj = alloc_mat<S>(d, inter, zero);
}

template <class S>
void alloc_layer(const Config& c, LayerWeightsT<S>& w, bool moe, bool zero = true) {
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  w.input_layernorm = VecT<S>::Ones(d);
  w.post_attention_layernorm = VecT<S>::Ones(d);
  AttentionWeightsT<S>& a = w.attn;
  if (c.q_lora_rank > 0) {
    a.q_a_proj = alloc_mat<S>(c.q_lora_rank, d, zero);
    a.q_a_layernorm = VecT<S>::Ones(c.q_lora_rank);
    a.q_b_proj = alloc_mat<S>(h * c.qk_head_dim(), c.q_lora_rank, zero);
  } else {
    a.q_proj = alloc_mat<S>(h * c.qk_head_dim(), d, zero);
  }
  a.kv_a_proj_with_mqa = alloc_mat<S>(c.kv_lora_rank + c.qk_rope_head_dim, d, zero);
  a.kv_a_layernorm = VecT<S>::Ones(c.kv_lora_rank);
  a.kv_b_proj = alloc_mat<S>(h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, zero);
  a.o_proj = alloc_mat<S>(d, h * c.v_head_dim, zero);
  if (moe) {
    MoeWeightsT<S> m;
    m.gate = alloc_mat<S>(c.n_routed_experts, d, zero);
    if (c.has_correction_bias()) m.e_score_correction_bias = VecT<S>::Zero(c.n_routed_experts);
    m.experts.resize(c.n_routed_experts);
    for (FfnWeightsT<S>& e : m.experts) alloc_ffn(e, d, c.moe_intermediate_size, zero);
    if (c.n_shared_experts > 0) {
      m.shared.emplace();
      alloc_ffn(*m.shared, d, c.moe_intermediate_size * c.n_shared_experts, zero);
    }
    w.moe = std::move(m);
  } else {
    w.dense.emplace();
    alloc_ffn(*w.dense, d, c.intermediate_size, zero);
  }
}

template <class S>
void alloc_model(const Config& c, ModelWeightsT<S>& w, int64_t mtp_depth, bool zero = true) {
  const int64_t d = c.hidden_size;
  w.embed_tokens = alloc_mat<S>(c.vocab_size, d, zero);
  w.layers.assign(c.num_hidden_layers, {});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    alloc_layer(c, w.layers[l], c.is_moe_layer(l), zero);
  w.norm = VecT<S>::Ones(d);
  w.lm_head = alloc_mat<S>(c.vocab_size, d, zero);
  w.mtp.assign(mtp_depth, {});
  for (MtpWeightsT<S>& m : w.mtp) {
    m.enorm = VecT<S>::Ones(d);
    m.hnorm = VecT<S>::Ones(d);
    m.eh_proj = alloc_mat<S>(d, 2 * d, zero);
    m.shared_head_norm = VecT<S>::Ones(d);
    // The MTP block is a MoE block whenever the model has routed experts (V3 layer 61).
    alloc_layer(c, m.block, c.n_routed_experts > 0, zero);
  }
}

// Calls f(name, tensor) for every tensor in checkpoint naming and a fixed order; tensor is a
// MatT<S>& or a VecT<S>& (const when the weights are). f is a generic callable.
template <class L, class F>
void visit_ffn(const std::string& p, L& f, F&& fn) {
  fn(p + "gate_proj.weight", f.gate_proj);
  fn(p + "up_proj.weight", f.up_proj);
  fn(p + "down_proj.weight", f.down_proj);
}

template <class L, class F>
void visit_layer(const std::string& p, L& w, F&& fn) {
  fn(p + "input_layernorm.weight", w.input_layernorm);
  fn(p + "post_attention_layernorm.weight", w.post_attention_layernorm);
  auto& a = w.attn;
  const std::string s = p + "self_attn.";
  if (a.q_proj.size() == 0) {
    fn(s + "q_a_proj.weight", a.q_a_proj);
    fn(s + "q_a_layernorm.weight", a.q_a_layernorm);
    fn(s + "q_b_proj.weight", a.q_b_proj);
  } else {
    fn(s + "q_proj.weight", a.q_proj);
  }
  fn(s + "kv_a_proj_with_mqa.weight", a.kv_a_proj_with_mqa);
  fn(s + "kv_a_layernorm.weight", a.kv_a_layernorm);
  fn(s + "kv_b_proj.weight", a.kv_b_proj);
  fn(s + "o_proj.weight", a.o_proj);
  if (w.moe) {
    auto& m = *w.moe;
    fn(p + "mlp.gate.weight", m.gate);
    if (m.e_score_correction_bias.size())
      fn(p + "mlp.gate.e_score_correction_bias", m.e_score_correction_bias);
    for (size_t e = 0; e < m.experts.size(); ++e)
      visit_ffn(fmt::format("{}mlp.experts.{}.", p, e), m.experts[e], fn);
    if (m.shared) visit_ffn(p + "mlp.shared_experts.", *m.shared, fn);
  } else {
    visit_ffn(p + "mlp.", *w.dense, fn);
  }
}

template <class W, class F>
void visit_model(const Config& c, W& w, F&& fn) {
  fn(std::string("model.embed_tokens.weight"), w.embed_tokens);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    visit_layer(fmt::format("model.layers.{}.", l), w.layers[l], fn);
  fn(std::string("model.norm.weight"), w.norm);
  fn(std::string("lm_head.weight"), w.lm_head);
  for (size_t k = 0; k < w.mtp.size(); ++k) {
    // MTP module k sits at layer index num_hidden_layers + k (V3: layer 61).
    const std::string p =
        fmt::format("model.layers.{}.", c.num_hidden_layers + static_cast<int64_t>(k));
    auto& m = w.mtp[k];
    fn(p + "enorm.weight", m.enorm);
    fn(p + "hnorm.weight", m.hnorm);
    fn(p + "eh_proj.weight", m.eh_proj);
    visit_layer(p, m.block, fn);
    fn(p + "shared_head.norm.weight", m.shared_head_norm);
  }
}

// The same weights in another scalar type (float32 <-> double), tensor by tensor.
template <class To, class From>
ModelWeightsT<To> cast_weights(const Config& c, const ModelWeightsT<From>& w) {
  ModelWeightsT<To> out;
  alloc_model(c, out, static_cast<int64_t>(w.mtp.size()));
  std::vector<const void*> src;
  visit_model(c, w, [&](const std::string&, const auto& t) { src.push_back(&t); });
  size_t i = 0;
  visit_model(c, out, [&](const std::string&, auto& t) {
    using T = std::decay_t<decltype(t)>;
    using F = std::conditional_t<T::ColsAtCompileTime == 1, VecT<From>, MatT<From>>;
    t = static_cast<const F*>(src[i++])->template cast<To>();
  });
  return out;
}

}  // namespace dsv3::model
