#include "reference/pipeline/schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <map>
#include <stdexcept>
#include <tuple>

namespace dsv3::pipeline {

ScheduleKind parse_schedule_kind(std::string_view name) {
  std::string n;
  for (char c : name) n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n == "gpipe") return ScheduleKind::kGPipe;
  if (n == "1f1b") return ScheduleKind::k1F1B;
  if (n == "zb1p" || n == "zb-h1" || n == "zbh1") return ScheduleKind::kZB1P;
  if (n == "dualpipe") return ScheduleKind::kDualPipe;
  if (n == "dualpipev") return ScheduleKind::kDualPipeV;
  throw ScheduleError(
      fmt::format("unknown schedule '{}' (choose gpipe, 1f1b, zb1p, dualpipe or dualpipev)", name));
}

std::string_view schedule_id(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::kGPipe:
      return "gpipe";
    case ScheduleKind::k1F1B:
      return "1f1b";
    case ScheduleKind::kZB1P:
      return "zb1p";
    case ScheduleKind::kDualPipe:
      return "dualpipe";
    case ScheduleKind::kDualPipeV:
      return "dualpipev";
  }
  return "?";
}

std::string_view schedule_label(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::kGPipe:
      return "GPipe";
    case ScheduleKind::k1F1B:
      return "1F1B";
    case ScheduleKind::kZB1P:
      return "ZB1P";
    case ScheduleKind::kDualPipe:
      return "DualPipe";
    case ScheduleKind::kDualPipeV:
      return "DualPipeV";
  }
  return "?";
}

std::string to_token(const Op& op) {
  switch (op.kind) {
    case OpKind::kF:
      return fmt::format("F{}(mb{})", op.chunk, op.mb);
    case OpKind::kB:
      return fmt::format("B{}(mb{})", op.chunk, op.mb);
    case OpKind::kBi:
      return fmt::format("Bi{}(mb{})", op.chunk, op.mb);
    case OpKind::kW:
      return fmt::format("W{}(mb{})", op.chunk, op.mb);
    case OpKind::kFB:
      return fmt::format("FB(f:{}/mb{},b:{}/mb{})", op.chunk, op.mb, op.chunk_b, op.mb_b);
  }
  return "?";
}

namespace {

// Reads a non-negative integer at s[i...], advancing i.
bool read_int(std::string_view s, size_t& i, int& out) {
  size_t start = i;
  out = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
    out = out * 10 + (s[i++] - '0');
  return i > start;
}

bool expect(std::string_view s, size_t& i, std::string_view lit) {
  if (s.substr(i, lit.size()) != lit) return false;
  i += lit.size();
  return true;
}

}  // namespace

Op parse_token(std::string_view t) {
  Op op;
  size_t i = 0;
  bool ok = true;
  if (expect(t, i, "FB(f:")) {
    op.kind = OpKind::kFB;
    ok = read_int(t, i, op.chunk) && expect(t, i, "/mb") && read_int(t, i, op.mb) &&
         expect(t, i, ",b:") && read_int(t, i, op.chunk_b) && expect(t, i, "/mb") &&
         read_int(t, i, op.mb_b) && expect(t, i, ")");
  } else {
    if (expect(t, i, "Bi"))
      op.kind = OpKind::kBi;
    else if (expect(t, i, "F"))
      op.kind = OpKind::kF;
    else if (expect(t, i, "B"))
      op.kind = OpKind::kB;
    else if (expect(t, i, "W"))
      op.kind = OpKind::kW;
    else
      ok = false;
    ok = ok && read_int(t, i, op.chunk) && expect(t, i, "(mb") && read_int(t, i, op.mb) &&
         expect(t, i, ")");
  }
  if (!ok || i != t.size()) throw ScheduleError(fmt::format("malformed op token '{}'", t));
  return op;
}

Schedule::Where Schedule::locate(int rank, int chunk) const {
  for (int s = 0; s < static_cast<int>(streams.size()); ++s)
    for (int h = 0; h < static_cast<int>(streams[s].size()); ++h)
      if (streams[s][h] == Stage{rank, chunk}) return {s, h};
  throw std::logic_error(fmt::format("rank {} holds no chunk {}", rank, chunk));
}

