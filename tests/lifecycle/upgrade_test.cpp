// SPDX-License-Identifier: MIT
// End to end: `ringd-control --upgrade` replaces a running echod by a new one on the same
// listening sockets (issue 12, item 1): no connection refused or reset meanwhile, the PID file
// names the new daemon afterwards, and a new one that fails leaves the old one serving.
#include "lifecycle_support.hpp"
#include "load_client.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>

using namespace std::chrono_literals;
using ringd::testing::command_result;
using ringd::testing::eventually;
using ringd::testing::load_client;
using ringd::testing::round_trip;
using ringd::testing::run_command;
using ringd::testing::temp_dir;
using ringd::testing::trip;

namespace {

// One echod on 127.0.0.1 (an ephemeral port, learnt at start), its directory and PID file;
// ends every process that mentions the directory when it goes.
struct tcp_world {
    temp_dir dir;
    std::string pid = dir / "echod.pid";
    int port = 0;

    tcp_world() { ringd::testing::become_subreaper(); }
    ~tcp_world() { ringd::testing::kill_all_mentioning(dir.path()); }

    // Reaping adopted daemons (waitpid(-1)) would steal another thread's child from its
    // run_command(): `concurrent` callers leave it to the end of the test.
    std::atomic<bool> concurrent{false};

    command_result control(std::vector<std::string> args) {
        std::vector<std::string> argv = {ringd::testing::control_path(), "--pid-file", pid};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run_command(argv);
        if (!concurrent) ringd::testing::reap_zombies();
        return r;
    }
    // The echod processes serving this world's port (their title names it).
    std::size_t daemons() {
        return ringd::testing::processes_mentioning("echod [127.0.0.1:" + std::to_string(port) +
                                                    "]")
            .size();
    }
    // echod's command line; port 0 before the first start.
    std::vector<std::string> echod() {
        return {ringd::testing::echod_path(),
                "--listen",
                "127.0.0.1:" + std::to_string(port),
                "--pid-file",
                pid,
                "--drain-timeout",
                "5"};
    }
    command_result start() {
        std::vector<std::string> args = {"--start", "--"};
        for (auto& a : echod()) args.push_back(a);
        auto r = control(args);
        auto at = r.out.find("listening on 127.0.0.1:");
        if (at != std::string::npos)
            port = std::atoi(r.out.c_str() + at + std::strlen("listening on 127.0.0.1:"));
        return r;
    }
    command_result upgrade(std::vector<std::string> command, std::vector<std::string> opts = {}) {
        std::vector<std::string> args = {"--upgrade"};
        args.insert(args.end(), opts.begin(), opts.end());
        args.emplace_back("--");
        args.insert(args.end(), command.begin(), command.end());
        return control(args);
    }
    pid_t check() {
        auto r = control({"--check"});
        if (r.exit_code != 0) return 0;
        return static_cast<pid_t>(std::atoi(r.out.c_str()));
    }
};

// The PID that ringd-control printed: the last line of stdout (echod's own lines come first).
pid_t last_line_pid(std::string out) {
    while (!out.empty() && out.back() == '\n') out.pop_back();
    auto nl = out.rfind('\n');
    return static_cast<pid_t>(std::atoi(out.c_str() + (nl == std::string::npos ? 0 : nl + 1)));
}

} // namespace

TEST_CASE("--upgrade replaces echod on its listening socket: no connection refused or reset, "
          "and --check names the new PID") {
    tcp_world w;
    auto started = w.start();
    INFO(started.err);
    REQUIRE(started.exit_code == 0);
    REQUIRE(w.port > 0);
    pid_t current = w.check();
    REQUIRE(current > 0);

    load_client client(w.port);
    REQUIRE(eventually([&] { return client.count(trip::ok) > 50; }, 5s));
    constexpr int upgrades = 5;
    std::chrono::milliseconds slowest{0};
    for (int n = 0; n < upgrades; ++n) {
        long before = client.count(trip::ok);
        auto t0 = std::chrono::steady_clock::now();
        auto up = w.upgrade(w.echod());
        auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - t0);
        INFO("upgrade " << n << ": " << up.err << " (" << took.count() << " ms)");
        REQUIRE(up.exit_code == 0);
        slowest = std::max(slowest, took);
        pid_t fresh = last_line_pid(up.out);
        CHECK(fresh != current);
        CHECK(w.check() == fresh);                           // the PID file names the new one...
        CHECK_FALSE(ringd::testing::process_alive(current)); // ...and the old one is gone
        CHECK(ringd::testing::read_file(w.pid) == std::to_string(fresh) + "\n");
        current = fresh;
        // The client goes on being served by the new one.
        CHECK(eventually([&] { return client.count(trip::ok) > before + 20; }, 5s));
    }
    client.stop();
    std::printf("upgrade: %d upgrades (slowest %lld ms), %ld round trips: %ld refused, %ld reset, "
                "%ld unanswered, %ld other\n",
                upgrades, static_cast<long long>(slowest.count()), client.count(trip::ok),
                client.count(trip::refused), client.count(trip::reset),
                client.count(trip::unanswered), client.count(trip::other));
    INFO(client.summary());
    CHECK(client.count(trip::ok) > 100);
    CHECK(client.count(trip::refused) == 0);
    CHECK(client.count(trip::reset) == 0);
    CHECK(client.count(trip::unanswered) == 0);
    CHECK(client.count(trip::other) == 0);

    CHECK(w.control({"--stop"}).exit_code == 0);
    CHECK_FALSE(ringd::testing::process_alive(current));
}

