// SPDX-License-Identifier: MIT
// Tests of process.hpp with real children: spawn, per-process logs, waiting on the ring (both
// IORING_OP_WAITID and the pidfd poll fallback), signals to a process group, adoption.
#include <ringd/process.hpp>

#include "../test_support.hpp"
#include "process_test_support.hpp"

#include <ringd/net.hpp>
#include <ringd/scope.hpp>
#include <ringd/signals.hpp>
#include <ringd/timer.hpp>

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <string>

using namespace std::chrono_literals;
using ringd::exit_info;
using ringd::io_context;
using ringd::process;
using ringd::result;
using ringd::spawn;
using ringd::spawn_options;
using ringd::task;
using ringd::wait_method;
using ringd::testing::process_reaper;
using ringd::testing::read_file;
using ringd::testing::temp_dir;

namespace {

task<result<exit_info>> wait_for(io_context& ctx, process& p, wait_method m) {
    auto r = co_await ringd::async_wait(ctx, p, m);
    co_return r;
}

// Options for argv; g++ 12 warns about designated initializers that skip members.
spawn_options command(std::vector<std::string> argv, const std::string& log_dir = {},
                      const std::string& log_name = {}) {
    spawn_options o;
    o.argv = std::move(argv);
    o.log_dir = log_dir;
    o.log_name = log_name;
    return o;
}

process spawn_or_fail(const spawn_options& o) {
    auto p = spawn(o);
    if (!p) FAIL(p.error().message());
    return std::move(*p);
}

} // namespace

TEST_CASE("a spawned child writes to <log_dir>/<name>.<pid> and reads /dev/null as stdin") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    spawn_options o;
    o.argv = {"/bin/sh", "-c", "echo out; echo err >&2; cat; echo pid=$$"};
    o.log_dir = dir.path();
    o.log_name = "svc";
    process p = spawn_or_fail(o);
    reaper.watch_group(p.pid());
    CHECK(p.log_path() == dir / ("svc." + std::to_string(p.pid())));
    auto end = ringd::testing::run_bounded(ctx, wait_for(ctx, p, wait_method::automatic));
    REQUIRE(end.has_value());
    CHECK(end->success());
    CHECK(p.reaped());
    CHECK(read_file(p.log_path()) == "out\nerr\npid=" + std::to_string(p.pid()) + "\n");
    struct stat st {};
    REQUIRE(::stat(p.log_path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
}

TEST_CASE("both wait methods report an exit status and a killing signal") {
    process_reaper reaper;
    io_context ctx;
    std::vector<wait_method> methods{wait_method::pidfd_poll};
    if (ringd::waitid_op_supported()) methods.push_back(wait_method::waitid_op);
    for (wait_method m : methods) {
        INFO("method " << static_cast<int>(m));
        process a = spawn_or_fail(command({"/bin/sh", "-c", "exit 7"}));
        auto ea = ringd::testing::run_bounded(ctx, wait_for(ctx, a, m));
        REQUIRE(ea.has_value());
        CHECK(ea->exited());
        CHECK(ea->status == 7);
        CHECK(ea->to_string() == "exited with status 7");

        process b = spawn_or_fail(command({"/bin/sleep", "100"}));
        reaper.watch_group(b.pid());
        REQUIRE(b.signal(SIGKILL).has_value());
        auto eb = ringd::testing::run_bounded(ctx, wait_for(ctx, b, m));
        REQUIRE(eb.has_value());
        CHECK(eb->signalled());
        CHECK(eb->status == SIGKILL);
        CHECK(eb->to_string() == "killed by SIGKILL");
    }
}

TEST_CASE("the fork fallback spawns and waits like the shared-memory clone") {
    process_reaper reaper;
    io_context ctx;
    spawn_options o = command({"/bin/sh", "-c", "exit 3"});
    o.share_memory_until_exec = false;
    process p = spawn_or_fail(o);
    CHECK(p.pidfd().get() >= 0);
    auto e = ringd::testing::run_bounded(ctx, wait_for(ctx, p, wait_method::automatic));
    REQUIRE(e.has_value());
    CHECK(e->status == 3);
}

TEST_CASE("a program that cannot be executed fails the spawn with the step and the reason") {
    process_reaper reaper;
    temp_dir dir;
    auto missing = spawn(command({dir / "nope"}));
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message() == "execve " + (dir / "nope") + ": No such file or directory");

    ringd::testing::write_file(dir / "noexec", "#!/bin/sh\n", 0644);
    auto noexec = spawn(command({dir / "noexec"}));
    REQUIRE_FALSE(noexec.has_value());
    CHECK(noexec.error().code == std::errc::permission_denied);

    spawn_options cwd = command({"/bin/true"});
    cwd.cwd = dir / "absent";
    auto badcwd = spawn(cwd);
    REQUIRE_FALSE(badcwd.has_value());
    CHECK(badcwd.error().what == "chdir " + (dir / "absent"));

    auto unnamed = spawn(command({"no-such-program-anywhere"}));
    REQUIRE_FALSE(unnamed.has_value());
    CHECK(unnamed.error().message().find("not found in PATH") != std::string::npos);

    auto empty = spawn(spawn_options());
    REQUIRE_FALSE(empty.has_value());
    CHECK(empty.error().message() == "spawn: no program to run (argv is empty)");
    // Nothing was left behind: every failed child was reaped.
    CHECK(ringd::testing::children_of(::getpid()).empty());
}