std::string Schedule::to_text() const {
  std::string out;
  for (int r = 0; r < ranks; ++r) {
    out += fmt::format("rank {}:", r);
    for (const Op& op : ops[r]) out += " " + to_token(op);
    out += '\n';
  }
  return out;
}

std::string check_constraints(ScheduleKind kind, int P, int N) {
  if (P < 1) return fmt::format("--pp must be at least 1 (got {})", P);
  if (N < 1) return fmt::format("--micro-batches must be at least 1 (got {})", N);
  if (kind == ScheduleKind::kDualPipe) {
    if (P < 2 || P % 2 != 0)
      return fmt::format("DualPipe needs an even number of ranks, at least 2 (got --pp {})", P);
    if (N % 2 != 0)
      return fmt::format(
          "DualPipe splits the micro-batches between two directions, so N must be even (got {})",
          N);
    if (N < 2 * P)
      return fmt::format(
          "DualPipe needs N >= 2P micro-batches (N/2 >= P per direction): got N={} for P={}, "
          "use at least {}",
          N, P, 2 * P);
  }
  if (kind == ScheduleKind::kDualPipeV && N < 2 * P)
    return fmt::format("DualPipeV needs N >= 2P micro-batches: got N={} for P={}, use at least {}",
                       N, P, 2 * P);
  return {};
}

namespace {

void require(ScheduleKind kind, int P, int N) {
  std::string why = check_constraints(kind, P, N);
  if (!why.empty()) throw ScheduleError(why);
}

Schedule skeleton(ScheduleKind kind, int P, int N) {
  require(kind, P, N);
  Schedule s;
  s.kind = kind;
  s.ranks = P;
  s.micro_batches = N;
  s.programs.resize(P);
  s.ops.resize(P);
  return s;
}

// Single-chunk schedules: one stream over ranks 0..P-1.
Schedule single_chunk(ScheduleKind kind, int P, int N) {
  Schedule s = skeleton(kind, P, N);
  s.chunks_per_rank = 1;
  s.mbs_per_stream = N;
  s.streams.resize(1);
  for (int r = 0; r < P; ++r) s.streams[0].push_back({r, 0});
  return s;
}

// Surrounds the compute ops of a single-chunk schedule with the communication a Megatron-style
// runtime posts: receive the input right before the compute, send the output right after.
void add_simple_comm(Schedule& s) {
  for (int r = 0; r < s.ranks; ++r) {
    auto& prog = s.programs[r];
    prog.clear();
    for (const Op& op : s.ops[r]) {
      auto [stream, hop] = s.locate(r, op.chunk);
      bool first = hop == 0, last = hop + 1 == s.stages_per_stream();
      if (op.kind == OpKind::kF && !first)
        prog.push_back(
            {Action::kRecv, {}, {MsgKind::kActivation, stream, op.mb, hop - 1, r - 1, r}});
      if ((op.kind == OpKind::kB || op.kind == OpKind::kBi) && !last)
        prog.push_back({Action::kRecv, {}, {MsgKind::kGradient, stream, op.mb, hop + 1, r + 1, r}});
      prog.push_back({Action::kCompute, op, {}});
      if (op.kind == OpKind::kF && !last)
        prog.push_back({Action::kSend, {}, {MsgKind::kActivation, stream, op.mb, hop, r, r + 1}});
      if ((op.kind == OpKind::kB || op.kind == OpKind::kBi) && !first)
        prog.push_back({Action::kSend, {}, {MsgKind::kGradient, stream, op.mb, hop, r, r - 1}});
    }
  }
}

Op make(OpKind k, int chunk, int mb) {
  return Op{k, chunk, mb, 0, 0};
}

}  // namespace

