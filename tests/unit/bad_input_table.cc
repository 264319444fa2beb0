// Prints the README's bad-input table (tests/unit/bad_inputs.h).
// Usage: bad_input_table PATH_TO_PASSAGE
#include <cstdio>

#include "tests/unit/bad_inputs.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PATH_TO_PASSAGE\n", argv[0]);
    return 2;
  }
  std::fputs(passage::testing::BadInputTable(argv[1]).c_str(), stdout);
  return 0;
}
