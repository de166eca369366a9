#include "reference/pipeline/overlap.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <stdexcept>

namespace dsv3::pipeline {

BlockCosts parse_block_costs(std::string_view spec, BlockCosts c) {
  std::map<std::string, double*> fields = {{"attn_f", &c.attn_f},
                                           {"attn_bi", &c.attn_bi},
                                           {"attn_w", &c.attn_w},
                                           {"mlp_f", &c.mlp_f},
                                           {"mlp_bi", &c.mlp_bi},
                                           {"mlp_w", &c.mlp_w},
                                           {"dispatch_f", &c.dispatch_f},
                                           {"combine_f", &c.combine_f},
                                           {"dispatch_b", &c.dispatch_b},
                                           {"combine_b", &c.combine_b},
                                           {"pp", &c.pp}};
  size_t pos = 0;
  while (pos < spec.size()) {
    size_t comma = spec.find(',', pos);
    if (comma == std::string_view::npos) comma = spec.size();
    std::string_view item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      throw std::invalid_argument(fmt::format("cost item '{}' is not KEY=VALUE", item));
    std::string key(item.substr(0, eq));
    std::string_view val = item.substr(eq + 1);
    auto it = fields.find(key);
    if (it == fields.end())
      throw std::invalid_argument(fmt::format(
          "unknown component '{}' (attn_f, attn_bi, attn_w, mlp_f, mlp_bi, mlp_w, dispatch_f, "
          "combine_f, dispatch_b, combine_b, pp)",
          key));
    double v = 0;
    auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), v);
    if (ec != std::errc() || p != val.data() + val.size() || !(v >= 0) || !std::isfinite(v))
      throw std::invalid_argument(
          fmt::format("component '{}': '{}' is not a non-negative number", key, val));
    *it->second = v;
  }
  return c;
}

BlockWork block_work(const model::Config& c, const HardwareModel& hw, bool moe_layer) {
  BlockWork w;
  const double d = static_cast<double>(c.hidden_size),
               nh = static_cast<double>(c.num_attention_heads);
  const double qk = static_cast<double>(c.qk_head_dim()), v = static_cast<double>(c.v_head_dim);
  // MLA projections (model_spec §4): W^DQ, W^UQ (+ W^QR), W^DKV + W^KR, W^UK/W^UV, W^O.
  double q_params = c.q_lora_rank > 0
                        ? d * c.q_lora_rank + static_cast<double>(c.q_lora_rank) * nh * qk
                        : d * nh * qk;
  double kv_params = d * (c.kv_lora_rank + c.qk_rope_head_dim) +
                     static_cast<double>(c.kv_lora_rank) * nh * (c.qk_nope_head_dim + v);
  double o_params = nh * v * d;
  w.attn_linear_flops = 2 * (q_params + kv_params + o_params);
  // Scores and weighted values over the causal half of the sequence.
  w.attn_core_flops = 2 * nh * (qk + v) * (hw.seq_len / 2);
  if (moe_layer && c.n_routed_experts > 0) {
    double experts = static_cast<double>(c.num_experts_per_tok + c.n_shared_experts);
    w.mlp_flops = experts * 3 * 2 * d * static_cast<double>(c.moe_intermediate_size) +
                  2 * d * static_cast<double>(c.n_routed_experts);  // + the gate
    // Node-limited routing (§2.1.2): a token reaches at most topk_group nodes, one copy each.
    w.nodes_per_token =
        static_cast<double>(std::max<int64_t>(1, std::min(c.topk_group, c.num_experts_per_tok)));
  } else {
    w.mlp_flops = 3 * 2 * d * static_cast<double>(c.intermediate_size);
    w.nodes_per_token = 0;
  }
  return w;
}