// GPipe (fill-drain): all forwards, then all backwards in ascending order.
Schedule build_gpipe(int P, int N) {
  Schedule s = single_chunk(ScheduleKind::kGPipe, P, N);
  for (int r = 0; r < P; ++r) {
    for (int j = 0; j < N; ++j) s.ops[r].push_back(make(OpKind::kF, 0, j));
    for (int j = 0; j < N; ++j) s.ops[r].push_back(make(OpKind::kB, 0, j));
  }
  add_simple_comm(s);
  return s;
}

// 1F1B (PipeDream-flush): at step x, F_x then B_{x-(P-1-r)}, ids outside [0, N) skipped.
Schedule build_1f1b(int P, int N) {
  Schedule s = single_chunk(ScheduleKind::k1F1B, P, N);
  for (int r = 0; r < P; ++r)
    for (int x = 0; x <= N + P - 2; ++x) {
      if (x < N) s.ops[r].push_back(make(OpKind::kF, 0, x));
      int b = x - (P - 1 - r);
      if (b >= 0 && b < N) s.ops[r].push_back(make(OpKind::kB, 0, b));
    }
  add_simple_comm(s);
  return s;
}

// ZB-H1, the handcrafted zero-bubble schedule with 1F1B's memory (Qi et al. 2024): at step x,
// F_x, Bi_{x-(P-1-r)}, W_{x-(P-1)}; rank r thus runs each W r micro-batches after its Bi.
Schedule build_zb1p(int P, int N) {
  Schedule s = single_chunk(ScheduleKind::kZB1P, P, N);
  for (int r = 0; r < P; ++r)
    for (int x = 0; x <= N + P - 2; ++x) {
      if (x < N) s.ops[r].push_back(make(OpKind::kF, 0, x));
      int b = x - (P - 1 - r);
      if (b >= 0 && b < N) s.ops[r].push_back(make(OpKind::kBi, 0, b));
      int w = x - (P - 1);
      if (w >= 0 && w < N) s.ops[r].push_back(make(OpKind::kW, 0, w));
    }
  add_simple_comm(s);
  return s;
}

namespace {

// One rank's program for DualPipe / DualPipeV, written as the official DualPipe.step() and
// DualPipeV.step() are: the same helpers (_forward_chunk, _backward_chunk, ...) posting the same
// receives and sends in the same places, so that both the compute order and the communication
// order are replayed exactly.
class RankProgram {
 public:
  RankProgram(Schedule& s, int rank, bool flip) : s_(s), rank_(rank), flip_(flip) {}

  // Local phase 0 = near chunk, 1 = far chunk; DualPipe mirrors the second half of the ranks.
  int chunk_of(int phase) const { return phase ^ (flip_ ? 1 : 0); }

  void recv_forward(int phase) {
    int c = chunk_of(phase);
    auto [stream, hop] = s_.locate(rank_, c);
    if (hop == 0) return;
    const Stage& prev = s_.streams[stream][hop - 1];
    if (prev.rank == rank_) return;  // DualPipeV's turn on the last rank is a local copy
    prog().push_back({Action::kRecv,
                      {},
                      {MsgKind::kActivation, stream, recv_f_[c]++, hop - 1, prev.rank, rank_}});
  }
  void send_forward(int phase) {
    int c = chunk_of(phase);
    auto [stream, hop] = s_.locate(rank_, c);
    if (hop + 1 == s_.stages_per_stream()) return;
    const Stage& next = s_.streams[stream][hop + 1];
    if (next.rank == rank_) return;
    prog().push_back(
        {Action::kSend, {}, {MsgKind::kActivation, stream, send_f_[c]++, hop, rank_, next.rank}});
  }
  void recv_backward(int phase) {
    int c = chunk_of(phase);
    auto [stream, hop] = s_.locate(rank_, c);
    if (hop + 1 == s_.stages_per_stream()) return;
    const Stage& next = s_.streams[stream][hop + 1];
    if (next.rank == rank_) return;
    prog().push_back(
        {Action::kRecv, {}, {MsgKind::kGradient, stream, recv_b_[c]++, hop + 1, next.rank, rank_}});
  }
  void send_backward(int phase) {
    int c = chunk_of(phase);
    auto [stream, hop] = s_.locate(rank_, c);
    if (hop == 0) return;
    const Stage& prev = s_.streams[stream][hop - 1];
    if (prev.rank == rank_) return;
    prog().push_back(
        {Action::kSend, {}, {MsgKind::kGradient, stream, send_b_[c]++, hop, rank_, prev.rank}});
  }

