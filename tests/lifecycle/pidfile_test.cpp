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

TEST_CASE("a PID file that names a PID nobody locks is stale, and cleaning empties it") {
    temp_dir dir;
    write_text(dir / "d.pid", "31337\n");
    auto st = probe_pid_file(dir / "d.pid");
    CHECK(st->state == pid_file_state::stale);
    CHECK(st->pid == 31337);
    auto cleaned = probe_pid_file(dir / "d.pid", true);
    CHECK(cleaned->state == pid_file_state::stale);
    CHECK(probe_pid_file(dir / "d.pid")->state == pid_file_state::absent);
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

// The daemon (a forked child here) forks a helper that never execs, then dies by SIGKILL.
// Returns the PID file's state seen while the helper is still alive.
static pid_file_state state_after_daemon_dies(bool protect) {
    temp_dir dir;
    int helper_pipe[2];
    REQUIRE(::pipe(helper_pipe) == 0);
    pid_t daemon = ::fork();
    REQUIRE(daemon >= 0);
    if (daemon == 0) {
        ::close(helper_pipe[0]);
        auto f = pid_file::open(dir / "d.pid");
        if (!f || f->try_lock() != ringd::lock_outcome::locked) ::_exit(1);
        if (protect) f->protect_from_children();
        (void)f->write_pid(::getpid());
        pid_t helper = ::fork();
        if (helper == 0) {
            ::pause(); // outlives the daemon; killed by the test
            ::_exit(0);
        }
        (void)!::write(helper_pipe[1], &helper, sizeof helper);
        ::pause();
        ::_exit(0);
    }
    ::close(helper_pipe[1]);
    pid_t helper = 0;
    REQUIRE(::read(helper_pipe[0], &helper, sizeof helper) == sizeof helper);
    ::close(helper_pipe[0]);
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

TEST_CASE("without protection a forked child would keep the daemon 'running' (why atfork)") {
    CHECK(state_after_daemon_dies(false) == pid_file_state::running);
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
