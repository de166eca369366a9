// The small expression language of lesson checks and {{interpolations}}: numbers, strings,
// paths into the JSON that commands returned (kv.forms[0].bytes_bf16), arithmetic, comparisons,
// && || !, and a few functions (docs/writing-lessons.md lists them).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>

#include "app/lesson.h"

namespace dsv3::app::lesson {

using nlohmann::json;

struct Expr {
  enum Kind { kLiteral, kName, kMember, kIndex, kCall, kUnary, kBinary, kList } kind = kLiteral;
  json value;        // kLiteral
  std::string name;  // kName, kMember (field), kCall (function), kUnary/kBinary (operator)
  std::vector<ExprPtr> kids;
};

namespace {

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  ExprPtr parse() {
    ExprPtr e = parse_or();
    skip();
    if (i_ < s_.size()) fail(fmt::format("unexpected '{}'", s_.substr(i_, 8)));
    return e;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(fmt::format("column {}: {}", i_ + 1, what));
  }
  void skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(std::string_view tok) {
    skip();
    if (s_.substr(i_, tok.size()) != tok) return false;
    // "<" must not eat the first half of "<=", nor "!" of "!=".
    if ((tok == "<" || tok == ">" || tok == "!" || tok == "=") && s_.substr(i_ + 1, 1) == "=")
      return false;
    i_ += tok.size();
    return true;
  }
  static ExprPtr node(Expr::Kind k, std::string name, std::vector<ExprPtr> kids) {
    auto e = std::make_shared<Expr>();
    e->kind = k;
    e->name = std::move(name);
    e->kids = std::move(kids);
    return e;
  }
  ExprPtr parse_or() {
    ExprPtr l = parse_and();
    while (eat("||")) l = node(Expr::kBinary, "||", {l, parse_and()});
    return l;
  }
  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (eat("&&")) l = node(Expr::kBinary, "&&", {l, parse_not()});
    return l;
  }
  ExprPtr parse_not() {
    if (eat("!")) return node(Expr::kUnary, "!", {parse_not()});
    return parse_cmp();
  }
  ExprPtr parse_cmp() {
    ExprPtr l = parse_add();
    for (const char* op : {"<=", ">=", "==", "!=", "<", ">"})
      if (eat(op)) return node(Expr::kBinary, op, {l, parse_add()});
    return l;
  }
  ExprPtr parse_add() {
    ExprPtr l = parse_mul();
    for (;;) {
      if (eat("+"))
        l = node(Expr::kBinary, "+", {l, parse_mul()});
      else if (eat("-"))
        l = node(Expr::kBinary, "-", {l, parse_mul()});
      else
        return l;
    }
  }
  ExprPtr parse_mul() {
    ExprPtr l = parse_unary();
    for (;;) {
      if (eat("*"))
        l = node(Expr::kBinary, "*", {l, parse_unary()});
      else if (eat("/"))
        l = node(Expr::kBinary, "/", {l, parse_unary()});
      else if (eat("%"))
        l = node(Expr::kBinary, "%", {l, parse_unary()});
      else
        return l;
    }
  }
  ExprPtr parse_unary() {
    if (eat("-")) return node(Expr::kUnary, "-", {parse_unary()});
    return parse_postfix();
  }
  ExprPtr parse_postfix() {
    ExprPtr e = parse_primary();
    for (;;) {
      if (eat(".")) {
        e = node(Expr::kMember, ident("a field name after '.'", true), {e});
      } else if (eat("[")) {
        ExprPtr idx = parse_or();
        if (!eat("]")) fail("expected ']'");
        e = node(Expr::kIndex, "", {e, idx});
      } else {
        return e;
      }
    }
  }
  // Field names may start with a digit (t.1f1b); variable names may not.
  std::string ident(const char* what, bool field = false) {
    skip();
    size_t b = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_'))
      ++i_;
    if (b == i_ || (!field && std::isdigit(static_cast<unsigned char>(s_[b]))))
      fail(fmt::format("expected {}", what));
    return std::string(s_.substr(b, i_ - b));
  }
  ExprPtr parse_primary() {
    skip();
    if (i_ >= s_.size()) fail("expression ends too early");
    char c = s_[i_];
    if (eat("(")) {
      ExprPtr e = parse_or();
      if (!eat(")")) fail("expected ')'");
      return e;
    }
    if (eat("[")) {
      std::vector<ExprPtr> items;
      if (!eat("]")) {
        do items.push_back(parse_or());
        while (eat(","));
        if (!eat("]")) fail("expected ']' or ','");
      }
      return node(Expr::kList, "", std::move(items));
    }
    if (c == '"' || c == '\'') {
      size_t e = s_.find(c, i_ + 1);
      if (e == std::string_view::npos) fail("unterminated string");
      auto lit = node(Expr::kLiteral, "", {});
      std::const_pointer_cast<Expr>(lit)->value = std::string(s_.substr(i_ + 1, e - i_ - 1));
      i_ = e + 1;
      return lit;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      const char* b = s_.data() + i_;
      char* end = nullptr;
      std::string tmp(s_.substr(i_));
      double v = std::strtod(tmp.c_str(), &end);
      if (end == tmp.c_str()) fail("bad number");
      i_ += static_cast<size_t>(end - tmp.c_str());
      (void)b;
      auto lit = node(Expr::kLiteral, "", {});
      std::const_pointer_cast<Expr>(lit)->value = v;
      return lit;
    }
    std::string id = ident("a number, a string, a name or '('");
    if (id == "true" || id == "false") {
      auto lit = node(Expr::kLiteral, "", {});
      std::const_pointer_cast<Expr>(lit)->value = id == "true";
      return lit;
    }
    if (eat("(")) {
      std::vector<ExprPtr> args;
      if (!eat(")")) {
        do args.push_back(parse_or());
        while (eat(","));
        if (!eat(")")) fail(fmt::format("expected ')' or ',' in {}(...)", id));
      }
      return node(Expr::kCall, id, std::move(args));
    }
    return node(Expr::kName, id, {});
  }

