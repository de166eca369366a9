// The MTP panel: speculative decoding step by step. Each row is one verification: the token
// x_n the main model verified from, the drafts d_1..d_D with the drafter's probability q and
// the main model's probability p, whether each was accepted (✓) or rejected (✗, the rest
// skipped ·), the tokens the step emitted, and the running acceptance rate. Above the rows,
// one bar per depth shows that depth's acceptance rate so far.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "reference/model/speculative.h"
#include "visualizers/canvas.h"

namespace dsv3::viz {

struct MtpPanelOptions {
  int draft_depth = 1;
  bool greedy = true;
  // How a token is shown (e.g. the byte tokenizer's piece); default: its id.
  std::function<std::string(int32_t)> token_text;
};

// Pure: the steps and statistics of a SpeculativeDecoder -> a picture of width x height.
// The newest steps are at the bottom; older ones scroll off the top.
Canvas mtp_panel(const std::vector<model::SpecStep>& steps, const model::SpecStats& stats,
                 const MtpPanelOptions& opt, int width, int height);

}  // namespace dsv3::viz
