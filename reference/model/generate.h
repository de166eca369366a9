// Plain autoregressive decoding: prefill the prompt, then one token per step through the cache.
#pragma once

#include <functional>
#include <vector>

#include "reference/model/model.h"
#include "reference/model/sampling.h"

namespace dsv3::model {

struct GenerateOptions {
  int max_new_tokens = 16;
  SamplingParams sampling;
  AttnImpl attn = AttnImpl::kAbsorbed;
  Trace* trace = nullptr;   // per-token routing and attention, when wanted
  int64_t stop_token = -1;  // e.g. EOS; -1 never stops early
  // Called after each new token with its id; return false to stop (e.g. a key press).
  std::function<bool(int32_t)> on_token;
};

// Returns only the generated ids (prompt excluded).
std::vector<int32_t> generate(const Model& m, const std::vector<int32_t>& prompt,
                              const GenerateOptions& opt);

}  // namespace dsv3::model
