// Figure 4 of the DeepSeek-V3 report: how one forward chunk and one backward chunk are overlapped
// so that the expert-parallel all-to-all (dispatch, combine) and the pipeline send/receive of one
// hide under the computation of the other.
//
// A chunk is a run of transformer blocks; each block is split into ATTN and MLP computation and
// DISPATCH / COMBINE all-to-all communication; the backward computation is further split into
// "backward for input" (Bi) and "backward for weights" (W). Two resources run concurrently: the
// compute stream and the communication stream (which takes `comm_sms` of the GPU's SMs, so
// computation slows by total/(total - comm_sms) while overlapping).
//
// Per window s (forward block s, backward block s counted from the chunk's end), the report's
// arrangement is
//   compute:        MLP_B(s)  MLP_W(s)  MLP_F(s)  ATTN_B(s)  ATTN_W(s)  ATTN_F(s+1)
//   communication:  DISPATCH_F(s)  DISPATCH_B(s)  COMBINE_F(s)  [PP]  COMBINE_B(s+1)
// preceded by ATTN_F(0) alongside COMBINE_B(0). The baseline runs the forward chunk and then the
// backward chunk with every all-to-all blocking the computation.
#pragma once

#include <string>
#include <vector>

#include "reference/model/config.h"

namespace dsv3::pipeline {

// Durations of one transformer block's components (any unit; milliseconds when derived).
struct BlockCosts {
  double attn_f = 0, attn_bi = 0, attn_w = 0;  // attention (MLA) forward, backward input/weights
  double mlp_f = 0, mlp_bi = 0, mlp_w = 0;     // MLP (MoE experts) forward, backward input/weights
  double dispatch_f = 0, combine_f = 0;        // EP all-to-all, forward
  double dispatch_b = 0, combine_b = 0;        // EP all-to-all, backward (gradients)
  double pp = 0;                               // pipeline send/receive of the chunk pair
};

// "attn_f=1,attn_bi=1,...,pp=0.5"; keys as in BlockCosts; throws std::invalid_argument.
BlockCosts parse_block_costs(std::string_view spec, BlockCosts base = {});

// Deriving the costs from a model config.
struct HardwareModel {
  double tokens = 4096;       // tokens per micro-batch
  double seq_len = 4096;      // for the attention score FLOPs (causal: half the positions)
  double tflops = 400;        // sustained GEMM throughput of one GPU, TFLOP/s
  double bandwidth_gbs = 50;  // cross-node all-to-all bandwidth per GPU, GB/s (IB 400 Gb/s)
  double pp_bandwidth_gbs = 50;
  double dispatch_bytes = 1;  // FP8 dispatch (the report quantizes it)
  double combine_bytes = 2;   // BF16 combine
};

// FLOPs per token (forward) of one block, and the bytes per token of each all-to-all.
struct BlockWork {
  double attn_linear_flops = 0;  // MLA projections
  double attn_core_flops = 0;    // QK^T and AV over seq_len/2 positions
  double mlp_flops = 0;          // routed (K_r) + shared experts, or the dense MLP
  double nodes_per_token = 1;    // copies sent across nodes (node-limited routing: topk_group)
};
BlockWork block_work(const model::Config& c, const HardwareModel& hw, bool moe_layer = true);
BlockCosts derive_block_costs(const model::Config& c, const HardwareModel& hw);

struct OverlapSegment {
  std::string name;  // "ATTN_F(0)", "DISPATCH_B(1)", ...
  bool comm = false;
  bool backward = false;
  double start = 0;
  double end = 0;
};

struct OverlapResult {
  std::vector<OverlapSegment> overlapped;  // Figure 4's arrangement
  std::vector<OverlapSegment> serial;      // forward chunk, then backward chunk, nothing hidden
  double overlapped_time = 0;
  double serial_time = 0;
  double compute_time = 0;     // compute stream busy time in the overlapped run (SM-slowed)
  double comm_time = 0;        // communication stream busy time
  double exposed_comm = 0;     // overlapped_time - compute_time: how long compute waited
  double hidden_fraction = 0;  // 1 - exposed / comm
};

OverlapResult simulate_overlap(const BlockCosts& c, int blocks_per_chunk = 1, int total_sms = 132,
                               int comm_sms = 20);

}  // namespace dsv3::pipeline
