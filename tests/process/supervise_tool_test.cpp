// SPDX-License-Identifier: MIT
// End-to-end tests of the ringd-supervise binary: directory reconcile on SIGHUP, the control
// socket's peer check, kill -9 and re-adoption, refused scripts, init.d's K<nn> stop order (K files
// and --stop-sequence), bad input, SIGTERM and -i.
// The binary's path comes from $RINGD_SUPERVISE (set by meson); without it the tests skip.
#include "process_test_support.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using ringd::testing::eventually;
using ringd::testing::process_reaper;
using ringd::testing::read_file;
using ringd::testing::temp_dir;
using ringd::testing::write_file;

namespace {

std::string binary() {
    const char* path = std::getenv("RINGD_SUPERVISE");
    return path != nullptr && ::access(path, X_OK) == 0 ? path : "";
}

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

struct run_result {
    int status = -1;
    std::string output; // stdout and stderr
};

// Runs the binary with `args` to completion (bounded by `timeout`), output captured (stdout
// alone when `with_stderr` is false).
run_result run(const temp_dir& dir, const std::vector<std::string>& args, bool with_stderr = true) {
    std::string cmd = "timeout 20 " + quote(binary());
    for (const auto& a : args) cmd += " " + quote(a);
    const std::string out = dir / "run-output";
    const int raw =
        std::system((cmd + " > " + quote(out) + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str());
    return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_file(out)};
}

// One ringd-supervise daemon in the foreground, its output in a file.
class daemon_process {
public:
    daemon_process(const temp_dir& dir, std::vector<std::string> extra,
                   const std::string& tag = "daemon")
        : output_(dir / (tag + ".out")), control_(dir / "control.sock") {
        std::vector<std::string> args{binary(),    "--foreground", "--state",   dir / "table",
                                      "--log-dir", dir / "logs",   "--control", control_};
        args.insert(args.end(), extra.begin(), extra.end());
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            const int fd = ::open(output_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
    }
    ~daemon_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    daemon_process(const daemon_process&) = delete;
    daemon_process& operator=(const daemon_process&) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] std::string output() const { return read_file(output_); }
    [[nodiscard]] const std::string& control() const { return control_; }
    [[nodiscard]] bool up() const { return ::access(control_.c_str(), F_OK) == 0; }

    // Sends `sig`, waits for the exit (bounded); returns the exit status, -1 if it did not end.
    int stop(int sig = SIGTERM) {
        ::kill(pid_, sig);
        int status = 0;
        pid_t got = 0;
        eventually([&] { return (got = ::waitpid(pid_, &status, WNOHANG)) != 0; }, 20s);
        if (got != pid_) return -1;
        pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    // kill -9, reaped: a crash.
    void crash() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = 0;
    }

private:
    pid_t pid_ = 0;
    std::string output_;
    std::string control_;
};

// `ctl list --json` as name → entry.
std::map<std::string, nlohmann::json> services(const temp_dir& dir, const daemon_process& d) {
    std::map<std::string, nlohmann::json> out;
    auto r = run(dir, {"ctl", "--control", d.control(), "list", "--json"});
    if (r.status != 0) return out;
    try {
        for (auto& s : nlohmann::json::parse(r.output)) out[s["name"].get<std::string>()] = s;
    } catch (const std::exception&) {
        return {};
    }
    return out;
}

bool all_running(const std::map<std::string, nlohmann::json>& s, std::size_t count) {
    if (s.size() != count) return false;
    for (const auto& [name, e] : s)
        if (e["state"] != "running") return false;
    return true;
}

int pid_of(const nlohmann::json& e) {
    return e["pid"].get<int>();
}

// How many live processes have exactly this command line (arguments joined by spaces).
int count_processes(const std::string& cmdline) {
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string raw = read_file(entry.path().string() + "/cmdline");
        for (char& c : raw)
            if (c == '\0') c = ' ';
        if (!raw.empty()) raw.pop_back();
        if (raw == cmdline && ringd::testing::alive(std::stoi(name))) ++n;
    }
    return n;
}

void script(const std::string& path, const std::string& body, mode_t mode = 0755) {
    write_file(path, "#!/bin/sh\n" + body + "\n", mode);
}

void set_mtime(const std::string& path, long seconds) {
    timespec times[2] = {{seconds, 0}, {seconds, 0}};
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

#define REQUIRE_BINARY()                                                                           \
    if (binary().empty()) {                                                                        \
        WARN("RINGD_SUPERVISE is not set (tools not built): skipped");                             \
        return;                                                                                    \
    }

} // namespace

