// SPDX-License-Identifier: MIT
#include <ringd/daemon.hpp>

#include "lifecycle_support.hpp"

#include <catch2/catch.hpp>

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>

using namespace std::chrono_literals;
using ringd::daemon_context;
using ringd::pid_file_state;
using ringd::task;
using ringd::testing::eventually;
using ringd::testing::temp_dir;

namespace {

// Runs `fn` in a forked child with its stderr in a pipe; returns the child's PID and the pipe.
template <class F>
std::pair<pid_t, ringd::unique_fd> fork_with_stderr(F fn) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(p[1], 2);
        ::_exit(fn());
    }
    ::close(p[1]);
    return {pid, ringd::unique_fd(p[0])};
}

int wait_exit(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string drain(const ringd::unique_fd& fd) {
    std::string out;
    char buf[1024];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0)
        out.append(buf, static_cast<std::size_t>(n));
    return out;
}

std::optional<ringd::detail::reload_record> reload_record_of(const std::string& path) {
    auto text = ringd::testing::read_file(path);
    return ringd::detail::parse_reload_record(text);
}

ringd::pid_file_status probe(const std::string& path) {
    auto st = ringd::probe_pid_file(path);
    REQUIRE(st);
    return *st;
}

} // namespace

TEST_CASE("detached, the starter exits 0 only once the body says it is ready") {
    ringd::testing::become_subreaper();
    temp_dir dir;
    std::string pid_path = dir / "d.pid";
    auto t0 = std::chrono::steady_clock::now();
    auto [starter, err] = fork_with_stderr([&] {
        ringd::daemon_params p;
        p.program = "testd";
        p.pid_file = pid_path;
        return ringd::daemon_run(p, [](daemon_context& d) -> task<int> {
            co_await ringd::sleep_for(d.io(), 200ms); // "initialising"
            d.ready();
            co_await d.stopped();
            co_return 0;
        });
    });
    CHECK(wait_exit(starter) == 0);
    CHECK(std::chrono::steady_clock::now() - t0 >= 200ms);
    auto st = probe(pid_path);
    REQUIRE(st.state == pid_file_state::running);
    CHECK(st.pid != starter);
    CHECK(::getsid(st.pid) == st.pid); // setsid: its own session
    REQUIRE(::kill(st.pid, SIGTERM) == 0);
    CHECK(eventually([&] { return probe(pid_path).state == pid_file_state::absent; }));
    CHECK(eventually([&] { return !ringd::testing::process_alive(st.pid); }));
}

TEST_CASE("a failure before ready reaches the starter with the daemon's message and exit code") {
    ringd::testing::become_subreaper();
    temp_dir dir;
    std::string pid_path = dir / "d.pid";
    auto [starter, err] = fork_with_stderr([&] {
        ringd::daemon_params p;
        p.program = "testd";
        p.pid_file = pid_path;
        return ringd::daemon_run(p, [](daemon_context&) -> task<int> {
            std::fprintf(stderr, "testd: /etc/testd.conf: no such file\n");
            co_return ringd::exit_code::config;
        });
    });
    CHECK(wait_exit(starter) == ringd::exit_code::config);
    CHECK_THAT(drain(err), Catch::Contains("testd: /etc/testd.conf: no such file"));
    CHECK(eventually([&] { return probe(pid_path).state == pid_file_state::absent; }));
}

TEST_CASE("a daemon killed before it was ready makes the starter say so") {
    ringd::testing::become_subreaper();
    temp_dir dir;
    auto [starter, err] = fork_with_stderr([&] {
        ringd::daemon_params p;
        p.program = "testd";
        p.pid_file = dir / "d.pid";
        return ringd::daemon_run(p, [](daemon_context&) -> task<int> {
            ::raise(SIGKILL);
            co_return 0;
        });
    });
    CHECK(wait_exit(starter) == 128 + SIGKILL);
    CHECK_THAT(drain(err), Catch::Contains("killed by signal 9"));
}

