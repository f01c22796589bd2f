// SPDX-License-Identifier: MIT
// Tests of supervisor.hpp with real processes: crash loops, start order, readiness, spawn-failure
// polling, re-adoption from the table, and an idle loop with 200 children.
#include <ringd/supervisor.hpp>

#include "../test_support.hpp"
#include "process_test_support.hpp"

#include <ringd/scope.hpp>
#include <ringd/timer.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using ringd::io_context;
using ringd::service_spec;
using ringd::supervisor;
using ringd::task;
using ringd::supervision::state;
using ringd::testing::process_reaper;
using ringd::testing::read_file;
using ringd::testing::temp_dir;
using ringd::testing::write_file;

namespace {

// A logger whose messages the test can read.
struct captured_log {
    ringd::logger log{"ringd-supervise"};
    std::vector<std::string> lines;
    captured_log() {
        log.use_stderr(false);
        log.set_threshold(ringd::log_level::info);
        log.use_hook([this](ringd::log_level, std::string_view line) { lines.emplace_back(line); });
    }
    [[nodiscard]] bool saw(std::string_view text) const {
        for (const auto& l : lines)
            if (l.find(text) != std::string::npos) return true;
        return false;
    }
    [[nodiscard]] std::size_t count(std::string_view text) const {
        std::size_t n = 0;
        for (const auto& l : lines) n += l.find(text) != std::string::npos ? 1 : 0;
        return n;
    }
    [[nodiscard]] std::string all() const {
        std::string out;
        for (const auto& l : lines) out += l + "\n";
        return out;
    }
};

service_spec make_spec(std::string name, std::vector<std::string> argv) {
    service_spec s;
    s.name = std::move(name);
    s.argv = std::move(argv);
    s.policy.restart_delay = 20ms;
    s.policy.stop_timeout = 5s;
    s.policy.spawn_retry_interval = 50ms;
    return s;
}

// Polls `done` on the ring every 10 ms; false after `limit`.
task<bool> wait_until(io_context& ctx, std::function<bool()> done,
                      std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) co_return false;
        auto slept = co_await ringd::sleep_for(ctx, 10ms);
        if (!slept) co_return false;
    }
    co_return true;
}

// Runs `steps` while the supervisor runs, then shuts it down and waits for the end.
void drive(io_context& ctx, supervisor& sup, std::function<task<void>()> steps,
           bool keep_table = true, std::chrono::milliseconds limit = 30s) {
    auto body = [&]() -> task<void> {
        ringd::scope s;
        s.spawn(sup.run());
        std::exception_ptr failure;
        try {
            co_await steps();
        } catch (...) {
            failure = std::current_exception(); // no co_await inside a handler
        }
        sup.shutdown(keep_table);
        co_await s.join();
        if (failure) std::rethrow_exception(failure);
    };
    ringd::testing::run_bounded(ctx, body(), limit);
}

// A service that appends "start NAME" to `trace` and is then ready (notification fd 3); on
// SIGTERM it appends "stop NAME" and ends.
service_spec traced_spec(const std::string& name, const std::string& trace) {
    service_spec s = make_spec(name, {"/bin/sh", "-c",
                                      "trap 'echo stop " + name + " >> " + trace +
                                          "; exit 0' TERM; echo start " + name + " >> " + trace +
                                          "; echo >&3; while :; do sleep 1; done"});
    s.readiness = ringd::readiness_protocol::notification_fd;
    s.policy.needs_readiness = true;
    s.policy.ready_timeout = 10s;
    return s;
}

bool all_running(const supervisor& sup) {
    for (const auto& st : sup.list())
        if (st.state != state::running) return false;
    return true;
}

// A supervisor for the order tests: services made by traced_spec on `trace`.
struct order_fixture {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    captured_log out;
    supervisor sup{ctx, out.log, {dir.path(), {}, false, ringd::wait_method::automatic}};
    const std::string trace = dir / "trace";

    // Runs until every service is running, calls `check` then, shuts down; returns the trace.
    std::string run_and_stop(const std::function<void()>& check) {
        drive(ctx, sup, [&]() -> task<void> {
            bool up = co_await wait_until(ctx, [&] { return all_running(sup); });
            REQUIRE(up);
            check();
        });
        return read_file(trace);
    }
};

} // namespace