TEST_CASE("SIGHUP reconciles a directory: changed restarts, new starts, deleted stops") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    const std::string svc = dir / "services";
    REQUIRE(::mkdir(svc.c_str(), 0755) == 0);
    script(svc + "/changed", "exec sleep 2001");
    script(svc + "/deleted", "exec sleep 2002");
    script(svc + "/same", "exec sleep 2003");
    set_mtime(svc + "/changed", 1000000);
    write_file(dir / "config.toml", "directories = [\"" + svc + "\"]\nrestart_delay_s = 0.1\n");
    daemon_process d(dir, {"--config", dir / "config.toml"});
    std::map<std::string, nlohmann::json> before;
    REQUIRE(eventually([&] { return all_running(before = services(dir, d), 3); }));

    script(svc + "/changed", "exec sleep 2004");
    set_mtime(svc + "/changed", 2000000);
    REQUIRE(::unlink((svc + "/deleted").c_str()) == 0);
    script(svc + "/new", "exec sleep 2005");
    ::kill(d.pid(), SIGHUP);
    std::map<std::string, nlohmann::json> after;
    REQUIRE(eventually([&] {
        after = services(dir, d);
        return all_running(after, 3) && after.count("new") == 1 &&
               pid_of(after["changed"]) != pid_of(before["changed"]);
    }));
    INFO(d.output());
    CHECK(after.count("deleted") == 0);
    CHECK(pid_of(after["same"]) == pid_of(before["same"]));
    CHECK(eventually([&] { return !ringd::testing::alive(pid_of(before["deleted"])); }));
    CHECK(count_processes("sleep 2004") == 1);
    CHECK(count_processes("sleep 2001") == 0);
    CHECK(d.output().find("reload: done (1 new, 1 restarted, 1 stopped)") != std::string::npos);

    // A broken config keeps the running set and says why, with the file and the line.
    write_file(dir / "config.toml", "directories = [\"" + svc + "\"]\nrestart_delay_s = -1\n");
    ::kill(d.pid(), SIGHUP);
    CHECK(eventually([&] {
        return d.output().find(
                   "reload: config " + (dir / "config.toml") +
                   ": line 2: restart_delay_s = -1: out of range (0 for none, or 0.001 to "
                   "9223372036 seconds); keeping the running set") != std::string::npos;
    }));
    auto kept = services(dir, d);
    CHECK(all_running(kept, 3));
    CHECK(pid_of(kept["same"]) == pid_of(before["same"]));
    CHECK(d.stop() == 0);
}

TEST_CASE("a K<nn> file is never started: it stops its S service first; an orphan is reported") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    const std::string svc = dir / "services";
    const std::string trace = dir / "trace";
    REQUIRE(::mkdir(svc.c_str(), 0755) == 0);
    auto traced = [&](const std::string& name, mode_t mode = 0755) {
        script(svc + "/" + name,
               "trap 'echo stop " + name + " >> " + trace + "; exit 0' TERM\necho start " + name +
                   " >> " + trace + "\nwhile :; do sleep 1; done",
               mode);
    };
    for (const std::string name : {"S10db", "S20web", "Kfoo"}) traced(name); // Kfoo: a name
    // Kill entries: as init.d's rc would run them with 'stop' (never started here).
    traced("K100000000000000000000000db"); // longer than any integer: no overflow
    traced("K30web");
    traced("K07web", 0777); // refused like a script: it gives no order
    traced("K20gone");      // no S..gone
    write_file(dir / "config.toml", "directories = [\"" + svc + "\"]\n");
    // "skip" notes are logged at info.
    daemon_process d(dir, {"--config", dir / "config.toml", "--log-level", "info"});
    std::map<std::string, nlohmann::json> before;
    REQUIRE(eventually([&] { return all_running(before = services(dir, d), 3); }));
    INFO(d.output());
    CHECK(before.count("Kfoo") == 1);
    CHECK(before["S10db"]["stop_sequence"] == "100000000000000000000000");
    CHECK(before["S20web"]["stop_sequence"] == "30");
    CHECK(before["Kfoo"]["stop_sequence"] == "");
    const std::string out = d.output();
    CHECK(out.find("skip " + svc + "/K20gone: kill entry without a start entry S..gone") !=
          std::string::npos);
    CHECK(out.find("refuse " + svc + "/K07web: writable by others (mode 0777)") !=
          std::string::npos);

    // SIGHUP: a new kill entry for db wins over the old (lower number), web's goes; a touched
    // K file restarts nothing.
    traced("K01db");
    REQUIRE(::unlink((svc + "/K30web").c_str()) == 0);
    set_mtime(svc + "/K100000000000000000000000db", 3000000);
    ::kill(d.pid(), SIGHUP);
    REQUIRE(eventually([&] { return d.output().find("reload: done") != std::string::npos; }));
    auto after = services(dir, d);
    REQUIRE(all_running(after, 3));
    CHECK(after["S10db"]["stop_sequence"] == "1");
    CHECK(after["S20web"]["stop_sequence"] == "");
    for (const std::string name : {"S10db", "S20web", "Kfoo"})
        CHECK(pid_of(after[name]) == pid_of(before[name]));
    CHECK(d.output().find("reload: S20web now stops in reverse start order") != std::string::npos);
    CHECK(d.output().find("skip " + svc + "/K100000000000000000000000db: S10db already stops by " +
                          svc + "/K01db") != std::string::npos);
    CHECK(d.output().find("reload: done (0 new, 0 restarted, 0 stopped)") != std::string::npos);

    // SIGTERM: db (K01) first, then the rest in reverse start order: Kfoo, then web.
    REQUIRE(eventually([&] { return read_file(trace).find("start Kfoo") != std::string::npos; }));
    CHECK(d.stop() == 0);
    const std::string t = read_file(trace);
    INFO(t);
    std::size_t started_k = 0; // Kfoo only: no kill entry was ever started
    for (auto at = t.find("start K"); at != std::string::npos; at = t.find("start K", at + 1))
        ++started_k;
    CHECK(started_k == 1);
    CHECK(t.find("stop S10db") < t.find("stop Kfoo"));
    CHECK(t.find("stop Kfoo") < t.find("stop S20web"));
    CHECK(t.find("stop S20web") != std::string::npos);
}

