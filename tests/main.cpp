// Catch2 runner. Besides the tests' own checks:
// - any validation-layer error reported while the suite ran (VKVIT_VALIDATION=1) fails the run,
//   even in tests that compare nothing;
// - a test name with '[', ']' or ';' fails the run: ctest registers cases by name through a CMake
//   list, where such a name merges neighbouring cases into one entry that silently runs nothing.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>

#include "harness.h"

static int bad_test_names() {
  int bad = 0;
  for (const auto& tc : Catch::getRegistryHub().getTestCaseRegistry().getAllTests()) {
    if (tc.name.find_first_of("[];") != std::string::npos) {
      std::fprintf(stderr, "vkvit_tests: test name \"%s\" contains '[', ']' or ';'; rename it\n", tc.name.c_str());
      ++bad;
    }
  }
  return bad;
}

int main(int argc, char* argv[]) {
  if (bad_test_names() > 0) return 2;
  const int result = Catch::Session().run(argc, argv);
  const int errors = vkvit::test::validation_errors_so_far();
  if (errors > 0) {
    std::fprintf(stderr, "vkvit_tests: %d validation error(s) were reported (see the log above)\n", errors);
    return result ? result : 1;
  }
  return result;
}
