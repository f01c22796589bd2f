// SPDX-License-Identifier: MIT
// ringd/detail/daemon_init.hpp — daemon_init (daemon.hpp), phase one in the process as
// invoked: the user and group resolved, the lifecycle signals blocked, the PID file locked (or an
// upgrade's predecessor found); and the starter's wait for the detached daemon's readiness.
#pragma once

#include <ringd/daemon.hpp>

namespace ringd {

namespace detail {

// Opens a stdio target: stdin read-only, the others appending (a log file is created 0640).
inline unique_fd daemon_open_stdio(const std::string& path, bool input) {
    int flags = input ? O_RDONLY : (O_WRONLY | O_CREAT | O_APPEND);
    return unique_fd(::open(path.c_str(), flags | O_CLOEXEC | O_NOCTTY, 0640));
}

// The parent in detach mode: waits for 'R' (ready) or for the child's end.
inline int daemon_wait_for_ready(unique_fd pipe, pid_t child, const std::string& program) {
    char c = 0;
    ssize_t n;
    do n = ::read(pipe.get(), &c, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1 && c == 'R') return exit_code::ok;
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) != 0) return WEXITSTATUS(status); // it said why on stderr
        std::fprintf(stderr, "%s: start: the daemon exited before it was ready\n", program.c_str());
        return exit_code::failure;
    }
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    std::fprintf(stderr, "%s: start: the daemon was killed by signal %d (%s) before it was ready\n",
                 program.c_str(), sig, ::strsignal(sig));
    return 128 + sig;
}

} // namespace detail

inline expected<daemon_start, daemon_failure> daemon_init(daemon_params params) {
    daemon_start s;
    if (params.program.empty()) params.program = program_invocation_short_name;
    auto fail = [&](int code, const std::string& what) {
        return unexpected<daemon_failure>(daemon_failure{code, params.program + ": " + what});
    };
    // Who to become.
    if (!params.user.empty()) {
        auto c = lookup_credentials(params.user, params.group);
        if (!c) return fail(exit_code::config, c.error());
        s.run_as_ = std::move(*c);
    } else if (!params.group.empty()) {
        auto gid = lookup_group(params.group);
        if (!gid) return fail(exit_code::config, gid.error());
        s.run_as_ = credentials{::getuid(), *gid, {*gid}};
    }
    // Signals queue for the signalfd from now on; threads and children made later inherit it.
    try {
        block_signals({SIGHUP, SIGTERM, SIGINT});
    } catch (const std::system_error& e) {
        return fail(exit_code::failure, e.what());
    }
    // An upgrade names the daemon it replaces; children of this one must not inherit that.
    pid_t upgrade_from = 0;
    if (const char* text = std::getenv(upgrade_env)) {
        std::uint64_t v = 0;
        if (detail::notify_parse_u64(text, v) && v > 0 && v < (1u << 31))
            upgrade_from = static_cast<pid_t>(v);
        ::unsetenv(upgrade_env);
    }
    if (!params.pid_file.empty()) {
        auto f = pid_file::open(params.pid_file);
        if (!f)
            return fail(exit_code_for(f.error()),
                        "open " + params.pid_file + ": " + f.error().message());
        // A busy answer may come from a prober (ringd-control) that holds the lock for a few
        // microseconds: ask again for up to 100 ms before believing another daemon runs.
        for (int attempt = 0;; ++attempt) {
            auto got = f->try_lock();
            if (!got && got.error() == std::errc::bad_message)
                return fail(exit_code::config, "lock " + params.pid_file +
                                                   ": not a PID file (it holds other data); "
                                                   "left unchanged");
            if (!got)
                return fail(exit_code_for(got.error()),
                            "lock " + params.pid_file + ": " + got.error().message());
            if (*got == lock_outcome::locked) break;
            auto holder = probe_pid_file(params.pid_file);
            if (upgrade_from != 0 && holder && holder->pid == upgrade_from &&
                (holder->state == pid_file_state::running ||
                 holder->state == pid_file_state::exiting)) {
                // The daemon we replace: a pidfd for it, proven by a second probe (the PID
                // cannot have been recycled while the holder still has that PID).
                unique_fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, upgrade_from, 0)));
                auto again = probe_pid_file(params.pid_file);
                if (pidfd && again && again->pid == upgrade_from &&
                    (again->state == pid_file_state::running ||
                     again->state == pid_file_state::exiting)) {
                    s.upgrade_from_ = std::move(pidfd);
                    s.upgrade_pid_ = upgrade_from;
                    break;
                }
            }
            bool daemon_there = holder && (holder->state == pid_file_state::running ||
                                           holder->state == pid_file_state::exiting ||
                                           holder->state == pid_file_state::foreign);
            if (attempt >= 50 || daemon_there) {
                std::string who =
                    holder && holder->pid != 0 ? " as PID " + std::to_string(holder->pid) : "";
                if (holder && holder->state == pid_file_state::foreign)
                    who = " (locked by a process other than PID " + std::to_string(holder->pid) +
                          " that it names)";
                std::string how =
                    holder && holder->state == pid_file_state::exiting ? " (exiting)" : "";
                return fail(exit_code::already_running,
                            "start " + params.pid_file + ": already running" + who + how);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        s.pid_ = std::move(*f);
        if (params.reload_status.empty())
            params.reload_status = pid_file_sibling(params.pid_file, ".reload");
    }
    if (!params.reload_status.empty() && params.reload_status != "-") {
        s.reload_status_.reset(
            ::open(params.reload_status.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (!s.reload_status_)
            return fail(exit_code_for({errno, std::system_category()}),
                        "open " + params.reload_status + ": " + errno_text(errno));
        (void)::ftruncate(s.reload_status_.get(), 0);
    }
    s.params_ = std::move(params);
    return s;
}

} // namespace ringd