TEST_CASE("registered services with --stop-sequence stop first, by number; a bad one is refused") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    const std::string trace = dir / "trace";
    daemon_process d(dir, {});
    REQUIRE(eventually([&] { return d.up(); }));
    auto traced = [&](const std::string& name, std::vector<std::string> options) {
        const std::string path = dir / (name + ".sh");
        script(path, "trap 'echo stop " + name + " >> " + trace + "; exit 0' TERM\necho start " +
                         name + " >> " + trace + "\nwhile :; do sleep 1; done");
        std::vector<std::string> args{"ctl", "--control", d.control(), "register", name};
        args.insert(args.end(), options.begin(), options.end());
        args.insert(args.end(), {"--", path});
        auto r = run(dir, args);
        CHECK(r.output == "registered " + name + "\n");
        return r.status;
    };
    // Reverse start order would stop S30cache, S20web, S10db; the stop sequences put web (3)
    // before db (20: compared as numbers), both before cache (none).
    CHECK(traced("S10db", {"--stop-sequence", "20"}) == 0);
    CHECK(traced("S20web", {"--stop-sequence", "03"}) == 0);
    CHECK(traced("S30cache", {}) == 0);
    std::map<std::string, nlohmann::json> s;
    REQUIRE(eventually([&] { return all_running(s = services(dir, d), 3); }));
    CHECK(s["S10db"]["stop_sequence"] == "20");
    CHECK(s["S20web"]["stop_sequence"] == "03");
    CHECK(s["S30cache"]["stop_sequence"] == "");
    auto status = run(dir, {"ctl", "--control", d.control(), "status", "S20web"});
    CHECK(status.output.find("stop sequence: K03\n") != std::string::npos);

    for (const std::string& bad :
         std::vector<std::string>{"2x", "-1", "", "K10", std::string(101, '1')}) {
        auto r = run(dir, {"ctl", "--control", d.control(), "register", "x", "--stop-sequence", bad,
                           "--", "/bin/true"});
        CHECK(r.status == 1);
        CHECK(r.output == "ringd-supervise: register x: --stop-sequence '" + bad +
                              "': not a number of 1-100 digits (init.d's K<nn>: nn)\n");
    }
    CHECK(services(dir, d).size() == 3);

    REQUIRE(
        eventually([&] { return read_file(trace).find("start S30cache") != std::string::npos; }));
    CHECK(d.stop() == 0);
    const std::string t = read_file(trace);
    INFO(t);
    CHECK(t.find("stop S20web") < t.find("stop S10db"));
    CHECK(t.find("stop S10db") < t.find("stop S30cache"));
    CHECK(t.find("stop S30cache") != std::string::npos);
}

