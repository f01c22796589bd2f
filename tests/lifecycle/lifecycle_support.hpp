// SPDX-License-Identifier: MIT
// tests/lifecycle/lifecycle_support.hpp — helpers for tests that start real processes: a
// temporary directory, running a command with its output and exit code, waiting with a limit,
// and a subreaper so that detached daemons come back to the test to be ended and reaped.
#pragma once

#include <ringd/control.hpp>
#include <ringd/fd.hpp>
#include <ringd/process.hpp>

#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace ringd::testing {

// A fresh directory under /tmp, removed with its content at the end.
class temp_dir {
public:
    temp_dir() {
        char tmpl[] = "/tmp/ringd-lifecycle-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path_ = tmpl;
        ::chmod(path_.c_str(), 0755); // readable by "nobody" in the privilege-drop tests
    }
    ~temp_dir() { (void)std::system(("rm -rf '" + path_ + "'").c_str()); }
    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::string operator/(const std::string& name) const {
        return path_ + "/" + name;
    }

private:
    std::string path_;
};

inline std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : fallback;
}
inline std::string echod_path() {
    return env_or("ECHOD", "examples/echod/echod");
}
inline std::string control_path() {
    return env_or("RINGD_CONTROL", "tools/ringd-control/ringd-control");
}

struct command_result {
    int exit_code = -1; // 128+N when killed by signal N
    std::string out;
    std::string err;
};

// Runs argv to completion (at most `limit`; then SIGKILL and a failed test) and collects stdout
// and stderr. Signals are unblocked and at their defaults in the child.
inline command_result run_command(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    int out_pipe[2], err_pipe[2];
    REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
    ringd::spawn_options o;
    o.argv = argv;
    o.stdout_to = ringd::borrowed_fd(out_pipe[1]);
    o.stderr_to = ringd::borrowed_fd(err_pipe[1]);
    o.group = ringd::process_group::inherit;
    auto child = ringd::spawn(o);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    unique_fd out_fd(out_pipe[0]), err_fd(err_pipe[0]);
    INFO(argv[0] << ": " << (child ? "" : child.error().message()));
    REQUIRE(child.has_value());
    const pid_t pid = child->pid();
    command_result r;
    auto deadline = std::chrono::steady_clock::now() + limit;
    bool out_open = true, err_open = true;
    // Read until both pipes close or the child is gone (a detached daemon may keep a pipe).
    for (;;) {
        int status = 0;
        pid_t w = ::waitpid(pid, &status, WNOHANG);
        pollfd fds[2] = {{out_open ? out_fd.get() : -1, POLLIN, 0},
                         {err_open ? err_fd.get() : -1, POLLIN, 0}};
        int n = ::poll(fds, 2, w == pid ? 0 : 5);
        char buf[4096];
        for (int i = 0; i < 2 && n > 0; ++i) {
            if (fds[i].revents == 0) continue;
            ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
            if (got > 0)
                (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
            else
                (i == 0 ? out_open : err_open) = false;
        }
        if (w == pid) {
            // Drain what is already there without waiting for a daemon's copy to close.
            for (auto* fd : {&out_fd, &err_fd}) {
                ::fcntl(fd->get(), F_SETFL, O_NONBLOCK);
                ssize_t got;
                while ((got = ::read(fd->get(), buf, sizeof buf)) > 0)
                    (fd == &out_fd ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
            }
            r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return r;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            FAIL("command did not finish in time: " << argv[0]);
        }
    }
}

// Starts argv in the background, in a process group of its own (signals unblocked and at their
// defaults, stdout and stderr to /dev/null), and returns its PID; end_background() ends it.
inline pid_t spawn_background(const std::vector<std::string>& argv) {
    unique_fd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    ringd::spawn_options o;
    o.argv = argv;
    o.stdout_to = null;
    o.stderr_to = null;
    o.group = ringd::process_group::own_group;
    auto child = ringd::spawn(o);
    INFO(argv[0] << ": " << (child ? "" : child.error().message()));
    REQUIRE(child.has_value());
    return child->pid();
}

// Ends a process that spawn_background() started, with its process group (children that
// share a lock with it), and reaps it.
inline void end_background(pid_t pid) {
    if (pid <= 0) return;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
}

// CPU time (user + system) of the children reaped so far.
inline std::chrono::microseconds children_cpu() {
    rusage ru{};
    ::getrusage(RUSAGE_CHILDREN, &ru);
    auto us = [](const timeval& t) {
        return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
    };
    return us(ru.ru_utime) + us(ru.ru_stime);
}

// Whether some process holds a flock on `path` (an exclusive probe fails), as libucw's probe
// would see it.
inline bool flock_held(const std::string& path) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return false;
    return ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
}

// Makes this process the reaper of orphans below it (detached daemons), for the test's life.
inline void become_subreaper() {
    REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
}

// Reaps every exited child that nobody else waits for (adopted daemons).
inline void reap_zombies() {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
}

// Whether `pid` exists and is not a zombie.
inline bool process_alive(pid_t pid) {
    if (pid <= 0) return false;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// Polls `condition` every 5 ms until it holds or `limit` passes.
template <class F>
bool eventually(F condition, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        reap_zombies();
    }
    return true;
}

// Live processes whose command line mentions `needle` (a unique path of the test).
inline std::vector<pid_t> processes_mentioning(const std::string& needle) {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        char* end = nullptr;
        long pid = std::strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == ::getpid()) continue;
        std::ifstream cmd("/proc/" + std::string(e->d_name) + "/cmdline");
        std::stringstream text;
        text << cmd.rdbuf();
        if (text.str().find(needle) != std::string::npos && process_alive(static_cast<pid_t>(pid)))
            out.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(d);
    return out;
}

// Ends every live process that mentions `needle` (SIGKILL) and reaps what comes back to us.
inline void kill_all_mentioning(const std::string& needle) {
    for (pid_t p : processes_mentioning(needle)) ::kill(p, SIGKILL);
    eventually([&] { return processes_mentioning(needle).empty(); }, std::chrono::seconds(5));
    reap_zombies();
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

} // namespace ringd::testing
