// guard.cpp — exception to ImgsError translation (see guard.hpp).
#include "cxx/guard.hpp"

#include <cstdio>
#include <cstring>

namespace imgs {

static void copy_text(char *dst, const char *src) noexcept {
    std::snprintf(dst, IMGS_ERROR_TEXT_LEN, "%s", src ? src : "");
}

void set_error(ImgsError *err, const char *sqlstate, const char *message, const char *detail) noexcept {
    std::snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate);
    copy_text(err->message, message);
    copy_text(err->detail, detail);
}

void set_error_from_current_exception(ImgsError *err) noexcept {
    try {
        throw;
    } catch (const Error &e) {
        set_error(err, e.sqlstate(), e.what(), e.detail().c_str());
    } catch (const std::bad_alloc &) {
        set_error(err, IMGS_SQLSTATE_OUT_OF_MEMORY, "out of memory in imgsearch C++ core");
    } catch (const std::exception &e) {
        set_error(err, IMGS_SQLSTATE_INTERNAL_ERROR, e.what());
    } catch (...) {
        set_error(err, IMGS_SQLSTATE_INTERNAL_ERROR, "unknown C++ exception in imgsearch core");
    }
}

}  // namespace imgs
