// SPDX-License-Identifier: MIT
// ringd/version.hpp — the version of the ringd headers in use, for #if tests and for --version.
// Kept equal to meson.build's project version: configuring refuses a mismatch (meson.build).
#pragma once

#include <cstdio>

#define RINGD_VERSION_MAJOR 0
#define RINGD_VERSION_MINOR 1
#define RINGD_VERSION_PATCH 0
#define RINGD_VERSION_STRING "0.1.0"

// One number that orders releases: MAJOR * 10000 + MINOR * 100 + PATCH (0.1.0 is 100).
#define RINGD_VERSION                                                                              \
    (RINGD_VERSION_MAJOR * 10000 + RINGD_VERSION_MINOR * 100 + RINGD_VERSION_PATCH)

namespace ringd {

// What every ringd program prints for --version: "PROGRAM (ringd) VERSION", the GNU shape.
inline void print_version(const char* program) {
    std::printf("%s (ringd) %s\n", program, RINGD_VERSION_STRING);
}

} // namespace ringd
