// Machine-readable forms of a simulation: Chrome trace-event JSON (Perfetto, chrome://tracing)
// and the JSON report of `dsv3 pipeline simulate --json`.
#pragma once

#include <nlohmann/json.hpp>

#include "reference/pipeline/simulator.h"
#include "reference/pipeline/table.h"

namespace dsv3::pipeline {

// One complete ("X") event per op, one thread per rank; `us_per_unit` maps a cost unit to
// microseconds of trace time. Op args carry kind, chunk and micro-batch.
nlohmann::json to_chrome_trace(const SimResult& r, double us_per_unit = 1000.0);

// Per-rank busy, bubble, peak activations, parameter copies and (optionally) ops with times;
// the makespan; the Table 2 formula and whether it is exact here.
nlohmann::json to_json(const SimResult& r, bool with_timeline = false);
nlohmann::json to_json(const TableRow& row);

}  // namespace dsv3::pipeline