TEST_CASE("a crash loop reaches backoff and then failed at the start limit") {
    process_reaper reaper;
    temp_dir logs;
    io_context ctx;
    captured_log out;
    supervisor sup(ctx, out.log, {logs.path(), {}, false, ringd::wait_method::automatic});
    service_spec spec = make_spec("crasher", {"/bin/sh", "-c", "exit 3"});
    spec.policy.start_limit_burst = 3;
    spec.policy.start_limit_interval = 60s;
    REQUIRE(sup.add(spec).has_value());
    drive(ctx, sup, [&]() -> task<void> {
        bool failed =
            co_await wait_until(ctx, [&] { return sup.status("crasher")->state == state::failed; });
        REQUIRE(failed);
        auto st = sup.status("crasher");
        CHECK(st->restarts == 2);
        REQUIRE(st->last_exit.has_value());
        CHECK(st->last_exit->status == 3);
    });
    INFO(out.all());
    CHECK(out.saw("start crasher: running as pid"));
    CHECK(out.saw("exited with status 3; restart in 20 ms"));
    CHECK(out.saw("exited with status 3; restart in 40 ms")); // the delay doubles
    CHECK(out.saw("start crasher: more than 3 starts within 60 s; failed until restarted by hand"));
    CHECK(out.count("restart crasher: running as pid") == 2);
    auto st = sup.status("crasher");
    REQUIRE(st.has_value());
    CHECK(st->state == state::stopped); // the shutdown acknowledged the failure
    // Every instance's log is kept (up to keep_logs earlier ones): the crashes explain
    // themselves.
    CHECK(ringd::testing::read_file(st->log_path).empty());
    std::size_t files = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(logs.path())) ++files;
    CHECK(files == 3);
}

namespace {

// The pids of the <name>.<pid> log files in `dir`, ascending.
std::vector<int> log_pids(const std::string& dir, const std::string& name) {
    std::vector<int> out;
    for (auto& e : std::filesystem::directory_iterator(dir)) {
        const std::string file = e.path().filename();
        if (file.starts_with(name + ".")) out.push_back(std::stoi(file.substr(name.size() + 1)));
    }
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

TEST_CASE("a respawn keeps the crashed instance's log and the last keep_logs earlier ones") {
    process_reaper reaper;
    temp_dir logs;
    io_context ctx;
    captured_log out;
    ringd::supervisor_options o{logs.path(), {}, false, ringd::wait_method::automatic};
    o.keep_logs = 2;
    supervisor sup(ctx, out.log, o);
    // Each run prints its pid and crashes; the sixth run stays up.
    const std::string count = logs / "runs";
    service_spec spec =
        make_spec("crasher", {"/bin/sh", "-c",
                              "echo crash $$; echo x >> " + count + "; [ $(wc -l < " + count +
                                  ") -ge 6 ] && exec sleep 1000; exit 3"});
    spec.policy.restart_delay = 10ms;
    spec.policy.backoff_factor = 1;
    spec.policy.start_limit_burst = 0;
    REQUIRE(sup.add(spec).has_value());
    std::vector<int> pids;
    drive(ctx, sup, [&]() -> task<void> {
        bool up = co_await wait_until(ctx, [&] {
            auto st = sup.status("crasher");
            return st->state == state::running && st->restarts == 5;
        });
        REQUIRE(up);
        pids = log_pids(logs.path(), "crasher");
        // The current log and the two before it; the crashed ones say why.
        REQUIRE(pids.size() == 3);
        const int current = sup.status("crasher")->pid;
        CHECK(std::find(pids.begin(), pids.end(), current) != pids.end());
        for (int pid : pids)
            if (pid != current)
                CHECK(read_file(logs / ("crasher." + std::to_string(pid))) ==
                      "crash " + std::to_string(pid) + "\n");
    });
    INFO(out.all());
    CHECK(out.count("exited with status 3") == 5);
}

TEST_CASE("over keep_logs_bytes the oldest logs go, never the crashed instance's") {
    process_reaper reaper;
    temp_dir logs;
    io_context ctx;
    captured_log out;
    ringd::supervisor_options o{logs.path(), {}, false, ringd::wait_method::automatic};
    o.keep_logs_bytes = 1; // every earlier log is over it
    supervisor sup(ctx, out.log, o);
    const std::string count = logs / "runs";
    service_spec spec =
        make_spec("big", {"/bin/sh", "-c",
                          "echo a long line of output; echo x >> " + count + "; [ $(wc -l < " +
                              count + ") -ge 4 ] && exec sleep 1000; exit 3"});
    spec.policy.restart_delay = 10ms;
    spec.policy.backoff_factor = 1;
    spec.policy.start_limit_burst = 0;
    REQUIRE(sup.add(spec).has_value());
    drive(ctx, sup, [&]() -> task<void> {
        bool up = co_await wait_until(ctx, [&] {
            auto st = sup.status("big");
            return st->state == state::running && st->restarts == 3;
        });
        REQUIRE(up);
        auto pids = log_pids(logs.path(), "big");
        REQUIRE(pids.size() == 2); // the current one and the last crashed one
        for (int pid : pids)
            if (pid != sup.status("big")->pid)
                CHECK(read_file(logs / ("big." + std::to_string(pid))) ==
                      "a long line of output\n");
    });
}

TEST_CASE(
    "services start in S<nn> order, each after the one before is ready, and stop in reverse") {
    order_fixture f;
    for (const std::string name : {"zz-last", "S10b", "S02a", "S10c"})
        REQUIRE(f.sup.add(traced_spec(name, f.trace)).has_value());
    const std::string t = f.run_and_stop([&] {
        auto names = f.sup.list();
        CHECK(names[0].name == "S02a");
        CHECK(names[3].name == "zz-last");
    });
    INFO(f.out.all());
    // S10b and S10c are one group: they start together, in either order.
    const bool b_first = t.find("start S10b") < t.find("start S10c");
    CHECK(t.find("start S02a\n") == 0);
    CHECK(t.find("start zz-last") > t.find(b_first ? "start S10c" : "start S10b"));
    CHECK(t.find("stop zz-last") < t.find("stop S10b"));
    CHECK(t.find("stop zz-last") < t.find("stop S10c"));
    CHECK(t.find("stop S10b") < t.find("stop S02a"));
    CHECK(t.find("stop S10c") < t.find("stop S02a"));
}

TEST_CASE("services with a stop sequence (K<nn>) stop first, by number, then reverse start") {
    order_fixture f;
    // Reverse start order would stop zz, S40log, S30cache, S20web, S10db.
    const std::vector<std::pair<std::string, std::string>> services{
        {"S10db", "05"},
        {"S20web", "10"},
        {"S30cache", ""},
        {"S40log", "100000000000000000000000"}, // longer than any integer: no overflow
        {"zz", ""}};
    for (const auto& [name, sequence] : services) {
        service_spec s = traced_spec(name, f.trace);
        s.stop_sequence = sequence;
        REQUIRE(f.sup.add(s).has_value());
    }
    service_spec bad = traced_spec("S50bad", f.trace);
    bad.stop_sequence = "2x";
    auto refused = f.sup.add(bad);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error() == "service S50bad: stop sequence '2x' is not a number of 1-100 digits");
    const std::string t =
        f.run_and_stop([&] { CHECK(f.sup.status("S20web")->stop_sequence == "10"); });
    INFO(f.out.all());
    std::vector<std::string> stops;
    for (std::size_t at = t.find("stop "); at != std::string::npos; at = t.find("stop ", at + 1))
        stops.push_back(t.substr(at + 5, t.find('\n', at) - at - 5));
    // Each group is told to stop only once the group before it is down: a strict order.
    CHECK(stops == std::vector<std::string>{"S10db", "S20web", "S40log", "zz", "S30cache"});
}

TEST_CASE("an sd_notify READY=1 on NOTIFY_SOCKET makes a service running, with its STATUS") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    captured_log out;
    supervisor sup(ctx, out.log, {dir.path(), {}, false, ringd::wait_method::automatic});
    write_file(dir / "go", "");
    service_spec s =
        make_spec("notifier", {"/bin/sh", "-c",
                               "while [ -e " + (dir / "go") +
                                   " ]; do sleep 0.05; done; "
                                   "systemd-notify --ready --status=serving; exec sleep 1000"});
    s.readiness = ringd::readiness_protocol::notify_socket;
    s.policy.needs_readiness = true;
    REQUIRE(sup.add(s).has_value());
    drive(ctx, sup, [&]() -> task<void> {
        bool spawned = co_await wait_until(ctx, [&] { return sup.status("notifier")->pid != 0; });
        REQUIRE(spawned);
        CHECK(sup.status("notifier")->state == state::starting);
        ::unlink((dir / "go").c_str()); // now it tells us it is ready
        bool ready = co_await wait_until(
            ctx, [&] { return sup.status("notifier")->state == state::running; });
        REQUIRE(ready);
        CHECK(sup.status("notifier")->status_text == "serving");
    });
    INFO(out.all());
    CHECK(out.saw("ready notifier: pid"));
}

