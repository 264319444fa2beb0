// The table-driven test of command-line errors, instantiated by
// config_test.cc (flags) and device_config_test.cc (-device): every error
// is one line that starts with the flag it is about and says what is wrong.
#ifndef PASSAGE_TESTS_UNIT_BAD_COMMAND_LINE_H_
#define PASSAGE_TESTS_UNIT_BAD_COMMAND_LINE_H_

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace passage::testing {

struct BadCase {
  const char* name;  // the test's name: stable and readable
  std::vector<absl::string_view> args;
  const char* flag;  // the message starts with this
  const char* message = "";  // and contains this
};

// gtest would print a parameter it cannot format as raw bytes (pointers included).
inline void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

inline std::string BadCaseName(const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; }

class BadCommandLine : public ::testing::TestWithParam<BadCase> {};

}  // namespace passage::testing

#endif  // PASSAGE_TESTS_UNIT_BAD_COMMAND_LINE_H_