  void forward_chunk(int phase, bool recv = true, bool send = true) {
    if (recv) recv_forward(phase);
    compute(make(OpKind::kF, chunk_of(phase), f_id_[chunk_of(phase)]++));
    if (send) send_forward(phase);
  }
  void backward_chunk(int phase, bool enable_zb = false, bool recv = true, bool send = true) {
    if (recv) recv_backward(phase);
    int c = chunk_of(phase);
    Op op = make(enable_zb ? OpKind::kBi : OpKind::kB, c, b_id_[c]++);
    if (enable_zb) weight_queue_.push_back(op);  // WeightGradStore.flush(): one FIFO entry
    compute(op);
    if (send) send_backward(phase);
  }
  void forward_backward_chunk(int phase0, int phase1, bool recv0 = true) {
    if (recv0) recv_forward(phase0);
    recv_backward(phase1);
    int c0 = chunk_of(phase0), c1 = chunk_of(phase1);
    compute(Op{OpKind::kFB, c0, f_id_[c0]++, c1, b_id_[c1]++});
    send_forward(phase0);
    send_backward(phase1);
  }
  void weight_chunk() {
    if (weight_queue_.empty())
      throw std::logic_error(fmt::format("rank {}: W with no pending Bi", rank_));
    Op bi = weight_queue_.front();  // WeightGradStore.pop(): the oldest entry
    weight_queue_.pop_front();
    compute(make(OpKind::kW, bi.chunk, bi.mb));
  }
  bool weights_drained() const { return weight_queue_.empty(); }

 private:
  std::vector<Action>& prog() { return s_.programs[rank_]; }
  void compute(const Op& op) {
    prog().push_back({Action::kCompute, op, {}});
    s_.ops[rank_].push_back(op);
  }

  Schedule& s_;
  int rank_;
  bool flip_;
  int f_id_[2] = {0, 0}, b_id_[2] = {0, 0};
  int recv_f_[2] = {0, 0}, send_f_[2] = {0, 0}, recv_b_[2] = {0, 0}, send_b_[2] = {0, 0};
  std::deque<Op> weight_queue_;
};

// The eight steps shared by DualPipe.step() and DualPipeV.step().
//   H: half ranks (DualPipe) or ranks (DualPipeV); h: half rank or rank;
//   M: micro-batches per direction (DualPipe) or all (DualPipeV);
//   special: the rank whose first main-step pair is not overlapped (DualPipe: the two middle
//   ranks; DualPipeV: the last rank); v: DualPipeV's step-2 send rule.
void eight_steps(RankProgram& p, int H, int h, int M, bool special, bool v) {
  // Step 1 (nF0): cover the wait for the first far-chunk micro-batch, which reaches this rank
  // only after travelling through the 2H-1-h stages before it.
  for (int i = 0; i < 2 * (H - h - 1); ++i) p.forward_chunk(0);

  // Step 2 (nF0F1): alternate near and far forwards. The receive for the next near forward is
  // posted early, so it is committed together with the far forward's.
  int step_2 = h + 1;
  p.recv_forward(0);
  for (int i = 0; i < step_2; ++i) {
    p.forward_chunk(0, /*recv=*/false, /*send=*/!v && special);
    p.recv_forward(0);
    p.forward_chunk(1, /*recv=*/true, /*send=*/!special || i < step_2 - 1);
    if (v || !special) p.send_forward(0);
  }

  // Step 3 (nB1W1F1): zero bubble: the input gradient goes upstream at once, W fills the hole.
  for (int i = 0; i < H - h - 1; ++i) {
    p.backward_chunk(1, /*enable_zb=*/true);
    p.recv_forward(1);
    p.weight_chunk();
    p.forward_chunk(1, /*recv=*/false);
  }

  // Step 4 (nF0B1F1B0), the main step: two overlapped forward-backward pairs per iteration.
  int step_4 = M - 2 * H + h + 1;
  for (int i = 0; i < step_4; ++i) {
    if (i == 0) {
      if (special) {
        // The official code does not overlap this pair, to shorten the bubble further.
        p.forward_chunk(0, /*recv=*/false, /*send=*/false);
        p.send_forward(1);
        p.backward_chunk(1, /*enable_zb=*/false, /*recv=*/true, /*send=*/false);
        p.send_forward(0);
        p.send_backward(1);
      } else {
        p.forward_backward_chunk(0, 1, /*recv0=*/false);
      }
    } else {
      p.forward_backward_chunk(0, 1);
    }
    p.forward_backward_chunk(1, 0);
  }

  // Step 5 (nB1F1B0).
  for (int i = 0; i < H - h - 1; ++i) {
    p.backward_chunk(1);
    p.forward_backward_chunk(1, 0);
  }

  // Step 6 (nB1B0): the second half of these backwards defers its weight gradients.
  int step_6 = h + 1;
  bool enable_zb = false;
  for (int i = 0; i < step_6; ++i) {
    if (i == step_6 / 2 && h % 2 == 1) enable_zb = true;
    p.backward_chunk(1, enable_zb);
    if (i == step_6 / 2 && h % 2 == 0) enable_zb = true;
    p.backward_chunk(0, enable_zb);
  }

  // Step 7 (nWB0).
  for (int i = 0; i < H - h - 1; ++i) {
    p.weight_chunk();
    p.backward_chunk(0, /*enable_zb=*/true);
  }

  // Step 8 (nW): drain the weight-gradient FIFO.
  for (int i = 0; i < h + 1; ++i) p.weight_chunk();
  if (!p.weights_drained()) throw std::logic_error("weight-gradient queue not empty at the end");
}

}  // namespace

