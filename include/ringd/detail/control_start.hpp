// SPDX-License-Identifier: MIT
// ringd/detail/control_start.hpp — daemon_control's --start and --upgrade: the starter run through
// spawn() with its stderr collected until it exits (the daemon is ready then), and an upgrade's
// listening sockets taken from the running daemon with pidfd_getfd and passed on by LISTEN_FDS.
#pragma once

#include <ringd/detail/control_run.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ringd::detail {

// Collects the starter's stderr until it exits or the deadline passes. True: it exited 0
// (the daemon is ready); false: error() said why. A starter still running at the deadline
// is left running, or killed with its process group when `stop_on_timeout`.
inline bool control_run::wait_starter(pid_t child, unique_fd out_read, bool stop_on_timeout) {
    auto child_fd = control_pidfd_open(child);
    ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
    bool exited = false, timed_out = false;
    while (!exited) {
        pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {child_fd ? child_fd->get() : -1, POLLIN, 0}};
        int n = ::poll(fds, 2, child_fd ? control_poll_ms(deadline_) : 20);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 && child_fd) {
            timed_out = true;
            break;
        }
        char buf[4096];
        ssize_t got;
        while ((got = ::read(out_read.get(), buf, sizeof buf)) > 0)
            out_.daemon_output.append(buf, static_cast<std::size_t>(got));
        if (child_fd ? (fds[1].revents & POLLIN) != 0
                     : ::waitpid(child, nullptr, WNOHANG | WNOWAIT) == child)
            exited = true;
    }
    if (timed_out && stop_on_timeout) {
        // An upgrade's starter is ended; the daemon it forked follows it (daemon_run sets
        // the parent-death signal SIGTERM until it is ready).
        if (child_fd) (void)control_pidfd_signal(*child_fd, SIGKILL);
        ::kill(-child, SIGKILL);
        while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
        }
        error(p_.command[0] + " was not ready within " + seconds_text(timeout_) + " (PID " +
              std::to_string(child) + " stopped)");
        return false;
    }
    if (timed_out) {
        error(p_.command[0] + " was not ready within " + seconds_text(timeout_) + " (PID " +
              std::to_string(child) + " left running)");
        return false;
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    char buf[4096];
    ssize_t got;
    while ((got = ::read(out_read.get(), buf, sizeof buf)) > 0)
        out_.daemon_output.append(buf, static_cast<std::size_t>(got));
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0) {
        out_.daemon_exit_code = code;
        std::string last = out_.daemon_output;
        while (!last.empty() && last.back() == '\n') last.pop_back();
        if (auto nl = last.rfind('\n'); nl != std::string::npos) last.erase(0, nl + 1);
        std::string how = WIFEXITED(status)
                              ? "exit code " + std::to_string(code)
                              : "killed by signal " + std::to_string(WTERMSIG(status));
        error(p_.command[0] + " failed to start (" + how + ")" + (last.empty() ? "" : ": " + last));
        return false;
    }
    return true;
}

inline void control_run::start() {
    std::optional<unique_fd> pidfd;
    auto st = settle(true, pidfd);
    if (!st) return;
    if (st->state == pid_file_state::exiting) { // let it finish, then start afresh
        if (!control_wait_exit(*pidfd, deadline_))
            return error("PID " + std::to_string(st->pid) + " is still exiting", st->pid);
        st = settle(true, pidfd);
        if (!st) return;
    }
    if (st->state == pid_file_state::running || st->state == pid_file_state::exiting)
        return void(finish(control_exit::already, "running", st->pid,
                           "already running as PID " + std::to_string(st->pid)));
    std::string stale_note;
    if (st->state == pid_file_state::stale) stale_note = stale_text(*st);
    if (p_.command.empty()) return error("no command to start");

    // The starter's stderr comes to us until it exits (daemon_run moves the daemon's stderr
    // away at ready()), so that its own failure message can be reported.
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return error("pipe: " + errno_text(errno));
    unique_fd out_read(pipe_fds[0]), out_write(pipe_fds[1]);
    spawn_options o;
    o.argv = p_.command;
    o.stderr_to = out_write;
    auto child = spawn(o);
    out_write.reset();
    if (!child) return error("cannot run " + p_.command[0] + ": " + child.error().message());
    if (!wait_starter(child->pid(), std::move(out_read), false)) return;
    // The starter exited 0: the daemon said it is ready. It must hold the lock now.
    std::optional<unique_fd> started;
    auto now = settle(false, started);
    if (!now) return;
    if (now->state != pid_file_state::running)
        return error(p_.command[0] + " exited 0 but no daemon holds the PID file");
    finish(control_exit::done, "started", now->pid);
    if (!stale_note.empty()) out_.message = "start " + p_.pid_file + ": " + stale_note;
}

