#include "reference/pipeline/simulator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace dsv3::pipeline {

double Costs::duration(OpKind k) const {
  switch (k) {
    case OpKind::kF:
      return f;
    case OpKind::kB:
      return b;
    case OpKind::kBi:
      return bi();
    case OpKind::kW:
      return w;
    case OpKind::kFB:
      return fb;
  }
  return 0;
}

void Costs::validate() const {
  auto bad = [](double v) { return !(v >= 0) || !std::isfinite(v); };
  if (bad(f) || bad(b) || bad(w) || bad(fb) || bad(comm))
    throw std::invalid_argument(
        fmt::format("costs must be finite and non-negative (got {})", to_string(*this)));
  if (w > b)
    throw std::invalid_argument(fmt::format(
        "W ({}) cannot exceed the full backward B ({}): Bi = B - W would be negative", w, b));
}

Costs parse_costs(std::string_view spec, Costs c) {
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    std::string_view item =
        spec.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? spec.size() + 1 : comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      throw std::invalid_argument(fmt::format("cost item '{}' is not KEY=VALUE", item));
    std::string key;
    for (char ch : item.substr(0, eq))
      key += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    std::string_view val = item.substr(eq + 1);
    double v = 0;
    auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), v);
    if (ec != std::errc() || p != val.data() + val.size())
      throw std::invalid_argument(fmt::format("cost '{}': '{}' is not a number", key, val));
    if (key == "F")
      c.f = v;
    else if (key == "B")
      c.b = v;
    else if (key == "W")
      c.w = v;
    else if (key == "FB" || key == "F&B")
      c.fb = v;
    else if (key == "C" || key == "COMM")
      c.comm = v;
    else
      throw std::invalid_argument(
          fmt::format("unknown cost '{}' (use F, B, W, FB, and C for communication)", key));
  }
  c.validate();
  return c;
}

std::string to_string(const Costs& c) {
  std::string s = fmt::format("F={:g},B={:g},W={:g},FB={:g}", c.f, c.b, c.w, c.fb);
  if (c.comm != 0) s += fmt::format(",C={:g}", c.comm);
  return s;
}

SimMode parse_sim_mode(std::string_view name) {
  if (name == "ideal") return SimMode::kIdeal;
  if (name == "eager") return SimMode::kEager;
  if (name == "rendezvous") return SimMode::kRendezvous;
  throw std::invalid_argument(
      fmt::format("unknown simulation mode '{}' (choose ideal, eager or rendezvous)", name));
}

std::string_view sim_mode_id(SimMode m) {
  switch (m) {
    case SimMode::kIdeal:
      return "ideal";
    case SimMode::kEager:
      return "eager";
    case SimMode::kRendezvous:
      return "rendezvous";
  }
  return "?";
}

double SimResult::max_bubble() const {
  double m = 0;
  for (const auto& r : ranks_result) m = std::max(m, r.bubble);
  return m;
}

double SimResult::min_bubble() const {
  double m = std::numeric_limits<double>::infinity();
  for (const auto& r : ranks_result) m = std::min(m, r.bubble);
  return ranks_result.empty() ? 0 : m;
}

int SimResult::max_peak_activations() const {
  int m = 0;
  for (const auto& r : ranks_result) m = std::max(m, r.peak_activations);
  return m;
}

int SimResult::activations_at(int rank, double t) const {
  int held = 0;
  for (const OpTiming& o : ranks_result.at(rank).timeline) {
    if (o.op.has_forward() && o.start <= t) ++held;
    bool frees = o.op.kind == OpKind::kB || o.op.kind == OpKind::kFB || o.op.kind == OpKind::kW;
    if (frees && o.end <= t) --held;
  }
  return held;
}

