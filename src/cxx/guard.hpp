// guard.hpp — the C++ side of the C/C++ boundary (see cxx_error.h).
//
// Never include a PostgreSQL header next to this one: C++ core files see
// plain buffers only. Every extern "C" entry point of the core has the shape
//
//     extern "C" bool imgs_something(..., ImgsError *err) {
//         return imgs::guard(err, [&] { ... });
//     }
//
// so no exception ever crosses into C, and the C caller ereports only after
// this frame (and every destructor in it) is gone.
#pragma once

#include <exception>
#include <new>
#include <stdexcept>
#include <cstring>
#include <string>

#include "cxx/cxx_error.h"

namespace imgs {

// An error with a SQLSTATE, for conditions the user can cause and fix.
class Error : public std::runtime_error {
public:
    Error(const char *sqlstate, const std::string &message, const std::string &detail = "")
        : std::runtime_error(message), sqlstate_(sqlstate), detail_(detail) {}
    const char *sqlstate() const noexcept { return sqlstate_; }
    const std::string &detail() const noexcept { return detail_; }

private:
    const char *sqlstate_;
    std::string detail_;
};

// Thrown by long loops that saw imgs_interrupt_pending(); the C side then
// runs CHECK_FOR_INTERRUPTS(), which raises the real cause.
class Interrupted : public Error {
public:
    Interrupted() : Error(IMGS_SQLSTATE_QUERY_CANCELED, "canceling imgsearch operation due to interrupt") {}
};

inline void check_interrupts() {
    if (imgs_interrupt_pending())
        throw Interrupted();
}

// A place where a test may make the core fail as if out of memory (the
// setting imgsearch.inject_fault names it): a core's allocations and its
// error path are tested without exhausting the server's memory.
inline void fault_point(const char *name) {
    if (imgs_injected_fault && imgs_injected_fault[0] && std::strcmp(imgs_injected_fault, name) == 0)
        throw std::bad_alloc();
}

void set_error(ImgsError *err, const char *sqlstate, const char *message, const char *detail = nullptr) noexcept;

// Translates the exception being handled into *err; call only inside a
// catch block. Libraries with their own exception types (torch's c10::Error
// carries a backtrace in what()) catch and rethrow them as imgs::Error first.
void set_error_from_current_exception(ImgsError *err) noexcept;

template <typename Body>
bool guard(ImgsError *err, Body &&body) noexcept {
    err->sqlstate[0] = '\0';
    try {
        body();
        return true;
    } catch (...) {
        set_error_from_current_exception(err);
        return false;
    }
}

}  // namespace imgs