TEST_CASE("the child starts with no blocked and no ignored signals") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    ringd::block_signals({SIGTERM, SIGHUP});
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    struct sigaction old {};
    ::sigaction(SIGUSR1, &ign, &old);
    process p = spawn_or_fail(
        command({"/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}, dir.path(), "sig"));
    ::sigaction(SIGUSR1, &old, nullptr);
    auto e = ringd::testing::run_bounded(ctx, wait_for(ctx, p, wait_method::automatic));
    REQUIRE(e.has_value());
    CHECK(read_file(p.log_path()) == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

TEST_CASE("environment, working directory and descriptors reach the child") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    ringd::unique_fd r(fds[0]), w(fds[1]);
    spawn_options o;
    o.argv = {"sh", "-c",
              "pwd; echo \"$GREETING\"; echo hello >&5; ls /proc/self/fd | sort -n | tr '\\n' ' '"};
    o.environment = {"GREETING=hi there"};
    o.cwd = "/usr";
    o.log_dir = dir.path();
    o.log_name = "env";
    o.descriptors = {{w, 5}};
    process p = spawn_or_fail(o);
    w.reset();
    auto e = ringd::testing::run_bounded(ctx, wait_for(ctx, p, wait_method::automatic));
    REQUIRE(e.has_value());
    CHECK(e->success());
    // ls's own directory descriptor (3) shows too; nothing else of ours leaked.
    CHECK(read_file(p.log_path()) == "/usr\nhi there\n0 1 2 3 5 ");
    char buf[16] = {};
    CHECK(::read(r.get(), buf, sizeof buf) == 6);
    CHECK(std::string(buf) == "hello\n");
}

TEST_CASE("listening sockets reach the child by the systemd protocol, LISTEN_PID its own") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    auto l = ringd::listener::bind(*ringd::socket_address::parse("127.0.0.1:0"));
    for (bool share_memory : {true, false}) {
        spawn_options o;
        // $$ is the shell's pid, which is the spawned child's (sh is what it executes).
        o.argv = {"sh", "-c",
                  "echo \"$LISTEN_PID $$ $LISTEN_FDS $LISTEN_FDNAMES\"; "
                  "[ -S /dev/fd/3 ] && echo socket; echo go >&4"};
        // What an outer supervisor passed us must not reach the child as its own.
        o.environment = {"LISTEN_PID=1", "LISTEN_FDS=7"};
        o.log_dir = dir.path();
        o.log_name = share_memory ? "shared" : "forked";
        o.share_memory_until_exec = share_memory;
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        ringd::unique_fd r(fds[0]), w(fds[1]);
        o.listen_fds = {{l.fd(), "web"}};
        o.descriptors = {{w, 4}};
        process p = spawn_or_fail(o);
        w.reset();
        auto e = ringd::testing::run_bounded(ctx, wait_for(ctx, p, wait_method::automatic));
        REQUIRE(e.has_value());
        CHECK(e->success());
        const std::string pid = std::to_string(p.pid());
        CHECK(read_file(p.log_path()) == pid + " " + pid + " 1 web\nsocket\n");
    }
    spawn_options clash;
    clash.argv = {"/bin/true"};
    clash.listen_fds = {{l.fd(), "a"}, {l.fd(), "b"}};
    clash.descriptors = {{l.fd(), 4}};
    auto refused = spawn(clash);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message() ==
          "spawn: descriptor target 4 is taken by a listening socket (3..4)");
    clash.descriptors.clear();
    clash.listen_fds[1].name = "b:c";
    refused = spawn(clash);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message() ==
          "spawn: listening socket name 'b:c' contains ':' or a newline");
}

