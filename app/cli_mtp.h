// Pieces of the MTP command line shared with `dsv3 generate --mtp` (cli_model.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

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

}  // namespace dsv3::app
