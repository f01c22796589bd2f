// SPDX-License-Identifier: MIT
// ringd/detail/process_child.hpp — how a child is started and what it does between clone and
// execve. The parent prepares everything (paths, argv, ids) in a plan; the child only makes
// async-signal-safe calls (no allocation, no locks, no glibc setxid broadcast) and reports a
// failure as (step, errno), then exits with 127.
#pragma once

#include <ringd/detail/exec_signals.hpp>
#include <ringd/detail/process_syscalls.hpp>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <cstddef>

namespace ringd::detail {

// The step that failed in the child, reported to the parent.
enum class process_child_step : int {
    none = 0,
    process_group, // setsid / setpgid
    stdin_null,    // open /dev/null for stdin
    log_file,      // open <log_dir>/<name>.<pid>
    stdio,         // dup2 onto 0, 1, 2
    descriptors,   // the extra descriptors the child asked for
    cwd,           // chdir
    groups,        // setgroups
    gid,           // setresgid
    uid,           // setresuid
    exec,          // execve
};

// What the child reports when it fails.
struct process_child_failure {
    int step = 0;  // process_child_step
    int error = 0; // errno
};

struct process_child_plan {
    const char* path = nullptr;   // what to execve
    char* const* argv = nullptr;  // null-terminated
    char* const* envp = nullptr;  // null-terminated
    const char* cwd = nullptr;    // nullptr: keep the parent's
    int group_mode = 1;           // 0: keep the parent's group, 1: own group, 2: own session
    char* log_path = nullptr;     // "<dir>/<name>." + room for the pid; nullptr: keep stdout/err
    std::size_t log_prefix = 0;   // where the pid goes in log_path
    std::size_t log_capacity = 0; // size of the log_path buffer
    int stdout_fd = -1;           // ≥ 0: the parent's descriptor to use as stdout ...
    int stderr_fd = -1;           // ... and as stderr (not with log_path)
    bool set_ids = false;         // change credentials
    uid_t uid = 0;
    gid_t gid = 0;
    const gid_t* groups = nullptr; // supplementary groups (set_ids only)
    std::size_t group_count = 0;
    const int* fd_sources = nullptr; // the parent's descriptors to hand over...
    const int* fd_targets = nullptr; // ...as these numbers (all ≥ 3, distinct)
    std::size_t fd_count = 0;
    char* listen_pid_digits = nullptr; // room for 23 digits after "LISTEN_PID=" in envp
    // Where a failure goes: `shared_failure` when the child runs in the parent's memory
    // (process_start_child), else the write end of an exec-status pipe (close-on-exec).
    process_child_failure* shared_failure = nullptr;
    int status_fd = -1;
};

[[noreturn]] RINGD_CHILD_CODE inline void
process_child_fail(const process_child_plan& plan, process_child_step step, int error) noexcept {
    process_child_failure f{static_cast<int>(step), error};
    if (plan.shared_failure != nullptr) {
        *plan.shared_failure = f;
    } else {
        [[maybe_unused]] ssize_t n = ::write(plan.status_fd, &f, sizeof f);
    }
    // The raw exit: no atexit handlers, no sanitizer exit hooks of a process that is not ours.
    ::syscall(SYS_exit_group, 127);
    __builtin_unreachable();
}

// Makes `target` a copy of `source` that survives execve (dup2 leaves FD_CLOEXEC off; when
// they are the same number, the flag is cleared by hand).
inline bool process_child_place(int source, int target) noexcept {
    if (source == target) {
        const int flags = ::fcntl(target, F_GETFD);
        return flags >= 0 && ::fcntl(target, F_SETFD, flags & ~FD_CLOEXEC) == 0;
    }
    return ::dup2(source, target) == target;
}

[[noreturn]] RINGD_CHILD_CODE inline void
process_child_main(const process_child_plan& plan) noexcept {
    using step = process_child_step;
    reset_signals_for_exec();

    if (plan.group_mode == 2 && ::setsid() < 0)
        process_child_fail(plan, step::process_group, errno);
    if (plan.group_mode == 1 && ::setpgid(0, 0) != 0)
        process_child_fail(plan, step::process_group, errno);

    // Every inherited descriptor not asked for closes at execve, whoever opened it without
    // O_CLOEXEC (best effort: close_range needs Linux 5.11).
    process_close_range(3, ~0u, process_close_range_cloexec);

    // Move the requested descriptors out of the way first, so that a target number that is
    // also a source does not clobber it.
    int moved[16];
    const std::size_t count = plan.fd_count < 16 ? plan.fd_count : 16;
    for (std::size_t i = 0; i < count; ++i) {
        moved[i] = ::fcntl(plan.fd_sources[i], F_DUPFD_CLOEXEC, 64);
        if (moved[i] < 0) process_child_fail(plan, step::descriptors, errno);
    }
    // stdout/stderr sources as well, before a descriptor lands on their number.
    const int out_fd = plan.stdout_fd < 0 ? -1 : ::fcntl(plan.stdout_fd, F_DUPFD_CLOEXEC, 64);
    const int err_fd = plan.stderr_fd < 0 ? -1 : ::fcntl(plan.stderr_fd, F_DUPFD_CLOEXEC, 64);
    if ((plan.stdout_fd >= 0 && out_fd < 0) || (plan.stderr_fd >= 0 && err_fd < 0))
        process_child_fail(plan, step::stdio, errno);
    for (std::size_t i = 0; i < count; ++i)
        if (!process_child_place(moved[i], plan.fd_targets[i]))
            process_child_fail(plan, step::descriptors, errno);

    if (plan.listen_pid_digits != nullptr)
        *std::to_chars(plan.listen_pid_digits, plan.listen_pid_digits + 23,
                       static_cast<long>(::syscall(SYS_getpid)))
             .ptr = '\0';

    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) process_child_fail(plan, step::stdin_null, errno);
    if (!process_child_place(null_fd, 0)) process_child_fail(plan, step::stdio, errno);
    if ((out_fd >= 0 && !process_child_place(out_fd, 1)) ||
        (err_fd >= 0 && !process_child_place(err_fd, 2)))
        process_child_fail(plan, step::stdio, errno);

