// Trace: the one observation channel. The model fills it when asked (a null pointer costs
// nothing); every front end reads model internals only from here.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "reference/model/router.h"

namespace dsv3::model {

struct LayerTrace {
  int layer = 0;
  bool moe = false;
  int64_t cache_bytes = 0;               // this layer's KV cache after the token, float32 bytes
  int64_t cache_elements_per_token = 0;  // elements cached per token by the active attention form
  RouteResult router;                    // empty for dense layers
  // The correction biases b_i in force when this token was routed (eq. 16): live balancing moves
  // the model's biases later, so a view of this token reads b here, never today's. Empty for
  // dense layers and models without a correction bias (V2). router.biased = router.scores + bias.
  std::vector<float> bias;
  std::vector<std::vector<float>> attn;  // [heads][positions 0..t] softmax weights of this token
};

struct TokenTrace {
  int64_t position = 0;
  int32_t token = 0;                                // the input token at this position
  std::vector<LayerTrace> layers;                   // [num_hidden_layers]
  std::vector<std::pair<int32_t, float>> top_next;  // most probable next tokens (id, probability)
};

struct Trace {
  int top_k = 10;  // how many next-token candidates to record
  std::vector<TokenTrace> tokens;
};

}  // namespace dsv3::model
