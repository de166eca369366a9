#include "reference/pipeline/export.h"

#include <string>

namespace dsv3::pipeline {

namespace {

const char* kind_name(OpKind k) {
  switch (k) {
    case OpKind::kF:
      return "F";
    case OpKind::kB:
      return "B";
    case OpKind::kBi:
      return "Bi";
    case OpKind::kW:
      return "W";
    case OpKind::kFB:
      return "FB";
  }
  return "?";
}

nlohmann::json op_json(const OpTiming& t) {
  nlohmann::json j = {{"op", to_token(t.op)}, {"kind", kind_name(t.op.kind)},
                      {"chunk", t.op.chunk},  {"mb", t.op.mb},
                      {"start", t.start},     {"end", t.end}};
  if (t.op.kind == OpKind::kFB) {
    j["chunk_b"] = t.op.chunk_b;
    j["mb_b"] = t.op.mb_b;
  }
  return j;
}

nlohmann::json costs_json(const Costs& c) {
  return {{"F", c.f}, {"B", c.b}, {"W", c.w}, {"Bi", c.bi()}, {"FB", c.fb}, {"comm", c.comm}};
}

}  // namespace

nlohmann::json to_chrome_trace(const SimResult& r, double us_per_unit) {
  nlohmann::json events = nlohmann::json::array();
  events.push_back({{"name", "process_name"},
                    {"ph", "M"},
                    {"pid", 0},
                    {"args", {{"name", std::string(schedule_label(r.kind))}}}});
  for (int k = 0; k < r.ranks; ++k) {
    events.push_back({{"name", "thread_name"},
                      {"ph", "M"},
                      {"pid", 0},
                      {"tid", k},
                      {"args", {{"name", "rank " + std::to_string(k)}}}});
    events.push_back({{"name", "thread_sort_index"},
                      {"ph", "M"},
                      {"pid", 0},
                      {"tid", k},
                      {"args", {{"sort_index", k}}}});
    for (const OpTiming& t : r.ranks_result[k].timeline) {
      nlohmann::json args = {
          {"kind", kind_name(t.op.kind)}, {"chunk", t.op.chunk}, {"mb", t.op.mb}};
      if (t.op.kind == OpKind::kFB) {
        args["chunk_b"] = t.op.chunk_b;
        args["mb_b"] = t.op.mb_b;
      }
      events.push_back({{"name", to_token(t.op)},
                        {"cat", kind_name(t.op.kind)},
                        {"ph", "X"},
                        {"pid", 0},
                        {"tid", k},
                        {"ts", t.start * us_per_unit},
                        {"dur", (t.end - t.start) * us_per_unit},
                        {"args", args}});
    }
  }
  return {{"traceEvents", events},
          {"displayTimeUnit", "ms"},
          {"otherData",
           {{"schedule", std::string(schedule_id(r.kind))},
            {"ranks", r.ranks},
            {"micro_batches", r.micro_batches},
            {"costs", costs_json(r.costs)},
            {"mode", std::string(sim_mode_id(r.mode))},
            {"makespan", r.makespan},
            {"us_per_unit", us_per_unit}}}};
}

nlohmann::json to_json(const SimResult& r, bool with_timeline) {
  TableFormula f = table_formula(r.kind, r.ranks, r.micro_batches, r.costs);
  Exactness e = formula_exactness(r.kind, r.costs, r.mode);
  nlohmann::json ranks = nlohmann::json::array();
  for (int k = 0; k < r.ranks; ++k) {
    const RankResult& rr = r.ranks_result[k];
    nlohmann::json j = {{"rank", k},
                        {"busy", rr.busy},
                        {"bubble", rr.bubble},
                        {"peak_activations", rr.peak_activations},
                        {"param_copies", rr.param_copies}};
    if (with_timeline) {
      nlohmann::json ops = nlohmann::json::array();
      for (const OpTiming& t : rr.timeline) ops.push_back(op_json(t));
      j["timeline"] = ops;
    }
    ranks.push_back(j);
  }
  return {{"schedule", std::string(schedule_id(r.kind))},
          {"ranks", r.ranks},
          {"micro_batches", r.micro_batches},
          {"stages", f.pp},
          {"costs", costs_json(r.costs)},
          {"mode", std::string(sim_mode_id(r.mode))},
          {"makespan", r.makespan},
          {"max_bubble", r.max_bubble()},
          {"max_peak_activations", r.max_peak_activations()},
          {"per_rank", ranks},
          {"formula",
           {{"bubble", f.bubble},
            {"bubble_value", f.bubble_value},
            {"params", f.params},
            {"activation", f.activation},
            {"activation_value", f.activation_value},
            {"exact", e.exact},
            {"regime", e.why}}}};
}

nlohmann::json to_json(const TableRow& row) {
  return {{"schedule", std::string(schedule_id(row.kind))},
          {"ranks", row.ranks},
          {"micro_batches", row.micro_batches},
          {"stages", row.formula.pp},
          {"makespan", row.makespan},
          {"bubble_max", row.sim_bubble_max},
          {"bubble_min", row.sim_bubble_min},
          {"peak_activations", row.sim_peak_activations},
          {"param_copies", row.formula.param_copies},
          {"formula",
           {{"bubble", row.formula.bubble},
            {"bubble_value", row.formula.bubble_value},
            {"params", row.formula.params},
            {"activation", row.formula.activation},
            {"activation_value", row.formula.activation_value},
            {"exact", row.exactness.exact},
            {"regime", row.exactness.why}}}};
}

}  // namespace dsv3::pipeline
