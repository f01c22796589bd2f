// SPDX-License-Identifier: MIT
// ringd/absolute_path.hpp — a path given on a command line, made absolute against the working
// directory now, for a daemon that will chdir("/") before it uses it (a PID file, a state table,
// a log directory, the command a supervisor is asked to run).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace ringd {

// `path` itself when it is empty or absolute; else the working directory, '/' and `path`
// ("x.pid" in /home/me: "/home/me/x.pid"), without resolving "." or "..". `path` itself when
// the working directory cannot be read (it was removed, or is too long).
[[nodiscard]] inline std::string absolute_path(const std::string& path) {
    if (path.empty() || path[0] == '/') return path;
    const std::unique_ptr<char, decltype(&std::free)> cwd(::getcwd(nullptr, 0), &std::free);
    if (!cwd) return path;
    const std::string dir = cwd.get();
    return dir + (dir.ends_with('/') ? "" : "/") + path;
}

} // namespace ringd