TEST_CASE("services with legal 100-character names and --notify become ready, each its own") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    captured_log out;
    // With a table the socket names carry its 16-digit hash: the longest prefix there is.
    supervisor sup(ctx, out.log, {dir.path(), dir / "table", false, ringd::wait_method::automatic});
    const std::string stem(99, 'n');
    for (const char* last : {"a", "b"}) {
        service_spec s =
            make_spec(stem + last, {"/bin/sh", "-c",
                                    "systemd-notify --ready --status=" + std::string(last) +
                                        "; exec sleep 1000"});
        s.readiness = ringd::readiness_protocol::notify_socket;
        s.policy.needs_readiness = true;
        s.policy.ready_timeout = 10s;
        auto added = sup.add(s); // the names differ only after the 99th character
        const std::string why = added.has_value() ? std::string() : added.error();
        INFO(why);
        REQUIRE(added.has_value());
    }
    drive(ctx, sup, [&]() -> task<void> {
        bool ready = co_await wait_until(ctx, [&] { return all_running(sup); });
        REQUIRE(ready);
        CHECK(sup.status(stem + "a")->status_text == "a");
        CHECK(sup.status(stem + "b")->status_text == "b");
    });
    INFO(out.all());
    CHECK(out.count("reported readiness") == 2);
}

