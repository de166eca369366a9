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

#include "app/lesson/expr_values.h"
#include "app/lesson/lesson.h"

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
  // Hostile text must not exhaust the stack (docs/reliability.md): parsing and evaluating
  // recurse once per nesting level ("((((", "----x") and once per node of a left-leaning chain
  // ("1+1+1..."), so both are bounded; a lesson's checks use a handful of each.
  static constexpr int kMaxDepth = 64;
  static constexpr int kMaxNodes = 1000;
  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.fail(fmt::format("nested more than {} levels deep", kMaxDepth));
    }
    ~Nest() { --p.depth_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;
  };
  ExprPtr node(Expr::Kind k, std::string name, std::vector<ExprPtr> kids) {
    if (++nodes_ > kMaxNodes) fail(fmt::format("more than {} terms", kMaxNodes));
    auto e = std::make_shared<Expr>();
    e->kind = k;
    e->name = std::move(name);
    e->kids = std::move(kids);
    return e;
  }
  ExprPtr parse_or() {
    const Nest nest(*this);
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
    if (eat("!")) {
      const Nest nest(*this);
      return node(Expr::kUnary, "!", {parse_not()});
    }
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
    if (eat("-")) {
      const Nest nest(*this);
      return node(Expr::kUnary, "-", {parse_unary()});
    }
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
      std::string tmp(s_.substr(i_, 400));  // a number is shorter: no copy of a long rest
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
  int depth_ = 0, nodes_ = 0;
};

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
  // The magnitude in unsigned arithmetic: -v overflows for the most negative value.
  const unsigned long long m = v < 0 ? 0ull - static_cast<unsigned long long>(v) : v;
  std::string s = std::to_string(m), out;
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
        if (!v.contains(i.get<std::string>()))
          throw std::runtime_error("no field " + short_dump(i));
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
  if (f == "int") {
    // llround is unspecified outside long long (1e308, NaN): such values print as they are.
    if (!(std::fabs(x) < 9.0e18)) return fmt::format("{:.0f}", x);
    return group_digits(static_cast<long long>(std::llround(x)));
  }
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