TEST_CASE("a register request from another uid is refused") {
    REQUIRE_BINARY();
    if (::geteuid() != 0) {
        WARN("not root: cannot connect as another uid; skipped");
        return;
    }
    process_reaper reaper;
    temp_dir dir;
    daemon_process d(dir, {});
    REQUIRE(eventually([&] { return d.up(); }));
    // A child that becomes nobody asks; its answer is captured through a file it can write.
    const std::string out = dir / "nobody.out";
    write_file(out, "", 0666);
    // A copy nobody can execute: the build tree may sit in a directory only root can enter
    // (a clone in `mktemp -d`, mode 0700).
    const std::string bin = dir / "ringd-supervise";
    std::filesystem::copy_file(binary(), bin);
    REQUIRE(::chmod(bin.c_str(), 0755) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(99);
        const int fd = ::open(out.c_str(), O_WRONLY | O_APPEND);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::execl(bin.c_str(), bin.c_str(), "ctl", "--control", d.control().c_str(), "register",
                "evil", "--", "/bin/sleep", "1000", static_cast<char*>(nullptr));
        ::_exit(98);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    CHECK(read_file(out) == "ringd-supervise: permission denied: uid 65534 is neither root nor the "
                            "supervisor's user (uid 0)\n");
    CHECK(services(dir, d).empty());
    CHECK(d.output().find("control: refused a request from uid 65534") != std::string::npos);
    // Root is answered.
    auto ok =
        run(dir, {"ctl", "--control", d.control(), "register", "fine", "--", "/bin/sleep", "2100"});
    CHECK(ok.status == 0);
    CHECK(ok.output == "registered fine\n");
    CHECK(d.stop() == 0);
}

TEST_CASE("kill -9 of the supervisor and a restart re-adopt the children, none duplicated") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    const std::string svc = dir / "services";
    REQUIRE(::mkdir(svc.c_str(), 0755) == 0);
    script(svc + "/S10dir", "exec sleep 2201");
    write_file(dir / "config.toml", "directories = [\"" + svc + "\"]\nrestart_delay_s = 0.1\n");
    std::map<std::string, nlohmann::json> first;
    {
        daemon_process d(dir, {"--config", dir / "config.toml"}, "first");
        REQUIRE(eventually([&] { return d.up(); }));
        for (const std::string n : {"2202", "2203"}) {
            auto r = run(dir, {"ctl", "--control", d.control(), "register", "reg" + n,
                               "--restart-delay", "0.1", "--", "/bin/sleep", n});
            REQUIRE(r.status == 0);
        }
        REQUIRE(eventually([&] { return all_running(first = services(dir, d), 3); }));
        d.crash();
    }
    for (const auto& [name, e] : first) CHECK(ringd::testing::alive(pid_of(e)));
    daemon_process again(dir, {"--config", dir / "config.toml"}, "second");
    std::map<std::string, nlohmann::json> second;
    if (!eventually([&] { return all_running(second = services(dir, again), 3); }))
        FAIL("not re-adopted:\n"
             << again.output() << "\nfirst supervisor:\n"
             << read_file(dir / "first.out"));
    INFO(again.output());
    for (const auto& [name, e] : first) {
        CHECK(pid_of(second[name]) == pid_of(e));
        CHECK(second[name]["adopted"] == true);
    }
    CHECK(count_processes("sleep 2201") == 1);
    CHECK(count_processes("/bin/sleep 2202") == 1);
    CHECK(count_processes("/bin/sleep 2203") == 1);
    CHECK(again.output().find("start reg2202") == std::string::npos);

    // An adopted child that dies is noticed (pidfd) and replaced by exactly one new one.
    ::kill(pid_of(first["reg2202"]), SIGKILL);
    std::map<std::string, nlohmann::json> third;
    REQUIRE(eventually([&] {
        third = services(dir, again);
        return all_running(third, 3) && pid_of(third["reg2202"]) != pid_of(first["reg2202"]);
    }));
    CHECK(count_processes("/bin/sleep 2202") == 1);

    // SIGTERM: every service stops, the supervisor exits 0, the table keeps them all.
    CHECK(again.stop() == 0);
    for (const auto& [name, e] : third)
        CHECK(eventually([&] { return !ringd::testing::alive(pid_of(e)); }));
    const std::string table = read_file(dir / "table");
    CHECK(table.find("service =reg2202") != std::string::npos);
    CHECK(table.find("process ") == std::string::npos);
    CHECK(again.output().find("exit: every service is down") != std::string::npos);
}

TEST_CASE("a process adopted before it was ready reports readiness to a supervisor restarted "
          "after kill -9") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    const std::string go = dir / "hold";
    write_file(go, "");
    // Ready once `hold` is gone; sd_notify from the service's process group.
    const std::string body = "while [ -e " + quote(go) +
                             " ]; do sleep 0.05; done; systemd-notify --ready; exec sleep 2301";
    pid_t first_pid = 0;
    {
        daemon_process d(dir, {}, "first");
        REQUIRE(eventually([&] { return d.up(); }));
        auto r = run(dir, {"ctl", "--control", d.control(), "register", "late", "--notify",
                           "--ready-timeout", "60", "--", "/bin/sh", "-c", body});
        REQUIRE(r.status == 0);
        REQUIRE(eventually([&] {
            auto s = services(dir, d);
            return s.count("late") && pid_of(s["late"]) != 0 && s["late"]["state"] == "starting";
        }));
        first_pid = pid_of(services(dir, d)["late"]);
        d.crash();
    }
    reaper.watch_group(first_pid);
    daemon_process again(dir, {"--log-level", "info"}, "second"); // info: "ready ..."
    REQUIRE(eventually([&] { return again.up(); }));
    std::map<std::string, nlohmann::json> s;
    REQUIRE(eventually([&] {
        s = services(dir, again);
        return s.count("late") && s["late"]["state"] == "starting";
    }));
    CHECK(pid_of(s["late"]) == first_pid);
    // The notify socket has the same name under the new supervisor (another pid), so the
    // READY=1 sent now reaches it well before the 60 s ready timeout.
    REQUIRE(::unlink(go.c_str()) == 0);
    if (!eventually([&] {
            s = services(dir, again);
            return s["late"]["state"] == "running";
        }))
        FAIL("not ready after re-adoption:\n" << again.output());
    CHECK(pid_of(s["late"]) == first_pid);
    CHECK(again.output().find("ready late: pid " + std::to_string(first_pid)) != std::string::npos);
    CHECK(again.stop() == 0);
}