TEST_CASE(
    "a service exiting with a permanent-failure code is failed with that code, not restarted") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    captured_log out;
    supervisor sup(ctx, out.log, {dir.path(), {}, false, ringd::wait_method::automatic});
    REQUIRE(sup.add(make_spec("misconfigured", {"/bin/sh", "-c", "exit 78"})).has_value());
    service_spec own = make_spec("own-list", {"/bin/sh", "-c", "exit 78"});
    own.policy.no_restart_exit_codes = {}; // this one restarts after anything
    own.policy.start_limit_burst = 2;
    own.policy.start_limit_interval = 60s;
    REQUIRE(sup.add(own).has_value());
    drive(ctx, sup, [&]() -> task<void> {
        bool failed = co_await wait_until(ctx, [&] {
            return sup.status("misconfigured")->state == state::failed &&
                   sup.status("own-list")->state == state::failed;
        });
        REQUIRE(failed);
        auto st = sup.status("misconfigured");
        CHECK(st->restarts == 0);
        REQUIRE(st->last_exit.has_value());
        CHECK(st->last_exit->status == 78);
        CHECK(sup.status("own-list")->restarts == 1); // the start limit, not the code, ended it
    });
    INFO(out.all());
    CHECK(out.saw("exit misconfigured: pid "));
    CHECK(out.saw("exited with status 78; not restarted: exit status 78 means do not restart "
                  "(failed)"));
    CHECK(out.count("restart misconfigured") == 0);
}

TEST_CASE("a spawn that fails is retried at the polling interval until it works") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    captured_log out;
    supervisor sup(ctx, out.log, {dir.path(), {}, false, ringd::wait_method::automatic});
    const std::string program = dir / "later";
    REQUIRE(sup.add(make_spec("later", {program})).has_value());
    drive(ctx, sup, [&]() -> task<void> {
        bool retried =
            co_await wait_until(ctx, [&] { return out.count("start later: execve") >= 2; });
        REQUIRE(retried);
        CHECK(sup.status("later")->state == state::backoff);
        write_file(program, "#!/bin/sh\nexec sleep 1000\n", 0755);
        bool up =
            co_await wait_until(ctx, [&] { return sup.status("later")->state == state::running; });
        REQUIRE(up);
    });
    INFO(out.all());
    CHECK(out.saw("start later: execve " + program +
                  ": No such file or directory; retrying in 50 ms"));
}

TEST_CASE("a new supervisor on the table re-adopts running children instead of starting copies") {
    process_reaper reaper;
    temp_dir dir;
    const std::string table = dir / "table";
    std::vector<pid_t> first_pids;
    {
        io_context ctx;
        captured_log out;
        supervisor sup(ctx, out.log, {dir.path(), table, false, ringd::wait_method::automatic});
        for (const std::string name : {"one", "two", "three"})
            REQUIRE(sup.add(make_spec(name, {"/bin/sleep", "1000"})).has_value());
        REQUIRE(sup.stop("three").has_value()); // wanted down: stays down
        // Run until all are up, then leave as a crash would: no shutdown, the children keep
        // running (kill -9 of the real supervisor is in supervise_tool_test.cpp).
        auto body = [&]() -> task<void> {
            ringd::scope s;
            s.spawn(sup.run());
            bool up = co_await wait_until(ctx, [&] {
                return sup.status("one")->state == state::running &&
                       sup.status("two")->state == state::running;
            });
            CHECK(up);
            first_pids = {sup.status("one")->pid, sup.status("two")->pid};
            sup.detach();
            co_await s.join();
        };
        ringd::testing::run_bounded(ctx, body());
        CHECK(sup.status("one")->pid == first_pids[0]); // still running, not stopped
        for (pid_t p : first_pids) reaper.watch_group(p);
    }
    REQUIRE(first_pids[0] > 0);
    io_context ctx;
    captured_log out;
    supervisor sup(ctx, out.log, {dir.path(), table, false, ringd::wait_method::automatic});
    auto entries = sup.load_table();
    REQUIRE(entries.size() == 3);
    for (const auto& e : entries) REQUIRE(sup.add(e.spec, &e).has_value());
    drive(ctx, sup, [&]() -> task<void> {
        co_await ringd::sleep_for(ctx, 50ms);
        CHECK(sup.status("one")->pid == first_pids[0]);
        CHECK(sup.status("two")->pid == first_pids[1]);
        CHECK(sup.status("one")->adopted);
        CHECK(sup.status("three")->state == state::stopped);
    });
    INFO(out.all());
    CHECK(out.count("adopt ") == 2);
    CHECK_FALSE(out.saw("start one"));
    CHECK_FALSE(out.saw("start two"));
    // Shut down with the table kept: every wanted service is recorded, without a process.
    auto again = ringd::detail::supervisor_table_parse(read_file(table));
    REQUIRE(again.has_value());
    REQUIRE(again->size() == 3);
    CHECK((*again)[0].pid == 0);
}

