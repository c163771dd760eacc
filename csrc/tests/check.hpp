// Minimal test harness for the native tests (no framework: the exit status is the verdict).
#pragma once

#include <cmath>
#include <cstdio>

inline int& check_failures() {
    static int n = 0;
    return n;
}

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            std::fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #cond); \
            ++check_failures();                                                     \
        }                                                                           \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                             \
    do {                                                                                  \
        const double check_a_ = (a), check_b_ = (b);                                      \
        if (!(std::fabs(check_a_ - check_b_) <= (tol))) {                                 \
            std::fprintf(stderr, "%s:%d: CHECK_NEAR(%s, %s): %.9g vs %.9g\n", __FILE__,   \
                         __LINE__, #a, #b, check_a_, check_b_);                           \
            ++check_failures();                                                           \
        }                                                                                 \
    } while (0)

// Ends main(): prints the verdict for `name` and returns the process exit status.
inline int check_report(const char* name) {
    if (check_failures()) {
        std::fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures());
        return 1;
    }
    std::printf("%s: ok\n", name);
    return 0;
}
