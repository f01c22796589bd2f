// SPDX-License-Identifier: MIT
// ringd/atomic_file.hpp — replacing a file so that a reader, or a crash, sees the old contents
// or the new ones, never a mix: write <path>.tmp, then rename it over path. A state table, a
// status file, the sockets a daemon offers for an upgrade: every file ringd replaces goes
// through here.
//
//   auto written = ringd::write_file_atomically("/run/x/status.json", text, 0644,
//                                               ringd::file_durability::survives_power_loss);
//   if (!written) log.logf(..., "write %s: %s", path, written.error().message().c_str());
#pragma once

#include <ringd/fd.hpp>
#include <ringd/result.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

namespace ringd {

enum class file_durability {
    // The rename is atomic for every reader and for a crash of this process; after a crash of
    // the machine the file may be empty or old (the data may still be in the page cache).
    survives_process_crash,
    // Also survives a crash of the machine: fsync of the file before the rename, and of its
    // directory after (the rename itself is then on disk). Costs a disk flush or two.
    survives_power_loss,
};

// Replaces `path` with `data` (created with `mode` on a new file). The temporary is opened
// with O_NOFOLLOW, so a symlink planted at <path>.tmp is refused, not written through.
// Errors: the failing call's errno; the temporary is removed and `path` is untouched.
[[nodiscard]] inline result<void>
write_file_atomically(const std::string& path, std::string_view data, mode_t mode = 0644,
                      file_durability durability = file_durability::survives_power_loss) {
    const bool durable = durability == file_durability::survives_power_loss;
    const std::string temporary = path + ".tmp";
    unique_fd fd(
        ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd) return last_error();
    auto give_up = [&] {
        const int e = errno;
        ::unlink(temporary.c_str());
        return errno_error(e);
    };
    for (std::size_t done = 0; done < data.size();) {
        const ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return give_up();
        done += static_cast<std::size_t>(n);
    }
    if ((durable && ::fsync(fd.get()) != 0) || fd.close()) return give_up();
    if (::rename(temporary.c_str(), path.c_str()) != 0) return give_up();
    if (!durable) return {};
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "."
                            : slash == 0               ? "/"
                                                       : path.substr(0, slash);
    unique_fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) return last_error();
    if (::fsync(d.get()) != 0) return last_error();
    return {};
}

} // namespace ringd