TEST_CASE("a world-writable or group-writable script is refused, with the reason") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    const std::string svc = dir / "services";
    REQUIRE(::mkdir(svc.c_str(), 0755) == 0);
    script(svc + "/open", "exec sleep 2301", 0777);
    script(svc + "/group", "exec sleep 2302", 0775);
    script(svc + "/fine", "exec sleep 2303", 0755);
    write_file(dir / "config.toml", "directories = [\"" + svc + "\"]\n");
    daemon_process d(dir, {"--config", dir / "config.toml"});
    REQUIRE(eventually([&] { return all_running(services(dir, d), 1); }));
    const std::string out = d.output();
    CHECK(out.find("refuse " + svc +
                   "/open: writable by others (mode 0777); a script run by the "
                   "supervisor must not be") != std::string::npos);
    CHECK(out.find("refuse " + svc + "/group: writable by its group (mode 0775)") !=
          std::string::npos);
    CHECK(count_processes("sleep 2301") == 0);

    script(dir / "ww.sh", "exec sleep 2304", 0757);
    auto r = run(dir, {"ctl", "--control", d.control(), "register", "ww", "--", dir / "ww.sh"});
    CHECK(r.status == 1);
    CHECK(r.output ==
          "ringd-supervise: register ww: refused " + (dir / "ww.sh") +
              ": writable by others (mode 0757); a script run by the supervisor must not be\n");
    CHECK(services(dir, d).count("ww") == 0);
    CHECK(d.stop() == 0);
}

TEST_CASE("bad flags, config lines and requests get one-line errors naming the input") {
    REQUIRE_BINARY();
    temp_dir dir;
    auto bogus = run(dir, {"--bogus"});
    CHECK(bogus.status == 1);
    CHECK(bogus.output ==
          "ringd-supervise: unknown option '--bogus' (try ringd-supervise --help)\n");
    auto missing = run(dir, {"--config"});
    CHECK(missing.status == 1);
    CHECK(missing.output.starts_with("ringd-supervise: option --config needs a value (try "));
    auto facility = run(dir, {"--syslog-facility", "kitchen"});
    CHECK(facility.output.starts_with(
        "ringd-supervise: --syslog-facility 'kitchen': expected daemon"));

    write_file(dir / "bad.toml", "directories = [\"/srv\"]\nrestart_delay = 5\n");
    auto key = run(dir, {"--config", dir / "bad.toml", "--foreground"});
    CHECK(key.status == 1);
    CHECK(key.output.starts_with("ringd-supervise: config " + (dir / "bad.toml") +
                                 ": line 2: unknown key 'restart_delay'"));
    write_file(dir / "syntax.toml", "directories = [\"/srv\"\n");
    auto syntax = run(dir, {"--config", dir / "syntax.toml", "--foreground"});
    CHECK(syntax.status == 1);
    CHECK(syntax.output.find("config " + (dir / "syntax.toml") + ": line ") != std::string::npos);
    write_file(dir / "type.toml", "start_limit_burst = \"five\"\n");
    auto type = run(dir, {"--config", dir / "type.toml", "--foreground"});
    CHECK(type.output.starts_with("ringd-supervise: config " + (dir / "type.toml") +
                                  ": line 1: start_limit_burst must be an integer"));

    auto help = run(dir, {"--help"});
    CHECK(help.status == 0);
    CHECK(help.output.starts_with("usage: ringd-supervise"));
    auto nocmd = run(dir, {"ctl"});
    CHECK(nocmd.status == 1);
    auto nosocket = run(dir, {"ctl", "--control", dir / "absent.sock", "list"});
    CHECK(nosocket.status == 1);
    CHECK(nosocket.output == "ringd-supervise: connect " + (dir / "absent.sock") +
                                 ": No such file or directory (is the supervisor running?)\n");

    process_reaper reaper;
    daemon_process d(dir, {});
    REQUIRE(eventually([&] { return d.up(); }));
    auto opt = run(dir, {"ctl", "--control", d.control(), "register", "x", "--stop-signal", "NOPE",
                         "--", "/bin/true"});
    CHECK(opt.output ==
          "ringd-supervise: register x: --stop-signal 'NOPE': not a signal name or number\n");
    auto name = run(dir, {"ctl", "--control", d.control(), "register", "a/b", "--", "/bin/true"});
    CHECK(name.output.starts_with("ringd-supervise: register: name 'a/b': only letters"));
    auto sep = run(dir, {"ctl", "--control", d.control(), "register", "x", "/bin/true"});
    CHECK(sep.output ==
          "ringd-supervise: register x: expected -- before the command, got '/bin/true'\n");
    auto unknown = run(dir, {"ctl", "--control", d.control(), "unregister", "ghost"});
    CHECK(unknown.output == "ringd-supervise: unregister ghost: no such service\n");
    CHECK(d.stop() == 0);
}

