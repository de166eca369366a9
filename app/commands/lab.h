// The lab commands (lab.cpp registers them): each a function of the session, the parsed
// arguments and the output context, in the files named below; and the declaration helpers
// their tables and bodies share.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/commands/registry.h"
#include "reference/model/config.h"

namespace dsv3::app {

class Session;

namespace lab {

using json = nlohmann::json;

// ---- declaration helpers (lab.cpp) ---------------------------------------------------------

FlagSpec config_flag();  // --config NAME|FILE, a built-in config or a config.json
Command make(std::string name, std::string summary, std::string help, std::vector<ArgSpec> args,
             std::vector<FlagSpec> flags,
             std::function<Output(Session&, const Args&, const Context&)> run);
Output text(std::string t);
Output json_out(const json& j);
// The config named by --config (def when absent); an unknown name is a CommandError.
model::Config config_of(const Args& a, const char* def = "v3-671b");
// An integer / real flag with its default and allowed range; out of range is a CommandError.
int64_t int_flag(const Args& a, const char* name, int64_t def, int64_t lo, int64_t hi);
double real_flag(const Args& a, const char* name, double def, double lo, double hi);
std::string human(double bytes);  // 1.2 GiB
std::string big(double n);        // 1.2B, 3.4M, 5.6K

// ---- architecture and scale (lab_model.cpp) ------------------------------------------------

Output mla(Session&, const Args& a, const Context&);
Output yarn(Session&, const Args& a, const Context&);
Output params(Session&, const Args& a, const Context&);
Output memory(Session&, const Args& a, const Context&);

// ---- balancing and MTP (lab_balance_mtp.cpp) -----------------------------------------------

Output balance_toy(Session&, const Args& a, const Context& ctx);
Output balance_tradeoff(Session&, const Args& a, const Context& ctx);
Output mtp_loss_cmd(Session& s, const Args& a, const Context&);
Output mtp_spec(Session& s, const Args& a, const Context& ctx);

// ---- FP8 and DualPipe (lab_fp8_pipeline.cpp) -----------------------------------------------

Output fp8_bits(Session&, const Args& a, const Context&);
Output fp8_scaling(Session&, const Args& a, const Context&);
Output fp8_accum(Session&, const Args& a, const Context&);
Output pp_sim(Session&, const Args& a, const Context& ctx);
Output pp_table(Session&, const Args& a, const Context&);
Output pp_overlap(Session&, const Args& a, const Context& ctx);

// ---- the lesson player (lab.cpp) ------------------------------------------------------------

Output lesson_cmd(Session&, const Args& a, const Context& ctx);

}  // namespace lab
}  // namespace dsv3::app
