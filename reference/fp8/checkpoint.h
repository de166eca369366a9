// Writing a model the way DeepSeek-V3's released checkpoint stores it (model_spec §9, "precision
// rule"): every projection matrix of attention, dense MLPs, routed and shared experts (MTP block
// included) as FP8 E4M3 with a float32 `weight_scale_inv` per 128x128 block; embeddings, output
// head, RMSNorm weights, the router `gate.weight` and MTP `eh_proj` in BF16;
// `e_score_correction_bias` in float32. `config.json` gains the checkpoint's quantization_config.
// The loader (io::Checkpoint::matrix) reads it back as W = float(code) * weight_scale_inv.
#pragma once

#include <string>

#include "reference/model/config.h"
#include "reference/model/weights.h"

namespace dsv3::fp8 {

enum class StoreFormat {
  kF32,   // every tensor float32 (what the trainer writes)
  kBF16,  // every weight BF16, correction biases float32
  kFP8    // the released checkpoint's mix (above)
};
StoreFormat parse_store_format(const std::string& s);  // "f32" | "bf16" | "fp8"; invalid_argument
const char* to_string(StoreFormat f);

// True for the tensors the released checkpoint stores in FP8: "*_proj.weight" and
// "kv_a_proj_with_mqa.weight" of self_attn and mlp (dense, experts, shared experts), never the
// MTP eh_proj.
bool stored_in_fp8(const std::string& name);

// Writes `dir`/config.json and `dir`/model.safetensors (creating dir). Throws io::FormatError on
// I/O failure.
void save_checkpoint(const model::Config& c, const model::ModelWeights& w, StoreFormat f,
                     const std::string& dir);

}  // namespace dsv3::fp8
