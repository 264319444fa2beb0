// The rig's result line, shared by the L2 test programs: one
// RIG-RESULT {"name":"RESULT_PREFIX<name>","ok":...,"detail":"..."} line on
// stdout, also appended to $RIG_RESULTS (the rig counts results through it
// to notice lost lines). Define RESULT_PREFIX before including this.
#ifndef PASSAGE_GUESTS_L2TESTS_RIG_RESULT_H_
#define PASSAGE_GUESTS_L2TESTS_RIG_RESULT_H_

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

static void result(const char* name, int ok, const char* fmt, ...) {
  char detail[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof(detail), fmt, ap);
  va_end(ap);
  for (char* p = detail; *p; ++p) {
    if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = ' ';
  }
  char line[1024];
  snprintf(line, sizeof(line), "RIG-RESULT {\"name\":\"" RESULT_PREFIX "%s\",\"ok\":%s,\"detail\":\"%s\"}\n",
           name, ok ? "true" : "false", detail);
  fputs(line, stdout);
  fflush(stdout);
  const char* results = getenv("RIG_RESULTS");
  if (results != NULL) {
    FILE* f = fopen(results, "a");
    if (f != NULL) {
      fputs(line, f);
      fclose(f);
    }
  }
  if (!ok) ++failures;
}

#endif  // PASSAGE_GUESTS_L2TESTS_RIG_RESULT_H_
