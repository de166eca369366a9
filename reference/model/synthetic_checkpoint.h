// A DeepSeek-V3 checkpoint in the exact layout of the released one, at reduced size (issue 18).
//
// What "exact layout" means here (model_spec §2, §10.2): the Hugging Face tensor names; every
// projection of attention, dense MLPs, routed and shared experts as F8_E4M3 with an F32
// `<name>_scale_inv` of ceil(out/128) x ceil(in/128) blocks (scale = max(amax, 1e-4) / 448 per
// block, codes rounded to nearest even, fp8.md §3.2); embedding, head, RMSNorm weights, router
// gate.weight and MTP eh_proj in BF16; e_score_correction_bias in F32; the MTP module at layer
// index num_hidden_layers with its own (duplicated) embed_tokens and shared_head.head;
// `model.safetensors.index.json` with a weight_map over several `model-0000k-of-0000n`
// shards; config.json = the released config.json with only the sizes changed. The values are
// random (normal, 1/sqrt(in) for projections): the checkpoint exercises loading, memory and
// bandwidth, not language.
#pragma once

#include <cstdint>
#include <string>

#include "reference/model/config.h"

namespace dsv3::model {

struct SyntheticSizes {
  int64_t vocab_size = 1024;
  int64_t hidden_size = 256;
  int64_t intermediate_size = 512;
  int64_t moe_intermediate_size = 128;
  int64_t num_hidden_layers = 5;  // the first 3 dense, as in V3 (first_k_dense_replace)
  int64_t num_attention_heads = 4;
  int64_t q_lora_rank = 192;
  int64_t kv_lora_rank = 128;
  int64_t qk_nope_head_dim = 64;
  int64_t qk_rope_head_dim = 32;
  int64_t v_head_dim = 64;
  int64_t n_routed_experts = 32;  // 8 groups of 4, top-4 groups, 8 experts per token (as V3)
  int shards = 4;
  uint64_t seed = 0;
};

// About the size of the "small" config (hidden 1024, 8 layers of which 3 dense, 32 experts of
// width 256, 8 per token, vocab 32768; 481 MB in FP8 + BF16): the checkpoint bench_weights and
// docs/performance.md measure, and the default of `dsv3 export synthetic-v3`.
SyntheticSizes synthetic_small();

// Writes dir/config.json, dir/model-0000k-of-0000n.safetensors and
// dir/model.safetensors.index.json (creating dir). Returns the bytes written in shards.
// Throws io::FormatError on I/O failure, ConfigError when the sizes make no valid V3 config.
uint64_t write_synthetic_v3(const std::string& dir, const SyntheticSizes& s);

// float32 -> E4M3 "fn" code, round to nearest even, saturating at +-448 (fp8.md §2).
uint8_t to_e4m3(float x);

}  // namespace dsv3::model
