// Whole-result pictures of the balance lab's three drivers, as `dsv3 balance` prints them; the
// REPL and the explorer can show the same canvases.
#pragma once

#include <vector>

#include "reference/balance/model_balance.h"
#include "reference/balance/toy_a.h"
#include "reference/balance/toy_c.h"
#include "visualizers/canvas.h"

namespace dsv3::viz {

// Toy A: the MaxVio_batch curve against the noise floor, then the final load bars and biases.
Canvas toy_a_report(const balance::ToyAConfig& c, const balance::ToyAResult& r, int width);

// Toy C: task loss vs MaxVio_global per method, then MaxVio_batch curves (smoothed).
Canvas tradeoff_report(const std::vector<balance::TradeoffPoint>& points, int width);

// The model's routers: mean MaxVio_batch per step, and the last MoE layer's held-out loads.
Canvas model_balance_report(const balance::ModelBalanceResult& r, int width);

// Running mean over `window` neighbours (MaxVio_batch is noisy at small batches).
std::vector<double> smooth(const std::vector<double>& v, int window);

}  // namespace dsv3::viz
