// ringd/pidfile.hpp — the PID file: flock()ed by the daemon for its whole life, so "running" is a
// lock that the kernel drops when the daemon dies, never a guess from a number in a file.
//
// What the file says, read together with its lock (probe_pid_file() tells them apart):
//   absent    no file, or an empty file that nobody locks (what a clean stop leaves behind)
//   starting  locked exclusively, no PID written yet
//   running   locked exclusively, holds "PID\n"
//   exiting   the daemon has begun to stop: it holds the lock *shared* until it exits
//   stale     names a PID but nobody holds the lock: the daemon died without cleaning up
// The file is never unlinked by the daemon: unlink-then-unlock lets a second daemon lock a
// fresh inode at the same path while the first still runs. A clean stop truncates it instead.
// Children never hold the lock: the descriptor is O_CLOEXEC (exec) and closed in fork()ed
// children by an atfork handler (detail/pidfile_atfork.hpp), because a flock belongs to the open
// file description that fork() shares. (A child forked at the very moment the daemon dies
// holds the lock until the kernel first runs it, microseconds; Linux has no close-on-fork flag.)
// Never hand the PID file's descriptor to io_uring: the ring is torn down asynchronously after
// the process dies, and any file it still references would stay open, and locked, meanwhile.
#pragma once

#include <ringd/detail/pidfile_atfork.hpp>
#include <ringd/fd.hpp>
#include <ringd/result.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>
#include <string_view>
#include <utility>

namespace ringd {

enum class pid_file_state { absent, starting, running, exiting, stale };

inline const char* to_string(pid_file_state s) noexcept {
    switch (s) {
    case pid_file_state::absent:
        return "absent";
    case pid_file_state::starting:
        return "starting";
    case pid_file_state::running:
        return "running";
    case pid_file_state::exiting:
        return "exiting";
    case pid_file_state::stale:
        return "stale";
    }
    return "?";
}

struct pid_file_status {
    pid_file_state state = pid_file_state::absent;
    pid_t pid = 0; // the PID the file names (0: none yet, or not a number)
};

// A file beside the PID file: `.pid` replaced by `extension` (".lock" for the guard file,
// ".reload" for the reload status), or `extension` appended when the name has no `.pid`.
inline std::string pid_file_sibling(std::string_view pid_path, std::string_view extension) {
    std::string out(pid_path);
    if (out.size() > 4 && out.compare(out.size() - 4, 4, ".pid") == 0) out.resize(out.size() - 4);
    return out.append(extension);
}

// What a non-blocking lock attempt found. Busy is an answer, not an error.
enum class lock_outcome { locked, busy };

// Looks at `path` without waiting and without disturbing the daemon: the lock is probed with
// LOCK_NB and held for a few microseconds at most. With `clean_stale`, a stale file is truncated
// while the probe holds its lock (so nobody can be starting on it meanwhile); the status still
// says stale. Errors: open(2)'s (EACCES; ELOOP when `path` is a symbolic link), flock's, read's.
result<pid_file_status> probe_pid_file(const std::string& path, bool clean_stale = false);

// The daemon's side: the open, locked PID file. Move-only. The destructor only closes (which
// drops the lock if no other process shares the descriptor); the content is changed only by
// the explicit calls below.
class pid_file {
public:
    pid_file() noexcept = default;
    pid_file(pid_file&& other) noexcept
        : path_(std::move(other.path_)), fd_(std::move(other.fd_)),
          state_(std::exchange(other.state_, held::none)) {}
    pid_file& operator=(pid_file&& other) noexcept {
        if (this != &other) {
            forget_in_children();
            path_ = std::move(other.path_);
            fd_ = std::move(other.fd_);
            state_ = std::exchange(other.state_, held::none);
        }
        return *this;
    }
    ~pid_file() { forget_in_children(); }

    // Opens or creates `path` (O_RDWR|O_CREAT|O_CLOEXEC|O_NOFOLLOW) without locking it.
    // Errors: open(2)'s (EACCES, ENOENT for a missing directory, ELOOP for a symbolic link).
    static result<pid_file> open(std::string path, mode_t mode = 0644);

    // Tries the exclusive lock without waiting: locked (the file is then emptied: "starting"),
    // or busy (another process holds it: probe_pid_file() says who). If the path was replaced
    // meanwhile (rm + new file) the lock would guard nothing, so the file is opened again.
    // Errors: flock's, fstat's, ftruncate's, or open's on re-open.
    result<lock_outcome> try_lock();

    // starting → running: writes "PID\n". Errors: pwrite's, ftruncate's.
    result<void> write_pid(pid_t pid);
    // running → exiting: downgrades the lock to shared. A start attempt still finds it busy;
    // a probe can tell that the daemon is on its way out. (Linux converts a flock under one
    // spinlock, and no process holds a conflicting lock while we hold it exclusively, so no
    // other process can slip in between.) Errors: flock's.
    result<void> mark_exiting();
    // What a clean stop leaves: an empty file ("absent"). Errors: ftruncate's.
    result<void> clear();