TEST_CASE("--check-config reports every fault with its file and line, starts nothing, exits 78") {
    REQUIRE_BINARY();
    temp_dir dir;
    std::filesystem::create_directory(dir / "d");
    script(dir / "d/S10ok", "exec sleep 1");
    script(dir / "d/open", "exec sleep 1", 0757);
    write_file(dir / "bad.toml", "directories = [\"" + (dir / "d") +
                                     "\",\n  \"/nonexistent-ringd\"]\n"
                                     "restart_delay = 5\n"
                                     "stop_timeout_s = 0.0004\n"
                                     "no_restart_exit_codes = [64, 300]\n");
    write_file(dir / "table", "ringd-supervise-table 1\nservice =x\nbogus\n");
    const std::vector<std::string> places{"--state",    dir / "table", "--log-dir",
                                          dir / "logs", "--control",   dir / "c.sock"};
    auto with = [&](std::vector<std::string> args) {
        args.insert(args.end(), places.begin(), places.end());
        return args;
    };
    auto bad = run(dir, with({"--check-config", "--config", dir / "bad.toml"}));
    CHECK(bad.status == 78);
    const std::string config = "ringd-supervise: config " + (dir / "bad.toml") + ": line ";
    // The file's faults in its order, then its directories that cannot be read, the scripts
    // refused, the table.
    CHECK(bad.output.starts_with(config + "3: unknown key 'restart_delay' (known: "));
    CHECK(
        bad.output.find(config + "2: directory /nonexistent-ringd: No such file or directory\n") !=
        std::string::npos);
    CHECK(bad.output.find(config + "4: stop_timeout_s = 0.0004: out of range") !=
          std::string::npos);
    CHECK(bad.output.find(config + "5: no_restart_exit_codes must hold exit statuses in 0..255") !=
          std::string::npos);
    CHECK(bad.output.find("ringd-supervise: refuse " + (dir / "d/open") +
                          ": writable by others (mode 0757)") != std::string::npos);
    CHECK(bad.output.find("ringd-supervise: read table " + (dir / "table") + ": line 3: ") !=
          std::string::npos);
    CHECK(bad.output.find("S10ok") == std::string::npos);
    // Nothing started, nothing created.
    CHECK(!std::filesystem::exists(dir / "logs"));
    CHECK(!std::filesystem::exists(dir / "c.sock"));
    CHECK(read_file(dir / "table") == "ringd-supervise-table 1\nservice =x\nbogus\n");

    // -i: the table is not read, so it is not a fault.
    write_file(dir / "good.toml", "directories = [\"" + (dir / "d") + "\"]\n");
    ::chmod((dir / "d/open").c_str(), 0755);
    auto clean = run(dir, with({"--check-config", "--config", dir / "good.toml", "-i"}));
    CHECK(clean.status == 0);
    CHECK(clean.output == "ringd-supervise: " + (dir / "good.toml") +
                              ": configuration OK (2 directory services; -i: no table read)\n");
    ::unlink((dir / "table").c_str());
    auto good = run(dir, with({"--check-config", "--config", dir / "good.toml"}));
    CHECK(good.status == 0);
    CHECK(good.output == "ringd-supervise: " + (dir / "good.toml") +
                             ": configuration OK (2 directory services; 0 services in " +
                             (dir / "table") + ")\n");
    CHECK(!std::filesystem::exists(dir / "logs"));
    CHECK(!std::filesystem::exists(dir / "table"));
}

TEST_CASE("durations and counts out of their type's range are refused, naming the key") {
    REQUIRE_BINARY();
    temp_dir dir;
    auto config_error = [&](const std::string& line) {
        write_file(dir / "range.toml", "directories = []\n" + line + "\n");
        auto r = run(dir, {"--config", dir / "range.toml", "--foreground", "--state", dir / "table",
                           "--control", dir / "c.sock", "--log-dir", dir / "logs"});
        CHECK(r.status == 1);
        return r.output;
    };
    const std::string prefix = "ringd-supervise: config " + (dir / "range.toml") + ": line 2: ";
    // 1e30 s overflowed into a delay of 0: a crashing service restarted without a pause.
    CHECK(config_error("restart_delay_s = 1e30") ==
          prefix + "restart_delay_s = 1e+30: out of range (0 for none, or 0.001 to 9223372036 "
                   "seconds)\n");
    CHECK(config_error("stop_timeout_s = 0.0004")
              .starts_with(prefix + "stop_timeout_s = 0.0004: out of range"));
    CHECK(config_error("start_limit_burst = 1E41")
              .starts_with(prefix + "start_limit_burst must be an integer in 0..64"));
    CHECK(config_error("backoff_factor = inf").starts_with(prefix + "backoff_factor must be"));
    CHECK(config_error("no_restart_exit_codes = [64, 300]")
              .starts_with(prefix + "no_restart_exit_codes must hold exit statuses in 0..255"));

    process_reaper reaper;
    daemon_process d(dir, {});
    REQUIRE(eventually([&] { return d.up(); }));
    auto huge = run(dir, {"ctl", "--control", d.control(), "register", "x", "--restart-delay",
                          "1e300", "--", "/bin/true"});
    CHECK(huge.status == 1);
    CHECK(huge.output == "ringd-supervise: register x: --restart-delay '1e300': out of range (0 "
                         "for none, or 0.001 to 9223372036 seconds)\n");
    auto tiny = run(dir, {"ctl", "--control", d.control(), "register", "x", "--stop-timeout",
                          "0.0001", "--", "/bin/true"});
    CHECK(tiny.output.starts_with("ringd-supervise: register x: --stop-timeout '0.0001': out"));
    auto codes = run(dir, {"ctl", "--control", d.control(), "register", "x", "--no-restart-exit",
                           "64,x", "--", "/bin/true"});
    CHECK(codes.output.starts_with("ringd-supervise: register x: --no-restart-exit '64,x': "));
    CHECK(services(dir, d).empty());
    CHECK(d.stop() == 0);
}

