// Pieces of the MTP command line shared with `dsv3 generate --mtp` (model.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reference/model/speculative.h"

namespace dsv3::app {

// {"proposed", "accepted", "acceptance_rate", "tokens_per_step", "steps", "draft_depth",
//  "by_depth": [{"depth", "proposed", "accepted", "acceptance_rate"}], "seconds"}; with the
// plain decoding time also "plain_seconds" and "speedup" = plain_seconds / seconds (wall clock).
nlohmann::json mtp_stats_json(const model::SpecStats& s, int draft_depth,
                              std::optional<double> plain_seconds = std::nullopt);

// Human-readable statistics; with the plain decoding time, the wall-clock speed-up as well.
std::string mtp_stats_text(const model::SpecStats& s, int draft_depth, int64_t tokens,
                           std::optional<double> plain_seconds = std::nullopt);

// --agree P (generate --mtp, mtp-demo): a UsageError unless decoding is greedy, since the
// stand-in drafts the main model's greedy tokens.
void check_agree_is_greedy(double agree, double temperature);
// Makes `drafter` a stand-in like the explorer's `mtp agree P`: each draft is the token of
// `truth` (prompt + plain greedy output) at its position with probability `agree`
// (model::stand_in_draft, deterministic per position and depth), else the module's own draft.
void use_stand_in_drafts(model::MtpDrafter& drafter, std::vector<int32_t> truth, double agree);
// The line that says the drafts came from the stand-in.
std::string stand_in_line(double agree);
// Greedy speculative decoding must emit exactly plain greedy decoding's tokens; throws naming
// the first generated token where they differ (`who`: the command, for the message).
void check_lossless(const std::vector<int32_t>& plain, const std::vector<int32_t>& speculative,
                    const std::string& who);

}  // namespace dsv3::app
