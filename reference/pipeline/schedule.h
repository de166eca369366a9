// Pipeline schedules as data: for P ranks and N micro-batches, the exact per-rank order of the
// compute operations (and of the point-to-point sends and receives around them) of GPipe, 1F1B,
// ZB-H1 (the table's "ZB1P"), DualPipe and DualPipeV (DeepSeek-V3 §3.2.1, Fig. 5, Table 2).
//
// Vocabulary (the paper's Table 2 caption):
//   F   forward of one micro-batch through one stage (one chunk),
//   B   full backward (input gradient and weight gradient),
//   Bi  backward for the input only; its weight gradient is deferred to a later W (FIFO),
//   W   the deferred weight gradient ("backward for weights"),
//   FB  a forward of one chunk overlapped with a full backward of another ("F&B").
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::pipeline {

// Bad schedule parameters (constraint violated, unknown name): the message says which and why.
struct ScheduleError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

enum class ScheduleKind { kGPipe, k1F1B, kZB1P, kDualPipe, kDualPipeV };

inline constexpr ScheduleKind kAllSchedules[] = {ScheduleKind::kGPipe, ScheduleKind::k1F1B,
                                                 ScheduleKind::kZB1P, ScheduleKind::kDualPipe,
                                                 ScheduleKind::kDualPipeV};

// "gpipe", "1f1b", "zb1p" (also "zb-h1", "zbh1"), "dualpipe", "dualpipev"; throws ScheduleError.
ScheduleKind parse_schedule_kind(std::string_view name);
std::string_view schedule_id(ScheduleKind k);     // the command-line name: "zb1p"
std::string_view schedule_label(ScheduleKind k);  // the table's name: "ZB1P"

enum class OpKind : uint8_t { kF, kB, kBi, kW, kFB };

// One compute operation on one rank. For F/B/Bi/W, (chunk, mb) names the work; for FB the
// forward part is (chunk, mb) and the backward part (chunk_b, mb_b).
// chunk is the direction for DualPipe (0 flows rank 0 -> P-1), the local chunk for DualPipeV
// (0 = stage r, 1 = stage 2P-1-r), and 0 for the single-chunk schedules.
// mb is counted per direction for DualPipe and over all micro-batches otherwise.
struct Op {
  OpKind kind = OpKind::kF;
  int chunk = 0;
  int mb = 0;
  int chunk_b = 0;
  int mb_b = 0;
  bool operator==(const Op&) const = default;

  bool has_forward() const { return kind == OpKind::kF || kind == OpKind::kFB; }
  // The part that produces an input gradient (B, Bi, or the backward half of FB).
  bool has_backward() const {
    return kind == OpKind::kB || kind == OpKind::kBi || kind == OpKind::kFB;
  }
  int backward_chunk() const { return kind == OpKind::kFB ? chunk_b : chunk; }
  int backward_mb() const { return kind == OpKind::kFB ? mb_b : mb; }
};

// "F0(mb3)", "Bi1(mb2)", "W0(mb1)", "FB(f:0/mb7,b:1/mb3)".
std::string to_token(const Op& op);
// Inverse of to_token; throws ScheduleError on a malformed token.
Op parse_token(std::string_view token);

// Where a micro-batch is: a (rank, local chunk) pair. A stream is the ordered list of stages one
// micro-batch passes through (DualPipe has two streams, one per direction; the others one).
struct Stage {
  int rank = 0;
  int chunk = 0;
  bool operator==(const Stage&) const = default;
};

// A point-to-point message between neighbouring ranks: the activation a stage sends downstream
// or the input gradient it sends upstream. `hop` is the index of the producing stage in its
// stream; the consumer is hop+1 (activation) or hop-1 (gradient).
enum class MsgKind : uint8_t { kActivation, kGradient };
struct Message {
  MsgKind kind = MsgKind::kActivation;
  int stream = 0;
  int mb = 0;
  int hop = 0;
  int src = 0;  // rank
  int dst = 0;  // rank
  bool operator==(const Message&) const = default;
};

// One step of a rank's program: compute, or post a send / receive. Posted operations are issued
// together at the next compute (the official code's _commit_and_wait_comm before each compute).
struct Action {
  enum Type : uint8_t { kCompute, kSend, kRecv } type = kCompute;
  Op op;        // kCompute
  Message msg;  // kSend, kRecv
};

struct Schedule {
  ScheduleKind kind = ScheduleKind::k1F1B;
  int ranks = 0;                              // P: devices
  int micro_batches = 0;                      // N: all micro-batches of the iteration
  int chunks_per_rank = 1;                    // stages (parameter copies) held per rank
  std::vector<std::vector<Stage>> streams;    // [stream][hop]
  int mbs_per_stream = 0;                     // N/2 for DualPipe, N otherwise
  std::vector<std::vector<Action>> programs;  // [rank]: compute and communication, in order
  std::vector<std::vector<Op>> ops;           // [rank]: the compute actions alone

  int stages_per_stream() const { return static_cast<int>(streams.front().size()); }
  // The stream and hop of a (rank, chunk).
  struct Where {
    int stream;
    int hop;
  };
  Where locate(int rank, int chunk) const;
  // "rank R: tok tok ..." lines, one per rank (the `dsv3 pipeline ops` output).
  std::string to_text() const;
};

// Builders. They check the constraints and throw ScheduleError with the reason:
//   all: P >= 1, N >= 1;  DualPipe: P even, N even, N >= 2P;  DualPipeV: N >= 2P.
Schedule build_gpipe(int ranks, int micro_batches);
Schedule build_1f1b(int ranks, int micro_batches);
Schedule build_zb1p(int ranks, int micro_batches);
Schedule build_dualpipe(int ranks, int micro_batches);
Schedule build_dualpipev(int ranks, int micro_batches);
Schedule build_schedule(ScheduleKind kind, int ranks, int micro_batches);
Schedule build_schedule(std::string_view name, int ranks, int micro_batches);

// The constraint check alone: empty when (kind, P, N) is valid, else the reason.
std::string check_constraints(ScheduleKind kind, int ranks, int micro_batches);

// Structural checks (throws std::logic_error naming the rank and op on failure):
//   every micro-batch of every stream gets exactly one forward and one backward (B, FB, or Bi
//   followed later by its W in FIFO order) on every stage it passes, forwards and backwards of a
//   chunk run in micro-batch order, and every send has exactly one matching receive, posted in
//   the same order on both sides of each (src, dst) pair (NCCL pairs point-to-point ops by order).
void verify(const Schedule& s);

}  // namespace dsv3::pipeline
