// selftest_core.cpp — deliberate C++ failures, to show the guard turns every
// kind of exception into a clean SQL error after all destructors have run.
#include "cxx/selftest_core.h"

#include <cstring>
#include <stdexcept>
#include <vector>

#include "cxx/guard.hpp"

namespace {

int live_objects = 0;

// Counts itself, so a test can see that unwinding destroyed it.
struct Tracked {
    std::vector<float> payload = std::vector<float>(1024, 1.0f);
    Tracked() { ++live_objects; }
    ~Tracked() { --live_objects; }
    Tracked(const Tracked &) = delete;
    Tracked &operator=(const Tracked &) = delete;
};

}  // namespace

extern "C" bool imgs_selftest_run(const char *kind, ImgsError *err) {
    return imgs::guard(err, [&] {
        Tracked tracked;
        if (std::strcmp(kind, "ok") == 0)
            return;
        if (std::strcmp(kind, "runtime_error") == 0)
            throw std::runtime_error("selftest: std::runtime_error thrown in C++");
        if (std::strcmp(kind, "bad_alloc") == 0)
            throw std::bad_alloc();
        if (std::strcmp(kind, "imgs_error") == 0)
            throw imgs::Error(IMGS_SQLSTATE_INVALID_PARAMETER, "selftest: imgs::Error thrown in C++",
                              "raised with SQLSTATE 22023");
        if (std::strcmp(kind, "unknown") == 0)
            throw 42;
        if (std::strcmp(kind, "interrupt") == 0)
            throw imgs::Interrupted();
        throw imgs::Error(IMGS_SQLSTATE_INVALID_PARAMETER, std::string("unknown selftest kind \"") + kind + "\"",
                          "valid kinds: ok, runtime_error, bad_alloc, imgs_error, unknown, interrupt");
    });
}

extern "C" int imgs_selftest_live_objects(void) { return live_objects; }
