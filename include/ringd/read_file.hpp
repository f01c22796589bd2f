// SPDX-License-Identifier: MIT
// ringd/read_file.hpp — the whole of a small file at once (a configuration, a state table, a
// status file), blocking, for setup and reload paths rather than the ring. The reading side of
// atomic_file.hpp: a file replaced atomically reads whole, old or new.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/result.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ringd {

// The contents of `path`. Errors: open's (ENOENT, EACCES, ...) or read's (EISDIR for a
// directory); EINTR is retried.
[[nodiscard]] inline result<std::string> read_file(const std::string& path) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return last_error();
    std::string text;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return last_error();
        if (n == 0) return text;
        text.append(buf, static_cast<std::size_t>(n));
    }
}

} // namespace ringd