// The listening sockets that the daemon behind `pidfd` offers (daemon_context::hand_over():
// the ".listen" file beside the PID file, written by the holder of the PID file and naming
// it), each taken from it with pidfd_getfd and checked to be listening. Nothing: error()
// said why.
inline std::optional<std::vector<std::pair<unique_fd, std::string>>>
control_run::take_listeners(borrowed_fd pidfd, pid_t pid) {
    std::string path = pid_file_sibling(p_.pid_file, ".listen");
    std::string text;
    {
        unique_fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        char buf[4096];
        ssize_t n = f ? ::read(f.get(), buf, sizeof buf) : -1;
        if (n > 0) text.assign(buf, static_cast<std::size_t>(n));
    }
    if (detail::parse_pid_text(text) != pid) {
        error("PID " + std::to_string(pid) + " offers no listening sockets (" + path +
                  " does not name it): the daemon does not support upgrades; nothing changed",
              pid);
        return std::nullopt;
    }
    std::vector<std::pair<unique_fd, std::string>> out;
    std::size_t pos = text.find('\n') + 1;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) break;
        std::string line = text.substr(pos, nl - pos);
        pos = nl + 1;
        std::size_t sp = line.find(' ');
        int fd = -1;
        auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), fd);
        if (ec != std::errc{} || sp == std::string::npos || end != line.data() + sp || fd < 0) {
            error(path + ": bad line '" + line + "'; nothing changed", pid);
            return std::nullopt;
        }
        int got = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0));
        if (got < 0) {
            error("cannot take fd " + std::to_string(fd) + " of PID " + std::to_string(pid) + ": " +
                      errno_text(errno) + "; nothing changed",
                  pid);
            return std::nullopt;
        }
        unique_fd sock(got); // pidfd_getfd sets close-on-exec
        int accepting = 0;
        socklen_t len = sizeof accepting;
        if (::getsockopt(sock.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 ||
            accepting == 0) {
            error("fd " + std::to_string(fd) + " of PID " + std::to_string(pid) +
                      " is not a listening socket; nothing changed",
                  pid);
            return std::nullopt;
        }
        out.emplace_back(std::move(sock), line.substr(sp + 1));
    }
    if (out.empty()) {
        error("PID " + std::to_string(pid) + " offers no listening sockets; nothing changed", pid);
        return std::nullopt;
    }
    return out;
}

// The command with the sockets as descriptors 3, 4, ... (LISTEN_FDS, LISTEN_FDNAMES,
// LISTEN_PID) and RINGD_UPGRADE_FROM=old in its environment; stderr to `err`.
inline expected<process, spawn_error>
control_run::spawn_with_sockets(const std::vector<std::pair<unique_fd, std::string>>& sockets,
                                pid_t old, borrowed_fd err) {
    spawn_options o;
    o.argv = p_.command;
    o.environment = {"RINGD_UPGRADE_FROM=" + std::to_string(old)};
    o.stderr_to = err;
    for (const auto& [fd, name] : sockets) o.listen_fds.push_back({fd, name});
    return spawn(o);
}

// --upgrade: a new daemon on the running one's listening sockets; the old one stops only
// once the new one is ready, and the new one takes the PID file over when the old one has
// exited (daemon_run). The guard lock is ours throughout: no start, stop or other upgrade
// interleaves. A new daemon that fails, or is not ready in time, is stopped, and the old
// one was never signalled.
inline void control_run::upgrade() {
    std::optional<unique_fd> pidfd;
    auto st = settle(true, pidfd);
    if (!st) return;
    if (st->state == pid_file_state::absent)
        return void(finish(control_exit::not_running, "not running", 0, "not running"));
    if (st->state == pid_file_state::stale)
        return void(finish(control_exit::not_running, "not running", st->pid,
                           "not running: " + stale_text(*st)));
    if (st->state == pid_file_state::exiting)
        return void(finish(control_exit::not_running, "exiting", st->pid,
                           "not running (PID " + std::to_string(st->pid) + " is exiting)"));
    if (p_.command.empty()) return error("no command to start");
    const pid_t old = st->pid;
    auto sockets = take_listeners(*pidfd, old);
    if (!sockets) return;

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return error("pipe: " + errno_text(errno));
    unique_fd out_read(pipe_fds[0]), out_write(pipe_fds[1]);
    auto child = spawn_with_sockets(*sockets, old, out_write);
    out_write.reset();
    sockets->clear(); // the new daemon has them, and the old one still does
    if (!child)
        return error("cannot run " + p_.command[0] + ": " + child.error().message() + "; PID " +
                         std::to_string(old) + " goes on serving",
                     old);
    if (!wait_starter(child->pid(), std::move(out_read), true)) {
        out_.pid = old;
        out_.message += "; PID " + std::to_string(old) + " goes on serving";
        return;
    }
    // The new daemon serves beside the old one. Now the old one stops accepting and drains
    // (SIGKILL if it has not finished by the deadline, as --stop does).
    if (!end_daemon(*pidfd, old, true, true)) return;
    // The new daemon takes the PID file over at once; wait until the file names it.
    std::string dir = p_.pid_file.substr(0, p_.pid_file.rfind('/') + 1);
    control_file_watch watch(dir.empty() ? "." : dir,
                             IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO);
    auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        auto now = probe_pid_file(p_.pid_file);
        if (now && now->state == pid_file_state::running && now->pid != old) {
            std::string note = out_.message;
            finish(control_exit::done, "upgraded", now->pid);
            out_.message = note;
            return;
        }
        if (!watch.wait(limit))
            return error("PID " + std::to_string(old) +
                         " exited, but no new daemon took the PID file over within 10 s");
    }
}

} // namespace ringd::detail