TEST_CASE("an adopted process that had not reported readiness stays starting until it does") {
    process_reaper reaper;
    temp_dir dir;
    const std::string table = dir / "table";
    const std::string go = dir / "go";
    write_file(go, "");
    auto notifying = [&](const std::string& name, const std::string& before_ready) {
        service_spec s = make_spec(
            name, {"/bin/sh", "-c", before_ready + "systemd-notify --ready; exec sleep 1000"});
        s.readiness = ringd::readiness_protocol::notify_socket;
        s.policy.needs_readiness = true;
        s.policy.ready_timeout = 2s;
        return s;
    };
    std::vector<pid_t> first_pids;
    {
        io_context ctx;
        captured_log out;
        supervisor sup(ctx, out.log, {dir.path(), table, false, ringd::wait_method::automatic});
        REQUIRE(sup.add(notifying("quick", "")).has_value());
        REQUIRE(sup.add(notifying("waiter", "while [ -e " + go + " ]; do sleep 0.05; done; "))
                    .has_value());
        REQUIRE(sup.add(notifying("mute", "exec sleep 1000; ")).has_value()); // never ready
        auto body = [&]() -> task<void> {
            ringd::scope s;
            s.spawn(sup.run());
            bool up = co_await wait_until(ctx, [&] {
                return sup.status("quick")->state == state::running &&
                       sup.status("waiter")->pid != 0 && sup.status("mute")->pid != 0;
            });
            CHECK(up);
            CHECK(sup.status("waiter")->state == state::starting);
            for (const char* name : {"quick", "waiter", "mute"})
                first_pids.push_back(sup.status(name)->pid);
            sup.detach();
            co_await s.join();
        };
        ringd::testing::run_bounded(ctx, body());
        for (pid_t p : first_pids) reaper.watch_group(p);
    }
    REQUIRE(first_pids.size() == 3);
    const std::string pids = read_file(table + ".pids");
    INFO(pids);
    auto line_of = [&](const std::string& name, pid_t pid) {
        const auto at = pids.find("=" + name + " " + std::to_string(pid) + " ");
        return at == std::string::npos ? std::string() : pids.substr(at, pids.find('\n', at) - at);
    };
    CHECK_FALSE(line_of("quick", first_pids[0]).empty());
    CHECK_FALSE(line_of("quick", first_pids[0]).ends_with(" starting"));
    CHECK(line_of("waiter", first_pids[1]).ends_with(" starting"));
    CHECK(line_of("mute", first_pids[2]).ends_with(" starting"));

    // The same pid (as after an execve of the supervisor): the same notify socket name.
    io_context ctx;
    captured_log out;
    supervisor sup(ctx, out.log, {dir.path(), table, false, ringd::wait_method::automatic});
    auto entries = sup.load_table();
    REQUIRE(entries.size() == 3);
    for (const auto& e : entries) {
        CHECK(e.spec.policy.needs_readiness); // from the table, not from the test's spec
        CHECK(e.ready == (e.spec.name == "quick"));
        REQUIRE(sup.add(e.spec, &e).has_value());
    }
    drive(ctx, sup, [&]() -> task<void> {
        CHECK(sup.status("quick")->state == state::running);
        CHECK(sup.status("waiter")->state == state::starting);
        CHECK(sup.status("mute")->state == state::starting);
        CHECK(sup.status("waiter")->adopted);
        ::unlink(go.c_str()); // now it tells this supervisor
        bool ready =
            co_await wait_until(ctx, [&] { return sup.status("waiter")->state == state::running; });
        CHECK(ready);
        CHECK(sup.status("waiter")->pid == first_pids[1]);
        // mute never tells: its ready_timeout (2 s), from the adoption, stops it.
        bool stopped =
            co_await wait_until(ctx, [&] { return sup.status("mute")->pid != first_pids[2]; });
        CHECK(stopped);
    });
    INFO(out.all());
    CHECK(out.saw("adopt waiter: pid " + std::to_string(first_pids[1]) +
                  " has not reported readiness; waiting 2 s for it"));
    CHECK(out.saw("ready waiter: pid " + std::to_string(first_pids[1])));
    CHECK(out.saw("start mute: pid " + std::to_string(first_pids[2]) + " not ready within 2 s"));
    CHECK_FALSE(out.saw("start quick"));
}

TEST_CASE("a second supervisor on the same table is refused") {
    temp_dir dir;
    io_context ctx;
    captured_log out;
    supervisor first(ctx, out.log,
                     {dir.path(), dir / "table", false, ringd::wait_method::automatic});
    try {
        supervisor second(ctx, out.log,
                          {dir.path(), dir / "table", false, ringd::wait_method::automatic});
        FAIL("the second supervisor took the lock");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "lock table " + (dir / "table") +
                                           ".lock: held by another supervisor (pid " +
                                           std::to_string(::getpid()) + ")");
    }
}