BlockCosts derive_block_costs(const model::Config& c, const HardwareModel& hw) {
  BlockWork w = block_work(c, hw, true);
  const double ms_per_flop = 1e3 / (hw.tflops * 1e12);
  const double ms_per_byte = 1e3 / (hw.bandwidth_gbs * 1e9);
  const double T = hw.tokens, d = static_cast<double>(c.hidden_size);
  BlockCosts b;
  // Linear layers: the input gradient and the weight gradient each cost one forward.
  b.attn_f = T * (w.attn_linear_flops + w.attn_core_flops) * ms_per_flop;
  b.attn_bi = T * (w.attn_linear_flops + 2 * w.attn_core_flops) * ms_per_flop;
  b.attn_w = T * w.attn_linear_flops * ms_per_flop;
  b.mlp_f = b.mlp_bi = b.mlp_w = T * w.mlp_flops * ms_per_flop;
  const double copies = T * w.nodes_per_token * d;
  b.dispatch_f = copies * hw.dispatch_bytes * ms_per_byte;
  b.combine_f = copies * hw.combine_bytes * ms_per_byte;
  // Backward: the gradient entering the experts is FP8 like the forward dispatch; the one
  // returning from them is BF16 like the forward combine (§3.3.2).
  b.combine_b = copies * hw.dispatch_bytes * ms_per_byte;
  b.dispatch_b = copies * hw.combine_bytes * ms_per_byte;
  // One activation forward and one gradient backward, BF16.
  b.pp = 2 * T * d * 2 * 1e3 / (hw.pp_bandwidth_gbs * 1e9);
  return b;
}

namespace {

// A tiny two-stream list scheduler: each stream runs its ops in the given order; an op starts
// when its stream is free and every op it depends on has ended.
struct Task {
  std::string name;
  bool comm;
  bool backward;
  double dur;
  std::vector<std::string> deps;
};

std::vector<OverlapSegment> run_streams(const std::vector<Task>& compute,
                                        const std::vector<Task>& comm) {
  std::map<std::string, double> done;
  std::vector<OverlapSegment> out;
  size_t ic = 0, im = 0;
  double free_c = 0, free_m = 0;
  auto ready = [&](const Task& t, double free_at, double& start) {
    start = free_at;
    for (const auto& d : t.deps) {
      auto it = done.find(d);
      if (it == done.end()) return false;
      start = std::max(start, it->second);
    }
    return true;
  };
  while (ic < compute.size() || im < comm.size()) {
    bool progress = false;
    double s = 0;
    if (ic < compute.size() && ready(compute[ic], free_c, s)) {
      const Task& t = compute[ic++];
      out.push_back({t.name, false, t.backward, s, s + t.dur});
      done[t.name] = free_c = s + t.dur;
      progress = true;
    }
    if (im < comm.size() && ready(comm[im], free_m, s)) {
      const Task& t = comm[im++];
      out.push_back({t.name, true, t.backward, s, s + t.dur});
      done[t.name] = free_m = s + t.dur;
      progress = true;
    }
    if (!progress) throw std::logic_error("overlap schedule deadlocks");
  }
  return out;
}

std::string nm(const char* what, int i) {
  return fmt::format("{}({})", what, i);
}

}  // namespace

