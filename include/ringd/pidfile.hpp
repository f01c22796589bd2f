// SPDX-License-Identifier: MIT
// ringd/pidfile.hpp — the PID file: flock()ed by the daemon for its whole life, so "running" is a
// lock that the kernel drops when the daemon dies, never a guess from a number in a file.
//
// Two locks, both dropped by the kernel when the daemon dies:
//   - an exclusive flock() for the whole life, from before the PID is written until the process
//     is gone: libucw's protocol (`flock(LOCK_SH|LOCK_NB)` fails = running) agrees at every
//     instant;
//   - a POSIX record lock (fcntl F_SETLK) taken by the final process before it writes its PID:
//     F_GETLK names the holder's PID, which proves that the PID in the file *is* the lock holder
//     (a file locked by one process and naming another is never believed), and its mode says
//     running (write lock) or exiting (read lock). Record locks are not inherited by fork().
// What the file says, read together with its locks (probe_pid_file() tells them apart):
//   absent    no file, or an empty file that nobody locks
//   starting  flock()ed, no PID written yet
//   running   flock()ed, holds "PID\n", and PID holds the lock (write record lock, or /proc shows
//   it) exiting   as running, with a read record lock: the daemon has begun to stop stale     names
//   a PID but nobody holds the lock: the daemon died without cleaning up foreign   flock()ed, but
//   the PID it names is not shown to hold the lock: nothing is signalled invalid   nobody holds the
//   lock and the content is not "PID\n": not a PID file, never cleaned
// A clean stop removes the file as the process's very last act (remove_at_exit(), an atexit
// handler), still holding both locks: no file is what start-stop-daemon and LSB pidofproc read
// as "not running". Until then it is never unlinked: unlink-then-unlock earlier would let a second
// daemon lock a fresh inode at the same path while the first still runs. A stale file is removed
// by the prober while it holds the flock.
// Children never hold the flock: the descriptor is O_CLOEXEC (exec) and closed in fork()ed
// children by an atfork handler (detail/pidfile_atfork.hpp), because a flock belongs to the open
// file description that fork() shares. (A child forked at the very moment the daemon dies
// holds the lock until the kernel first runs it, microseconds; Linux has no close-on-fork flag.)
// A process drops all its record locks on a file when it closes *any* descriptor of that file:
// a daemon must not open and close its own PID file (probe_pid_file() recognises it and does not).
// Never hand the PID file's descriptor to io_uring: the ring is torn down asynchronously after
// the process dies, and any file it still references would stay open, and locked, meanwhile.
#pragma once

#include <ringd/absolute_path.hpp>
#include <ringd/detail/pidfile_atfork.hpp>
#include <ringd/detail/pidfile_locks.hpp>
#include <ringd/fd.hpp>
#include <ringd/result.hpp>

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
#include <utility>

namespace ringd {

enum class pid_file_state { absent, starting, running, exiting, stale, foreign, invalid };

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
    case pid_file_state::foreign:
        return "foreign";
    case pid_file_state::invalid:
        return "invalid";
    }
    return "?";
}

// What probe_pid_file(path, true) did to a stale file.
enum class stale_cleanup {
    none,    // nothing (not asked, or not stale)
    removed, // unlinked while the probe held its flock
    emptied, // could not unlink (cleanup_error says why): truncated instead
    failed,  // could neither unlink nor truncate it (cleanup_error says why): left as it was
};

struct pid_file_status {
    pid_file_state state = pid_file_state::absent;
    pid_t pid = 0; // the PID the file names (0: none yet, or not a number); exiting: the holder
    stale_cleanup cleanup = stale_cleanup::none;
    std::error_code cleanup_error; // emptied, failed: why the file could not be removed
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

// Looks at `path` without waiting and without disturbing the daemon: opened read-only, the
// flock is probed with LOCK_NB and held for a few microseconds at most, the record lock is only
// queried (F_GETLK). With `clean_stale`, a stale file is removed while the probe holds its flock
// (nobody can be starting on it meanwhile), or emptied when the directory forbids removing it;
// `cleanup` says which, and the state still says stale. An invalid file is never changed.
// Errors: open(2)'s (EACCES; ELOOP when `path` is a symbolic link), flock's, read's.
result<pid_file_status> probe_pid_file(const std::string& path, bool clean_stale = false);

// The daemon's side: the open, locked PID file. Move-only. The destructor only closes (which
// drops the lock if no other process shares the descriptor); the content is changed only by
// the explicit calls below.
class pid_file {
public:
    pid_file() noexcept = default;
    pid_file(pid_file&& other) noexcept
        : path_(std::move(other.path_)), absolute_(std::move(other.absolute_)),
          fd_(std::move(other.fd_)), state_(std::exchange(other.state_, held::none)) {}
    pid_file& operator=(pid_file&& other) noexcept {
        if (this != &other) {
            forget();
            path_ = std::move(other.path_);
            absolute_ = std::move(other.absolute_);
            fd_ = std::move(other.fd_);
            state_ = std::exchange(other.state_, held::none);
        }
        return *this;
    }
    ~pid_file() { forget(); }