TEST_CASE("bytes that are not UTF-8 in an argv or a STATUS= still give valid JSON and a clean "
          "stop") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    daemon_process d(dir, {});
    REQUIRE(eventually([&] { return d.up(); }));
    // $0 of the shell is "\xff\xfe"; its STATUS= carries "\xff" too.
    REQUIRE(run(dir,
                {"ctl", "--control", d.control(), "register", "latin1", "--notify", "--", "/bin/sh",
                 "-c", "systemd-notify --ready \"--status=caf$(printf '\\351')\"; exec sleep 2404",
                 "\xff\xfe"})
                .status == 0);
    std::map<std::string, nlohmann::json> s;
    REQUIRE(eventually([&] {
        s = services(dir, d); // empty when the answer is missing or not JSON
        return all_running(s, 1);
    }));
    const auto argv = s["latin1"]["argv"];
    REQUIRE(argv.size() == 4);
    CHECK(argv[3].get<std::string>() == "\xEF\xBF\xBD\xEF\xBF\xBD"); // U+FFFD twice
    CHECK(s["latin1"]["status"].get<std::string>() == "caf\xEF\xBF\xBD");
    auto one = run(dir, {"ctl", "--control", d.control(), "status", "latin1", "--json"});
    CHECK(one.status == 0);
    CHECK_NOTHROW(nlohmann::json::parse(one.output));
    CHECK(d.stop() == 0); // the supervisor exited 1 here: the failed answer ended it
}

TEST_CASE("a service exiting 78 is listed failed with its code and not restarted") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    daemon_process d(dir, {});
    REQUIRE(eventually([&] { return d.up(); }));
    REQUIRE(run(dir, {"ctl", "--control", d.control(), "register", "badconf", "--", "/bin/sh", "-c",
                      "exit 78"})
                .status == 0);
    REQUIRE(run(dir, {"ctl", "--control", d.control(), "register", "retries", "--restart-delay",
                      "0.05", "--no-restart-exit", "none", "--", "/bin/sh", "-c", "exit 78"})
                .status == 0);
    std::map<std::string, nlohmann::json> s;
    REQUIRE(eventually([&] {
        s = services(dir, d);
        return s.size() == 2 && s["badconf"]["state"] == "failed" &&
               s["retries"]["restarts"].get<int>() >= 2;
    }));
    CHECK(s["badconf"]["exit_status"] == 78);
    CHECK(s["badconf"]["restarts"] == 0);
    auto list = run(dir, {"ctl", "--control", d.control(), "list"});
    CHECK(list.output.find("badconf                  failed:78") != std::string::npos);
    auto status = run(dir, {"ctl", "--control", d.control(), "status", "badconf"});
    CHECK(status.output.find("state: failed (exited with status 78) for ") != std::string::npos);
    CHECK(d.output().find("exit badconf: pid ") != std::string::npos);
    CHECK(d.output().find("not restarted: exit status 78 means do not restart (failed)") !=
          std::string::npos);
    CHECK(d.stop() == 0);
}

TEST_CASE("ctl status exits as systemctl status: 0 with a process, 3 without, 4 for no such "
          "service") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    daemon_process d(dir, {});
    REQUIRE(eventually([&] { return d.up(); }));
    REQUIRE(run(dir,
                {"ctl", "--control", d.control(), "register", "napper", "--", "/bin/sleep", "2405"})
                .status == 0);
    REQUIRE(eventually([&] { return all_running(services(dir, d), 1); }));
    auto running = run(dir, {"ctl", "--control", d.control(), "status", "napper"});
    CHECK(running.status == 0);
    CHECK(running.output.find("state: running for ") != std::string::npos);

    REQUIRE(run(dir, {"ctl", "--control", d.control(), "stop", "napper"}).status == 0);
    REQUIRE(eventually([&] { return services(dir, d)["napper"]["state"] == "stopped"; }));
    // Not running is an answer, not an error: the status is still printed, on stdout.
    auto stopped = run(dir, {"ctl", "--control", d.control(), "status", "napper"}, false);
    CHECK(stopped.status == 3);
    CHECK(stopped.output.starts_with("name: napper\nstate: stopped for "));
    auto json = run(dir, {"ctl", "--control", d.control(), "status", "napper", "--json"}, false);
    CHECK(json.status == 3);
    CHECK(nlohmann::json::parse(json.output)["state"] == "stopped");

    REQUIRE(run(dir, {"ctl", "--control", d.control(), "register", "broken", "--", "/bin/sh", "-c",
                      "exit 78"})
                .status == 0);
    REQUIRE(eventually([&] { return services(dir, d)["broken"]["state"] == "failed"; }));
    CHECK(run(dir, {"ctl", "--control", d.control(), "status", "broken"}).status == 3);

    auto ghost = run(dir, {"ctl", "--control", d.control(), "status", "ghost"});
    CHECK(ghost.status == 4);
    CHECK(ghost.output == "ringd-supervise: status ghost: no such service\n");
    CHECK(d.stop() == 0);
}