OverlapResult simulate_overlap(const BlockCosts& c, int L, int total_sms, int comm_sms) {
  if (L < 1) throw std::invalid_argument("blocks per chunk must be at least 1");
  if (total_sms < 1 || comm_sms < 0 || comm_sms >= total_sms)
    throw std::invalid_argument(fmt::format(
        "communication SMs ({}) must be fewer than the GPU's SMs ({})", comm_sms, total_sms));
  // While the all-to-all kernels hold comm_sms SMs, the GEMMs get the rest.
  const double slow = static_cast<double>(total_sms) / (total_sms - comm_sms);

  // Data dependencies of the forward chunk (block i) and of the backward chunk (block j,
  // counted from the chunk's output end).
  auto attn_f = [&](int i, double k) {
    return Task{
        nm("ATTN_F", i), false, false, c.attn_f * k,
        i > 0 ? std::vector<std::string>{nm("COMBINE_F", i - 1)} : std::vector<std::string>{}};
  };
  auto dispatch_f = [&](int i) {
    return Task{nm("DISPATCH_F", i), true, false, c.dispatch_f, {nm("ATTN_F", i)}};
  };
  auto mlp_f = [&](int i, double k) {
    return Task{nm("MLP_F", i), false, false, c.mlp_f * k, {nm("DISPATCH_F", i)}};
  };
  auto combine_f = [&](int i) {
    return Task{nm("COMBINE_F", i), true, false, c.combine_f, {nm("MLP_F", i)}};
  };
  auto combine_b = [&](int j) {
    return Task{nm("COMBINE_B", j), true, true, c.combine_b,
                j > 0 ? std::vector<std::string>{nm("ATTN_B", j - 1)} : std::vector<std::string>{}};
  };
  auto mlp_b = [&](int j, double k) {
    return Task{nm("MLP_B", j), false, true, c.mlp_bi * k, {nm("COMBINE_B", j)}};
  };
  auto mlp_w = [&](int j, double k) {
    return Task{nm("MLP_W", j), false, true, c.mlp_w * k, {nm("COMBINE_B", j)}};
  };
  auto dispatch_b = [&](int j) {
    return Task{nm("DISPATCH_B", j), true, true, c.dispatch_b, {nm("MLP_B", j)}};
  };
  auto attn_b = [&](int j, double k) {
    return Task{nm("ATTN_B", j), false, true, c.attn_bi * k, {nm("DISPATCH_B", j)}};
  };
  auto attn_w = [&](int j, double k) {
    return Task{nm("ATTN_W", j), false, true, c.attn_w * k, {nm("DISPATCH_B", j)}};
  };
  Task pp{"PP", true, false, c.pp, {nm("COMBINE_F", L - 1), nm("ATTN_B", L - 1)}};

  OverlapResult r;
  // Figure 4's interleaving.
  std::vector<Task> comp, comm;
  comp.push_back(attn_f(0, slow));
  comm.push_back(combine_b(0));
  for (int s = 0; s < L; ++s) {
    comp.push_back(mlp_b(s, slow));
    comp.push_back(mlp_w(s, slow));
    comp.push_back(mlp_f(s, slow));
    comp.push_back(attn_b(s, slow));
    comp.push_back(attn_w(s, slow));
    if (s + 1 < L) comp.push_back(attn_f(s + 1, slow));
    comm.push_back(dispatch_f(s));
    comm.push_back(dispatch_b(s));
    comm.push_back(combine_f(s));
    if (s + 1 < L) comm.push_back(combine_b(s + 1));
  }
  comm.push_back(pp);
  r.overlapped = run_streams(comp, comm);

  // Baseline: one stream, forward chunk then backward chunk, all-to-all blocking.
  std::vector<Task> serial;
  for (int i = 0; i < L; ++i) {
    serial.push_back(attn_f(i, 1));
    serial.push_back(dispatch_f(i));
    serial.push_back(mlp_f(i, 1));
    serial.push_back(combine_f(i));
  }
  for (int j = 0; j < L; ++j) {
    serial.push_back(combine_b(j));
    serial.push_back(mlp_b(j, 1));
    serial.push_back(mlp_w(j, 1));
    serial.push_back(dispatch_b(j));
    serial.push_back(attn_b(j, 1));
    serial.push_back(attn_w(j, 1));
  }
  serial.push_back(pp);
  double t = 0;
  for (const Task& k : serial) {
    r.serial.push_back({k.name, k.comm, k.backward, t, t + k.dur});
    t += k.dur;
  }
  r.serial_time = t;

  for (const auto& s : r.overlapped) {
    r.overlapped_time = std::max(r.overlapped_time, s.end);
    (s.comm ? r.comm_time : r.compute_time) += s.end - s.start;
  }
  r.exposed_comm = r.overlapped_time - r.compute_time;
  r.hidden_fraction = r.comm_time > 0 ? 1 - r.exposed_comm / r.comm_time : 1;
  if (r.hidden_fraction < 0) r.hidden_fraction = 0;
  return r;
}

}  // namespace dsv3::pipeline