Schedule build_dualpipe(int P, int N) {
  Schedule s = skeleton(ScheduleKind::kDualPipe, P, N);
  s.chunks_per_rank = 2;
  s.mbs_per_stream = N / 2;
  // Direction 0 enters at rank 0, direction 1 at rank P-1; on every rank chunk = direction.
  s.streams.resize(2);
  for (int r = 0; r < P; ++r) s.streams[0].push_back({r, 0});
  for (int r = P - 1; r >= 0; --r) s.streams[1].push_back({r, 1});
  int H = P / 2;
  for (int r = 0; r < P; ++r) {
    int h = std::min(r, P - 1 - r);
    RankProgram prog(s, r, /*flip=*/r >= H);
    eight_steps(prog, H, h, N / 2, /*special=*/h == H - 1, /*v=*/false);
  }
  return s;
}

Schedule build_dualpipev(int P, int N) {
  Schedule s = skeleton(ScheduleKind::kDualPipeV, P, N);
  s.chunks_per_rank = 2;
  s.mbs_per_stream = N;
  // One stream of 2P stages: down through chunk 0, back up through chunk 1.
  s.streams.resize(1);
  for (int r = 0; r < P; ++r) s.streams[0].push_back({r, 0});
  for (int r = P - 1; r >= 0; --r) s.streams[0].push_back({r, 1});
  for (int r = 0; r < P; ++r) {
    RankProgram prog(s, r, /*flip=*/false);
    eight_steps(prog, P, r, N, /*special=*/r == P - 1, /*v=*/true);
  }
  return s;
}

Schedule build_schedule(ScheduleKind kind, int P, int N) {
  switch (kind) {
    case ScheduleKind::kGPipe:
      return build_gpipe(P, N);
    case ScheduleKind::k1F1B:
      return build_1f1b(P, N);
    case ScheduleKind::kZB1P:
      return build_zb1p(P, N);
    case ScheduleKind::kDualPipe:
      return build_dualpipe(P, N);
    case ScheduleKind::kDualPipeV:
      return build_dualpipev(P, N);
  }
  throw ScheduleError("unknown schedule kind");
}

