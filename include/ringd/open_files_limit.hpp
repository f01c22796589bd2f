// SPDX-License-Identifier: MIT
// ringd/open_files_limit.hpp — room for as many descriptors as a daemon means to hold: every
// connection, and every file a connection writes, is one. The soft RLIMIT_NOFILE (often 1024)
// may be raised by any process as far as the hard one, which is what servers with many
// connections do at start.
#pragma once

#include <ringd/result.hpp>

#include <sys/resource.h>

#include <algorithm>

namespace ringd {

// Raises the soft limit on open descriptors to `wanted`, or to the hard limit when that is
// lower; never lowers it. Returns the soft limit now in force, which the caller compares with
// what it needs (and says so when it is less). Errors: getrlimit's or setrlimit's.
[[nodiscard]] inline result<rlim_t> raise_open_files_limit(rlim_t wanted) noexcept {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return last_error();
    if (limit.rlim_cur >= wanted) return limit.rlim_cur;
    limit.rlim_cur = std::min(wanted, limit.rlim_max);
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return last_error();
    return limit.rlim_cur;
}

} // namespace ringd
