// A fixed, synthetic explorer state for snapshot tests: the tiny config, twelve positions of
// traces built from closed-form logits through the real router, so pictures do not move when
// the model's numerics change.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "reference/model/config.h"
#include "reference/model/router.h"
#include "reference/model/trace.h"
#include "visualizers/explorer_view.h"

namespace dsv3::viz::testing {

struct Fixture {
  model::Config cfg;
  std::vector<model::TokenTrace> traces;
  ExplorerView base;
  // The view, pointing into this fixture (keep the fixture alive while using it).
  ExplorerView view() const {
    ExplorerView v = base;
    v.config = &cfg;
    v.traces = &traces;
    return v;
  }
};

inline Fixture make_fixture(int positions = 12, int cursor = 9) {
  Fixture f;
  f.cfg = model::resolve_config("tiny-random");
  const std::string text = "Hello, MoE! routing";
  std::vector<std::string> pieces{"<BOS>"};
  for (char c : text) pieces.push_back(c == ' ' ? "␣" : std::string(1, c));
  int L = static_cast<int>(f.cfg.num_hidden_layers), E = static_cast<int>(f.cfg.n_routed_experts);
  int H = static_cast<int>(f.cfg.num_attention_heads);
  std::vector<std::vector<float>> bias(L);
  for (int l = 0; l < L; ++l)
    if (f.cfg.is_moe_layer(l))
      for (int e = 0; e < E; ++e)
        bias[l].push_back(0.01f * std::cos(static_cast<float>(e + 3 * l)));
  int64_t per_tok = f.cfg.kv_lora_rank + f.cfg.qk_rope_head_dim;
  for (int t = 0; t < positions; ++t) {
    model::TokenTrace tt;
    tt.position = t;
    tt.token = t == 0 ? 0 : static_cast<int32_t>(static_cast<unsigned char>(text[t - 1])) + 3;
    for (int l = 0; l < L; ++l) {
      model::LayerTrace lt;
      lt.layer = l;
      lt.moe = f.cfg.is_moe_layer(l);
      lt.cache_elements_per_token = per_tok;
      lt.cache_bytes = (t + 1) * per_tok * 4;
      if (lt.moe) {
        std::vector<float> logits(E);
        for (int e = 0; e < E; ++e) logits[e] = std::sin(0.7f * e + 1.3f * t + 0.5f * l);
        lt.router = model::route(f.cfg, logits, bias[l]);
        lt.bias = bias[l];  // the biases in force at this position, as the model records them
      }
      for (int h = 0; h < H; ++h) {
        std::vector<float> w(t + 1);
        float sum = 0;
        for (int p = 0; p <= t; ++p)
          sum += w[p] = std::exp(std::sin(0.9f * p + 1.7f * h + 0.3f * l) * 2.f);
        for (float& x : w) x /= sum;
        lt.attn.push_back(w);
      }
      tt.layers.push_back(std::move(lt));
    }
    float rest = 1.f;
    for (int j = 0; j < 10; ++j) {
      float p = rest * 0.35f;
      rest -= p;
      tt.top_next.emplace_back(static_cast<int32_t>((t * 7 + j * 13) % 90 + 35), p);
    }
    f.traces.push_back(std::move(tt));
  }
  ExplorerView& v = f.base;
  v.model_name = "tiny-random";
  v.weights_note = "random weights, seed 0";  // as Session::view() says for a config
  for (int t = 0; t < positions; ++t) {
    v.token_text.push_back(pieces[t]);
    v.token_ids.push_back(f.traces[t].token);
  }
  v.prompt_len = 8;
  v.cursor = cursor;
  v.layer = 1;
  v.bias = bias;
  v.describe_token = [](int32_t id) {
    if (id < 3) return std::string(id == 0 ? "<BOS>" : id == 1 ? "<EOS>" : "<PAD>");
    char c = static_cast<char>(id - 3);
    return c == ' ' ? std::string("␣") : std::string(1, c);
  };
  return f;
}

}  // namespace dsv3::viz::testing
