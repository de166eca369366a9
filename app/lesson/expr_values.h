// The values of the lesson expression language (expr.cpp) and its built-in functions
// (expr_functions.cpp): conversions with the errors a lesson author reads. Internal to app/lesson/.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace dsv3::app::lesson {

// The first 60 characters of a value's JSON, for error messages.
std::string short_dump(const nlohmann::json& v);
// A number (true/false count as 1/0); anything else is an error naming `what`.
double num(const nlohmann::json& v, const char* what);
// true/false (a number is true when non-zero); anything else is an error.
bool truth(const nlohmann::json& v);
// v itself when it is a list; otherwise an error naming the function fn.
const nlohmann::json& list(const nlohmann::json& v, const std::string& fn);
// Every element of the list v as a number.
std::vector<double> numbers(const nlohmann::json& v, const std::string& fn);

using Fn = std::function<nlohmann::json(const std::vector<nlohmann::json>&)>;
// The built-in functions by name, with their arity (-1: one list or several numbers;
// -2: two or three arguments).
const std::map<std::string, std::pair<int, Fn>>& functions();

}  // namespace dsv3::app::lesson
