// The per-layer attention cache, in either of MLA's two forms (DeepSeek-V2 §2.1, V3 §2.1.1):
//   naive    caches the full per-head keys and values:  H*(d_h + d^R_h) + H*d_v per token;
//   absorbed caches the compressed latent c^{KV} (eq. 1) and the shared RoPE key k^R (eq. 3):
//            d_c + d^R_h per token - only these are needed once W^{UK}, W^{UV} are absorbed.
#pragma once

#include <cstdint>
#include <vector>

#include "reference/model/config.h"
#include "reference/model/tensor.h"

namespace dsv3::model {

enum class AttnImpl { kNaive, kAbsorbed };
const char* to_string(AttnImpl a);
AttnImpl parse_attn_impl(
    const std::string& s);  // "naive" | "absorbed"; throws std::invalid_argument

class KVCache {
 public:
  struct Layer {
    Mat a;  // absorbed: c^{KV} after kv_a_layernorm [cap, d_c];  naive: keys [cap, H*(d_h+d^R_h)]
    Mat b;  // absorbed: RoPE(k^R) [cap, d^R_h];                  naive: values [cap, H*d_v]
  };

  // num_layers < 0 means num_hidden_layers (an MTP module keeps a cache of its own).
  KVCache(const Config& c, AttnImpl impl, int num_layers = -1);

  AttnImpl impl() const { return impl_; }
  int64_t length() const { return length_; }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  Layer& layer(int l) { return layers_[l]; }
  const Layer& layer(int l) const { return layers_[l]; }

  // Makes room for rows [length, length + extra) in every layer.
  void reserve_more(int64_t extra);
  // Marks `n` more positions as filled (after every layer has written them).
  void advance(int64_t n) { length_ += n; }
  // Rolls back to the first `len` positions (speculative decoding on rejection).
  void truncate(int64_t len);

  int64_t elements_per_token_per_layer() const;
  static int64_t elements_per_token_per_layer(const Config& c, AttnImpl impl);
  int64_t bytes(int bytes_per_element = 4) const;  // whole cache, all layers

 private:
  int64_t a_cols_ = 0;
  int64_t b_cols_ = 0;
  AttnImpl impl_;
  int64_t length_ = 0;
  int64_t capacity_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace dsv3::model