TEST_CASE("200 supervised processes cause no loop wake-ups while nothing happens") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    captured_log out;
    supervisor sup(ctx, out.log, {dir.path(), {}, false, ringd::wait_method::automatic});
    for (int i = 0; i < 200; ++i) {
        char name[16];
        std::snprintf(name, sizeof name, "sleeper%03d", i);
        REQUIRE(sup.add(make_spec(name, {"/bin/sleep", "1000"})).has_value());
    }
    std::uint64_t wakeups = 0;
    drive(
        ctx, sup,
        [&]() -> task<void> {
            bool up = co_await wait_until(
                ctx,
                [&] {
                    for (const auto& st : sup.list())
                        if (st.state != state::running) return false;
                    return true;
                },
                60s);
            REQUIRE(up);
            for (const auto& st : sup.list()) reaper.watch_group(st.pid);
            const std::uint64_t before = ctx.stats().iterations;
            auto slept = co_await ringd::sleep_for(ctx, 1s);
            CHECK(slept.has_value());
            // One iteration: the one that slept in the kernel until our own timer fired.
            wakeups = ctx.stats().iterations - before - 1;
        },
        true, 120s);
    CHECK(wakeups == 0);
    CHECK(out.count("stop sleeper") == 200);
}

TEST_CASE("300 services exiting at once leave the loop free for other work between slices") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    captured_log out;
    supervisor sup(ctx, out.log, {dir.path(), dir / "table", false, ringd::wait_method::automatic});
    constexpr int count = 300;
    for (int i = 0; i < count; ++i) {
        char name[16];
        std::snprintf(name, sizeof name, "burst%03d", i);
        service_spec spec = make_spec(name, {"/bin/sleep", "1000"});
        spec.policy.restart_delay = 200ms; // every restart falls due at once
        spec.policy.start_limit_burst = 0;
        REQUIRE(sup.add(spec).has_value());
    }
    std::chrono::steady_clock::duration worst{};
    drive(
        ctx, sup,
        [&]() -> task<void> {
            bool up = co_await wait_until(
                ctx, [&] { return all_running(sup); }, 60s);
            REQUIRE(up);
            for (const auto& st : sup.list()) ::kill(st.pid, SIGKILL);
            // A 10 ms timer on the same ring, again and again, while the 300 exits and then the
            // 300 restarts are handled: how late does it come back?
            bool again = false;
            const auto limit = std::chrono::steady_clock::now() + 60s;
            while (!again && std::chrono::steady_clock::now() < limit) {
                const auto asked = std::chrono::steady_clock::now();
                auto slept = co_await ringd::sleep_for(ctx, 10ms);
                REQUIRE(slept.has_value());
                worst = std::max(worst, std::chrono::steady_clock::now() - asked - 10ms);
                again = true;
                for (const auto& st : sup.list())
                    again = again && st.state == state::running && st.restarts == 1;
            }
            REQUIRE(again);
        },
        true, 120s);
    // Fed in one turn, 300 spawns held the loop for 0.5-10 s (with the machine's load); in
    // slices of 20 ms each wait is about one slice and one spawn.
    INFO("the timer came back up to "
         << std::chrono::duration_cast<std::chrono::milliseconds>(worst).count() << " ms late");
    CHECK(worst < 500ms);
}

TEST_CASE("remove stops a service, forgets it and deletes its log file") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    captured_log out;
    supervisor sup(ctx, out.log, {dir.path(), {}, false, ringd::wait_method::automatic});
    // Added out of name order, with neighbours on both sides that must stay.
    for (const char* name : {"zeta", "gone", "alpha"})
        REQUIRE(sup.add(make_spec(name, {"/bin/sleep", "1000"})).has_value());
    std::string log;
    drive(ctx, sup, [&]() -> task<void> {
        bool up = co_await wait_until(ctx, [&] {
            for (const char* name : {"alpha", "gone", "zeta"})
                if (sup.status(name)->state != state::running) return false;
            return true;
        });
        REQUIRE(up);
        log = sup.status("gone")->log_path;
        CHECK(::access(log.c_str(), F_OK) == 0);
        auto r = sup.remove("gone");
        REQUIRE(r.has_value());
        CHECK(r->starts_with("stopping pid "));
        bool forgotten = co_await wait_until(ctx, [&] { return !sup.status("gone").has_value(); });
        REQUIRE(forgotten);
        CHECK(sup.size() == 2);
        CHECK(sup.find("gone") == nullptr);
        for (const char* name : {"alpha", "zeta"}) {
            INFO(name);
            REQUIRE(sup.find(name) != nullptr);
            CHECK(sup.status(name)->state == state::running);
        }
    });
    CHECK(::access(log.c_str(), F_OK) != 0);
    CHECK(out.saw("remove gone: done"));
}

