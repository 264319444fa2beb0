// Bad command lines through the real passage binary (tests/unit/bad_inputs.h):
// each gives one line naming what is wrong and a non-zero exit status, and
// the README's bad-input table is what these runs print now.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/unit/bad_inputs.h"

namespace passage::testing {
namespace {

const std::string kPassage = PASSAGE_BINARY_DIR "/vmm/passage";

class BadInputRun : public ::testing::TestWithParam<BadInput> {};

TEST_P(BadInputRun, OneLineNamingItAndNonZeroExit) {
  const BadInput& in = GetParam();
  const BadInputResult r = RunBadInput(kPassage, in);
  ASSERT_NE(r.exit_status, 127) << "could not run " << kPassage;
  EXPECT_NE(r.exit_status, 0);
  EXPECT_NE(r.exit_status, -1) << "passage did not exit normally";
  ASSERT_FALSE(r.stderr_lines.empty());
  // --report-resources adds its own line after the error.
  const bool resources = std::string(in.args).find("--report-resources") != std::string::npos;
  ASSERT_EQ(r.stderr_lines.size(), resources ? 2u : 1u) << absl::StrJoin(r.stderr_lines, "\n");
  EXPECT_EQ(r.stderr_lines[0].rfind("passage: ", 0), 0u) << r.stderr_lines[0];
  EXPECT_NE(r.stderr_lines[0].find(in.names), std::string::npos)
      << "does not name '" << in.names << "': " << r.stderr_lines[0];
  if (resources) {
    // Every passed fd closed: only stdin, stdout and stderr are left.
    EXPECT_EQ(r.stderr_lines[1].rfind("passage: resources at exit: fds=3 ", 0), 0u) << r.stderr_lines[1];
  }
}

INSTANTIATE_TEST_SUITE_P(Passage, BadInputRun, ::testing::ValuesIn(BadInputs()),
                         [](const ::testing::TestParamInfo<BadInput>& info) { return info.param.name; });

TEST(BadInputTable, ReadmeIsCurrent) {
  std::ifstream f(PASSAGE_SOURCE_DIR "/README.md");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string readme = ss.str();
  const size_t begin = readme.find(kBadInputBegin);
  const size_t end = readme.find(kBadInputEnd);
  ASSERT_NE(begin, std::string::npos) << "README.md has no bad-input table marker";
  ASSERT_NE(end, std::string::npos);
  const size_t start = readme.find('\n', begin) + 1;
  EXPECT_EQ(readme.substr(start, end - start), BadInputTable(kPassage))
      << "README.md's bad-input table is stale: run tests/bad-input-table.sh BUILD_DIR";
}

}  // namespace
}  // namespace passage::testing
