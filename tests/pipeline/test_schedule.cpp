// Schedules as data: the op orders of DualPipe and DualPipeV written out by hand from the eight
// steps of the official DualPipe.step() (research notes, dualpipe.md §b), checked token for token,
// and the structural invariants of every schedule.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "reference/pipeline/schedule.h"

namespace dsv3::pipeline {
namespace {

std::vector<std::string> tokens(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string t; in >> t;) out.push_back(t);
  return out;
}

void expect_ops(const Schedule& s, const std::vector<std::string>& expected) {
  ASSERT_EQ(s.ranks, static_cast<int>(expected.size()));
  for (int r = 0; r < s.ranks; ++r) {
    std::vector<std::string> want = tokens(expected[r]);
    std::vector<std::string> got;
    for (const Op& op : s.ops[r]) got.push_back(to_token(op));
    ASSERT_EQ(got.size(), want.size()) << "rank " << r;
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(got[i], want[i]) << "rank " << r << " op " << i;
  }
}

// DualPipe, PP=4, N=8 (H=2, M=4 per direction). Ranks 1 and 2 are the middle ranks: their first
// main-step pair runs as a separate F near and full B far. Ranks 2, 3 mirror 1, 0 with the two
// directions swapped.
TEST(PipelineSchedule, DualPipeP4N8ByHand) {
  expect_ops(build_dualpipe(4, 8),
             {// rank 0
              "F0(mb0) F0(mb1) F0(mb2) F1(mb0) Bi1(mb0) W1(mb0) F1(mb1) FB(f:0/mb3,b:1/mb1) "
              "FB(f:1/mb2,b:0/mb0) B1(mb2) FB(f:1/mb3,b:0/mb1) B1(mb3) Bi0(mb2) W0(mb2) Bi0(mb3) "
              "W0(mb3)",
              // rank 1
              "F0(mb0) F1(mb0) F0(mb1) F1(mb1) F0(mb2) B1(mb0) FB(f:1/mb2,b:0/mb0) "
              "FB(f:0/mb3,b:1/mb1) FB(f:1/mb3,b:0/mb1) B1(mb2) B0(mb2) Bi1(mb3) Bi0(mb3) W1(mb3) "
              "W0(mb3)",
              // rank 2
              "F1(mb0) F0(mb0) F1(mb1) F0(mb1) F1(mb2) B0(mb0) FB(f:0/mb2,b:1/mb0) "
              "FB(f:1/mb3,b:0/mb1) FB(f:0/mb3,b:1/mb1) B0(mb2) B1(mb2) Bi0(mb3) Bi1(mb3) W0(mb3) "
              "W1(mb3)",
              // rank 3
              "F1(mb0) F1(mb1) F1(mb2) F0(mb0) Bi0(mb0) W0(mb0) F0(mb1) FB(f:1/mb3,b:0/mb1) "
              "FB(f:0/mb2,b:1/mb0) B0(mb2) FB(f:0/mb3,b:1/mb1) B0(mb3) Bi1(mb2) W1(mb2) Bi1(mb3) "
              "W1(mb3)"});
}

// DualPipe, PP=8, N=20: the schedule of Fig. 5 of the report. Step counts per rank (h = 0..3):
// nF0 6/4/2/0, nF0F1 1/2/3/4, nB1W1F1 3/2/1/0, main 3/4/5/6, nB1F1B0 3/2/1/0, nB1B0 1/2/3/4,
// nWB0 3/2/1/0, nW 1/2/3/4.
TEST(PipelineSchedule, DualPipeP8N20ByHand) {
  expect_ops(build_dualpipe(8, 20),
             {// rank 0
              "F0(mb0) F0(mb1) F0(mb2) F0(mb3) F0(mb4) F0(mb5) F0(mb6) F1(mb0) Bi1(mb0) W1(mb0) "
              "F1(mb1) Bi1(mb1) W1(mb1) F1(mb2) Bi1(mb2) W1(mb2) F1(mb3) FB(f:0/mb7,b:1/mb3) "
              "FB(f:1/mb4,b:0/mb0) FB(f:0/mb8,b:1/mb4) FB(f:1/mb5,b:0/mb1) FB(f:0/mb9,b:1/mb5) "
              "FB(f:1/mb6,b:0/mb2) B1(mb6) FB(f:1/mb7,b:0/mb3) B1(mb7) FB(f:1/mb8,b:0/mb4) B1(mb8) "
              "FB(f:1/mb9,b:0/mb5) B1(mb9) Bi0(mb6) W0(mb6) Bi0(mb7) W0(mb7) Bi0(mb8) W0(mb8) "
              "Bi0(mb9) W0(mb9)",
              // rank 1
              "F0(mb0) F0(mb1) F0(mb2) F0(mb3) F0(mb4) F1(mb0) F0(mb5) F1(mb1) Bi1(mb0) W1(mb0) "
              "F1(mb2) Bi1(mb1) W1(mb1) F1(mb3) FB(f:0/mb6,b:1/mb2) FB(f:1/mb4,b:0/mb0) "
              "FB(f:0/mb7,b:1/mb3) FB(f:1/mb5,b:0/mb1) FB(f:0/mb8,b:1/mb4) FB(f:1/mb6,b:0/mb2) "
              "FB(f:0/mb9,b:1/mb5) FB(f:1/mb7,b:0/mb3) B1(mb6) FB(f:1/mb8,b:0/mb4) B1(mb7) "
              "FB(f:1/mb9,b:0/mb5) B1(mb8) B0(mb6) Bi1(mb9) Bi0(mb7) W1(mb9) Bi0(mb8) W0(mb7) "
              "Bi0(mb9) W0(mb8) W0(mb9)",
              // rank 2
              "F0(mb0) F0(mb1) F0(mb2) F1(mb0) F0(mb3) F1(mb1) F0(mb4) F1(mb2) Bi1(mb0) W1(mb0) "
              "F1(mb3) FB(f:0/mb5,b:1/mb1) FB(f:1/mb4,b:0/mb0) FB(f:0/mb6,b:1/mb2) "
              "FB(f:1/mb5,b:0/mb1) FB(f:0/mb7,b:1/mb3) FB(f:1/mb6,b:0/mb2) FB(f:0/mb8,b:1/mb4) "
              "FB(f:1/mb7,b:0/mb3) FB(f:0/mb9,b:1/mb5) FB(f:1/mb8,b:0/mb4) B1(mb6) "
              "FB(f:1/mb9,b:0/mb5) B1(mb7) B0(mb6) B1(mb8) Bi0(mb7) Bi1(mb9) Bi0(mb8) W0(mb7) "
              "Bi0(mb9) W1(mb9) W0(mb8) W0(mb9)",
              // rank 3
              "F0(mb0) F1(mb0) F0(mb1) F1(mb1) F0(mb2) F1(mb2) F0(mb3) F1(mb3) F0(mb4) B1(mb0) "
              "FB(f:1/mb4,b:0/mb0) FB(f:0/mb5,b:1/mb1) FB(f:1/mb5,b:0/mb1) FB(f:0/mb6,b:1/mb2) "
              "FB(f:1/mb6,b:0/mb2) FB(f:0/mb7,b:1/mb3) FB(f:1/mb7,b:0/mb3) FB(f:0/mb8,b:1/mb4) "
              "FB(f:1/mb8,b:0/mb4) FB(f:0/mb9,b:1/mb5) FB(f:1/mb9,b:0/mb5) B1(mb6) B0(mb6) B1(mb7) "
              "B0(mb7) Bi1(mb8) Bi0(mb8) Bi1(mb9) Bi0(mb9) W1(mb8) W0(mb8) W1(mb9) W0(mb9)",
              // rank 4
              "F1(mb0) F0(mb0) F1(mb1) F0(mb1) F1(mb2) F0(mb2) F1(mb3) F0(mb3) F1(mb4) B0(mb0) "
              "FB(f:0/mb4,b:1/mb0) FB(f:1/mb5,b:0/mb1) FB(f:0/mb5,b:1/mb1) FB(f:1/mb6,b:0/mb2) "
              "FB(f:0/mb6,b:1/mb2) FB(f:1/mb7,b:0/mb3) FB(f:0/mb7,b:1/mb3) FB(f:1/mb8,b:0/mb4) "
              "FB(f:0/mb8,b:1/mb4) FB(f:1/mb9,b:0/mb5) FB(f:0/mb9,b:1/mb5) B0(mb6) B1(mb6) B0(mb7) "
              "B1(mb7) Bi0(mb8) Bi1(mb8) Bi0(mb9) Bi1(mb9) W0(mb8) W1(mb8) W0(mb9) W1(mb9)",
              // rank 5
              "F1(mb0) F1(mb1) F1(mb2) F0(mb0) F1(mb3) F0(mb1) F1(mb4) F0(mb2) Bi0(mb0) W0(mb0) "
              "F0(mb3) FB(f:1/mb5,b:0/mb1) FB(f:0/mb4,b:1/mb0) FB(f:1/mb6,b:0/mb2) "
              "FB(f:0/mb5,b:1/mb1) FB(f:1/mb7,b:0/mb3) FB(f:0/mb6,b:1/mb2) FB(f:1/mb8,b:0/mb4) "
              "FB(f:0/mb7,b:1/mb3) FB(f:1/mb9,b:0/mb5) FB(f:0/mb8,b:1/mb4) B0(mb6) "
              "FB(f:0/mb9,b:1/mb5) B0(mb7) B1(mb6) B0(mb8) Bi1(mb7) Bi0(mb9) Bi1(mb8) W1(mb7) "
              "Bi1(mb9) W0(mb9) W1(mb8) W1(mb9)",
              // rank 6
              "F1(mb0) F1(mb1) F1(mb2) F1(mb3) F1(mb4) F0(mb0) F1(mb5) F0(mb1) Bi0(mb0) W0(mb0) "
              "F0(mb2) Bi0(mb1) W0(mb1) F0(mb3) FB(f:1/mb6,b:0/mb2) FB(f:0/mb4,b:1/mb0) "
              "FB(f:1/mb7,b:0/mb3) FB(f:0/mb5,b:1/mb1) FB(f:1/mb8,b:0/mb4) FB(f:0/mb6,b:1/mb2) "
              "FB(f:1/mb9,b:0/mb5) FB(f:0/mb7,b:1/mb3) B0(mb6) FB(f:0/mb8,b:1/mb4) B0(mb7) "
              "FB(f:0/mb9,b:1/mb5) B0(mb8) B1(mb6) Bi0(mb9) Bi1(mb7) W0(mb9) Bi1(mb8) W1(mb7) "
              "Bi1(mb9) W1(mb8) W1(mb9)",
              // rank 7
              "F1(mb0) F1(mb1) F1(mb2) F1(mb3) F1(mb4) F1(mb5) F1(mb6) F0(mb0) Bi0(mb0) W0(mb0) "
              "F0(mb1) Bi0(mb1) W0(mb1) F0(mb2) Bi0(mb2) W0(mb2) F0(mb3) FB(f:1/mb7,b:0/mb3) "
              "FB(f:0/mb4,b:1/mb0) FB(f:1/mb8,b:0/mb4) FB(f:0/mb5,b:1/mb1) FB(f:1/mb9,b:0/mb5) "
              "FB(f:0/mb6,b:1/mb2) B0(mb6) FB(f:0/mb7,b:1/mb3) B0(mb7) FB(f:0/mb8,b:1/mb4) B0(mb8) "
              "FB(f:0/mb9,b:1/mb5) B0(mb9) Bi1(mb6) W1(mb6) Bi1(mb7) W1(mb7) Bi1(mb8) W1(mb8) "
              "Bi1(mb9) W1(mb9)"});
}

// DualPipeV, 4 ranks (8 stages), N=8: chunk 0 is stage r, chunk 1 stage 7-r; the last rank runs
// the non-overlapped first pair and turns chunk-0 outputs into chunk-1 inputs locally.
TEST(PipelineSchedule, DualPipeVP4N8ByHand) {
  expect_ops(build_dualpipev(4, 8),
             {// rank 0
              "F0(mb0) F0(mb1) F0(mb2) F0(mb3) F0(mb4) F0(mb5) F0(mb6) F1(mb0) Bi1(mb0) W1(mb0) "
              "F1(mb1) Bi1(mb1) W1(mb1) F1(mb2) Bi1(mb2) W1(mb2) F1(mb3) FB(f:0/mb7,b:1/mb3) "
              "FB(f:1/mb4,b:0/mb0) B1(mb4) FB(f:1/mb5,b:0/mb1) B1(mb5) FB(f:1/mb6,b:0/mb2) B1(mb6) "
              "FB(f:1/mb7,b:0/mb3) B1(mb7) Bi0(mb4) W0(mb4) Bi0(mb5) W0(mb5) Bi0(mb6) W0(mb6) "
              "Bi0(mb7) W0(mb7)",
              // rank 1
              "F0(mb0) F0(mb1) F0(mb2) F0(mb3) F0(mb4) F1(mb0) F0(mb5) F1(mb1) Bi1(mb0) W1(mb0) "
              "F1(mb2) Bi1(mb1) W1(mb1) F1(mb3) FB(f:0/mb6,b:1/mb2) FB(f:1/mb4,b:0/mb0) "
              "FB(f:0/mb7,b:1/mb3) FB(f:1/mb5,b:0/mb1) B1(mb4) FB(f:1/mb6,b:0/mb2) B1(mb5) "
              "FB(f:1/mb7,b:0/mb3) B1(mb6) B0(mb4) Bi1(mb7) Bi0(mb5) W1(mb7) Bi0(mb6) W0(mb5) "
              "Bi0(mb7) W0(mb6) W0(mb7)",
              // rank 2
              "F0(mb0) F0(mb1) F0(mb2) F1(mb0) F0(mb3) F1(mb1) F0(mb4) F1(mb2) Bi1(mb0) W1(mb0) "
              "F1(mb3) FB(f:0/mb5,b:1/mb1) FB(f:1/mb4,b:0/mb0) FB(f:0/mb6,b:1/mb2) "
              "FB(f:1/mb5,b:0/mb1) FB(f:0/mb7,b:1/mb3) FB(f:1/mb6,b:0/mb2) B1(mb4) "
              "FB(f:1/mb7,b:0/mb3) B1(mb5) B0(mb4) B1(mb6) Bi0(mb5) Bi1(mb7) Bi0(mb6) W0(mb5) "
              "Bi0(mb7) W1(mb7) W0(mb6) W0(mb7)",
              // rank 3
              "F0(mb0) F1(mb0) F0(mb1) F1(mb1) F0(mb2) F1(mb2) F0(mb3) F1(mb3) F0(mb4) B1(mb0) "
              "FB(f:1/mb4,b:0/mb0) FB(f:0/mb5,b:1/mb1) FB(f:1/mb5,b:0/mb1) FB(f:0/mb6,b:1/mb2) "
              "FB(f:1/mb6,b:0/mb2) FB(f:0/mb7,b:1/mb3) FB(f:1/mb7,b:0/mb3) B1(mb4) B0(mb4) B1(mb5) "
              "B0(mb5) Bi1(mb6) Bi0(mb6) Bi1(mb7) Bi0(mb7) W1(mb6) W0(mb6) W1(mb7) W0(mb7)"});
}

// DualPipeV is DualPipe cut in half: its op order on P ranks with N micro-batches is the upper
// half of DualPipe on 2P ranks with 2N micro-batches.
TEST(PipelineSchedule, DualPipeVIsHalfOfDualPipe) {
  for (int P = 1; P <= 6; ++P)
    for (int N = 2 * P; N <= 2 * P + 5; ++N) {
      Schedule v = build_dualpipev(P, N);
      Schedule d = build_dualpipe(2 * P, 2 * N);
      for (int r = 0; r < P; ++r) EXPECT_EQ(v.ops[r], d.ops[r]) << "P=" << P << " N=" << N;
    }
}

// Per-rank totals (dualpipe.md §b): with m = 1 on the middle ranks, non-overlapped F = 3H-h-1+m,
// F&B = 2M-3H+h+1-m, full B = H+m, Bi = W = 2H-h-1.
TEST(PipelineSchedule, DualPipeOpTotals) {
  for (int P : {2, 4, 6, 8, 12})
    for (int N : {2 * P, 2 * P + 2, 6 * P}) {
      Schedule s = build_dualpipe(P, N);
      int H = P / 2, M = N / 2;
      for (int r = 0; r < P; ++r) {
        int h = std::min(r, P - 1 - r), m = h == H - 1 ? 1 : 0;
        int count[5] = {0, 0, 0, 0, 0};
        for (const Op& op : s.ops[r]) ++count[static_cast<int>(op.kind)];
        EXPECT_EQ(count[static_cast<int>(OpKind::kF)], 3 * H - h - 1 + m)
            << P << " " << N << " " << r;
        EXPECT_EQ(count[static_cast<int>(OpKind::kFB)], 2 * M - 3 * H + h + 1 - m);
        EXPECT_EQ(count[static_cast<int>(OpKind::kB)], H + m);
        EXPECT_EQ(count[static_cast<int>(OpKind::kBi)], 2 * H - h - 1);
        EXPECT_EQ(count[static_cast<int>(OpKind::kW)], 2 * H - h - 1);
      }
    }
}

// Every micro-batch gets one forward and one backward on every stage, in order, and sends and
// receives pair up in order (verify() throws otherwise).
TEST(PipelineSchedule, AllSchedulesVerify) {
  for (ScheduleKind k : kAllSchedules)
    for (int P = 1; P <= 10; ++P)
      for (int N = 1; N <= 3 * P + 3; ++N) {
        if (!check_constraints(k, P, N).empty()) continue;
        Schedule s = build_schedule(k, P, N);
        EXPECT_NO_THROW(verify(s)) << schedule_id(k) << " P=" << P << " N=" << N;
      }
}

// The verifier itself must catch a broken schedule.
TEST(PipelineSchedule, VerifyCatchesErrors) {
  Schedule s = build_dualpipe(4, 8);
  std::swap(s.ops[0][0], s.ops[0][1]);  // still one forward each, but F0(mb1) before F0(mb0)
  EXPECT_THROW(verify(s), std::logic_error);
  s = build_zb1p(4, 8);
  s.ops[2].pop_back();  // a Bi without its W
  EXPECT_THROW(verify(s), std::logic_error);
  s = build_1f1b(4, 8);
  for (auto& a : s.programs[1])
    if (a.type == Action::kSend) {
      a.msg.mb += 1;  // send order no longer matches the peer's receives
      break;
    }
  EXPECT_THROW(verify(s), std::logic_error);
}

TEST(PipelineSchedule, Constraints) {
  EXPECT_THROW(build_dualpipe(3, 12), ScheduleError);  // odd ranks
  EXPECT_THROW(build_dualpipe(4, 9), ScheduleError);   // odd micro-batches
  EXPECT_THROW(build_dualpipe(4, 6), ScheduleError);   // N < 2P
  EXPECT_THROW(build_dualpipev(4, 7), ScheduleError);  // N < 2P
  EXPECT_THROW(build_1f1b(0, 4), ScheduleError);
  EXPECT_THROW(build_gpipe(2, 0), ScheduleError);
  EXPECT_NO_THROW(build_dualpipev(3, 7));  // odd P and N are fine for V
  EXPECT_NO_THROW(build_dualpipe(4, 10));  // N need not be a multiple of P
  EXPECT_NO_THROW(build_1f1b(8, 3));       // fewer micro-batches than stages
  try {
    build_dualpipe(8, 10);
    FAIL();
  } catch (const ScheduleError& e) {
    EXPECT_NE(std::string(e.what()).find("N >= 2P"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_schedule_kind("chimera"), ScheduleError);
  EXPECT_EQ(parse_schedule_kind("ZB-H1"), ScheduleKind::kZB1P);
}

TEST(PipelineSchedule, BaselinePatterns) {
  // 1F1B on rank r: min(P-1-r, N) warm-up forwards, then alternating F/B, then the cool-down.
  Schedule s = build_1f1b(4, 6);
  EXPECT_EQ(
      s.to_text().substr(0, s.to_text().find('\n')),
      "rank 0: F0(mb0) F0(mb1) F0(mb2) F0(mb3) B0(mb0) F0(mb4) B0(mb1) F0(mb5) B0(mb2) B0(mb3) "
      "B0(mb4) B0(mb5)");
  std::string last;
  for (const Op& op : s.ops[3]) last += to_token(op) + " ";
  EXPECT_EQ(last,
            "F0(mb0) B0(mb0) F0(mb1) B0(mb1) F0(mb2) B0(mb2) F0(mb3) B0(mb3) F0(mb4) "
            "B0(mb4) F0(mb5) B0(mb5) ");
  // ZB-H1 on rank r delays each W by r micro-batches after its Bi.
  Schedule z = build_zb1p(3, 4);
  std::string r1;
  for (const Op& op : z.ops[1]) r1 += to_token(op) + " ";
  EXPECT_EQ(r1,
            "F0(mb0) F0(mb1) Bi0(mb0) F0(mb2) Bi0(mb1) W0(mb0) F0(mb3) Bi0(mb2) W0(mb1) "
            "Bi0(mb3) W0(mb2) W0(mb3) ");
  Schedule g = build_gpipe(2, 2);
  EXPECT_EQ(g.to_text(),
            "rank 0: F0(mb0) F0(mb1) B0(mb0) B0(mb1)\n"
            "rank 1: F0(mb0) F0(mb1) B0(mb0) B0(mb1)\n");
}

TEST(PipelineSchedule, TokensRoundTrip) {
  for (ScheduleKind k : kAllSchedules) {
    Schedule s = build_schedule(k, 4, 8);
    for (const auto& ops : s.ops)
      for (const Op& op : ops) EXPECT_EQ(parse_token(to_token(op)), op) << to_token(op);
  }
  EXPECT_THROW(parse_token("F0(mb"), ScheduleError);
  EXPECT_THROW(parse_token("X1(mb2)"), ScheduleError);
  EXPECT_THROW(parse_token("FB(f:0/mb1,b:1/mb2)x"), ScheduleError);
}

// Communication follows the official code: middle ranks of DualPipe send the near forward
// at once in step 2, the others only after the following far forward.
TEST(PipelineSchedule, DualPipeCommunicationPlacement) {
  Schedule s = build_dualpipe(4, 8);
  const auto& p0 = s.programs[0];
  // Rank 0: F0(mb0), send act; F0(mb1), send; F0(mb2) (step 2: no send yet), recv F1, F1(mb0),
  // then the deferred send of F0(mb2)'s output.
  std::vector<int> seq;
  for (size_t i = 0; i < 8; ++i) seq.push_back(p0[i].type);
  EXPECT_EQ(seq,
            (std::vector<int>{Action::kCompute, Action::kSend, Action::kCompute, Action::kSend,
                              Action::kCompute, Action::kRecv, Action::kCompute, Action::kSend}));
  EXPECT_EQ(p0[7].msg.mb, 2);
  EXPECT_EQ(p0[7].msg.kind, MsgKind::kActivation);
}

}  // namespace
}  // namespace dsv3::pipeline