namespace {

constexpr double kUnknown = -1;

// Dense index of (stream, micro-batch, hop) and a (rank, chunk) -> (stream, hop) table.
struct Topology {
  int S, M, K;
  std::vector<std::vector<Schedule::Where>> where;  // [rank][chunk]
  explicit Topology(const Schedule& s)
      : S(static_cast<int>(s.streams.size())), M(s.mbs_per_stream), K(s.stages_per_stream()) {
    where.assign(s.ranks, std::vector<Schedule::Where>(s.chunks_per_rank, {-1, -1}));
    for (int st = 0; st < S; ++st)
      for (int h = 0; h < K; ++h) where[s.streams[st][h].rank][s.streams[st][h].chunk] = {st, h};
  }
  int idx(int st, int mb, int hop) const { return (st * M + mb) * K + hop; }
  int msg(const Message& m) const {
    return idx(m.stream, m.mb, m.hop) + (m.kind == MsgKind::kGradient ? S * M * K : 0);
  }
};

// Ideal: an op starts when its rank is free and its inputs exist (plus the link latency when
// they come from another rank). Returns per-rank (start, end) in program order.
std::vector<std::vector<OpTiming>> run_ideal(const Schedule& s, const Costs& c, const Topology& t) {
  std::vector<double> fwd_end(t.S * t.M * t.K, kUnknown), bwd_end(fwd_end);
  std::vector<std::vector<OpTiming>> out(s.ranks);
  std::vector<size_t> pc(s.ranks, 0);
  std::vector<double> free_at(s.ranks, 0);
  size_t remaining = 0;
  for (const auto& ops : s.ops) remaining += ops.size();
  while (remaining > 0) {
    bool progress = false;
    for (int r = 0; r < s.ranks; ++r) {
      while (pc[r] < s.ops[r].size()) {
        const Op& op = s.ops[r][pc[r]];
        double ready = free_at[r];
        bool blocked = false;
        if (op.has_forward()) {
          auto [st, hop] = t.where[r][op.chunk];
          if (hop > 0) {
            double e = fwd_end[t.idx(st, op.mb, hop - 1)];
            if (e == kUnknown)
              blocked = true;
            else
              ready = std::max(ready, e + (s.streams[st][hop - 1].rank != r ? c.comm : 0));
          }
        }
        if (op.has_backward()) {
          auto [st, hop] = t.where[r][op.backward_chunk()];
          int mb = op.backward_mb();
          if (hop + 1 < t.K) {
            double e = bwd_end[t.idx(st, mb, hop + 1)];
            if (e == kUnknown)
              blocked = true;
            else
              ready = std::max(ready, e + (s.streams[st][hop + 1].rank != r ? c.comm : 0));
          } else if (fwd_end[t.idx(st, mb, hop)] == kUnknown) {
            blocked = true;  // the loss needs this stage's own forward
          }
        }
        if (blocked) break;
        double end = ready + c.duration(op.kind);
        if (op.has_forward()) {
          auto [st, hop] = t.where[r][op.chunk];
          fwd_end[t.idx(st, op.mb, hop)] = end;
        }
        if (op.has_backward()) {
          auto [st, hop] = t.where[r][op.backward_chunk()];
          bwd_end[t.idx(st, op.backward_mb(), hop)] = end;
        }
        out[r].push_back({op, ready, end});
        free_at[r] = end;
        ++pc[r];
        --remaining;
        progress = true;
      }
    }
    if (!progress)
      throw std::logic_error(
          fmt::format("{} deadlocks: no rank can start its next op", schedule_label(s.kind)));
  }
  return out;
}

// Eager / rendezvous: replay each rank's program. Before every compute, the sends and receives
// posted since the previous compute are committed together and waited on (the official
// _commit_and_wait_comm). A message is done at max(sender commit, receiver commit) + latency
// under rendezvous; under eager the data leaves at the sender's commit and sends never block.
std::vector<std::vector<OpTiming>> run_comm(const Schedule& s, const Costs& c, const Topology& t,
                                            bool rendezvous) {
  std::vector<double> send_commit(2 * t.S * t.M * t.K, kUnknown), recv_commit(send_commit);
  std::vector<std::vector<OpTiming>> out(s.ranks);
  std::vector<size_t> pc(s.ranks, 0);
  std::vector<double> free_at(s.ranks, 0);
  std::vector<std::vector<Action>> batch(s.ranks);
  std::vector<bool> committed(s.ranks, false);

  auto commit = [&](int r) {
    if (committed[r]) return;
    for (const Action& a : batch[r])
      (a.type == Action::kSend ? send_commit : recv_commit)[t.msg(a.msg)] = free_at[r];
    committed[r] = true;
  };

  bool all_done = false;
  while (!all_done) {
    bool progress = false;
    all_done = true;
    for (int r = 0; r < s.ranks; ++r) {
      const auto& prog = s.programs[r];
      while (pc[r] < prog.size()) {
        const Action& a = prog[pc[r]];
        if (a.type != Action::kCompute) {
          batch[r].push_back(a);
          ++pc[r];
          progress = true;
          continue;
        }
        bool was_committed = committed[r];
        commit(r);
        if (!was_committed && !batch[r].empty()) progress = true;
        double ready = free_at[r];
        bool blocked = false;
        for (const Action& m : batch[r]) {
          int k = t.msg(m.msg);
          double sc = send_commit[k], rc = recv_commit[k];
          if (m.type == Action::kSend && !rendezvous) continue;
          if (sc == kUnknown || (rendezvous && rc == kUnknown)) {
            blocked = true;
            break;
          }
          ready =
              std::max(ready, rendezvous ? std::max(sc, rc) + c.comm : std::max(sc + c.comm, rc));
        }
        if (blocked) break;
        double end = ready + c.duration(a.op.kind);
        out[r].push_back({a.op, ready, end});
        free_at[r] = end;
        batch[r].clear();
        committed[r] = false;
        ++pc[r];
        progress = true;
      }
      if (pc[r] == prog.size() && !batch[r].empty()) {
        bool was_committed = committed[r];
        commit(r);  // the final commit after the last compute
        if (!was_committed) progress = true;
      }
      if (pc[r] < prog.size()) all_done = false;
    }
    if (!all_done && !progress)
      throw std::logic_error(fmt::format("{} deadlocks in {} mode: every rank waits on a peer",
                                         schedule_label(s.kind),
                                         rendezvous ? "rendezvous" : "eager"));
  }
  return out;
}

// Convention A of dualpipe.md §e, walked in program order.
int peak_activations(const std::vector<OpTiming>& timeline) {
  int held = 0, peak = 0;
  for (const OpTiming& o : timeline) {
    if (o.op.has_forward()) peak = std::max(peak, ++held);
    if (o.op.kind == OpKind::kB || o.op.kind == OpKind::kFB || o.op.kind == OpKind::kW) --held;
  }
  return peak;
}

}  // namespace