    // Opens or creates `path` (O_RDWR|O_CREAT|O_CLOEXEC|O_NOFOLLOW) without locking it.
    // Errors: open(2)'s (EACCES, ENOENT for a missing directory, ELOOP for a symbolic link).
    static result<pid_file> open(std::string path, mode_t mode = 0644);

    // Tries the exclusive flock without waiting: locked (the file is then emptied: "starting"),
    // or busy (another process holds it: probe_pid_file() says who). If the path was replaced
    // meanwhile (rm + new file) the lock would guard nothing, so the file is opened again.
    // A file with content that is not "PID\n" is not a PID file: EBADMSG, unlocked, unchanged.
    // Errors: flock's, fstat's, ftruncate's, or open's on re-open; EBADMSG.
    result<lock_outcome> try_lock();

    // starting → running: takes the write record lock (in the process that calls it, which must
    // be the daemon: record locks name their process and are not inherited), then writes "PID\n".
    // Errors: fcntl's (EAGAIN: another process holds a record lock on the file), pwrite's,
    // ftruncate's.
    result<void> write_pid(pid_t pid);
    // running → exiting: the record lock becomes a read lock (one atomic conversion); the flock
    // stays exclusive, so libucw's check and a start attempt still find the daemon running.
    // Errors: fcntl's.
    result<void> mark_exiting();
    // Empties the file: what remains if the process ends without running remove_at_exit()'s
    // handler (by _exit). While the locks are held a probe still says exiting. Errors: ftruncate's.
    result<void> clear();

    // From now on, fork()ed children close their copy of the descriptor at once (see the top of
    // this file). Call it in the process that stays the daemon, after any fork of its own.
    void protect_from_children() noexcept {
        if (fd_) detail::fork_close_list::add(fd_.get());
    }
    // Keeps the lock until the process exits: the kernel drops it after every other resource
    // of the daemon is gone, so no successor can start while this process still exists.
    void hold_until_exit() noexcept { (void)fd_.release(); }
    // hold_until_exit(), and removes the file as the process exits normally (exit() or a return
    // from main: an atexit handler, after main()'s objects are gone), if the path still names the
    // locked file. One PID file per process; false (the file is only held) for a second one.
    bool remove_at_exit() noexcept;
    // Gives up a file that this object locked for a start that failed: removes it while still
    // locked (if the path still names it), then closes it, so nothing is left that any tool
    // could read as a daemon. Without the lock, only closes.
    void discard() noexcept;

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] borrowed_fd fd() const noexcept { return fd_; }
    [[nodiscard]] bool locked() const noexcept { return state_ != held::none; }

private:
    enum class held { none, exclusive, exiting };

    void forget() noexcept;

    std::string path_;        // where the file lives, for messages and to detect replacement
    std::string absolute_;    // path_ made absolute at open (the daemon changes directory)
    unique_fd fd_;            // the open file; its open file description carries the flock
    held state_ = held::none; // which lock this object holds
};

namespace detail {

inline pid_file_status pid_status(pid_file_state state, pid_t pid) noexcept {
    pid_file_status st;
    st.state = state;
    st.pid = pid;
    return st;
}

} // namespace detail

inline result<pid_file_status> probe_pid_file(const std::string& path, bool clean_stale) {
    struct stat named {};
    if (::lstat(path.c_str(), &named) == 0 && detail::own_pid_file::get().is(named)) {
        // Our own file: we know, and opening it would cost us its record lock.
        auto& own = detail::own_pid_file::get();
        return detail::pid_status(
            own.exiting.load() ? pid_file_state::exiting : pid_file_state::running, own.pid.load());
    }
    // Read-only: a close of ours must not look like the daemon's to inotify (IN_CLOSE_WRITE).
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        if (errno == ENOENT) return pid_file_status{};
        return last_error();
    }
    bool empty = false;
    auto exclusive = detail::try_flock(fd, LOCK_EX);
    if (!exclusive) return error_of(exclusive);
    auto pid = detail::read_pid(fd, empty);
    if (!pid) return error_of(pid);
    if (*exclusive) { // nobody holds it: absent, stale or not a PID file at all
        if (empty) return pid_file_status{};
        if (*pid == 0) return detail::pid_status(pid_file_state::invalid, 0);
        pid_file_status st = detail::pid_status(pid_file_state::stale, *pid);
        if (!clean_stale) return st;
        // Remove it while our flock keeps starters out, if the path still names it.
        struct stat mine {};
        if (::fstat(fd.get(), &mine) != 0) return last_error();
        if (::lstat(path.c_str(), &named) != 0 || named.st_dev != mine.st_dev ||
            named.st_ino != mine.st_ino)
            return st; // replaced meanwhile: not ours to clean
        if (::unlink(path.c_str()) == 0) {
            st.cleanup = stale_cleanup::removed;
            return st;
        }
        st.cleanup_error = std::error_code(errno, std::system_category());
        unique_fd w(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
        struct stat wst {};
        if (w && ::fstat(w.get(), &wst) == 0 && wst.st_dev == mine.st_dev &&
            wst.st_ino == mine.st_ino && ::ftruncate(w.get(), 0) == 0)
            st.cleanup = stale_cleanup::emptied;
        else
            st.cleanup = stale_cleanup::failed;
        return st;
    } // closing fd drops our probe lock
    auto holder = detail::query_record_lock(fd);
    if (*pid == 0) {
        // Locked, no PID: starting; or a daemon that has begun to stop and already emptied it.
        if (holder.pid != 0 && !holder.exclusive)
            return detail::pid_status(pid_file_state::exiting, holder.pid);
        return detail::pid_status(pid_file_state::starting, 0);
    }
    if (holder.pid == *pid)
        return detail::pid_status(
            holder.exclusive ? pid_file_state::running : pid_file_state::exiting, *pid);
    struct stat mine {};
    bool shared = false;
    if (holder.pid == 0 && ::fstat(fd.get(), &mine) == 0 &&
        detail::process_holds_flock(*pid, mine, shared))
        return detail::pid_status(shared ? pid_file_state::exiting : pid_file_state::running, *pid);
    return detail::pid_status(pid_file_state::foreign, *pid);
}

