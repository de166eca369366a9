// Helpers shared by the command definitions (*.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "app/commands/registry.h"
#include "reference/model/config.h"

namespace dsv3::app {

class Session;

// Declaration helpers for the command tables (*.cpp).
ArgSpec arg(std::string name, ArgKind kind, std::string help, std::string def = {},
            bool required = false, std::vector<std::string> choices = {}, int64_t lo = INT64_MIN,
            int64_t hi = INT64_MAX);
FlagSpec opt(std::string name, ArgKind kind, std::string help,
             std::vector<std::string> choices = {});  // a flag that takes a value: --name V
FlagSpec json_flag();                                 // --json: machine-readable output

// 'x' for the token at a position, "?" when there is none.
std::string quoted_piece(const Session& s, int position);
// The KV cache of config c at n tokens under MLA, MQA, GQA and MHA, as text or JSON.
Output kv_table(const model::Config& c, int64_t n, bool json);

}  // namespace dsv3::app
