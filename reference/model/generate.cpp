#include "reference/model/generate.h"

#include <stdexcept>

namespace dsv3::model {

std::vector<int32_t> generate(const Model& m, const std::vector<int32_t>& prompt,
                              const GenerateOptions& opt) {
  if (prompt.empty()) throw std::invalid_argument("generate needs at least one prompt token");
  KVCache cache = m.new_cache(opt.attn);
  ForwardOptions fo;
  fo.trace = opt.trace;
  Rng rng(opt.sampling.seed);
  std::vector<int32_t> out;
  Mat logits = m.forward(prompt, cache, fo);  // prefill
  for (int i = 0; i < opt.max_new_tokens; ++i) {
    auto last = logits.row(logits.rows() - 1);
    int32_t next = sample({last.data(), static_cast<size_t>(last.size())}, opt.sampling, rng);
    out.push_back(next);
    if (opt.on_token && !opt.on_token(next)) break;
    if (next == opt.stop_token || i + 1 == opt.max_new_tokens) break;
    int32_t ids[1] = {next};
    logits = m.forward(ids, cache, fo);  // decode one step
  }
  return out;
}

}  // namespace dsv3::model