inline result<pid_file> pid_file::open(std::string path, mode_t mode) {
    pid_file f;
    f.fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!f.fd_) return last_error();
    f.absolute_ = absolute_path(path);
    f.path_ = std::move(path);
    return f;
}

inline result<lock_outcome> pid_file::try_lock() {
    if (state_ != held::none) return lock_outcome::locked;
    for (int attempt = 0; attempt < 8; ++attempt) {
        auto got = detail::try_flock(fd_, LOCK_EX);
        if (!got) return error_of(got);
        if (!*got) return lock_outcome::busy;
        // Is the locked inode still the one the path names? If someone removed or replaced the
        // file, our lock guards nothing that others would look at: open the path again.
        struct stat mine {
        }, named{};
        if (::fstat(fd_.get(), &mine) != 0) return last_error();
        if (::lstat(path_.c_str(), &named) == 0 && named.st_dev == mine.st_dev &&
            named.st_ino == mine.st_ino) {
            bool empty = false;
            auto pid = detail::read_pid(fd_, empty);
            if (!pid) return error_of(pid);
            if (!empty && *pid == 0) { // someone's data, not a PID file: leave it alone
                (void)::flock(fd_.get(), LOCK_UN);
                return errno_error(EBADMSG);
            }
            if (::ftruncate(fd_.get(), 0) != 0) return last_error(); // "starting"
            state_ = held::exclusive;
            return lock_outcome::locked;
        }
        forget();
        fd_.reset(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (!fd_) return last_error();
    }
    return errno_error(EAGAIN); // replaced again and again: someone is playing with the path
}

inline result<void> pid_file::write_pid(pid_t pid) {
    // The record lock first: from the moment the file names us, F_GETLK proves it.
    if (auto l = detail::set_record_lock(fd_, F_WRLCK); !l) return l;
    struct stat mine {};
    if (::fstat(fd_.get(), &mine) == 0) {
        auto& own = detail::own_pid_file::get();
        own.dev = mine.st_dev;
        own.ino = mine.st_ino;
        own.exiting = false;
        own.pid = pid;
        own.owner = ::getpid();
    }
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
    if (auto l = detail::set_record_lock(fd_, F_RDLCK); !l) return l;
    if (detail::own_pid_file::get().owner.load() == ::getpid())
        detail::own_pid_file::get().exiting = true;
    state_ = held::exiting;
    return {};
}

inline result<void> pid_file::clear() {
    if (::ftruncate(fd_.get(), 0) != 0) return last_error();
    return {};
}

inline bool pid_file::remove_at_exit() noexcept {
    auto& slot = detail::pid_file_exit_removal::get();
    bool armed = false;
    if (fd_ && slot.fd < 0 && absolute_.size() < sizeof slot.path) {
        static const int registered = std::atexit(&detail::pid_file_exit_removal::run);
        if (registered == 0) {
            std::memcpy(slot.path, absolute_.c_str(), absolute_.size() + 1);
            slot.owner = ::getpid();
            slot.fd = fd_.get();
            armed = true;
        }
    }
    hold_until_exit();
    return armed;
}

inline void pid_file::discard() noexcept {
    struct stat mine {
    }, named{};
    if (state_ != held::none && ::fstat(fd_.get(), &mine) == 0 &&
        ::lstat(path_.c_str(), &named) == 0 && named.st_dev == mine.st_dev &&
        named.st_ino == mine.st_ino)
        (void)::unlink(path_.c_str());
    forget();
    fd_.reset();
    state_ = held::none;
}

inline void pid_file::forget() noexcept {
    if (!fd_) return;
    detail::fork_close_list::remove(fd_.get());
    auto& own = detail::own_pid_file::get();
    struct stat mine {};
    if (own.owner.load() == ::getpid() && ::fstat(fd_.get(), &mine) == 0 && own.is(mine))
        own.owner = 0; // closing it drops the record lock
}

} // namespace ringd