TEST_CASE("a second instance is refused, naming the running PID, with exit code 73") {
    temp_dir dir;
    auto held = ringd::pid_file::open(dir / "d.pid");
    REQUIRE(held);
    REQUIRE(held->try_lock() == ringd::lock_outcome::locked);
    REQUIRE(held->write_pid(::getpid()));
    auto [child, err] = fork_with_stderr([&] {
        ringd::daemon_params p;
        p.program = "testd";
        p.pid_file = dir / "d.pid";
        p.flags.foreground = true;
        return ringd::daemon_run(p, [](daemon_context&) -> task<int> { co_return 0; });
    });
    CHECK(wait_exit(child) == ringd::exit_code::already_running);
    CHECK_THAT(drain(err),
               Catch::Contains("testd: start " + (dir / "d.pid") + ": already running as PID " +
                               std::to_string(::getpid())));
}

TEST_CASE("SIGHUP runs the reload hook; a failed reload keeps running and says why") {
    temp_dir dir;
    std::string pid_path = dir / "d.pid";
    // The daemon says ready (a newline, as to s6) once its reload hook is installed: a SIGHUP
    // before that is answered "reload is not supported", so the test waits for it.
    int ready_pipe[2];
    REQUIRE(::pipe(ready_pipe) == 0);
    ringd::unique_fd ready_end(ready_pipe[0]);
    auto [child, err] = fork_with_stderr([&] {
        ::close(ready_pipe[0]);
        ringd::daemon_params p;
        p.program = "testd";
        p.pid_file = pid_path;
        p.flags.foreground = true;
        p.notification_fd = ready_pipe[1];
        return ringd::daemon_run(p, [](daemon_context& d) -> task<int> {
            int calls = 0;
            d.on_reload([&]() -> ringd::expected<void, std::string> {
                if (++calls == 1) return ringd::unexpected<std::string>("testd.conf:3: bad line");
                return {};
            });
            d.ready();
            co_await d.stopped();
            co_return calls == 2 ? 0 : 1;
        });
    });
    ::close(ready_pipe[1]);
    std::string status_path = dir / "d.reload";
    pollfd ready{ready_end.get(), POLLIN, 0};
    REQUIRE(::poll(&ready, 1, 10000) == 1);
    REQUIRE(eventually([&] { return probe(pid_path).state == pid_file_state::running; }));
    REQUIRE(eventually([&] { return reload_record_of(status_path).has_value(); }));
    CHECK(reload_record_of(status_path)->state == "running");
    CHECK(reload_record_of(status_path)->pid == child);
    ::kill(child, SIGHUP);
    REQUIRE(eventually([&] {
        auto r = reload_record_of(status_path);
        return r && r->generation == 1 && r->state != "reloading";
    }));
    CHECK(reload_record_of(status_path)->state == "failed");
    CHECK(reload_record_of(status_path)->reason == "testd.conf:3: bad line");
    ::kill(child, SIGHUP);
    REQUIRE(eventually([&] {
        auto r = reload_record_of(status_path);
        return r && r->generation == 2 && r->state != "reloading";
    }));
    CHECK(reload_record_of(status_path)->state == "ok");
    ::kill(child, SIGTERM);
    CHECK(wait_exit(child) == 0);
    CHECK_THAT(drain(err),
               Catch::Contains(
                   "reload failed, keeping the running configuration: testd.conf:3: bad line"));
    CHECK(probe(pid_path).state == pid_file_state::absent);
    CHECK(ringd::testing::read_file(status_path).empty());
}

