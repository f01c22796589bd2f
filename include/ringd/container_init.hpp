// SPDX-License-Identifier: MIT
// ringd/container_init.hpp — running one command as a container's main process, the job of tini
// and dumb-init: start it, forward every signal that can be caught to it, reap every orphan that
// lands on us, and end with its exit status (128 + N when a signal N killed it).
#pragma once

#include <ringd/result.hpp>
#include <ringd/signals.hpp>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace ringd {

struct container_init_options {
    // Signals go to the command's process group (kill(-pgid)) instead of the command alone, so
    // that a shell's children get them too (tini -g, dumb-init's default).
    bool kill_group = false;
    // The prefix of messages on stderr, e.g. "ringd-supervise".
    std::string program = "ringd";
};

// Runs argv[0] (searched in PATH) with argv as the container's main process and returns what
// the caller should exit with: the command's exit code, 128 + N if signal N killed it, 126 if it
// could not be executed (permission), 127 if it was not found. Never returns before the command
// has ended. As PID 1 every orphan of the namespace is reaped; otherwise this process becomes a
// child subreaper so that the command's orphans are, and warns on stderr if it cannot.
//
// The command runs in its own process group with every signal unblocked and at its default
// disposition. This process blocks every signal except those that report its own faults
// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS) and the terminal's SIGTTIN and
// SIGTTOU, exactly as tini does; each one it receives, except SIGCHLD, is sent on. What tini and
// dumb-init agree on is the reference (tests/process/container_init_test.sh runs both).
inline int run_container_init(const std::vector<std::string>& argv,
                              const container_init_options& options);

// Makes this process the reaper of its descendants' orphans (PR_SET_CHILD_SUBREAPER), as PID 1
// already is; nothing to do as PID 1. Errors: prctl's.
inline result<void> become_child_subreaper() noexcept {
    if (::getpid() == 1 || ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0) return {};
    return last_error();
}

// become_child_subreaper() for a container init, which runs its command anyway when it cannot:
// then a warning on stderr ("PROGRAM: warning: not PID 1 and cannot become a child subreaper
// (...): orphaned processes will not be reaped").
inline void become_child_subreaper_or_warn(const container_init_options& options) {
    if (auto made = become_child_subreaper(); !made)
        std::fprintf(stderr,
                     "%s: warning: not PID 1 and cannot become a child subreaper (%s): "
                     "orphaned processes will not be reaped\n",
                     options.program.c_str(), made.error().message().c_str());
}

// Starts argv as the container's command, the first half of run_container_init (for a caller
// that waits for it on its own loop): its own process group (the terminal's foreground group
// when stdin is one), every signal unblocked and at its default disposition, stdin, stdout and
// stderr ours. Returns its pid once it has exec'd, or the exit code for a command that cannot
// run (127: not found, 126: any other exec failure; the reason on stderr, prefixed with
// options.program). Block the signals to forward (container_forwarded_signals) before.
inline expected<pid_t, int> start_container_command(const std::vector<std::string>& argv,
                                                    const container_init_options& options);

namespace detail {

// The signals this process must not block: faults of its own, and job control on a terminal.
inline sigset_t container_forwarded_signals() noexcept {
    sigset_t set;
    sigfillset(&set);
    for (int s : {SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS, SIGTTIN, SIGTTOU})
        sigdelset(&set, s);
    return set;
}

// Decodes a wait status the way shells and container runtimes report it.
inline int container_exit_code(int status) noexcept {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

} // namespace detail

inline expected<pid_t, int> start_container_command(const std::vector<std::string>& argv,
                                                    const container_init_options& options) {
    const char* prog = options.program.c_str();
    if (argv.empty()) {
        std::fprintf(stderr, "%s: no command to run\n", prog);
        return unexpected<int>(2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    // The child reports a failed exec through this close-on-exec pipe (errno, 4 bytes).
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) {
        std::fprintf(stderr, "%s: pipe2: %s\n", prog, std::strerror(errno));
        return unexpected<int>(1);
    }
    const pid_t child = ::fork();
    if (child < 0) {
        std::fprintf(stderr, "%s: fork: %s\n", prog, std::strerror(errno));
        return unexpected<int>(1);
    }
    if (child == 0) {
        ::close(report[0]);
        ::setpgid(0, 0); // its own group: --kill-group reaches its children, and only them
        // A foreground group of its own on a terminal, so that ^C reaches it (as tini does).
        if (::isatty(STDIN_FILENO) == 1) {
            ::signal(SIGTTOU, SIG_IGN);
            (void)::tcsetpgrp(STDIN_FILENO, ::getpgrp());
        }
        reset_signals_for_exec();
        ::execvp(args[0], args.data());
        const int e = errno;
        [[maybe_unused]] ssize_t n = ::write(report[1], &e, sizeof e);
        ::_exit(127);
    }
    ::close(report[1]);
    (void)::setpgid(child, child); // as the child does: whoever runs first, no kill(-pgid) misses
    int exec_errno = 0;
    ssize_t got;
    do got = ::read(report[0], &exec_errno, sizeof exec_errno);
    while (got < 0 && errno == EINTR);
    ::close(report[0]);
    if (got == sizeof exec_errno) {
        ::waitpid(child, nullptr, 0);
        std::fprintf(stderr, "%s: cannot run %s: %s\n", prog, argv[0].c_str(),
                     std::strerror(exec_errno));
        return unexpected<int>(exec_errno == ENOENT ? 127 : 126);
    }

    return child;
}

inline int run_container_init(const std::vector<std::string>& argv,
                              const container_init_options& options) {
    const char* prog = options.program.c_str();
    if (argv.empty()) {
        std::fprintf(stderr, "%s: no command to run\n", prog);
        return 2;
    }
    become_child_subreaper_or_warn(options);

    const sigset_t forwarded = detail::container_forwarded_signals();
    sigset_t previous;
    if (int e = ::pthread_sigmask(SIG_BLOCK, &forwarded, &previous); e != 0) {
        std::fprintf(stderr, "%s: pthread_sigmask: %s\n", prog, std::strerror(e));
        return 1;
    }
    const auto started = start_container_command(argv, options);
    if (!started) {
        ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
        return started.error();
    }
    const pid_t child = *started;
    int exit_code = -1;
    while (exit_code < 0) {
        siginfo_t info{};
        const int sig = ::sigwaitinfo(&forwarded, &info);
        if (sig < 0) continue; // EINTR
        if (sig != SIGCHLD) {
            // To the command (or its group); ESRCH: it is already gone, its end is on its way.
            (void)::kill(options.kill_group ? -child : child, sig);
            continue;
        }
        // Reap everything that has ended: the command, and any orphan that was re-parented here.
        for (;;) {
            int status = 0;
            const pid_t pid = ::waitpid(-1, &status, WNOHANG);
            if (pid <= 0) break;
            if (pid == child) exit_code = detail::container_exit_code(status);
        }
    }
    // Orphans that ended with the command: no zombie is left behind us.
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return exit_code;
}

} // namespace ringd