  std::string_view s_;
  size_t i_ = 0;
};

std::string short_dump(const json& v) {
  std::string s = v.dump();
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

using Fn = std::function<json(const std::vector<json>&)>;

// A number function applied to a number, or to every element of a list.
json map1(const json& v, const char* fn, double (*f)(double)) {
  if (!v.is_array()) return f(num(v, fn));
  json out = json::array();
  for (const json& x : v) out.push_back(f(num(x, fn)));
  return out;
}

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

json eval_binary(const std::string& op, const json& l, const json& r) {
  if (op == "==")
    return l.is_number() && r.is_number() ? json(l.get<double>() == r.get<double>()) : json(l == r);
  if (op == "!=")
    return l.is_number() && r.is_number() ? json(l.get<double>() != r.get<double>()) : json(l != r);
  if (op == "+" && l.is_string() && r.is_string())
    return l.get<std::string>() + r.get<std::string>();
  bool arith = op == "+" || op == "-" || op == "*" || op == "/";
  if (arith && (l.is_array() || r.is_array())) {
    // Element by element; a number on one side applies to every element.
    if (l.is_array() && r.is_array() && l.size() != r.size())
      throw std::runtime_error(
          fmt::format("{}: lists of {} and {} elements", op, l.size(), r.size()));
    size_t n = l.is_array() ? l.size() : r.size();
    json out = json::array();
    for (size_t i = 0; i < n; ++i)
      out.push_back(eval_binary(op, l.is_array() ? l[i] : l, r.is_array() ? r[i] : r));
    return out;
  }
  double a = num(l, op.c_str()), b = num(r, op.c_str());
  if (op == "<") return a < b;
  if (op == "<=") return a <= b;
  if (op == ">") return a > b;
  if (op == ">=") return a >= b;
  if (op == "+") return a + b;
  if (op == "-") return a - b;
  if (op == "*") return a * b;
  if (op == "/") {
    if (b == 0) throw std::runtime_error("division by zero");
    return a / b;
  }
  if (op == "%") {
    if (b == 0) throw std::runtime_error("modulo by zero");
    return std::fmod(a, b);
  }
  throw std::runtime_error("unknown operator " + op);
}

std::string group_digits(long long v) {
  std::string s = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return (v < 0 ? "-" : "") + out;
}

}  // namespace

ExprPtr parse_expr(std::string_view text) {
  return Parser(text).parse();
}