TEST_CASE("signal reaches one service's process only, and on_change sees every state change") {
    process_reaper reaper;
    temp_dir dir;
    io_context ctx;
    captured_log out;
    std::vector<std::string> seen; // "name state" as on_change found them
    supervisor* self = nullptr;
    ringd::supervisor_options options;
    options.log_dir = dir.path();
    options.on_change = [&] {
        for (const auto& st : self->list())
            seen.push_back(st.name + " " + std::string(ringd::supervision::to_string(st.state)));
    };
    supervisor sup(ctx, out.log, options);
    self = &sup;
    // Each notes a SIGHUP in its own file; "up" once the trap is set.
    auto hup_noter = [&](const std::string& name) {
        const std::string file = dir.path() + "/" + name + ".hup";
        return make_spec(name, {"/bin/sh", "-c",
                                "trap 'echo hup >> " + file + "' HUP; echo up > " + file +
                                    "; while :; do sleep 0.05; done"});
    };
    REQUIRE(sup.add(hup_noter("a")).has_value());
    REQUIRE(sup.add(hup_noter("b")).has_value());
    CHECK(sup.signal("a", SIGHUP).error() == "send SIGHUP to a: not running");
    CHECK(sup.signal("c", SIGHUP).error() == "send SIGHUP to c: no such service");
    drive(ctx, sup, [&]() -> task<void> {
        bool up = co_await wait_until(ctx, [&] {
            return read_file(dir.path() + "/a.hup") == "up\n" &&
                   read_file(dir.path() + "/b.hup") == "up\n";
        });
        REQUIRE(up);
        CHECK(std::find(seen.begin(), seen.end(), "a running") != seen.end());
        REQUIRE(sup.signal("a", SIGHUP).has_value());
        bool noted = co_await wait_until(
            ctx, [&] { return read_file(dir.path() + "/a.hup") == "up\nhup\n"; });
        CHECK(noted);
        CHECK(read_file(dir.path() + "/b.hup") == "up\n");
        CHECK(sup.status("a")->restarts == 0); // the trap kept it running
    });
    // The last call saw the shutdown's outcome.
    REQUIRE(seen.size() >= 2);
    CHECK(seen[seen.size() - 2] == "a stopped");
    CHECK(seen.back() == "b stopped");
}

TEST_CASE("the table round-trips any string and names the line of a fault") {
    ringd::table_entry e;
    e.spec = make_spec("odd", {"/bin/echo", "two words", "", "100%", "tab\there", "new\nline"});
    e.spec.environment = {"A=b c"};
    e.spec.user = "nobody";
    e.spec.readiness = ringd::readiness_protocol::notification_fd;
    e.spec.notification_fd = 5;
    e.spec.priority = -3;
    e.spec.version = 1234567890123;
    e.spec.listen = {"127.0.0.1:80", "/run/a b.sock"};
    e.pid = 42;
    e.start_time = 99;
    e.log_path = "/var/log/x/odd.42";
    const std::string text = ringd::detail::supervisor_table_format({e, e});
    auto back = ringd::detail::supervisor_table_parse(text);
    REQUIRE(back.has_value());
    REQUIRE(back->size() == 2);
    const auto& b = (*back)[1];
    CHECK(b.spec.argv == e.spec.argv);
    CHECK(b.spec.environment == e.spec.environment);
    CHECK(b.spec.user == "nobody");
    CHECK(b.spec.readiness == e.spec.readiness);
    CHECK(b.spec.notification_fd == 5);
    CHECK(b.spec.priority == -3);
    CHECK(b.spec.version == e.spec.version);
    CHECK(b.spec.listen == e.spec.listen);
    CHECK(b.spec.policy.restart_delay == 20ms);
    CHECK(b.pid == 42);
    CHECK(b.start_time == 99);
    CHECK(b.log_path == e.log_path);
    CHECK(b.spec.stop_sequence.empty());
    e.spec.stop_sequence = "007";
    auto with_sequence =
        ringd::detail::supervisor_table_parse(ringd::detail::supervisor_table_format({e}));
    REQUIRE(with_sequence.has_value());
    CHECK((*with_sequence)[0].spec.stop_sequence == "007");
    // Whether a spawn waits for readiness is kept; a table that predates the word waits
    // whenever there is a protocol.
    CHECK_FALSE(b.spec.policy.needs_readiness);
    e.spec.policy.needs_readiness = true;
    const std::string waits = ringd::detail::supervisor_table_format({e});
    CHECK(waits.find("readiness fd 5 wait\n") != std::string::npos);
    auto waiting = ringd::detail::supervisor_table_parse(waits);
    REQUIRE(waiting.has_value());
    CHECK((*waiting)[0].spec.policy.needs_readiness);
    std::string old_format = waits;
    old_format.replace(old_format.find(" 5 wait\n"), 8, " 5\n");
    auto old = ringd::detail::supervisor_table_parse(old_format);
    REQUIRE(old.has_value());
    CHECK((*old)[0].spec.policy.needs_readiness);

    auto broken = ringd::detail::supervisor_table_parse(text.substr(0, text.size() - 4));
    REQUIRE_FALSE(broken.has_value());
    CHECK(broken.error() == "line 28: the block of 'odd' has no 'end'");
    auto alien = ringd::detail::supervisor_table_parse("hello\n");
    REQUIRE_FALSE(alien.has_value());
    CHECK(alien.error().starts_with("line 1: not a ringd-supervise table"));
}

namespace {

// The table of one service, "web".
std::string one_service_table() {
    ringd::table_entry e;
    e.spec = make_spec("web", {"/bin/true"});
    return ringd::detail::supervisor_table_format({e});
}

} // namespace

