// Accounting from a config alone: parameter counts (total, activated per token, per component),
// the MTP module, KV-cache bytes per token for MLA and for the MHA/GQA/MQA baselines of the
// DeepSeek-V2 report (Table 1), forward FLOPs per token, and the tensor/byte census of the
// released FP8 checkpoint. Every number is computed from the config's fields; nothing is a
// hard-coded constant of a particular model. docs/accounting.md gives the formulas.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference/model/config.h"

namespace dsv3::accounting {

// --- Parameters ----------------------------------------------------------------------------

// MLA projections of one layer (DeepSeek-V2 §2.1, V3 eq. 1-11), in checkpoint naming.
struct AttentionParams {
  int64_t q_a_proj = 0;            // W^{DQ}            d'_c x d     (0 when q_lora_rank is null)
  int64_t q_a_layernorm = 0;       //                   d'_c
  int64_t q_b_proj = 0;            // [W^{UQ}; W^{QR}]  H(d_h+d^R_h) x d'_c
  int64_t q_proj = 0;              // V2-Lite: H(d_h+d^R_h) x d
  int64_t kv_a_proj_with_mqa = 0;  // [W^{DKV}; W^{KR}] (d_c+d^R_h) x d
  int64_t kv_a_layernorm = 0;      //                   d_c
  int64_t kv_b_proj = 0;           // [W^{UK}; W^{UV}]  H(d_h+d_v) x d_c
  int64_t o_proj = 0;              // W^O               d x H d_v
  int64_t total() const;
  int64_t matrices() const;  // the projections only (what a token multiplies through)
};

// One SwiGLU FFN (gate_proj, up_proj, down_proj): 3 * d * inter.
int64_t swiglu_params(int64_t d, int64_t inter);

// The pieces every count is assembled from; all per single layer unless said otherwise.
struct LayerParams {
  AttentionParams attention;
  int64_t block_norms = 0;              // input_layernorm + post_attention_layernorm: 2d
  int64_t dense_ffn = 0;                // 3 d intermediate_size
  int64_t one_expert = 0;               // 3 d moe_intermediate_size (routed or shared)
  int64_t router_weight = 0;            // gate.weight N_r x d (the centroids e_i of eq. 13)
  int64_t router_bias = 0;              // e_score_correction_bias N_r (noaux_tc only)
  int64_t shared_experts = 0;           // N_s experts
  int64_t routed_experts = 0;           // all N_r experts
  int64_t routed_activated = 0;         // the K_r chosen ones
  int64_t dense_layer() const;          // attention + norms + dense FFN
  int64_t moe_layer() const;            // attention + norms + router + shared + all routed
  int64_t moe_layer_activated() const;  // ... with only K_r routed experts
};
LayerParams layer_params(const model::Config& c);

// One row of the breakdown. `total` is over the whole main model (no MTP);
// `activated` is what one token touches (embedding: its one row counts as the whole table,
// matching how the published "37B activated" is computed; see docs/accounting.md).
struct Component {
  std::string name;
  int64_t total = 0;
  int64_t activated = 0;
};

struct ParamCount {
  std::vector<Component> components;  // embedding, head, final_norm, attention.*, block_norms,
                                      // dense_ffn, router, shared_experts, routed_experts
  int64_t total = 0;
  int64_t activated = 0;                    // incl. the embedding table
  int64_t activated_without_embedding = 0;  // the embedding lookup is not a matmul
  int64_t dense_layers = 0;
  int64_t moe_layers = 0;
  const Component* find(const std::string& name) const;
};
ParamCount count_params(const model::Config& c);

// The multi-token prediction modules (V3 §2.2, eq. 21-23), all num_nextn_predict_layers of them.
struct MtpParams {
  int64_t depth = 0;  // D
  int64_t block = 0;  // TRM_k: one decoder layer (MoE when the layer index is MoE)
  int64_t block_activated = 0;
  int64_t eh_proj = 0;    // M_k: d x 2d
  int64_t norms = 0;      // enorm, hnorm, shared_head.norm: 3d
  int64_t embedding = 0;  // stored again in the checkpoint (shared with the main model)
  int64_t head = 0;       // likewise the output head
  int64_t unique = 0;     // D (block + eh_proj + norms)
  int64_t stored = 0;     // unique + D (embedding + head): what the checkpoint holds
  int64_t activated = 0;  // per token, excluding embedding and head
};
MtpParams count_mtp_params(const model::Config& c);

// --- KV cache -------------------------------------------------------------------------------

// Elements cached per token per layer (DeepSeek-V2 report, Table 1; model_spec §10.3). One
// definition for every view (`dsv3 info`, the KV panel, the `kv` and `mla` commands):
//   MHA, GQA, MQA: the report's baselines. Every KV head caches its own K and its own V, each of
//     d_h = qk_nope_head_dim (128 for V3), with n_h, n_g or 1 KV heads: 2 n_h d_h, 2 n_g d_h,
//     2 d_h. (No separate RoPE part: d_h is the per-head size the report compares MLA with.)
//   naive MLA: what MLA without absorption caches, the decompressed per-head K (d_h nope +
//     d^R_h rope = qk_head_dim, 192 for V3) and V (d_v = v_head_dim, 128): n_h (d_h + d^R_h + d_v).
//   MLA (absorbed): the latent c^{KV} and the shared RoPE key: d_c + d^R_h.
struct KvElements {
  int64_t mla = 0;        // absorbed MLA: d_c + d^R_h (the latent c^{KV} and the shared k^R)
  int64_t mla_naive = 0;  // MLA with full keys and values: H(d_h + d^R_h) + H d_v
  int64_t mha = 0;        // 2 n_h d_h with d_h = qk_nope_head_dim
  int64_t gqa = 0;        // 2 n_g d_h
  int64_t mqa = 0;        // 2 d_h
};
// The GQA baseline's group count when none is given: 8 (Llama-style), but never more than half
// the heads, so that GQA sits between MQA and MHA (a 4-head model gets 2 groups).
int64_t default_gqa_groups(const model::Config& c);
// gqa_groups 0: default_gqa_groups(c). Throws std::invalid_argument outside [1, n_h].
KvElements kv_elements_per_layer(const model::Config& c, int64_t gqa_groups = 0);

struct KvCache {
  int64_t layers = 0;  // num_hidden_layers (an MTP module would add its own)
  int64_t bytes_per_element = 2;
  int64_t gqa_groups = 8;       // the groups used (default_gqa_groups(c) when 0 was asked for)
  KvElements per_layer;         // elements
  KvElements per_token_bytes;   // bytes per token over all layers
  KvElements at_context_bytes;  // bytes for `context` tokens of one sequence
  int64_t context = 0;
};
// gqa_groups 0: default_gqa_groups(c).
KvCache kv_cache(const model::Config& c, int64_t context, int64_t bytes_per_element = 2,
                 int64_t gqa_groups = 0);

// --- FLOPs ----------------------------------------------------------------------------------

// Forward FLOPs for one new token (1 multiply-add = 2 FLOPs) that attends to `context`
// positions (itself included). Linear: every matrix the token multiplies through (head and
// router included, embedding lookup excluded). Attention: QK^T and PV over the context.
struct Flops {
  int64_t context = 0;
  int64_t linear = 0;
  int64_t attention_naive = 0;     // 2 H T (d_h + d^R_h) + 2 H T d_v per layer
  int64_t attention_absorbed = 0;  // 2 H T (d_c + d^R_h) + 2 H T d_c per layer
  int64_t total() const { return linear + attention_naive; }
  int64_t total_absorbed() const { return linear + attention_absorbed; }
};
Flops flops_per_token(const model::Config& c, int64_t context);

// --- Checkpoint census ----------------------------------------------------------------------

// The tensors of a checkpoint in the Hugging Face layout for this config: with FP8
// quantization every projection is F8_E4M3 plus an F32 weight_scale_inv of
// ceil(out/128) x ceil(in/128); embeddings, head, norms, router and eh_proj stay BF16; the
// correction bias is F32. Without quantization everything but the bias is BF16.
struct DtypeCount {
  int64_t tensors = 0;
  int64_t elements = 0;
};
struct Census {
  DtypeCount f8, bf16, f32;
  int64_t tensors() const { return f8.tensors + bf16.tensors + f32.tensors; }
  int64_t bytes() const { return f8.elements + 2 * bf16.elements + 4 * f32.elements; }
};
Census checkpoint_census(const model::Config& c, bool include_mtp = true);

// Parameter count of a real checkpoint (a folder or one .safetensors file), read from the
// headers only; weight_scale_inv tensors are counted apart.
struct CheckpointCount {
  int64_t tensors = 0;
  int64_t params = 0;  // every tensor except *_scale_inv
  int64_t scale_elements = 0;
  int64_t bytes = 0;       // tensor data bytes
  int64_t mtp_params = 0;  // tensors under model.layers.{num_hidden_layers..}
};
CheckpointCount count_checkpoint(const std::string& path, int64_t num_hidden_layers = -1);

}  // namespace dsv3::accounting