    // From now on, fork()ed children close their copy of the descriptor at once (see the top of
    // this file). Call it in the process that stays the daemon, after any fork of its own.
    void protect_from_children() noexcept {
        if (fd_) detail::fork_close_list::add(fd_.get());
    }
    // Keeps the lock until the process exits: the kernel drops it after every other resource
    // of the daemon is gone, so no successor can start while this process still exists.
    void hold_until_exit() noexcept { (void)fd_.release(); }

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] borrowed_fd fd() const noexcept { return fd_; }
    [[nodiscard]] bool locked() const noexcept { return state_ != held::none; }

private:
    enum class held { none, exclusive, shared };

    void forget_in_children() noexcept {
        if (fd_) detail::fork_close_list::remove(fd_.get());
    }

    std::string path_;        // where the file lives, for messages and to detect replacement
    unique_fd fd_;            // the open file; its open file description carries the flock
    held state_ = held::none; // which lock this object holds
};

// ---------------------------------------------------------------------------------------------

namespace detail {

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

} // namespace detail

inline result<pid_file_status> probe_pid_file(const std::string& path, bool clean_stale) {
    // Write access only to clean; a reader without it can still probe.
    unique_fd fd(::open(path.c_str(), (clean_stale ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW));
    if (!fd && clean_stale && (errno == EACCES || errno == EROFS))
        fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        if (errno == ENOENT) return pid_file_status{};
        return last_error();
    }
    bool empty = false;
    auto exclusive = detail::try_flock(fd, LOCK_EX);
    if (!exclusive) return unexpected<std::error_code>(exclusive.error());
    if (*exclusive) { // nobody holds it: absent or stale
        auto pid = detail::read_pid(fd, empty);
        if (!pid) return unexpected<std::error_code>(pid.error());
        if (empty) return pid_file_status{};
        if (clean_stale && ::ftruncate(fd.get(), 0) != 0 && errno != EBADF && errno != EINVAL)
            return last_error();
        return pid_file_status{pid_file_state::stale, *pid};
    } // closing fd drops our probe lock
    auto shared = detail::try_flock(fd, LOCK_SH);
    if (!shared) return unexpected<std::error_code>(shared.error());
    auto pid = detail::read_pid(fd, empty);
    if (!pid) return unexpected<std::error_code>(pid.error());
    if (*shared) return pid_file_status{pid_file_state::exiting, *pid};
    return pid_file_status{*pid != 0 ? pid_file_state::running : pid_file_state::starting, *pid};
}

inline result<pid_file> pid_file::open(std::string path, mode_t mode) {
    pid_file f;
    f.fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!f.fd_) return last_error();
    f.path_ = std::move(path);
    return f;
}

inline result<lock_outcome> pid_file::try_lock() {
    if (state_ == held::exclusive) return lock_outcome::locked;
    for (int attempt = 0; attempt < 8; ++attempt) {
        auto got = detail::try_flock(fd_, LOCK_EX);
        if (!got) return unexpected<std::error_code>(got.error());
        if (!*got) return lock_outcome::busy;
        // Is the locked inode still the one the path names? If someone removed or replaced the
        // file, our lock guards nothing that others would look at: open the path again.
        struct stat mine {
        }, named{};
        if (::fstat(fd_.get(), &mine) != 0) return last_error();
        if (::lstat(path_.c_str(), &named) == 0 && named.st_dev == mine.st_dev &&
            named.st_ino == mine.st_ino) {
            if (::ftruncate(fd_.get(), 0) != 0) return last_error(); // "starting"
            state_ = held::exclusive;
            return lock_outcome::locked;
        }
        forget_in_children();
        fd_.reset(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (!fd_) return last_error();
    }
    return errno_error(EAGAIN); // replaced again and again: someone is playing with the path
}

inline result<void> pid_file::write_pid(pid_t pid) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf - 1, pid);
    (void)ec;
    *end++ = '\n';
    auto len = static_cast<std::size_t>(end - buf);
    // One pwrite of the whole line, then cut whatever a longer old content left behind; a
    // reader that catches the write half-way sees no newline and treats it as "starting".
    ssize_t n;
    do n = ::pwrite(fd_.get(), buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return last_error();
    if (static_cast<std::size_t>(n) != len) return errno_error(ENOSPC);
    if (::ftruncate(fd_.get(), static_cast<off_t>(len)) != 0) return last_error();
    return {};
}

inline result<void> pid_file::mark_exiting() {
    if (state_ != held::exclusive) return {};
    auto got = detail::try_flock(fd_, LOCK_SH);
    if (!got) return unexpected<std::error_code>(got.error());
    state_ = held::shared;
    return {};
}

inline result<void> pid_file::clear() {
    if (::ftruncate(fd_.get(), 0) != 0) return last_error();
    return {};
}

} // namespace ringd