TEST_CASE("stdout_to and stderr_to give the child our descriptors as stdout and stderr") {
    process_reaper reaper;
    io_context ctx;
    int out_fds[2], err_fds[2];
    REQUIRE(::pipe2(out_fds, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(err_fds, O_CLOEXEC) == 0);
    ringd::unique_fd out_r(out_fds[0]), out_w(out_fds[1]), err_r(err_fds[0]), err_w(err_fds[1]);
    spawn_options o;
    o.argv = {"sh", "-c", "echo to-out; echo to-err >&2"};
    o.stdout_to = ringd::borrowed_fd(out_w.get());
    o.stderr_to = ringd::borrowed_fd(err_w.get());
    // A passed descriptor that lands on the number of a stdout source must not clobber it.
    o.descriptors = {{ringd::borrowed_fd(err_w.get()), out_w.get()}};
    process p = spawn_or_fail(o);
    out_w.reset();
    err_w.reset();
    auto e = ringd::testing::run_bounded(ctx, wait_for(ctx, p, wait_method::automatic));
    REQUIRE(e.has_value());
    CHECK(e->success());
    char buf[64] = {};
    CHECK(::read(out_r.get(), buf, sizeof buf) == 7);
    CHECK(std::string(buf) == "to-out\n");
    char ebuf[64] = {};
    const ssize_t n = ::read(err_r.get(), ebuf, sizeof ebuf);
    CHECK(std::string(ebuf, n > 0 ? static_cast<std::size_t>(n) : 0).find("to-err\n") == 0);
    SECTION("not together with a log file") {
        spawn_options both = command({"true"}, "/tmp", "x");
        both.stdout_to = ringd::borrowed_fd(1);
        auto refused = spawn(both);
        REQUIRE(!refused);
        CHECK(refused.error().message() ==
              "spawn: log_dir and stdout_to/stderr_to exclude each other");
    }
}

TEST_CASE("signal_group reaches what the child started in its process group") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    process p =
        spawn_or_fail(command({"/bin/sh", "-c", "sleep 100 & echo $!; wait"}, dir.path(), "grp"));
    reaper.watch_group(p.pid());
    CHECK(p.leads_group());
    pid_t grandchild = 0;
    REQUIRE(ringd::testing::eventually([&] {
        grandchild = std::atoi(read_file(p.log_path()).c_str());
        return grandchild > 0;
    }));
    REQUIRE(p.signal_group(SIGTERM).has_value());
    auto e = ringd::testing::run_bounded(ctx, wait_for(ctx, p, wait_method::automatic));
    REQUIRE(e.has_value());
    CHECK(e->signalled());
    CHECK(ringd::testing::eventually([&] {
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {
        } // we are the subreaper of the orphaned sleep
        return !ringd::testing::alive(grandchild);
    }));
}