json eval(const Expr& e, const Env& env) {
  switch (e.kind) {
    case Expr::kLiteral:
      return e.value;
    case Expr::kName: {
      if (!env.is_object() || !env.contains(e.name)) {
        std::string known;
        if (env.is_object())
          for (auto it = env.begin(); it != env.end(); ++it)
            known += (known.empty() ? "" : ", ") + it.key();
        throw std::runtime_error(fmt::format("unknown name '{}' (bound so far: {})", e.name,
                                             known.empty() ? "none" : known));
      }
      return env.at(e.name);
    }
    case Expr::kMember: {
      json v = eval(*e.kids[0], env);
      if (!v.is_object() || !v.contains(e.name)) {
        std::string fields;
        if (v.is_object())
          for (auto it = v.begin(); it != v.end(); ++it)
            fields += (fields.empty() ? "" : ", ") + it.key();
        throw std::runtime_error(
            fmt::format("no field '{}'{}", e.name,
                        v.is_object() ? " (fields: " + fields + ")" : " in " + short_dump(v)));
      }
      return v.at(e.name);
    }
    case Expr::kIndex: {
      json v = eval(*e.kids[0], env);
      json i = eval(*e.kids[1], env);
      if (v.is_object() && i.is_string()) {
        if (!v.contains(i.get<std::string>())) throw std::runtime_error("no field " + i.dump());
        return v.at(i.get<std::string>());
      }
      if (!v.is_array())
        throw std::runtime_error(fmt::format("[]: {} is not a list", short_dump(v)));
      long k = static_cast<long>(num(i, "index"));
      if (k < 0) k += static_cast<long>(v.size());
      if (k < 0 || k >= static_cast<long>(v.size()))
        throw std::runtime_error(fmt::format("index {} outside the list of {}", k, v.size()));
      return v[static_cast<size_t>(k)];
    }
    case Expr::kList: {
      json out = json::array();
      for (const auto& k : e.kids) out.push_back(eval(*k, env));
      return out;
    }
    case Expr::kCall: {
      auto it = functions().find(e.name);
      if (it == functions().end())
        throw std::runtime_error(fmt::format("unknown function {}()", e.name));
      int arity = it->second.first;
      int n = static_cast<int>(e.kids.size());
      bool ok = arity >= 0 ? n == arity : arity == -1 ? n >= 1 : (n == 2 || n == 3);
      if (!ok)
        throw std::runtime_error(fmt::format("{}() takes {} argument(s), got {}", e.name,
                                             arity >= 0    ? std::to_string(arity)
                                             : arity == -1 ? "1 or more"
                                                           : "2 or 3",
                                             n));
      std::vector<json> args;
      for (const auto& k : e.kids) args.push_back(eval(*k, env));
      return it->second.second(args);
    }
    case Expr::kUnary: {
      json v = eval(*e.kids[0], env);
      if (e.name == "!") return !truth(v);
      return -num(v, "-");
    }
    case Expr::kBinary: {
      if (e.name == "&&") return truth(eval(*e.kids[0], env)) && truth(eval(*e.kids[1], env));
      if (e.name == "||") return truth(eval(*e.kids[0], env)) || truth(eval(*e.kids[1], env));
      return eval_binary(e.name, eval(*e.kids[0], env), eval(*e.kids[1], env));
    }
  }
  return nullptr;
}

bool is_true(const json& v) {
  return truth(v);
}

std::string explain(const Expr& e, const Env& env) {
  if (e.kind != Expr::kBinary || e.name == "&&" || e.name == "||") return {};
  try {
    return fmt::format("left {}, right {}", short_dump(eval(*e.kids[0], env)),
                       short_dump(eval(*e.kids[1], env)));
  } catch (const std::exception&) {
    return {};
  }
}

std::string format_value(const json& v, std::string_view f) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (!v.is_number()) return short_dump(v);
  double x = v.get<double>();
  if (f.empty()) {
    if (std::fabs(x) < 1e15 && x == std::round(x)) return group_digits(static_cast<long long>(x));
    return fmt::format("{:.4g}", x);
  }
  if (f == "int") return group_digits(static_cast<long long>(std::llround(x)));
  if (f == "bytes") {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    double y = std::fabs(x);
    while (y >= 1024 && u < 5) {
      y /= 1024;
      x /= 1024;
      ++u;
    }
    return u == 0 ? fmt::format("{:.0f} B", x)
                  : fmt::format("{:.{}f} {}", x,
                                y < 10    ? 2
                                : y < 100 ? 1
                                          : 0,
                                units[u]);
  }
  if (f == "x") return fmt::format("{:.1f}×", x);
  if (f == "B") return fmt::format("{:.1f}B", x / 1e9);
  if (f == "M") return fmt::format("{:.1f}M", x / 1e6);
  if (f == "K") return fmt::format("{:.0f}K", x / 1e3);
  if (f.size() >= 3 && f[0] == '.' && std::isdigit(static_cast<unsigned char>(f[1]))) {
    int p = f[1] - '0';
    char kind = f.back();
    if (kind == 'f') return fmt::format("{:.{}f}", x, p);
    if (kind == 'g') return fmt::format("{:.{}g}", x, p);
    if (kind == 'e') return fmt::format("{:.{}e}", x, p);
    if (kind == '%') return fmt::format("{:.{}f}%", 100 * x, p);
  }
  throw std::runtime_error(
      fmt::format("unknown format '{}' (int, bytes, x, B, M, K, .2f, .3g, .1e, .1%)", f));
}

}  // namespace dsv3::app::lesson