    if (plan.log_path != nullptr) {
        char* digits = plan.log_path + plan.log_prefix;
        char* end = std::to_chars(digits, plan.log_path + plan.log_capacity - 1,
                                  static_cast<long>(::syscall(SYS_getpid)))
                        .ptr;
        *end = '\0';
        const int log_fd = ::open(
            plan.log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (log_fd < 0) process_child_fail(plan, step::log_file, errno);
        if (!process_child_place(log_fd, 1) || !process_child_place(log_fd, 2))
            process_child_fail(plan, step::stdio, errno);
    }

    if (plan.cwd != nullptr && ::chdir(plan.cwd) != 0) process_child_fail(plan, step::cwd, errno);

    // Raw syscalls: glibc's setuid() would try to change the ids of threads that exist only in
    // the parent (glibc does not know this child exists).
    if (plan.set_ids) {
        if (::syscall(SYS_setgroups, plan.group_count, plan.groups) != 0)
            process_child_fail(plan, step::groups, errno);
        if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0)
            process_child_fail(plan, step::gid, errno);
        if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0)
            process_child_fail(plan, step::uid, errno);
    }

    ::execve(plan.path, plan.argv, plan.envp);
    process_child_fail(plan, step::exec, errno);
}

RINGD_CHILD_CODE inline int process_child_entry(void* plan) noexcept {
    process_child_main(*static_cast<const process_child_plan*>(plan));
}

// Starts process_child_main(plan) as a child that shares this process's memory (CLONE_VM) until
// it calls execve or exits, while this thread waits (CLONE_VFORK): nothing is copied, so a
// supervisor with thousands of services spawns as fast as a small one (fork copies the page
// tables: milliseconds per spawn once the parent is large). The child runs on a stack of its own,
// and every signal stays blocked around the clone, so that no handler of ours runs in it. A
// failure before execve comes back in plan.shared_failure. Returns the pid and stores the pidfd
// (CLONE_PIDFD, Linux 5.2), or -1 with errno (EINVAL: an older kernel; EPERM/ENOSYS: seccomp).
inline long process_start_child(process_child_plan& plan, int* pidfd) noexcept {
    constexpr std::size_t guard = 4096, stack_size = 64 * 1024;
    void* area = ::mmap(nullptr, guard + stack_size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (area == MAP_FAILED) return -1;
    (void)::mprotect(area, guard, PROT_NONE); // an overflow faults instead of writing our heap
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    const long pid = ::clone(&process_child_entry, static_cast<char*>(area) + guard + stack_size,
                             CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &plan, pidfd);
    const int error = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    ::munmap(area, guard + stack_size);
    errno = error;
    return pid;
}

} // namespace ringd::detail
