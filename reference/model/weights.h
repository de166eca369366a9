// Model weights in the Hugging Face checkpoint layout, dequantized to float32.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "reference/model/config.h"
#include "reference/model/tensor.h"

namespace dsv3::model {

struct FfnWeights {  // SwiGLU: down( silu(gate x) * (up x) )
  Mat gate_proj;     // [inter, d]   (official w1)
  Mat up_proj;       // [inter, d]   (official w3)
  Mat down_proj;     // [d, inter]   (official w2)
};

struct MoeWeights {
  Mat gate;                          // router e_i as rows                [N_r, d]
  Vec e_score_correction_bias;       // b_i (empty when the config has none) [N_r]
  std::vector<FfnWeights> experts;   // routed experts                    N_r x
  std::optional<FfnWeights> shared;  // all shared experts fused, inter = N_s * moe_inter
};

struct AttentionWeights {
  // Query path: low-rank (q_a_proj, q_a_layernorm, q_b_proj) or plain q_proj (q_lora_rank null).
  Mat q_a_proj;            // W^{DQ}  [d'_c, d]
  Vec q_a_layernorm;       //         [d'_c]
  Mat q_b_proj;            // [W^{UQ}; W^{QR}] per head  [H*(d_h+d^R_h), d'_c]
  Mat q_proj;              // V2-Lite  [H*(d_h+d^R_h), d]
  Mat kv_a_proj_with_mqa;  // [W^{DKV}; W^{KR}]  [d_c + d^R_h, d]
  Vec kv_a_layernorm;      //                   [d_c]
  Mat kv_b_proj;           // [W^{UK}; W^{UV}] per head  [H*(d_h+d_v), d_c]
  Mat o_proj;              // W^O  [d, H*d_v]
};

struct LayerWeights {
  Vec input_layernorm;  // [d]
  AttentionWeights attn;
  Vec post_attention_layernorm;     // [d]
  std::optional<FfnWeights> dense;  // first_k_dense_replace layers
  std::optional<MoeWeights> moe;    // the rest
};

struct MtpWeights {      // one MTP module (eq. 21-23), stored at layer index num_hidden_layers + k
  Vec enorm;             // RMSNorm of the embedding   [d]
  Vec hnorm;             // RMSNorm of the hidden state [d]
  Mat eh_proj;           // M_k  [d, 2d], input columns [embedding; hidden]
  LayerWeights block;    // TRM_k
  Vec shared_head_norm;  // [d]
};

struct ModelWeights {
  Mat embed_tokens;  // [V, d]
  std::vector<LayerWeights> layers;
  Vec norm;                     // [d]
  Mat lm_head;                  // [V, d]
  std::vector<MtpWeights> mtp;  // empty when the checkpoint has no MTP module
};

// Deterministic random weights for a config (normal(0, 0.02) matrices, unit norms,
// small random correction biases), the same for the same seed on every machine.
ModelWeights random_weights(const Config& c, uint64_t seed);

// Loads a checkpoint folder (model.safetensors or a sharded index); FP8 weights are
// dequantized with their weight_scale_inv blocks. Throws io::FormatError naming the tensor.
ModelWeights load_weights(const Config& c, const std::string& dir);

// Writes weights in checkpoint naming (float32), e.g. for `dsv3 export-weights` and tests.
void save_weights(const Config& c, const ModelWeights& w, const std::string& path);

}  // namespace dsv3::model
