// What a fuzz target does when an invariant breaks: one line naming the
// condition and where, on stderr, then abort() (libFuzzer prints the stack
// and writes the reproducer).
#ifndef PASSAGE_TESTS_FUZZ_FUZZ_CHECK_H_
#define PASSAGE_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"

#define FUZZ_FAIL_IF(cond)                                                                      \
  do {                                                                                          \
    if (cond) {                                                                                 \
      std::fprintf(stderr, "fuzz: invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                             \
    }                                                                                           \
  } while (0)

// passage's promise for bad input: an error is one non-empty line.
inline void FuzzCheckOneLine(absl::string_view message) {
  if (message.empty() || message.find('\n') != absl::string_view::npos) {
    std::fprintf(stderr, "fuzz: error message is not one line: \"%s\"\n",
                 absl::CEscape(message).c_str());
    std::abort();
  }
}

#endif  // PASSAGE_TESTS_FUZZ_FUZZ_CHECK_H_
