// SPDX-License-Identifier: MIT
// <ringd/version.hpp> names the version meson.build declares (passed in as RINGD_MESON_VERSION),
// and its parts spell the same string.
#include <ringd/version.hpp>

#include <cstdio>
#include <cstring>
#include <string>

#define RINGD_STR2(x) #x
#define RINGD_STR(x) RINGD_STR2(x)

int main() {
    const std::string parts = RINGD_STR(RINGD_VERSION_MAJOR) "." RINGD_STR(
        RINGD_VERSION_MINOR) "." RINGD_STR(RINGD_VERSION_PATCH);
    int status = 0;
    if (std::strcmp(RINGD_VERSION_STRING, RINGD_MESON_VERSION) != 0) {
        std::printf("RINGD_VERSION_STRING is %s, meson.build says %s\n", RINGD_VERSION_STRING,
                    RINGD_MESON_VERSION);
        status = 1;
    }
    if (parts != RINGD_VERSION_STRING) {
        std::printf("RINGD_VERSION_MAJOR.MINOR.PATCH is %s, RINGD_VERSION_STRING is %s\n",
                    parts.c_str(), RINGD_VERSION_STRING);
        status = 1;
    }
    static_assert(RINGD_VERSION ==
                  RINGD_VERSION_MAJOR * 10000 + RINGD_VERSION_MINOR * 100 + RINGD_VERSION_PATCH);
    return status;
}