Schedule build_schedule(std::string_view name, int P, int N) {
  return build_schedule(parse_schedule_kind(name), P, N);
}

void verify(const Schedule& s) {
  auto fail = [](int rank, const std::string& what) {
    throw std::logic_error(fmt::format("rank {}: {}", rank, what));
  };
  int S = static_cast<int>(s.streams.size()), K = s.stages_per_stream(), M = s.mbs_per_stream;
  // counts[stream][mb][hop]: forwards, backwards (input grad), weight grads.
  std::vector<int> fwd(S * M * K, 0), bwd(S * M * K, 0), wgt(S * M * K, 0);
  auto idx = [&](int st, int mb, int hop) { return (st * M + mb) * K + hop; };
  for (int r = 0; r < s.ranks; ++r) {
    std::map<int, int> next_f, next_b;  // per chunk: the next micro-batch expected
    std::deque<Op> pending;
    for (const Op& op : s.ops[r]) {
      std::string tok = to_token(op);
      if (op.mb < 0 || op.mb >= M || (op.kind == OpKind::kFB && (op.mb_b < 0 || op.mb_b >= M)))
        fail(r, tok + ": micro-batch out of range");
      if (op.has_forward()) {
        auto [st, hop] = s.locate(r, op.chunk);
        if (op.mb != next_f[op.chunk]++) fail(r, tok + ": forward out of micro-batch order");
        if (fwd[idx(st, op.mb, hop)]++) fail(r, tok + ": second forward");
      }
      if (op.has_backward()) {
        int c = op.backward_chunk(), mb = op.backward_mb();
        auto [st, hop] = s.locate(r, c);
        if (mb != next_b[c]++) fail(r, tok + ": backward out of micro-batch order");
        if (!fwd[idx(st, mb, hop)]) fail(r, tok + ": backward before its forward");
        if (bwd[idx(st, mb, hop)]++) fail(r, tok + ": second backward");
        if (op.kind == OpKind::kBi) pending.push_back(op);
      }
      if (op.kind == OpKind::kW) {
        if (pending.empty() || pending.front().chunk != op.chunk || pending.front().mb != op.mb)
          fail(r, tok + ": W not in FIFO order of the Bi ops");
        pending.pop_front();
        auto [st, hop] = s.locate(r, op.chunk);
        wgt[idx(st, op.mb, hop)]++;
      }
    }
    if (!pending.empty()) fail(r, "Bi without a W: " + to_token(pending.front()));
  }
  for (int st = 0; st < S; ++st)
    for (int mb = 0; mb < M; ++mb)
      for (int hop = 0; hop < K; ++hop) {
        int r = s.streams[st][hop].rank;
        if (fwd[idx(st, mb, hop)] != 1 || bwd[idx(st, mb, hop)] != 1)
          fail(r, fmt::format("stream {} micro-batch {} stage {}: {} forwards, {} backwards", st,
                              mb, hop, fwd[idx(st, mb, hop)], bwd[idx(st, mb, hop)]));
      }

  // Sends and receives pair up, in the same order per (src, dst).
  std::map<std::pair<int, int>, std::vector<Message>> sends, recvs;
  for (int r = 0; r < s.ranks; ++r)
    for (const Action& a : s.programs[r]) {
      if (a.type == Action::kSend) {
        if (a.msg.src != r) fail(r, "send from another rank");
        sends[{a.msg.src, a.msg.dst}].push_back(a.msg);
      } else if (a.type == Action::kRecv) {
        if (a.msg.dst != r) fail(r, "receive for another rank");
        recvs[{a.msg.src, a.msg.dst}].push_back(a.msg);
      }
    }
  if (sends.size() != recvs.size()) fail(0, "a rank pair has sends but no receives");
  for (const auto& [pair, list] : sends) {
    auto it = recvs.find(pair);
    if (it == recvs.end() || it->second != list)
      fail(pair.first,
           fmt::format("sends to rank {} do not match its receives in order", pair.second));
  }
}

}  // namespace dsv3::pipeline
