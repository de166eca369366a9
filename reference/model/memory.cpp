#include "reference/model/memory.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace dsv3::model {

namespace {

// One decoder layer as alloc_layer lays it out (weights.h).
int64_t layer_floats(const Config& c, bool moe) {
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  int64_t n = 2 * d;  // input_layernorm, post_attention_layernorm
  if (c.q_lora_rank > 0)
    n += c.q_lora_rank * d + c.q_lora_rank + h * c.qk_head_dim() * c.q_lora_rank;
  else
    n += h * c.qk_head_dim() * d;
  n += (c.kv_lora_rank + c.qk_rope_head_dim) * d + c.kv_lora_rank;
  n += h * (c.qk_nope_head_dim + c.v_head_dim) * c.kv_lora_rank + d * h * c.v_head_dim;
  if (moe) {
    n += c.n_routed_experts * d;
    if (c.has_correction_bias()) n += c.n_routed_experts;
    n += c.n_routed_experts * 3 * d * c.moe_intermediate_size;
    if (c.n_shared_experts > 0) n += 3 * d * c.moe_intermediate_size * c.n_shared_experts;
  } else {
    n += 3 * d * c.intermediate_size;
  }
  return n;
}

// The first number of the line starting with `key` in a /proc-style file, or -1.
int64_t read_number_after(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0) continue;
    std::istringstream s(line.substr(key.size()));
    int64_t v = -1;
    if (s >> v) return v;
    return -1;
  }
  return -1;
}

// The cgroup's memory limit in bytes (v2 memory.max, v1 memory.limit_in_bytes), or -1.
int64_t cgroup_limit_bytes() {
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    std::string v;
    if (!(in >> v) || v == "max") continue;
    try {
      const long long n = std::stoll(v);
      if (n > 0 && n < (1LL << 60)) return n;  // v1 writes a huge number for "no limit"
    } catch (const std::exception&) {
    }
  }
  return -1;
}

double gib(int64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
}

}  // namespace

int64_t weight_floats(const Config& c, int64_t mtp_depth) {
  const int64_t d = c.hidden_size;
  int64_t n = 2 * c.vocab_size * d + d;  // embed_tokens, lm_head, norm
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) n += layer_floats(c, c.is_moe_layer(l));
  // Each MTP module: enorm, hnorm, shared_head.norm, eh_proj [d, 2d] and its block (MoE when
  // the model has routed experts).
  n += mtp_depth * (3 * d + 2 * d * d + layer_floats(c, c.n_routed_experts > 0));
  return n;
}

int64_t available_memory_bytes() {
  int64_t avail = -1;
  if (int64_t kb = read_number_after("/proc/meminfo", "MemAvailable:"); kb >= 0) avail = kb * 1024;
  if (avail < 0) {
    const long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && size > 0) avail = static_cast<int64_t>(pages) * size;
  }
  if (int64_t limit = cgroup_limit_bytes(); limit > 0)
    avail = avail < 0 ? limit : std::min(avail, limit);
  return avail;
}

void check_weights_fit(const Config& c, int64_t mtp_depth, int64_t available) {
  if (available < 0) return;
  const int64_t need = 4 * weight_floats(c, mtp_depth);
  if (need <= available) return;
  throw InsufficientMemory(fmt::format(
      "{} needs {:.1f} GiB for its float32 weights; this machine has {:.1f} GiB available",
      c.name.empty() ? std::string("the model") : c.name, gib(need), gib(available)));
}

void check_weights_fit(const Config& c, int64_t mtp_depth) {
  if (const char* env = std::getenv("DSV3_NO_MEMORY_CHECK"); env && std::string(env) == "1") return;
  check_weights_fit(c, mtp_depth, available_memory_bytes());
}

}  // namespace dsv3::model