SimResult simulate(const Schedule& s, const Costs& c, SimMode mode) {
  c.validate();
  Topology topo(s);
  std::vector<std::vector<OpTiming>> timelines =
      mode == SimMode::kIdeal ? run_ideal(s, c, topo)
                              : run_comm(s, c, topo, mode == SimMode::kRendezvous);
  SimResult res;
  res.kind = s.kind;
  res.ranks = s.ranks;
  res.micro_batches = s.micro_batches;
  res.costs = c;
  res.mode = mode;
  double split = c.f + c.b > 0 ? c.f / (c.f + c.b) : 0.5;
  for (auto& tl : timelines)
    for (OpTiming& o : tl)
      if (o.op.kind == OpKind::kFB) o.split_fraction = split;
  for (const auto& tl : timelines)
    for (const OpTiming& o : tl) res.makespan = std::max(res.makespan, o.end);
  res.ranks_result.resize(s.ranks);
  for (int r = 0; r < s.ranks; ++r) {
    RankResult& rr = res.ranks_result[r];
    rr.timeline = std::move(timelines[r]);
    for (const OpTiming& o : rr.timeline) rr.busy += o.end - o.start;
    rr.bubble = res.makespan - rr.busy;
    rr.peak_activations = peak_activations(rr.timeline);
    rr.param_copies = s.chunks_per_rank;
  }
  return res;
}

}  // namespace dsv3::pipeline
