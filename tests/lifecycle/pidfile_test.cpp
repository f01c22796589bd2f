// SPDX-License-Identifier: MIT
#include <ringd/pidfile.hpp>

#include "lifecycle_support.hpp"

#include <ringd/detail/daemon_reload_status.hpp>

#include <catch2/catch.hpp>

using ringd::pid_file;
using ringd::pid_file_state;
using ringd::probe_pid_file;
using ringd::testing::temp_dir;

namespace {
void write_text(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
}
} // namespace

TEST_CASE("a PID file that does not exist is absent") {
    temp_dir dir;
    auto st = probe_pid_file(dir / "none.pid");
    REQUIRE(st);
    CHECK(st->state == pid_file_state::absent);
}

TEST_CASE("a PID file goes starting, running, exiting, then absent after a clean stop") {
    temp_dir dir;
    auto f = pid_file::open(dir / "d.pid");
    REQUIRE(f);
    REQUIRE(f->try_lock() == ringd::lock_outcome::locked);
    CHECK(probe_pid_file(dir / "d.pid")->state == pid_file_state::starting);
    REQUIRE(f->write_pid(4242));
    auto running = probe_pid_file(dir / "d.pid");
    CHECK(running->state == pid_file_state::running);
    CHECK(running->pid == 4242);
    CHECK(ringd::testing::read_file(dir / "d.pid") == "4242\n");
    REQUIRE(f->mark_exiting());
    auto exiting = probe_pid_file(dir / "d.pid");
    CHECK(exiting->state == pid_file_state::exiting);
    CHECK(exiting->pid == 4242);
    REQUIRE(f->clear());
    *f = pid_file();
    CHECK(probe_pid_file(dir / "d.pid")->state == pid_file_state::absent);
}

TEST_CASE("a second lock attempt on a held PID file is busy, also while the holder exits") {
    temp_dir dir;
    auto a = pid_file::open(dir / "d.pid");
    auto b = pid_file::open(dir / "d.pid");
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(a->try_lock() == ringd::lock_outcome::locked);
    CHECK(b->try_lock() == ringd::lock_outcome::busy);
    REQUIRE(a->mark_exiting());
    CHECK(b->try_lock() == ringd::lock_outcome::busy);
    *a = pid_file();
    CHECK(b->try_lock() == ringd::lock_outcome::locked);
}

TEST_CASE("a PID file that names a PID nobody locks is stale, and cleaning removes it") {
    temp_dir dir;
    write_text(dir / "d.pid", "31337\n");
    auto st = probe_pid_file(dir / "d.pid");
    CHECK(st->state == pid_file_state::stale);
    CHECK(st->pid == 31337);
    CHECK(st->cleanup == ringd::stale_cleanup::none);
    auto cleaned = probe_pid_file(dir / "d.pid", true);
    CHECK(cleaned->state == pid_file_state::stale);
    CHECK(cleaned->cleanup == ringd::stale_cleanup::removed);
    CHECK(::access((dir / "d.pid").c_str(), F_OK) != 0);
    CHECK(probe_pid_file(dir / "d.pid")->state == pid_file_state::absent);
}

TEST_CASE("a file that is not a PID file is invalid, and neither a probe nor a lock changes it") {
    temp_dir dir;
    for (std::string text : {"notes\n", "12x\n", "123", "\n"}) {
        write_text(dir / "notes.txt", text);
        auto st = probe_pid_file(dir / "notes.txt", true);
        REQUIRE(st);
        CHECK(st->state == pid_file_state::invalid);
        CHECK(st->cleanup == ringd::stale_cleanup::none);
        auto f = pid_file::open(dir / "notes.txt");
        REQUIRE(f);
        auto locked = f->try_lock();
        REQUIRE_FALSE(locked);
        CHECK(locked.error() == std::errc::bad_message);
        CHECK_FALSE(f->locked());
        CHECK(ringd::testing::read_file(dir / "notes.txt") == text);
    }
}

