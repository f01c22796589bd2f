// ringd/detail/process_child.hpp — what a new child does between clone and execve. The parent
// prepares everything (paths, argv, ids) in a plan; the child only makes async-signal-safe raw
// syscalls (no allocation, no locks, no glibc setxid broadcast) and reports a failure as
// (step, errno) on the exec-status pipe, then _exit(127).
#pragma once

#include <ringd/detail/process_syscalls.hpp>

#include <fcntl.h>
#include <signal.h>
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

// What the exec-status pipe carries when the child fails.
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
    bool set_ids = false;         // change credentials
    uid_t uid = 0;
    gid_t gid = 0;
    const gid_t* groups = nullptr; // supplementary groups (set_ids only)
    std::size_t group_count = 0;
    const int* fd_sources = nullptr; // the parent's descriptors to hand over...
    const int* fd_targets = nullptr; // ...as these numbers (all ≥ 3, distinct)
    std::size_t fd_count = 0;
    int status_fd = -1; // write end of the exec-status pipe (close-on-exec)
};

[[noreturn]] inline void process_child_fail(const process_child_plan& plan, process_child_step step,
                                            int error) noexcept {
    process_child_failure f{static_cast<int>(step), error};
    [[maybe_unused]] ssize_t n = ::write(plan.status_fd, &f, sizeof f);
    ::_exit(127);
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

[[noreturn]] inline void process_child_main(const process_child_plan& plan) noexcept {
    using step = process_child_step;
    // The parent may block signals for its signalfd; a child with that mask could not be
    // stopped. Unblock everything and restore every default disposition.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s)
        ::sigaction(s, &dfl, nullptr); // fails harmlessly for SIGKILL, SIGSTOP and glibc's own

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
    for (std::size_t i = 0; i < count; ++i)
        if (!process_child_place(moved[i], plan.fd_targets[i]))
            process_child_fail(plan, step::descriptors, errno);

    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) process_child_fail(plan, step::stdin_null, errno);
    if (!process_child_place(null_fd, 0)) process_child_fail(plan, step::stdio, errno);

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
    // the parent (after clone3 glibc still believes they are here).
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

} // namespace ringd::detail
