// Reading the routing panel's gate table back from its plain text (tests): the (15) s row, the
// b row (b or b×100, divided back) and the (16) s+b row, as numbers.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace dsv3::test_support {

inline std::vector<std::string> words_of(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> w;
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

struct GateRows {
  std::vector<double> s, b, sb;  // empty when the table is not there
  double b_scale = 0;            // 100 for a `b×100` label, 1 for `b`
};

inline GateRows gate_rows(const std::string& text) {
  GateRows g;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const std::vector<std::string> w = words_of(line);
    auto numbers = [&w](size_t from, double scale) {
      std::vector<double> v;
      for (size_t i = from; i < w.size(); ++i) v.push_back(std::stod(w[i]) / scale);
      return v;
    };
    if (w.size() > 2 && w[0] == "(15)" && w[1] == "s") g.s = numbers(2, 1);
    if (w.size() > 2 && w[0] == "(16)" && w[1] == "s+b") g.sb = numbers(2, 1);
    if (w.size() > 1 && (w[0] == "b" || w[0] == "b×100")) {
      g.b_scale = w[0] == "b" ? 1 : 100;
      g.b = numbers(1, g.b_scale);
    }
  }
  return g;
}

}  // namespace dsv3::test_support