TEST_CASE("a half-written or foreign PID file names no PID") {
    CHECK(ringd::detail::parse_pid_text("123") == 0); // no newline yet
    CHECK(ringd::detail::parse_pid_text("12x\n") == 0);
    CHECK(ringd::detail::parse_pid_text("-5\n") == 0);
    CHECK(ringd::detail::parse_pid_text("77\n") == 77);
}

TEST_CASE("a PID file that is a symbolic link is refused") {
    temp_dir dir;
    write_text(dir / "target", "");
    REQUIRE(::symlink((dir / "target").c_str(), (dir / "d.pid").c_str()) == 0);
    auto f = pid_file::open(dir / "d.pid");
    REQUIRE_FALSE(f);
    CHECK(f.error().value() == ELOOP);
    CHECK_FALSE(probe_pid_file(dir / "d.pid"));
}

TEST_CASE("a PID file replaced while it was being locked is opened again") {
    temp_dir dir;
    auto f = pid_file::open(dir / "d.pid");
    REQUIRE(f);
    REQUIRE(::unlink((dir / "d.pid").c_str()) == 0); // an operator's rm
    REQUIRE(f->try_lock() == ringd::lock_outcome::locked);
    REQUIRE(f->write_pid(99));
    CHECK(probe_pid_file(dir / "d.pid")->state == pid_file_state::running); // the path's file
}

TEST_CASE("the guard and reload files sit beside the PID file") {
    CHECK(ringd::pid_file_sibling("/run/echod.pid", ".lock") == "/run/echod.lock");
    CHECK(ringd::pid_file_sibling("/run/echod", ".lock") == "/run/echod.lock");
    CHECK(ringd::pid_file_sibling("/run/x.pid.d", ".reload") == "/run/x.pid.d.reload");
}

// In a forked child playing the daemon: the PID file at `path`, locked, this process's PID
// written (protected from the child's own children, or not); exit code 1 on failure.
static pid_file hold_or_exit(const std::string& path, bool protect = true) {
    auto f = pid_file::open(path);
    if (!f || f->try_lock() != ringd::lock_outcome::locked) ::_exit(1);
    if (protect) f->protect_from_children();
    if (!f->write_pid(::getpid())) ::_exit(1);
    return std::move(*f);
}

// Runs `daemon` in a forked child that holds the PID file at `path` (locked, PID written) and
// reports what `daemon` returns over a pipe once it has set things up; the test then looks from
// outside and ends the child. Returns the child's PID and the reported value.
template <class F>
std::pair<pid_t, pid_t> fork_holder(const std::string& path, F daemon, bool protect = true) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(ready[0]);
        auto f = hold_or_exit(path, protect);
        pid_t report = daemon(f);
        (void)!::write(ready[1], &report, sizeof report);
        ::pause();
        ::_exit(0);
    }
    ::close(ready[1]);
    pid_t report = 0;
    REQUIRE(::read(ready[0], &report, sizeof report) == sizeof report);
    ::close(ready[0]);
    return {child, report};
}

// The daemon (a forked child here) forks a helper that never execs, then dies by SIGKILL.
// Returns the PID file's state seen while the helper is still alive.
static pid_file_state state_after_daemon_dies(bool protect) {
    temp_dir dir;
    auto [daemon, helper] = fork_holder(
        dir / "d.pid",
        [](pid_file&) {
            pid_t helper = ::fork();
            if (helper == 0) {
                ::pause(); // outlives the daemon; killed by the test
                ::_exit(0);
            }
            return helper;
        },
        protect);
    ::kill(daemon, SIGKILL);
    ::waitpid(daemon, nullptr, 0);
    // A helper forked a moment before the daemon died holds the lock until the kernel first
    // runs it (its atfork handler closes the descriptor then): allow it that moment.
    ringd::testing::eventually(
        [&] { return probe_pid_file(dir / "d.pid")->state == pid_file_state::stale; },
        std::chrono::milliseconds(500));
    auto st = probe_pid_file(dir / "d.pid");
    bool helper_alive = ::kill(helper, 0) == 0;
    ::kill(helper, SIGKILL); // reparented to init or a subreaper: it reaps it
    CHECK(helper_alive);
    REQUIRE(st);
    return st->state;
}