TEST_CASE("under systemd the daemon notifies READY, RELOADING, WATCHDOG and STOPPING") {
    temp_dir dir;
    std::string sock_path = dir / "notify";
    ringd::unique_fd server(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, sock_path.c_str(), sock_path.size() + 1);
    REQUIRE(::bind(server.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    auto [child, err] = fork_with_stderr([&] {
        ::setenv("NOTIFY_SOCKET", sock_path.c_str(), 1);
        ::setenv("WATCHDOG_USEC", "100000", 1);
        ringd::daemon_params p;
        p.program = "testd";
        p.flags.foreground = true;
        return ringd::daemon_run(p, [](daemon_context& d) -> task<int> {
            d.on_reload([]() -> ringd::expected<void, std::string> { return {}; });
            d.ready("serving");
            co_await d.stopped();
            co_return 0;
        });
    });
    std::vector<std::string> seen;
    auto collect_until = [&](const std::string& wanted) {
        for (int i = 0; i < 200; ++i) {
            pollfd pf{server.get(), POLLIN, 0};
            if (::poll(&pf, 1, 2000) != 1) return false;
            char buf[512];
            ssize_t n = ::recv(server.get(), buf, sizeof buf, 0);
            if (n <= 0) return false;
            seen.emplace_back(buf, static_cast<std::size_t>(n));
            if (seen.back().rfind(wanted, 0) == 0) return true;
        }
        return false;
    };
    REQUIRE(collect_until("READY=1"));
    CHECK(seen.back() == "READY=1\nSTATUS=serving");
    ::kill(child, SIGHUP);
    REQUIRE(collect_until("RELOADING=1\nMONOTONIC_USEC="));
    REQUIRE(collect_until("READY=1"));
    REQUIRE(collect_until("WATCHDOG=1")); // every 50 ms: half of WATCHDOG_USEC
    ::kill(child, SIGTERM);
    REQUIRE(collect_until("STOPPING=1"));
    CHECK(wait_exit(child) == 0);
}

TEST_CASE("a helper the daemon forks keeps neither the PID-file lock nor the readiness pipe") {
    ringd::testing::become_subreaper();
    temp_dir dir;
    std::string pid_path = dir / "d.pid";
    std::string helper_path = dir / "helper";
    auto [starter, err] = fork_with_stderr([&] {
        ringd::daemon_params p;
        p.program = "testd";
        p.pid_file = pid_path;
        return ringd::daemon_run(p, [&](daemon_context& d) -> task<int> {
            pid_t helper = ::fork(); // before ready: it must not hold up the starter either
            if (helper == 0) {
                ::pause();
                ::_exit(0);
            }
            std::ofstream(helper_path) << helper << "\n";
            d.ready();
            co_await d.stopped();
            co_return 0;
        });
    });
    CHECK(wait_exit(starter) == 0); // did not wait for the helper
    auto st = probe(pid_path);
    REQUIRE(st.state == pid_file_state::running);
    pid_t helper = std::stoi(ringd::testing::read_file(helper_path));
    ::kill(st.pid, SIGKILL);
    REQUIRE(eventually([&] { return !ringd::testing::process_alive(st.pid); }));
    // Not "running" because of the helper (once the kernel has run it: see pidfile_test).
    CHECK(eventually([&] { return probe(pid_path).state == pid_file_state::stale; }, 500ms));
    CHECK(ringd::testing::process_alive(helper));
    ::kill(helper, SIGKILL);
    eventually([&] { return !ringd::testing::process_alive(helper); });
}

TEST_CASE("as root, the daemon drops to nobody and cannot regain root") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root");
        return;
    }
    passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr) {
        WARN("skipped: no user nobody");
        return;
    }
    uid_t uid = nobody->pw_uid;
    gid_t gid = nobody->pw_gid;
    temp_dir dir;
    std::string pid_path = dir / "d.pid";
    auto [child, err] = fork_with_stderr([&] {
        ringd::daemon_params p;
        p.program = "testd";
        p.pid_file = pid_path;
        p.user = "nobody";
        p.flags.foreground = true;
        return ringd::daemon_run(p, [&](daemon_context&) -> task<int> {
            gid_t groups[64];
            int n = ::getgroups(64, groups);
            bool root_group = false;
            for (int i = 0; i < n; ++i) root_group |= groups[i] == 0;
            bool ok = ::getuid() == uid && ::geteuid() == uid && ::getgid() == gid &&
                      ::getegid() == gid && !root_group && ::setuid(0) != 0 && ::seteuid(0) != 0;
            co_return ok ? 0 : 1;
        });
    });
    CHECK(wait_exit(child) == 0);
    CHECK(drain(err).empty());
    CHECK(probe(pid_path).state == pid_file_state::absent); // cleared through the fd kept from root
}

