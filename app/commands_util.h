// Helpers shared by the command definitions (commands_*.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "app/commands.h"
#include "reference/model/config.h"

namespace dsv3::app {

class Session;

// 'x' for the token at a position, "?" when there is none.
std::string quoted_piece(const Session& s, int position);
// The KV cache of config c at n tokens under MLA, MQA, GQA and MHA, as text or JSON.
Output kv_table(const model::Config& c, int64_t n, bool json);

}  // namespace dsv3::app