TEST_CASE("a table line of only spaces is an error naming the line, not a crash") {
    std::string text = one_service_table();
    text.insert(text.find("argv "), "   \n"); // line 5
    auto parsed = ringd::detail::supervisor_table_parse(text);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error() == "line 5: a line of only spaces");
    auto pids = ringd::detail::supervisor_pids_parse("ringd-supervise-pids 1\n \n");
    REQUIRE_FALSE(pids.has_value());
    CHECK(pids.error().starts_with("line 2: "));
}

TEST_CASE("table values out of their type's range are errors naming the line and the value") {
    const std::string text = one_service_table();
    const auto policy_at = text.find("policy ");
    REQUIRE(policy_at != std::string::npos);
    const auto policy_end = text.find('\n', policy_at);
    // "policy always RESTART_MS FACTOR MAX_MS STABLE_MS BURST INTERVAL_MS SIGNAL STOP_MS ..."
    auto with_policy = [&](const std::string& line) {
        std::string t = text;
        t.replace(policy_at, policy_end - policy_at, line);
        return ringd::detail::supervisor_table_parse(t);
    };
    const std::string tail = " 5000 2 60000 10000 5 10000 15 5000 0 50";
    REQUIRE(with_policy("policy always" + tail).has_value());
    // 9.3e12 ms overflowed the nanosecond duration (into the past: a restart without delay).
    auto huge = with_policy("policy always 9300000000000 2 60000 10000 5 10000 15 5000 0 50");
    REQUIRE_FALSE(huge.has_value());
    CHECK(huge.error() == "line 11: 'policy': restart delay '9300000000000' is not an integer in "
                          "0..9223372036854");
    auto burst = with_policy("policy always 5000 2 60000 10000 4294967297 10000 15 5000 0 50");
    REQUIRE_FALSE(burst.has_value()); // wrapped to 1 through the cast to unsigned
    CHECK(burst.error().find("start limit burst '4294967297'") != std::string::npos);
    CHECK_FALSE(with_policy("policy always 5000 2 60000 10000 5 10000 0 5000 0 50").has_value());
    CHECK_FALSE(with_policy("policy always -1 2 60000 10000 5 10000 15 5000 0 50").has_value());
    auto factor = with_policy("policy always 5000 inf 60000 10000 5 10000 15 5000 0 50");
    REQUIRE_FALSE(factor.has_value());
    CHECK(factor.error() == "line 11: bad backoff factor 'inf' (a finite number, at least 1)");
    std::string process = text;
    process.insert(process.find("end\n"), "process -7 1 =/x\n");
    CHECK_FALSE(ringd::detail::supervisor_table_parse(process).has_value());
}

TEST_CASE("a torn <table>.pids costs the adoption, never the services") {
    temp_dir dir;
    const std::string table = dir / "table";
    ringd::table_entry e;
    e.spec = make_spec("kept", {"/bin/sleep", "1000"});
    e.pid = 4242;
    e.start_time = 7;
    e.log_path = "/x/kept.4242";
    write_file(table, ringd::detail::supervisor_table_format({e}), 0600);
    auto pids = ringd::detail::supervisor_pids_parse(ringd::detail::supervisor_pids_format({e}));
    REQUIRE(pids.has_value());
    REQUIRE(pids->size() == 1);
    CHECK((*pids)[0].spec.name == "kept");
    CHECK((*pids)[0].pid == 4242);
    CHECK((*pids)[0].start_time == 7);
    CHECK((*pids)[0].log_path == "/x/kept.4242");
    CHECK((*pids)[0].ready);
    e.ready = false; // not yet ready: a fifth word
    auto starting =
        ringd::detail::supervisor_pids_parse(ringd::detail::supervisor_pids_format({e}));
    REQUIRE(starting.has_value());
    CHECK_FALSE((*starting)[0].ready);

    write_file(table + ".pids", "ringd-supervise-pids 1\n=kept 42", 0600); // cut short
    io_context ctx;
    captured_log out;
    supervisor sup(ctx, out.log, {dir.path(), table, false, ringd::wait_method::automatic});
    auto entries = sup.load_table();
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].spec.name == "kept");
    CHECK(entries[0].spec.argv == e.spec.argv);
    CHECK(out.saw("read " + table +
                  ".pids: line 2: expected '=name pid start_time =log [starting]'; not "
                  "adopting any process"));
}

// The notify sockets are named after this path: a supervisor that adopts its predecessor's
// services must compute the same one, so it is the form std::filesystem gave before.
TEST_CASE("the table's path names the notify sockets as std::filesystem's absolute normal form") {
    for (const char* p : {"table", "./table", "a/../table", "a//b/./table", "../x/table", "..", ".",
                          "x/..", "a/b/../../..", "/var/lib/x/table", "/var//lib/./x/../t", "/a/b/",
                          "/a/b/.", "/a/b/..", "/a/b/../", "/..", "/../a", "/", "//a//"}) {
        INFO(p);
        CHECK(ringd::detail::supervisor_absolute_path(p) ==
              std::filesystem::absolute(p).lexically_normal().string());
    }
}
