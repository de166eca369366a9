// Mid-run changes of a training run: γ, λ, α, the peak learning rate or the balancing mode set
// after some step. The explorer's live run (live_run.h) makes them; each is logged in the run's
// log.jsonl as {"step": k, "set": KEY, "value": VALUE} (k = steps done before it takes effect),
// and `dsv3 train --replay LOG` applies the same changes at the same steps, so a steered run can
// be reproduced bit for bit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv3::train {

struct TrainOptions;  // trainer.h

struct OptionChange {
  int64_t step = 0;   // applies from step `step` + 1 (after `step` optimizer steps)
  std::string key;    // bias_gamma | mtp_lambda | balance_alpha | lr | balance
  std::string value;  // a number, or none | loss-free | aux for `balance`
};

// The keys `set` accepts, in the order help lists them.
const std::vector<std::string>& change_keys();
// Also accepts the short names gamma, lambda, alpha. Throws TrainError (one line) on an unknown
// key or a bad value; `opt` is left untouched then.
void apply_change(TrainOptions& opt, const OptionChange& c);
// The change with its canonical key ("gamma" -> "bias_gamma"), after checking it.
OptionChange normalise_change(const OptionChange& c);
// Appends {"step", "set", "value"} to `save_dir`/log.jsonl.
void log_change(const std::string& save_dir, const OptionChange& c);
// Compare mode: the options of a second run from the same seed and data with one setting
// changed, `what` = none | loss-free | aux (balancing) or fp32 | bf16 | fp8 (--precision); saved
// in `opt.save`-`what`. Throws TrainError on another word or when nothing would change.
TrainOptions compare_options(const TrainOptions& opt, const std::string& what);
// Every change line of a log.jsonl, in order. Throws TrainError when the file cannot be read.
std::vector<OptionChange> read_changes(const std::string& log_path);

}  // namespace dsv3::train