TEST_CASE("-i starts with an empty table and ctl shutdown removes it") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    {
        daemon_process d(dir, {}, "first");
        REQUIRE(eventually([&] { return d.up(); }));
        REQUIRE(run(dir, {"ctl", "--control", d.control(), "register", "keep", "--", "/bin/sleep",
                          "2401"})
                    .status == 0);
        REQUIRE(eventually([&] { return all_running(services(dir, d), 1); }));
        CHECK(d.stop() == 0);
    }
    CHECK(read_file(dir / "table").find("service =keep") != std::string::npos);
    daemon_process d(dir, {"-i"}, "second");
    REQUIRE(eventually([&] { return d.up(); }));
    CHECK(services(dir, d).empty());
    CHECK(std::filesystem::is_empty(dir / "logs")); // the old instance's log went too
    REQUIRE(
        run(dir, {"ctl", "--control", d.control(), "register", "brief", "--", "/bin/sleep", "2402"})
            .status == 0);
    REQUIRE(eventually([&] { return all_running(services(dir, d), 1); }));
    auto bye = run(dir, {"ctl", "--control", d.control(), "shutdown"});
    CHECK(bye.output == "shutting down\n");
    CHECK(d.stop(0) == 0); // signal 0: just wait for the exit it is making by itself
    CHECK(::access((dir / "table").c_str(), F_OK) != 0);
    CHECK(count_processes("/bin/sleep 2402") == 0);
}

TEST_CASE("detached, the command returns once the control socket listens, or exits 1 saying why") {
    REQUIRE_BINARY();
    process_reaper reaper; // the detached daemon is reparented to us
    temp_dir dir;
    const std::string control = dir / "control.sock";
    const std::vector<std::string> args{"--state",    dir / "table", "--log-dir",
                                        dir / "logs", "--control",   control};
    auto started = run(dir, args);
    CHECK(started.status == 0);
    CHECK(started.output.empty());
    CHECK(::access(control.c_str(), F_OK) == 0); // listening before the command returned
    auto r = run(dir, {"ctl", "--control", control, "register", "bg", "--", "/bin/sleep", "2701"});
    CHECK(r.status == 0);
    REQUIRE(eventually([&] {
        auto l = run(dir, {"ctl", "--control", control, "status", "bg", "--json"});
        return l.status == 0 && nlohmann::json::parse(l.output)["state"] == "running";
    }));

    // A second one on the same table: the reason on the starter's stderr, exit 1.
    auto second = run(dir, {"--state", dir / "table", "--log-dir", dir / "logs", "--control",
                            dir / "other.sock"});
    CHECK(second.status == 1);
    CHECK(second.output.starts_with("ringd-supervise: lock table " + (dir / "table") +
                                    ".lock: held by another supervisor (pid "));
    CHECK(second.output.find('\n') == second.output.size() - 1); // one line
    auto bad = run(dir, {"--state", dir / "table2", "--log-dir", dir / "logs", "--control",
                         dir / "missing/control.sock"});
    CHECK(bad.status == 1);
    CHECK(bad.output.starts_with("ringd-supervise: "));
    CHECK(bad.output.find(dir / "missing/control.sock") != std::string::npos);

    std::string cmdline = binary();
    for (const auto& a : args) cmdline += " " + a;
    CHECK(count_processes(cmdline) == 1);
    CHECK(run(dir, {"ctl", "--control", control, "shutdown"}).status == 0);
    CHECK(eventually([&] { return count_processes(cmdline) == 0; }));
    CHECK(count_processes("/bin/sleep 2701") == 0);
}

TEST_CASE("in container mode orphans are reaped and SIGHUP is forwarded to the services") {
    REQUIRE_BINARY();
    process_reaper reaper;
    temp_dir dir;
    daemon_process d(dir, {"--container", "--log-level", "info"});
    REQUIRE(eventually([&] { return d.up(); }));
    // The service leaves an orphan (sleep 0.2) that ends on its own: it is reparented to the
    // supervisor, the nearest subreaper, which must reap it.
    auto r = run(dir, {"ctl", "--control", d.control(), "register", "parent", "--restart-delay",
                       "0.1", "--", "/bin/sh", "-c", "(sleep 0.2 &); exec sleep 2601"});
    REQUIRE(r.status == 0);
    std::map<std::string, nlohmann::json> before;
    REQUIRE(eventually([&] { return all_running(before = services(dir, d), 1); }));
    REQUIRE(eventually(
        [&] { return d.output().find("orphan exited with status 0") != std::string::npos; }));
    INFO(d.output());
    // No zombie is left below the supervisor: its only child is the service.
    CHECK(eventually([&] {
        auto kids = ringd::testing::children_of(d.pid());
        return kids.size() == 1 && kids[0] == pid_of(before["parent"]);
    }));
    // SIGHUP reaches the service (sleep dies of it) and the policy restarts it.
    ::kill(d.pid(), SIGHUP);
    CHECK(eventually([&] {
        auto now = services(dir, d);
        return all_running(now, 1) && now["parent"]["restarts"] == 1;
    }));
    CHECK(d.output().find("exit parent: pid " + std::to_string(pid_of(before["parent"])) +
                          " killed by SIGHUP") != std::string::npos);
    CHECK(d.stop() == 0);
}
