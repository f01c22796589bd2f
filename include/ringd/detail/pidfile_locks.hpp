// SPDX-License-Identifier: MIT
// ringd/detail/pidfile_locks.hpp — the primitives under pid_file (pidfile.hpp): the "PID\n"
// text, flock and POSIX record lock calls that report busy as an answer, the record-lock
// holder query, the /proc/locks check of who holds a flock, and the process-wide records of the
// PID file this process holds and removes at exit.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/result.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace ringd::detail {

// Parses "PID\n" (digits, then a newline). Anything else, including a write caught half-way
// (no newline yet), names no PID: 0.
inline pid_t parse_pid_text(std::string_view text) noexcept {
    auto nl = text.find('\n');
    if (nl == std::string_view::npos || nl == 0) return 0;
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + nl, pid);
    if (ec != std::errc{} || end != text.data() + nl || pid <= 0) return 0;
    return pid;
}

// Reads the first bytes of the file and parses them. Errors: pread's.
inline result<pid_t> read_pid(borrowed_fd fd, bool& empty) noexcept {
    char buf[32];
    ssize_t n;
    do n = ::pread(fd.get(), buf, sizeof buf, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return last_error();
    empty = n == 0;
    return parse_pid_text(std::string_view(buf, static_cast<std::size_t>(n)));
}

// flock without waiting: true when taken, false when busy.
inline result<bool> try_flock(borrowed_fd fd, int operation) noexcept {
    for (;;) {
        if (::flock(fd.get(), operation | LOCK_NB) == 0) return true;
        if (errno == EWOULDBLOCK) return false;
        if (errno != EINTR) return last_error();
    }
}

// A whole-file POSIX record lock, taken or converted without waiting (F_RDLCK, F_WRLCK).
inline result<void> set_record_lock(borrowed_fd fd, short type) noexcept {
    struct flock l {};
    l.l_type = type;
    l.l_whence = SEEK_SET;
    while (::fcntl(fd.get(), F_SETLK, &l) != 0)
        if (errno != EINTR) return last_error();
    return {};
}

// Who holds a record lock on the file, as F_GETLK reports it: pid 0 when nobody does (or the
// holder is outside our PID namespace); `exclusive` for a write lock.
struct record_lock_holder {
    pid_t pid = 0;
    bool exclusive = false;
};
inline record_lock_holder query_record_lock(borrowed_fd fd) noexcept {
    struct flock q {};
    q.l_type = F_WRLCK;
    q.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_GETLK, &q) != 0 || q.l_type == F_UNLCK || q.l_pid <= 0) return {};
    return {q.l_pid, q.l_type == F_WRLCK};
}

// Whether process `pid` has the file `file` open with a flock on that open file description:
// its /proc/PID/fdinfo lists the lock. How daemons that take no record lock (libucw's, ringd's
// before it did) are recognised; `shared` says the flock is shared (such an older ringd daemon
// that is exiting). A process whose /proc entries we may not read proves nothing.
inline bool process_holds_flock(pid_t pid, const struct stat& file, bool& shared) {
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return false;
    bool found = false;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        struct stat st {};
        if (::stat((dir + "/" + e->d_name).c_str(), &st) != 0 || st.st_dev != file.st_dev ||
            st.st_ino != file.st_ino)
            continue;
        std::string info = "/proc/" + std::to_string(pid) + "/fdinfo/" + e->d_name;
        unique_fd in(::open(info.c_str(), O_RDONLY | O_CLOEXEC));
        char buf[2048];
        ssize_t n = in ? ::read(in.get(), buf, sizeof buf - 1) : -1;
        if (n <= 0) continue;
        buf[n] = '\0';
        for (const char* line = std::strstr(buf, "lock:"); line != nullptr;
             line = std::strstr(line + 1, "lock:")) {
            const char* eol = std::strchr(line, '\n');
            std::string_view l(line, eol != nullptr ? static_cast<std::size_t>(eol - line)
                                                    : std::strlen(line));
            if (l.find("FLOCK") == std::string_view::npos) continue;
            shared = l.find(" READ ") != std::string_view::npos;
            found = true;
            break;
        }
        if (found) break;
    }
    ::closedir(d);
    return found;
}

// The PID file that this process holds a record lock on (pid_file::write_pid): a probe of it from
// the same process must not open and close it, since that close would drop the record lock.
struct own_pid_file {
    std::atomic<pid_t> owner{0}; // getpid() of the holder; fork()ed children differ
    std::atomic<dev_t> dev{0};
    std::atomic<ino_t> ino{0};
    std::atomic<bool> exiting{false};
    std::atomic<pid_t> pid{0}; // the PID written (0 after clear())

    static own_pid_file& get() noexcept {
        static own_pid_file instance;
        return instance;
    }
    [[nodiscard]] bool is(const struct stat& st) const noexcept {
        return owner.load() == ::getpid() && dev.load() == st.st_dev && ino.load() == st.st_ino;
    }
};

// Removes the PID file as the process exits (pid_file::remove_at_exit). Plain static storage:
// the atexit handler may run after other statics are destroyed.
struct pid_file_exit_removal {
    int fd = -1;
    pid_t owner = 0; // only this process removes it, not a fork()ed child that calls exit()
    char path[PATH_MAX] = {};

    static pid_file_exit_removal& get() noexcept {
        static pid_file_exit_removal slot;
        return slot;
    }
    static void run() noexcept {
        auto& s = get();
        if (s.fd < 0 || s.owner != ::getpid()) return;
        struct stat mine {
        }, named{};
        if (::fstat(s.fd, &mine) == 0 && ::lstat(s.path, &named) == 0 &&
            mine.st_dev == named.st_dev && mine.st_ino == named.st_ino)
            (void)::unlink(s.path);
        s.fd = -1;
    }
};

} // namespace ringd::detail