TEST_CASE("a child forked by the daemon does not keep the PID file locked after the daemon dies") {
    CHECK(state_after_daemon_dies(true) == pid_file_state::stale);
}

TEST_CASE("without protection a forked child would keep the PID file locked (why atfork)") {
    // Locked, but not by the PID it names: a probe says so rather than "running".
    CHECK(state_after_daemon_dies(false) == pid_file_state::foreign);
}

// What another process sees of a daemon (a forked child) that ran `setup` after writing its PID:
// the probe's state, whether the PID it names is the child, and libucw's check (running when a
// shared flock attempt fails).
struct outside_view {
    pid_file_state state = pid_file_state::absent;
    bool names_the_daemon = false;
    bool libucw_says_running = false;
};
template <class F>
outside_view look_from_outside(F setup) {
    temp_dir dir;
    std::string path = dir / "d.pid";
    auto [child, unused] = fork_holder(path, [&](pid_file& f) {
        setup(path, f);
        return pid_t{0};
    });
    (void)unused;
    outside_view v;
    auto st = probe_pid_file(path);
    ringd::unique_fd ro(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    v.libucw_says_running = ::flock(ro.get(), LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    REQUIRE(st);
    v.state = st->state;
    v.names_the_daemon = st->pid == child;
    return v;
}

TEST_CASE("an exiting daemon keeps its flock exclusive; its record lock says exiting") {
    auto v = look_from_outside([](const std::string&, pid_file& f) { (void)f.mark_exiting(); });
    CHECK(v.state == pid_file_state::exiting);
    CHECK(v.names_the_daemon);
    CHECK(v.libucw_says_running);
}

TEST_CASE("a daemon that probes its own PID file keeps its record lock") {
    auto v = look_from_outside([](const std::string& path, pid_file&) {
        auto own = probe_pid_file(path, true); // must not open and close the file
        if (!own || own->state != pid_file_state::running || own->pid != ::getpid()) ::_exit(2);
    });
    CHECK(v.state == pid_file_state::running);
    CHECK(v.names_the_daemon);
    CHECK(v.libucw_says_running);
}

TEST_CASE("remove_at_exit removes the PID file when the daemon exits, not when it _exits") {
    temp_dir dir;
    for (bool normal_exit : {true, false}) {
        std::string path = dir / (normal_exit ? "exit.pid" : "_exit.pid");
        pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            auto f = hold_or_exit(path);
            (void)f.mark_exiting();
            (void)f.clear();
            if (!f.remove_at_exit()) ::_exit(2);
            if (::fork() == 0) std::exit(0); // a child's exit() must not remove it
            ::wait(nullptr);
            if (::access(path.c_str(), F_OK) != 0) ::_exit(3);
            if (normal_exit) std::exit(0);
            ::_exit(0);
        }
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        INFO(normal_exit);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
        CHECK((::access(path.c_str(), F_OK) == 0) == !normal_exit);
        CHECK(probe_pid_file(path)->state == pid_file_state::absent);
    }
}

TEST_CASE("a reload record survives a round trip and a torn one is refused") {
    ringd::detail::reload_record r{7, 1234, "failed", "echod.conf:3: expected prefix=TEXT"};
    auto text = ringd::detail::format_reload_record(r);
    CHECK(text.size() == ringd::detail::reload_record_size);
    auto back = ringd::detail::parse_reload_record(text);
    REQUIRE(back);
    CHECK(back->generation == 7);
    CHECK(back->pid == 1234);
    CHECK(back->state == "failed");
    CHECK(back->reason == r.reason);
    auto newer = ringd::detail::format_reload_record({8, 1234, "ok", ""});
    std::string torn = newer.substr(0, 100) + text.substr(100); // new head, old tail
    CHECK_FALSE(ringd::detail::parse_reload_record(torn));
    CHECK_FALSE(ringd::detail::parse_reload_record(""));
}
