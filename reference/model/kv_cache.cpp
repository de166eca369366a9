#include "reference/model/kv_cache.h"

#include <algorithm>
#include <stdexcept>

namespace dsv3::model {

const char* to_string(AttnImpl a) {
  return a == AttnImpl::kNaive ? "naive" : "absorbed";
}

AttnImpl parse_attn_impl(const std::string& s) {
  if (s == "naive") return AttnImpl::kNaive;
  if (s == "absorbed") return AttnImpl::kAbsorbed;
  throw std::invalid_argument("attention must be 'naive' or 'absorbed', got '" + s + "'");
}

KVCache::KVCache(const Config& c, AttnImpl impl, int num_layers) : impl_(impl) {
  if (impl == AttnImpl::kAbsorbed) {
    a_cols_ = c.kv_lora_rank;
    b_cols_ = c.qk_rope_head_dim;
  } else {
    a_cols_ = c.num_attention_heads * c.qk_head_dim();
    b_cols_ = c.num_attention_heads * c.v_head_dim;
  }
  layers_.resize(num_layers < 0 ? c.num_hidden_layers : num_layers);
}

void KVCache::reserve_more(int64_t extra) {
  int64_t need = length_ + extra;
  if (need <= capacity_) return;
  int64_t cap = std::max<int64_t>({need, 2 * capacity_, 16});
  for (Layer& l : layers_) {
    Mat a(cap, a_cols_), b(cap, b_cols_);
    if (length_ > 0) {
      a.topRows(length_) = l.a.topRows(length_);
      b.topRows(length_) = l.b.topRows(length_);
    }
    l.a = std::move(a);
    l.b = std::move(b);
  }
  capacity_ = cap;
}

void KVCache::truncate(int64_t len) {
  if (len < 0 || len > length_)
    throw std::out_of_range("KVCache::truncate beyond the cached length");
  length_ = len;  // rows past len are simply overwritten by the next forward
}

int64_t KVCache::elements_per_token_per_layer(const Config& c, AttnImpl impl) {
  if (impl == AttnImpl::kAbsorbed) return c.kv_lora_rank + c.qk_rope_head_dim;
  return c.num_attention_heads * (c.qk_head_dim() + c.v_head_dim);
}

int64_t KVCache::elements_per_token_per_layer() const {
  return a_cols_ + b_cols_;
}

int64_t KVCache::bytes(int bytes_per_element) const {
  return length_ * elements_per_token_per_layer() * num_layers() * bytes_per_element;
}

}  // namespace dsv3::model