TEST_CASE("a wait without reaping leaves a zombie that try_reap collects") {
    process_reaper reaper;
    io_context ctx;
    process p = spawn_or_fail(command({"/bin/sh", "-c", "exit 4"}));
    auto peek = [&]() -> task<result<exit_info>> {
        auto r = co_await ringd::async_wait(ctx, p, wait_method::automatic, false);
        co_return r;
    };
    auto e = ringd::testing::run_bounded(ctx, peek());
    REQUIRE(e.has_value());
    CHECK(e->status == 4);
    CHECK_FALSE(p.reaped());
    CHECK(p.signal_group(0).has_value()); // the zombie still holds its group
    auto reaped = p.try_reap();
    REQUIRE(reaped.has_value());
    REQUIRE(reaped->has_value());
    CHECK((*reaped)->status == 4);
    CHECK(p.reaped());
}

TEST_CASE("adopt accepts the same incarnation and refuses another start time") {
    process_reaper reaper;
    io_context ctx;
    process p = spawn_or_fail(command({"/bin/sleep", "100"}));
    reaper.watch_group(p.pid());
    REQUIRE(p.start_time() > 0);
    auto same = process::adopt(p.pid(), p.start_time());
    REQUIRE(same.has_value());
    CHECK(same->is_child());
    CHECK(same->leads_group());
    auto other = process::adopt(p.pid(), p.start_time() + 1);
    REQUIRE_FALSE(other.has_value());
    CHECK(other.error().value() == ESTALE);
    REQUIRE(p.signal(SIGKILL).has_value());
    auto e = ringd::testing::run_bounded(ctx, wait_for(ctx, p, wait_method::automatic));
    REQUIRE(e.has_value());
    auto gone = process::adopt(p.pid(), p.start_time());
    REQUIRE_FALSE(gone.has_value());
    CHECK(gone.error() == std::errc::no_such_process);
}

TEST_CASE("a process that is not our child ends with an unknown status") {
    process_reaper reaper; // we are the subreaper: the orphan comes to us, not to the adopter
    temp_dir dir;
    io_context ctx;
    // sh starts sleep in the background and exits: the orphaned sleep is reparented to this
    // test process (the subreaper). A forked helper is not its parent: it adopts the sleep as
    // "not my child", kills it, and sees its end without a status.
    process sh =
        spawn_or_fail(command({"/bin/sh", "-c", "sleep 100 & echo $!"}, dir.path(), "orphan"));
    auto e = ringd::testing::run_bounded(ctx, wait_for(ctx, sh, wait_method::automatic));
    REQUIRE(e.has_value());
    pid_t sleeper = std::atoi(read_file(sh.log_path()).c_str());
    REQUIRE(sleeper > 0);
    auto st = ringd::detail::read_process_stat(sleeper);
    REQUIRE(st.has_value());
    int report[2];
    REQUIRE(::pipe(report) == 0);
    pid_t helper = ::fork();
    if (helper == 0) {
        // Not the parent of `sleeper`: adopt, kill, and report what the wait saw.
        io_context child_ctx;
        auto adopted = process::adopt(sleeper, st->start_time);
        int verdict = 1;
        if (adopted && !adopted->is_child()) {
            (void)adopted->signal(SIGKILL);
            auto w = child_ctx.run(wait_for(child_ctx, *adopted, wait_method::automatic));
            verdict = (w && !w->known()) ? 0 : 2;
        }
        [[maybe_unused]] ssize_t n = ::write(report[1], &verdict, sizeof verdict);
        ::_exit(0);
    }
    ::close(report[1]);
    int verdict = -1;
    CHECK(::read(report[0], &verdict, sizeof verdict) == sizeof verdict);
    ::close(report[0]);
    CHECK(verdict == 0);
    ::waitpid(helper, nullptr, 0);
}

