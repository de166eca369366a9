// The built-in functions of the lesson expression language (docs/writing-lessons.md lists
// them), and the value conversions they and expr.cpp share.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>

#include "app/lesson/expr_values.h"
#include "app/lesson/lesson.h"

namespace dsv3::app::lesson {

using nlohmann::json;

std::string short_dump(const json& v) {
  // A string of the lesson's own text may hold any bytes: invalid UTF-8 is shown as U+FFFD
  // (dump() would throw; found by the lesson_expr fuzzer).
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

double num(const json& v, const char* what) {
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (!v.is_number())
    throw std::runtime_error(fmt::format("{}: expected a number, got {}", what, short_dump(v)));
  return v.get<double>();
}

bool truth(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  throw std::runtime_error(fmt::format("expected true/false, got {}", short_dump(v)));
}

const json& list(const json& v, const std::string& fn) {
  if (!v.is_array())
    throw std::runtime_error(fmt::format("{}(): expected a list, got {}", fn, short_dump(v)));
  return v;
}

std::vector<double> numbers(const json& v, const std::string& fn) {
  std::vector<double> out;
  for (const json& x : list(v, fn)) out.push_back(num(x, fn.c_str()));
  return out;
}

namespace {

// A number function applied to a number, or to every element of a list.
json map1(const json& v, const char* fn, double (*f)(double)) {
  if (!v.is_array()) return f(num(v, fn));
  json out = json::array();
  for (const json& x : v) out.push_back(f(num(x, fn)));
  return out;
}

}  // namespace

const std::map<std::string, std::pair<int, Fn>>& functions() {
  // arity -1: one list or several numbers; -2: two or three arguments.
  static const std::map<std::string, std::pair<int, Fn>> f = {
      {"abs",
       {1, [](const auto& a) { return map1(a[0], "abs", [](double x) { return std::fabs(x); }); }}},
      {"floor",
       {1,
        [](const auto& a) { return map1(a[0], "floor", [](double x) { return std::floor(x); }); }}},
      {"ceil",
       {1,
        [](const auto& a) { return map1(a[0], "ceil", [](double x) { return std::ceil(x); }); }}},
      {"round",
       {1,
        [](const auto& a) { return map1(a[0], "round", [](double x) { return std::round(x); }); }}},
      {"sqrt",
       {1,
        [](const auto& a) { return map1(a[0], "sqrt", [](double x) { return std::sqrt(x); }); }}},
      {"exp",
       {1, [](const auto& a) { return map1(a[0], "exp", [](double x) { return std::exp(x); }); }}},
      {"log",
       {1, [](const auto& a) { return map1(a[0], "log", [](double x) { return std::log(x); }); }}},
      {"log2",
       {1,
        [](const auto& a) { return map1(a[0], "log2", [](double x) { return std::log2(x); }); }}},
      {"sigmoid",
       {1,
        [](const auto& a) {
          return map1(a[0], "sigmoid", [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
        }}},
      {"len",
       {1,
        [](const auto& a) {
          if (a[0].is_string()) return json(a[0].template get<std::string>().size());
          if (!a[0].is_array() && !a[0].is_object())
            throw std::runtime_error("len(): expected a list");
          return json(a[0].size());
        }}},
      {"sum",
       {1,
        [](const auto& a) {
          auto v = numbers(a[0], "sum");
          return json(std::accumulate(v.begin(), v.end(), 0.0));
        }}},
      {"mean",
       {1,
        [](const auto& a) {
          auto v = numbers(a[0], "mean");
          if (v.empty()) throw std::runtime_error("mean(): empty list");
          return json(std::accumulate(v.begin(), v.end(), 0.0) / v.size());
        }}},
      {"min",
       {-1,
        [](const auto& a) {
          auto v = a.size() == 1 ? numbers(a[0], "min") : numbers(json(a), "min");
          if (v.empty()) throw std::runtime_error("min(): empty list");
          return json(*std::min_element(v.begin(), v.end()));
        }}},
      {"max",
       {-1,
        [](const auto& a) {
          auto v = a.size() == 1 ? numbers(a[0], "max") : numbers(json(a), "max");
          if (v.empty()) throw std::runtime_error("max(): empty list");
          return json(*std::max_element(v.begin(), v.end()));
        }}},
      {"argmax",
       {1,
        [](const auto& a) {
          auto v = numbers(a[0], "argmax");
          if (v.empty()) throw std::runtime_error("argmax(): empty list");
          return json(std::max_element(v.begin(), v.end()) - v.begin());
        }}},
      {"argmin",
       {1,
        [](const auto& a) {
          auto v = numbers(a[0], "argmin");
          if (v.empty()) throw std::runtime_error("argmin(): empty list");
          return json(std::min_element(v.begin(), v.end()) - v.begin());
        }}},
      {"approx",
       {-2,
        [](const auto& a) {
          // Relative tolerance (default 1e-6); lists compare element by element.
          double rel = a.size() > 2 ? num(a[2], "approx") : 1e-6;
          auto close = [rel](double x, double y) {
            return std::fabs(x - y) <= rel * std::max({std::fabs(x), std::fabs(y), 1e-30});
          };
          if (a[0].is_array() || a[1].is_array()) {
            auto x = numbers(a[0], "approx"), y = numbers(a[1], "approx");
            if (x.size() != y.size())
              throw std::runtime_error(
                  fmt::format("approx(): lists of {} and {}", x.size(), y.size()));
            for (size_t i = 0; i < x.size(); ++i)
              if (!close(x[i], y[i])) return json(false);
            return json(true);
          }
          return json(close(num(a[0], "approx"), num(a[1], "approx")));
        }}},
      {"subset",
       {2,
        [](const auto& a) {  // every element of the first list is in the second
          for (const json& x : list(a[0], "subset")) {
            bool found = false;
            for (const json& y : list(a[1], "subset"))
              found = found || x == y ||
                      (x.is_number() && y.is_number() &&
                       x.template get<double>() == y.template get<double>());
            if (!found) return json(false);
          }
          return json(true);
        }}},
      {"contains",
       {2,
        [](const auto& a) {
          if (a[0].is_string() && a[1].is_string())
            return json(a[0].template get<std::string>().find(a[1].template get<std::string>()) !=
                        std::string::npos);
          for (const json& x : list(a[0], "contains"))
            if (x == a[1] || (x.is_number() && a[1].is_number() &&
                              x.template get<double>() == a[1].template get<double>()))
              return json(true);
          return json(false);
        }}},
      {"count",
       {2,
        [](const auto& a) {
          int n = 0;
          for (const json& x : list(a[0], "count"))
            if (x == a[1] || (x.is_number() && a[1].is_number() &&
                              x.template get<double>() == a[1].template get<double>()))
              ++n;
          return json(n);
        }}},
      {"pick",
       {2,
        [](const auto& a) {
          json out = json::array();
          const json& l = list(a[0], "pick");
          for (const json& i : list(a[1], "pick")) {
            auto k = static_cast<long>(num(i, "pick"));
            if (k < 0 || k >= static_cast<long>(l.size()))
              throw std::runtime_error(
                  fmt::format("pick(): index {} outside 0..{}", k, l.size() - 1));
            out.push_back(l[k]);
          }
          return out;
        }}},
      {"all",
       {1,
        [](const auto& a) {
          for (const json& x : list(a[0], "all"))
            if (!truth(x)) return json(false);
          return json(true);
        }}},
      {"any",
       {1,
        [](const auto& a) {
          for (const json& x : list(a[0], "any"))
            if (truth(x)) return json(true);
          return json(false);
        }}},
      {"sorted_desc",
       {1,
        [](const auto& a) {
          auto v = numbers(a[0], "sorted_desc");
          return json(std::is_sorted(v.rbegin(), v.rend()));
        }}},
      {"slice",
       {-2,
        [](const auto& a) {
          const json& l = list(a[0], "slice");
          long n = static_cast<long>(l.size());
          long b = std::clamp(static_cast<long>(num(a[1], "slice")), 0L, n);
          long e = a.size() > 2 ? std::clamp(static_cast<long>(num(a[2], "slice")), b, n) : n;
          return json(std::vector<json>(l.begin() + b, l.begin() + e));
        }}},
      {"map_div",
       {2,
        [](const auto& a) {  // element-wise integer division: expert -> group
          json out = json::array();
          double d = num(a[1], "map_div");
          for (const json& x : list(a[0], "map_div"))
            out.push_back(std::floor(num(x, "map_div") / d));
          return out;
        }}},
  };
  return f;
}

}  // namespace dsv3::app::lesson