TEST_CASE("--upgrade to a command that fails exits 102 and leaves the old daemon serving") {
    tcp_world w;
    REQUIRE(w.start().exit_code == 0);
    pid_t old = w.check();
    REQUIRE(old > 0);

    SECTION("a command that exits 1") {
        auto up = w.upgrade({"false"});
        CHECK(up.exit_code == 102);
        CHECK_THAT(up.err, Catch::Contains("false failed to start (exit code 1)"));
        CHECK_THAT(up.err, Catch::Contains("PID " + std::to_string(old) + " goes on serving"));
    }
    SECTION("echod with a bad option") {
        auto cmd = w.echod();
        cmd.emplace_back("--bogus");
        cmd.emplace_back("x");
        auto up = w.upgrade(cmd);
        CHECK(up.exit_code == 102);
        CHECK_THAT(up.err, Catch::Contains("unknown option '--bogus'"));
        CHECK_THAT(up.err, Catch::Contains("failed to start (exit code 64)"));
    }
    SECTION("a command that is never ready within --timeout") {
        auto t0 = std::chrono::steady_clock::now();
        auto up = w.upgrade({"sh", "-c", "sleep 30; : " + w.dir.path()}, {"--timeout", "1"});
        CHECK(std::chrono::steady_clock::now() - t0 < 5s);
        CHECK(up.exit_code == 102);
        CHECK_THAT(up.err, Catch::Contains("was not ready within 1 s"));
        // The starter was stopped, not left behind.
        const std::string sleeper = "sleep 30; : " + w.dir.path();
        CHECK(eventually([&] { return ringd::testing::processes_mentioning(sleeper).empty(); }));
    }
    SECTION("a program that does not exist") {
        auto up = w.upgrade({w.dir / "no-such-program"});
        CHECK(up.exit_code == 102);
        CHECK_THAT(up.err, Catch::Contains("cannot run"));
    }
    // Untouched: the same daemon, still named by the PID file, still serving.
    CHECK(w.check() == old);
    CHECK(ringd::testing::process_alive(old));
    CHECK(round_trip(w.port, "still here") == trip::ok);
    CHECK(w.control({"--stop"}).exit_code == 0);
}

TEST_CASE("--check, --start and --stop during an --upgrade wait for it: one daemon at a time") {
    tcp_world w;
    REQUIRE(w.start().exit_code == 0);
    pid_t old = w.check();
    REQUIRE(old > 0);

    std::atomic<bool> upgrading{true};
    command_result up;
    w.concurrent = true;
    std::thread upgrader([&] {
        up = w.upgrade(w.echod());
        upgrading = false;
    });
    // Checks racing the upgrade: each names exactly one daemon, the old or the new one.
    std::vector<pid_t> seen;
    while (upgrading) seen.push_back(w.check());
    auto start_again = w.start(); // after the upgrade, whenever it runs: already running
    upgrader.join();
    INFO(up.err);
    REQUIRE(up.exit_code == 0);
    pid_t fresh = last_line_pid(up.out);
    CHECK(fresh != old);
    for (pid_t p : seen) CHECK((p == old || p == fresh));
    CHECK(start_again.exit_code == 100);
    CHECK_THAT(start_again.err, Catch::Contains("already running as PID " + std::to_string(fresh)));
    CHECK(w.check() == fresh);
    CHECK(w.daemons() == 1);

    // A stop racing an upgrade: one runs first, and either way the daemon ends up stopped (the
    // upgrade first: the stop ends the new daemon; the stop first: the upgrade finds none, 101).
    std::thread stopper([&] { up = w.upgrade(w.echod()); });
    auto stop = w.control({"--stop"});
    stopper.join();
    w.concurrent = false;
    ringd::testing::reap_zombies();
    CHECK(stop.exit_code == 0);
    CHECK((up.exit_code == 0 || up.exit_code == 101));
    CHECK(eventually([&] { return w.daemons() == 0; }, 5s));
    CHECK(w.check() == 0);
}