TEST_CASE("waiting for a process is cancelled by its scope") {
    process_reaper reaper;
    io_context ctx;
    process p = spawn_or_fail(command({"/bin/sleep", "100"}));
    reaper.watch_group(p.pid());
    std::optional<result<exit_info>> outcome;
    auto waiter = [&]() -> task<void> { outcome.emplace(co_await ringd::async_wait(ctx, p)); };
    auto body = [&]() -> task<void> {
        ringd::scope s;
        s.spawn(waiter());
        co_await ringd::sleep_for(ctx, 5ms);
        s.request_stop();
        co_await s.join();
    };
    ringd::testing::run_bounded(ctx, body());
    REQUIRE(outcome.has_value());
    REQUIRE_FALSE(outcome->has_value());
    CHECK(ringd::is_cancelled(outcome->error()));
    CHECK(ringd::testing::alive(p.pid()));
}

TEST_CASE("a child runs as the user and group it was given") {
    if (::geteuid() != 0) {
        WARN("not root: skipped");
        return;
    }
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    auto nobody = ringd::lookup_credentials("nobody");
    REQUIRE(nobody.has_value());
    spawn_options o = command({"/usr/bin/id"}, dir.path(), "id");
    o.run_as = *nobody;
    process p = spawn_or_fail(o);
    auto e = ringd::testing::run_bounded(ctx, wait_for(ctx, p, wait_method::automatic));
    REQUIRE(e.has_value());
    CHECK(e->success());
    CHECK(read_file(p.log_path()).starts_with("uid=65534(nobody) gid=65534(nogroup)"));
    auto unknown = ringd::lookup_credentials("no-such-user-here");
    REQUIRE_FALSE(unknown.has_value());
    CHECK(unknown.error() == "unknown user 'no-such-user-here'");
}

TEST_CASE("a user or group is a name, a number or #number, the same for every caller") {
    auto by_name = ringd::lookup_credentials("nobody");
    REQUIRE(by_name.has_value());
    for (const char* text : {"65534", "#65534"}) {
        auto by_number = ringd::lookup_credentials(text);
        REQUIRE(by_number.has_value());
        CHECK(by_number->uid == by_name->uid);
        CHECK(by_number->gid == by_name->gid);       // its passwd entry's primary group
        CHECK(by_number->groups == by_name->groups); // and its supplementary groups
    }
    auto no_entry = ringd::lookup_credentials("#4000000", "#4000001");
    REQUIRE(no_entry.has_value());
    CHECK(no_entry->uid == 4000000);
    CHECK(no_entry->gid == 4000001);
    CHECK(no_entry->groups == std::vector<gid_t>{4000001});
    CHECK(ringd::lookup_group("#5") == gid_t{5});
    CHECK(ringd::lookup_group("root") == gid_t{0});
    CHECK(ringd::lookup_group("no-such-group-here").error() ==
          "unknown group 'no-such-group-here'");
    CHECK(ringd::lookup_credentials("nobody", "no-such-group-here").error() ==
          "unknown group 'no-such-group-here'");
    // Already those ids: nothing to drop, nothing fails (even without root).
    ringd::credentials self{::getuid(), ::getgid(), {::getgid()}};
    CHECK(ringd::drop_privileges(self).has_value());
}

TEST_CASE("signal names parse and print") {
    CHECK(ringd::parse_signal("TERM") == SIGTERM);
    CHECK(ringd::parse_signal("sigkill") == SIGKILL);
    CHECK(ringd::parse_signal("1") == SIGHUP);
    CHECK_FALSE(ringd::parse_signal("NOPE").has_value());
    CHECK_FALSE(ringd::parse_signal("0").has_value());
    CHECK(ringd::signal_name(SIGINT) == "SIGINT");
}

TEST_CASE("/proc/<pid>/stat parsing survives odd command names") {
    auto st = ringd::detail::parse_process_stat(
        "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10");
    REQUIRE(st.has_value());
    CHECK(st->state == 'S');
    CHECK(st->ppid == 1);
    CHECK(st->pgid == 42);
    CHECK(st->start_time == 123456);
    CHECK_FALSE(ringd::detail::parse_process_stat("42 (x) S 1").has_value());
}