TEST_CASE("an unknown user is a configuration error, before anything starts") {
    temp_dir dir;
    auto [child, err] = fork_with_stderr([&] {
        ringd::daemon_params p;
        p.program = "testd";
        p.pid_file = dir / "d.pid";
        p.user = "no-such-user-ringd";
        return ringd::daemon_run(p, [](daemon_context&) -> task<int> { co_return 0; });
    });
    CHECK(wait_exit(child) == ringd::exit_code::config);
    CHECK_THAT(drain(err), Catch::Contains("testd: unknown user 'no-such-user-ringd'"));
}

TEST_CASE("with an s6 notification fd, ready() writes a newline and closes it") {
    int p[2];
    REQUIRE(::pipe(p) == 0); // not close-on-exec: the daemon is given the write end
    ringd::unique_fd supervisor_end(p[0]);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(p[0]);
        ringd::daemon_params params;
        params.program = "testd";
        params.flags.foreground = true;
        params.notification_fd = p[1];
        ::_exit(ringd::daemon_run(params, [](daemon_context& d) -> task<int> {
            co_await ringd::sleep_for(d.io(), 50ms);
            d.ready();
            co_await d.stopped();
            co_return 0;
        }));
    }
    ::close(p[1]);
    char buf[8];
    pollfd pf{supervisor_end.get(), POLLIN, 0};
    REQUIRE(::poll(&pf, 1, 5000) == 1);
    CHECK(::read(supervisor_end.get(), buf, sizeof buf) == 1);
    CHECK(buf[0] == '\n');
    CHECK(::read(supervisor_end.get(), buf, sizeof buf) == 0); // closed after the newline
    ::kill(child, SIGTERM);
    CHECK(wait_exit(child) == 0);
}

TEST_CASE("with parent_death_signal, a foreground daemon drains and exits when its parent dies") {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    ringd::unique_fd report(p[0]);
    // The parent that dies: it starts the daemon, then waits to be killed.
    pid_t parent = ::fork();
    REQUIRE(parent >= 0);
    if (parent == 0) {
        pid_t daemon = ::fork();
        if (daemon < 0) ::_exit(1);
        if (daemon == 0) {
            ringd::daemon_params params;
            params.program = "testd";
            params.flags.foreground = true;
            params.parent_death_signal = SIGTERM;
            ::_exit(ringd::daemon_run(params, [&](daemon_context& d) -> task<int> {
                d.ready();
                const pid_t self = ::getpid();
                [[maybe_unused]] auto n = ::write(p[1], &self, sizeof self);
                co_await d.stopped();
                const char drained = 'D';
                n = ::write(p[1], &drained, 1);
                co_return 0;
            }));
        }
        for (;;) ::pause();
    }
    ::close(p[1]);
    pollfd pf{report.get(), POLLIN, 0};
    REQUIRE(::poll(&pf, 1, 5000) == 1);
    pid_t daemon = 0;
    REQUIRE(::read(report.get(), &daemon, sizeof daemon) == sizeof daemon);
    // A handle on the daemon (it is not our child), to end it whatever the outcome.
    ringd::unique_fd daemon_fd(static_cast<int>(::syscall(SYS_pidfd_open, daemon, 0)));
    REQUIRE(daemon_fd);

    ::kill(parent, SIGKILL);
    CHECK(wait_exit(parent) == 128 + SIGKILL);
    char drained = 0;
    if (::poll(&pf, 1, 5000) == 1) CHECK(::read(report.get(), &drained, 1) == 1);
    CHECK(drained == 'D'); // SIGTERM came, and the body saw the stop request
    pollfd gone{daemon_fd.get(), POLLIN, 0};
    CHECK(::poll(&gone, 1, 5000) == 1);                                     // and it exited
    ::syscall(SYS_pidfd_send_signal, daemon_fd.get(), SIGKILL, nullptr, 0); // in case it did not
}