TEST_CASE("two concurrent --upgrades run one after the other: both succeed, one daemon is left, "
          "and no connection is refused or reset") {
    tcp_world w;
    REQUIRE(w.start().exit_code == 0);
    pid_t old = w.check();
    REQUIRE(old > 0);
    load_client client(w.port);
    REQUIRE(eventually([&] { return client.count(trip::ok) > 50; }, 5s));

    // Each round: two upgrades at once. The second to get the guard lock upgrades the daemon
    // that the first one started, so it must find that daemon's sockets already offered.
    for (int round = 0; round < 3; ++round) {
        command_result a, b;
        w.concurrent = true;
        std::thread first([&] { a = w.upgrade(w.echod()); });
        std::thread second([&] { b = w.upgrade(w.echod()); });
        first.join();
        second.join();
        w.concurrent = false;
        ringd::testing::reap_zombies();
        INFO("round " << round << ": " << a.err << " | " << b.err);
        REQUIRE(a.exit_code == 0);
        REQUIRE(b.exit_code == 0);
        pid_t pa = last_line_pid(a.out), pb = last_line_pid(b.out);
        CHECK(pa != pb);
        CHECK(pa != old);
        CHECK(pb != old);
        pid_t now = w.check();
        CHECK((now == pa || now == pb)); // the later one's daemon; the earlier one's is gone
        CHECK(ringd::testing::process_alive(now));
        CHECK_FALSE(ringd::testing::process_alive(now == pa ? pb : pa));
        CHECK_FALSE(ringd::testing::process_alive(old));
        CHECK(eventually([&] { return w.daemons() == 1; }, 5s));
        old = now;
    }
    client.stop();
    INFO(client.summary());
    CHECK(client.lost_none());
    CHECK(w.control({"--stop"}).exit_code == 0);
}

TEST_CASE("an upgraded echod on a UNIX socket leaves its path to the successor") {
    tcp_world w;
    const std::string sock = w.dir / "echod.sock";
    auto command = [&] {
        auto argv = w.echod();
        argv.emplace_back("--listen");
        argv.push_back(sock);
        return argv;
    };
    std::vector<std::string> args = {"--start", "--"};
    for (auto& a : command()) args.push_back(a);
    REQUIRE(w.control(args).exit_code == 0);
    auto started = w.control({"--check"});
    REQUIRE(started.exit_code == 0);
    // The first start bound port 0: upgrade to the port it got.
    auto listen = ringd::testing::read_file(w.dir / "echod.listen");
    REQUIRE(!listen.empty());
    pid_t old = w.check();
    sockaddr_in bound{};
    socklen_t len = sizeof bound;
    {
        // The TCP port, from the old daemon's listening socket in /proc (no output parsing).
        ringd::unique_fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, old, 0)));
        REQUIRE(pidfd);
        int fd = std::atoi(listen.c_str() + listen.find('\n') + 1);
        ringd::unique_fd s(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
        REQUIRE(s);
        REQUIRE(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&bound), &len) == 0);
    }
    w.port = ntohs(bound.sin_port);
    auto up = w.upgrade(command());
    INFO(up.err);
    REQUIRE(up.exit_code == 0);
    CHECK(w.check() != old);
    struct stat st {};
    CHECK(::stat(sock.c_str(), &st) == 0); // the old one did not unlink it at its exit
    ringd::unique_fd c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, sock.c_str(), sock.size() + 1);
    REQUIRE(::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::write(c.get(), "unix\n", 5) == 5);
    char buf[16] = {};
    pollfd p{c.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 2000) == 1);
    CHECK(::read(c.get(), buf, sizeof buf) == 5);
    CHECK(std::string(buf) == "unix\n");
    CHECK(round_trip(w.port, "tcp") == trip::ok);
    CHECK(w.control({"--stop"}).exit_code == 0);
}

TEST_CASE("--upgrade on a stopped daemon exits 101 and starts nothing") {
    tcp_world w;
    auto up =
        w.upgrade({ringd::testing::echod_path(), "--listen", "127.0.0.1:0", "--pid-file", w.pid});
    CHECK(up.exit_code == 101);
    CHECK_THAT(up.err, Catch::Contains("not running"));
    CHECK(::access(w.pid.c_str(), F_OK) != 0); // no daemon was started: none made the file
    CHECK(w.check() == 0);
}
