// SPDX-License-Identifier: MIT
// ringd/program_path.hpp — where the running program's own file is (/proc/self/exe), so that
// programs installed together start each other by path, not through PATH: xferctl starts the
// xferrd beside it, and xferrd its children.
#pragma once

#include <ringd/result.hpp>

#include <unistd.h>

#include <climits>
#include <string>

namespace ringd {

// The absolute path of the running program's file, as the kernel knows it (readlink of
// /proc/self/exe; a file replaced since the start reads "PATH (deleted)"). Errors: readlink's.
[[nodiscard]] inline result<std::string> program_path() {
    char path[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path);
    if (n < 0) return last_error();
    if (static_cast<std::size_t>(n) == sizeof path) return errno_error(ENAMETOOLONG);
    return std::string(path, static_cast<std::size_t>(n));
}

// The directory of program_path(): "/usr/lib/xfer" for /usr/lib/xfer/xferrd; "." when the
// program's path cannot be read.
[[nodiscard]] inline std::string program_directory() {
    const auto path = program_path();
    const std::size_t slash = path ? path->rfind('/') : std::string::npos;
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path->substr(0, slash);
}

} // namespace ringd
