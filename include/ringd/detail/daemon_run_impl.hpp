// SPDX-License-Identifier: MIT
// ringd/detail/daemon_run_impl.hpp — daemon_run (daemon.hpp), phase two: detach (or not),
// setsid, chdir, umask, stdio, the privilege drop, the PID, the io_context, the body with the
// signal loop beside it, and the PID file cleared at the end.
#pragma once

#include <ringd/daemon.hpp>

namespace ringd {

template <class Body>
int daemon_run(daemon_start&& start_arg, Body body) {
    daemon_start start = std::move(start_arg);
    auto& p = start.params_;
    auto say = [&](const std::string& text) {
        std::fprintf(stderr, "%s: %s\n", p.program.c_str(), text.c_str());
    };
    const bool detach = !p.flags.foreground && !p.flags.simulate;
    const pid_t starter = ::getpid();
    const pid_t parent = ::getppid();
    unique_fd ready_pipe, stderr_target;
    if (detach) {
        // Opened here, before privileges go, so that a log file under /var/log can be a target.
        unique_fd in = detail::daemon_open_stdio(p.stdin_path, true);
        unique_fd out = detail::daemon_open_stdio(p.stdout_path, false);
        stderr_target = detail::daemon_open_stdio(p.stderr_path, false);
        if (!in || !out || !stderr_target) {
            int e = errno;
            say("open stdio target: " + errno_text(e));
            return exit_code_for({e, std::system_category()});
        }
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            int e = errno;
            say("pipe: " + errno_text(e));
            return exit_code_for({e, std::system_category()});
        }
        unique_fd read_end(fds[0]);
        ready_pipe.reset(fds[1]);
        std::fflush(nullptr);
        pid_t child = ::fork();
        if (child < 0) {
            int e = errno;
            say("fork: " + errno_text(e));
            return exit_code_for({e, std::system_category()});
        }
        if (child > 0) {
            // The parent shares the PID-file lock until it exits and never clears it. It leaves
            // with _exit: the objects of main() (listeners that unlink their UNIX path, files)
            // belong to the daemon now, and their destructors must not run here.
            ready_pipe.reset();
            int code = detail::daemon_wait_for_ready(std::move(read_end), child, p.program);
            std::fflush(nullptr);
            ::_exit(code);
        }
        read_end.reset();
        ::setsid(); // cannot fail: the child of a fork is never a process-group leader
        ::dup2(in.get(), STDIN_FILENO);
        ::dup2(out.get(), STDOUT_FILENO);
    }
    // From here on: the final process.
    if (!p.flags.preserve_cwd && ::chdir(p.working_directory.c_str()) != 0) {
        int e = errno;
        say("chdir " + p.working_directory + ": " + errno_text(e));
        return exit_code::config;
    }
    ::umask(p.umask);
    start.pid_.protect_from_children();
    if (ready_pipe) detail::fork_close_list::add(ready_pipe.get());
    if (start.run_as_) {
        auto dropped = drop_privileges(*start.run_as_);
        if (!dropped) {
            say("drop privileges to " + (p.user.empty() ? p.group : p.user) + ": " +
                dropped.error());
            return exit_code::no_permission;
        }
    }
    // Set after setuid, which clears it. A parent that died before the prctl is seen by
    // getppid(): the process that adopted us is not the one we were asked to follow.
    if (!detach && p.parent_death_signal != 0) {
        if (::prctl(PR_SET_PDEATHSIG, p.parent_death_signal) != 0) {
            int e = errno;
            say("parent_death_signal " + std::to_string(p.parent_death_signal) + ": " +
                errno_text(e));
            return exit_code::config;
        }
        if (::getppid() != parent) {
            say("the parent process (PID " + std::to_string(parent) + ") is gone");
            return exit_code::failure;
        }
    }
    // An upgrade not yet ready dies with its starter (SIGTERM: it drains), so that a starter
    // that ringd-control gives up on takes its half-started daemon along. Set after setuid,
    // which clears it; cleared again by ready().
    if (start.upgrade_from_ && detach &&
        (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != starter)) {
        say("upgrade: the starter is gone before the daemon was ready");
        return exit_code::failure;
    }
    if (start.pid_.locked()) {
        if (auto w = start.pid_.write_pid(::getpid()); !w) {
            say("write " + p.pid_file + ": " + w.error().message());
            return exit_code_for(w.error());
        }
    }
    int code = exit_code::failure;
    try {
        auto n = notifier::from_environment();
        if (!n) throw std::system_error(n.error(), "NOTIFY_SOCKET");
        io_context io;
        lifecycle_signals signals(io);
        daemon_context d(start, io, std::move(*n), std::move(ready_pipe), std::move(stderr_target));
        auto main_task = [&]() -> task<int> {
            scope background;
            background.spawn(detail::daemon_signal_loop(d, signals));
            if (start.upgrade_from_) background.spawn(daemon_take_over(d));
            if (auto period = d.notify().watchdog_period())
                background.spawn(detail::daemon_watchdog_loop(d, *period));
            int result = exit_code::failure;
            std::exception_ptr error;
            try {
                result = co_await body(d);
            } catch (...) {
                error = std::current_exception();
            }
            d.on_reload(nullptr); // the hook may point into the body's finished frame
            background.request_stop();
            co_await background.join();
            if (error) std::rethrow_exception(error);
            co_return result;
        };
        code = io.run(main_task());
        if (!d.stop_requested()) (void)d.notify().stopping();
    } catch (const std::system_error& e) {
        say(e.what());
        code = exit_code_for(e.code());
    } catch (const std::exception& e) {
        say(e.what());
        code = exit_code::failure;
    }
    // A clean end: nothing stale left behind. The locks go with the process, and the file
    // with its exit (after main()'s objects): start-stop-daemon and pidofproc then say "not
    // running". If the process ends by _exit instead, the emptied file says the same to ringd.
    if (start.reload_status_) (void)::ftruncate(start.reload_status_.get(), 0);
    if (start.pid_.locked()) {
        if (start.handover_written_) // ours: only the holder of the PID file writes it
            (void)::unlink(pid_file_sibling(p.pid_file, ".listen").c_str());
        (void)start.pid_.mark_exiting();
        (void)start.pid_.clear();
        (void)start.pid_.remove_at_exit();
    }
    return code;
}

template <class Body>
int daemon_run(daemon_params params, Body body) {
    auto start = daemon_init(std::move(params));
    if (!start) {
        std::fprintf(stderr, "%s\n", start.error().message.c_str());
        return start.error().exit_code;
    }
    return daemon_run(std::move(*start), std::move(body));
}

} // namespace ringd
