// SPDX-License-Identifier: MIT
// End to end: ringd-control drives the real echod (paths from $ECHOD and $RINGD_CONTROL).
#include <ringd/control.hpp>

#include "lifecycle_support.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include <ringd/net.hpp>
#include <ringd/signals.hpp>

using namespace std::chrono_literals;
using ringd::testing::command_result;
using ringd::testing::eventually;
using ringd::testing::run_command;
using ringd::testing::temp_dir;

namespace {

// One daemon's world: its directory, PID file, UNIX socket and config; ends every process that
// mentions the directory when it goes.
struct world {
    temp_dir dir;
    std::string pid = dir / "echod.pid";
    std::string sock = dir / "echod.sock";
    std::string conf = dir / "echod.conf";

    world() {
        ringd::testing::become_subreaper();
        std::ofstream(conf) << "prefix=\n";
    }
    ~world() { ringd::testing::kill_all_mentioning(dir.path()); }

    command_result control(std::vector<std::string> args) {
        std::vector<std::string> argv = {ringd::testing::control_path(), "--pid-file", pid};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run_command(argv);
        ringd::testing::reap_zombies();
        return r;
    }
    std::vector<std::string> echod(std::vector<std::string> extra = {}) {
        std::vector<std::string> argv = {
            ringd::testing::echod_path(), "--listen", sock, "--pid-file", pid, "--config", conf};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return argv;
    }
    command_result start(std::vector<std::string> extra = {}) {
        std::vector<std::string> args = {"--start", "--"};
        for (auto& a : echod(extra)) args.push_back(a);
        return control(args);
    }
};

// Sends `line` to the UNIX socket and returns the reply line.
std::string echo(const std::string& path, const std::string& line) {
    ringd::unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        return "(connect failed)";
    std::string msg = line + "\n";
    if (::write(s.get(), msg.data(), msg.size()) != static_cast<ssize_t>(msg.size()))
        return "(write failed)";
    std::string reply;
    char c;
    pollfd pf{s.get(), POLLIN, 0};
    while (::poll(&pf, 1, 2000) == 1 && ::read(s.get(), &c, 1) == 1 && c != '\n') reply += c;
    return reply;
}

// The PID that --start or --check printed: the last line of stdout (echod's own lines come first).
pid_t pid_of(const command_result& r) {
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    auto nl = out.rfind('\n');
    return static_cast<pid_t>(std::atoi(out.c_str() + (nl == std::string::npos ? 0 : nl + 1)));
}

} // namespace

TEST_CASE(
    "ringd-control drives echod through start, check, reload and stop with DESIGN's exit codes") {
    world w;
    auto started = w.start();
    INFO(started.err);
    REQUIRE(started.exit_code == 0);
    pid_t pid = pid_of(started);
    REQUIRE(pid > 0);
    CHECK(ringd::testing::process_alive(pid));
    CHECK(echo(w.sock, "hello") == "hello"); // ready means listening: no retry needed

    auto again = w.start();
    CHECK(again.exit_code == 100);
    CHECK_THAT(again.err, Catch::Contains("already running as PID " + std::to_string(pid)));

    auto check = w.control({"--check"});
    CHECK(check.exit_code == 0);
    CHECK(pid_of(check) == pid);

    std::ofstream(w.conf) << "prefix=> \n";
    auto reload = w.control({"--reload"});
    CHECK(reload.exit_code == 0);
    CHECK(echo(w.sock, "hello") == "> hello");

    std::ofstream(w.conf) << "colour=blue\n";
    auto bad = w.control({"--reload"});
    CHECK(bad.exit_code == 102);
    CHECK(bad.err == "ringd-control: reload " + w.pid +
                         ": the daemon kept its running configuration: " + w.conf +
                         ":1: expected prefix=TEXT, got 'colour=blue'\n");
    CHECK(echo(w.sock, "still") == "> still");

    auto json = w.control({"--check", "--json"});
    CHECK_THAT(json.out, Catch::Contains("\"state\":\"running\",\"pid\":" + std::to_string(pid)));

    auto sig = w.control({"--signal", "SIGHUP"});
    CHECK(sig.exit_code == 0);

    auto stop = w.control({"--stop"});
    CHECK(stop.exit_code == 0);
    CHECK_FALSE(ringd::testing::process_alive(pid));
    CHECK(w.control({"--stop"}).exit_code == 100);
    CHECK(w.control({"--check"}).exit_code == 101);
    CHECK(w.control({"--reload"}).exit_code == 101);
    CHECK(w.control({"--signal", "TERM"}).exit_code == 101);
}

TEST_CASE("after kill -9 the stale PID file is reported (103) and --start needs no clean-up") {
    world w;
    auto started = w.start();
    REQUIRE(started.exit_code == 0);
    pid_t pid = pid_of(started);
    ::kill(pid, SIGKILL);
    REQUIRE(eventually([&] { return !ringd::testing::process_alive(pid); }));
    auto check = w.control({"--check"});
    CHECK(check.exit_code == 103);
    CHECK(w.control({"--check"}).exit_code == 101); // cleaned

    auto first = w.start();
    REQUIRE(first.exit_code == 0);
    ::kill(pid_of(first), SIGKILL);
    REQUIRE(eventually([&] { return !ringd::testing::process_alive(pid_of(first)); }));
    auto restarted = w.start(); // straight onto the stale file
    CHECK(restarted.exit_code == 0);
    CHECK_THAT(restarted.err, Catch::Contains("stale PID file removed"));
    CHECK(echo(w.sock, "back") == "back");
    CHECK(w.control({"--stop"}).exit_code == 0);
}

TEST_CASE("a PID file naming a live unrelated process, with no lock held, is never signalled") {
    world w;
    pid_t bystander = ::fork();
    REQUIRE(bystander >= 0);
    if (bystander == 0) {
        ringd::reset_signals_for_exec();
        ::execlp("sleep", "sleep", "30", nullptr);
        ::_exit(127);
    }
    for (const char* action : {"--stop", "--reload", "--check", "--signal"}) {
        std::ofstream(w.pid) << bystander << "\n";
        std::vector<std::string> args = {action};
        if (std::string(action) == "--signal") args.push_back("KILL");
        auto r = w.control(args);
        INFO(action);
        CHECK(r.exit_code == 103);
        CHECK(ringd::testing::process_alive(bystander));
    }
    std::ofstream(w.pid) << bystander << "\n";
    auto started = w.start();
    CHECK(started.exit_code == 0);
    CHECK(pid_of(started) != bystander);
    CHECK(w.control({"--stop"}).exit_code == 0);
    CHECK(ringd::testing::process_alive(bystander));
    ::kill(bystander, SIGKILL);
    ::waitpid(bystander, nullptr, 0);
}

TEST_CASE("--stop --timeout escalates to SIGKILL when draining takes too long, and says so") {
    world w;
    auto started = w.start({"--drain-timeout", "60"});
    REQUIRE(started.exit_code == 0);
    // An open connection keeps echod draining (up to 60 s).
    ringd::unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, w.sock.c_str(), w.sock.size() + 1);
    REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    auto t0 = std::chrono::steady_clock::now();
    auto stop = w.control({"--stop", "--timeout", "0.3", "--json"});
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(stop.exit_code == 0);
    CHECK_THAT(stop.out, Catch::Contains("\"killed\":true"));
    CHECK_THAT(stop.out, Catch::Contains("did not stop within 0.3 s: sent SIGKILL"));
    CHECK(took >= 300ms);
    CHECK(took < 5s);
    CHECK_FALSE(ringd::testing::process_alive(pid_of(started)));
    CHECK(w.control({"--check"}).exit_code == 101); // the killed daemon's file was cleaned
}

TEST_CASE("--start reports the daemon's own failure, with its message and exit code") {
    world w;
    auto blocker = ringd::listener::bind(*ringd::socket_address::parse("127.0.0.1:0"));
    std::string busy = blocker.address().to_string();
    auto r = w.start({"--listen", busy});
    CHECK(r.exit_code == 102);
    CHECK_THAT(r.err, Catch::Contains("ringd-control: start " + w.pid + ": " +
                                      ringd::testing::echod_path() +
                                      " failed to start (exit code 75): echod: bind " + busy +
                                      ": Address already in use"));
    auto json = w.start({"--listen", busy});
    CHECK_THAT(json.err, Catch::Contains("exit code 75"));
    CHECK(w.control({"--check"}).exit_code == 101);
    CHECK(::access(w.pid.c_str(), F_OK) != 0); // a failed start leaves no PID file behind
}

TEST_CASE("bad usage exits 1 with one line; --help exits 0") {
    world w;
    auto none = w.control({});
    CHECK(none.exit_code == 1);
    CHECK(std::count(none.err.begin(), none.err.end(), '\n') == 1);
    CHECK(w.control({"--check", "--stop"}).exit_code == 1);
    CHECK(w.control({"--signal", "NOPE"}).exit_code == 1);
    CHECK(w.control({"--start"}).exit_code == 1);
    CHECK(w.control({"--timeout", "x", "--stop"}).exit_code == 1);
    CHECK(run_command({ringd::testing::control_path(), "--help"}).exit_code == 0);
    auto err = run_command(
        {ringd::testing::control_path(), "--pid-file", "/nonexistent-dir/x.pid", "--check"});
    CHECK(err.exit_code == 102);
    CHECK(err.err ==
          "ringd-control: check /nonexistent-dir/x.lock: cannot open: No such file or directory\n");
}

TEST_CASE("as root, echod --user nobody runs as nobody and is still controlled") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root");
        return;
    }
    world w;
    auto started = w.start({"--user", "nobody"});
    INFO(started.err);
    REQUIRE(started.exit_code == 0);
    auto status = ringd::testing::read_file("/proc/" + std::to_string(pid_of(started)) + "/status");
    CHECK_THAT(status, Catch::Contains("Uid:\t65534\t65534\t65534\t65534"));
    CHECK(w.control({"--reload"}).exit_code == 0); // acknowledged through the fd kept from root
    CHECK(w.control({"--stop"}).exit_code == 0);
}

TEST_CASE("socket activation through systemd-socket-activate, with READY=1 to our socket") {
    if (::access("/usr/bin/systemd-socket-activate", X_OK) != 0) {
        WARN("skipped: systemd-socket-activate is not installed");
        return;
    }
    world w;
    std::string notify_path = w.dir / "notify";
    ringd::unique_fd server(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, notify_path.c_str(), notify_path.size() + 1);
    REQUIRE(::bind(server.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    std::string activated = w.dir / "activated.sock";
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ringd::reset_signals_for_exec();
        ::setenv("NOTIFY_SOCKET", notify_path.c_str(), 1);
        int devnull = ::open("/dev/null", O_WRONLY);
        ::dup2(devnull, 2);
        std::string echod = ringd::testing::echod_path();
        ::execl("/usr/bin/systemd-socket-activate", "systemd-socket-activate", "-l",
                activated.c_str(), "-E", "NOTIFY_SOCKET", echod.c_str(), "--foreground", "--config",
                w.conf.c_str(), nullptr);
        ::_exit(127);
    }
    // systemd-socket-activate binds, waits for the first connection, then execs echod with it.
    REQUIRE(eventually([&] { return ::access(activated.c_str(), F_OK) == 0; }));
    CHECK(echo(activated, "activated") == "activated");
    pollfd pf{server.get(), POLLIN, 0};
    REQUIRE(::poll(&pf, 1, 5000) == 1);
    char buf[256];
    ssize_t n = ::recv(server.get(), buf, sizeof buf, 0);
    REQUIRE(n > 0);
    CHECK(std::string(buf, static_cast<std::size_t>(n)) ==
          "READY=1\nSTATUS=listening on " + activated);
    ::kill(child, SIGTERM);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

// --- issue 11: what abuse and real peers found ----------------------------------------------

namespace {

using ringd::testing::end_background;
using ringd::testing::flock_held;
using ringd::testing::spawn_background;

// A process that has nothing to do with the daemon.
pid_t start_bystander() {
    pid_t pid = spawn_background({"sleep", "30"});
    REQUIRE(eventually([&] { return ringd::testing::process_alive(pid); }));
    return pid;
}

// `flock -x FILE sh -c SCRIPT FILE`: FILE locked by flock(1), the lock shared with the script
// (which inherits the descriptor, and keeps it when it execs); "$0" in the script is FILE.
pid_t lock_with_flock(const std::string& file, const std::string& script) {
    pid_t pid = spawn_background({"flock", "-x", file, "sh", "-c", script, file});
    REQUIRE(eventually([&] { return flock_held(file); }));
    return pid;
}

// libucw's status check, done exactly as libucw's daemon_read_pid() does it: open O_RDONLY, then
// flock(LOCK_SH|LOCK_NB); EWOULDBLOCK means running. A missing file: not running.
bool libucw_says_running(const std::string& pid_file) {
    ringd::unique_fd fd(::open(pid_file.c_str(), O_RDONLY));
    if (!fd) return false;
    while (::flock(fd.get(), LOCK_SH | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) return true;
        if (errno != EINTR) return false;
    }
    return false;
}

// The exit code of LSB's `pidofproc -p FILE echod` (from /lib/lsb/init-functions), and its output.
command_result pidofproc(const std::string& pid_file) {
    return run_command(
        {"bash", "-c", ". /lib/lsb/init-functions && pidofproc -p \"$0\" echod", pid_file});
}

command_result start_stop_daemon_status(const std::string& pid_file) {
    return run_command({"start-stop-daemon", "--status", "--pidfile", pid_file});
}

} // namespace

TEST_CASE("a PID file locked by one process and naming another is never signalled, and says why") {
    world w;
    pid_t bystander = start_bystander();
    std::ofstream(w.pid) << bystander << "\n";
    pid_t holder = lock_with_flock(w.pid, "exec sleep 30");
    const std::vector<std::vector<std::string>> actions = {
        {"--signal", "TERM"}, {"--reload"}, {"--stop", "--timeout", "2"}, {"--signal", "KILL"}};
    for (const auto& action : actions) {
        INFO(action[0] << (action.size() > 1 ? " " + action[1] : ""));
        auto t0 = std::chrono::steady_clock::now();
        auto r = w.control(action);
        auto took = std::chrono::steady_clock::now() - t0;
        CHECK(r.exit_code == 102);
        CHECK_THAT(r.err, Catch::StartsWith("ringd-control: " + action[0].substr(2) + " " + w.pid +
                                            ": the file is locked, but not by PID " +
                                            std::to_string(bystander) + " that it names"));
        CHECK_THAT(r.err, Catch::EndsWith(": nothing sent\n"));
        CHECK(took < 2s);
        CHECK(ringd::testing::process_alive(bystander));
    }
    auto check = w.control({"--check"});
    CHECK(check.exit_code == 102);
    CHECK_THAT(check.err, Catch::Contains("cannot tell which process runs"));
    CHECK(ringd::testing::read_file(w.pid) == std::to_string(bystander) + "\n"); // unchanged
    CHECK(ringd::testing::process_alive(holder));
    end_background(holder);
    end_background(bystander);
}

TEST_CASE("in a PID namespace, a locked PID file naming PID 1 does not get PID 1 signalled") {
    if (::geteuid() != 0 || ::access("/usr/bin/unshare", X_OK) != 0) {
        WARN("skipped: needs root and unshare for a PID namespace");
        return;
    }
    world w;
    // Inside: PID 1 is the shell; the file names it, flock(1) holds it.
    std::string script = "echo 1 > \"$0\"; flock -x \"$0\" sleep 30 & "
                         "while flock -n \"$0\" true; do sleep 0.01; done; "
                         "\"$1\" --pid-file \"$0\" --stop --timeout 2; echo \"stop=$?\"; "
                         "\"$1\" --pid-file \"$0\" --signal KILL; echo \"signal=$?\"; kill %1";
    auto r = run_command({"unshare", "-pf", "--mount-proc", "sh", "-c", script, w.pid,
                          ringd::testing::control_path()},
                         20s);
    if (r.exit_code != 0 && r.out.empty()) {
        WARN("skipped: unshare -pf failed here: " << r.err);
        return;
    }
    CHECK_THAT(r.out, Catch::Contains("stop=102\nsignal=102\n"));
    CHECK_THAT(r.err, Catch::Contains("ringd-control: stop " + w.pid +
                                      ": the file is locked, but not by PID 1 that it names"));
    CHECK_THAT(r.err, Catch::Contains(": nothing sent\n"));
}

TEST_CASE("a daemon that holds its PID file by flock alone (libucw's way) is still controlled") {
    world w;
    // The script writes its own PID, then execs: the named process holds the inherited lock.
    pid_t holder = lock_with_flock(w.pid, "echo $$ > \"$0\"; exec sleep 30");
    (void)holder;
    // flock(1) itself stays the parent; the PID in the file is the sh that became sleep.
    REQUIRE(eventually([&] { return ringd::testing::read_file(w.pid).size() > 1; }));
    pid_t named = std::atoi(ringd::testing::read_file(w.pid).c_str());
    auto check = w.control({"--check"});
    CHECK(check.exit_code == 0);
    CHECK(pid_of(check) == named);
    auto sig = w.control({"--signal", "TERM"});
    CHECK(sig.exit_code == 0);
    CHECK(eventually([&] { return !ringd::testing::process_alive(named); }));
    end_background(holder);
}

TEST_CASE("ringd-control on a file that is not a PID file changes nothing and says so") {
    world w;
    for (std::string content : {"notes\nline 2\n", "12x\n", "123"}) {
        std::ofstream(w.pid) << content;
        struct stat before {};
        REQUIRE(::stat(w.pid.c_str(), &before) == 0);
        for (std::vector<std::string> action :
             {std::vector<std::string>{"--check"}, {"--stop"}, {"--reload"}, {"--signal", "HUP"}}) {
            INFO(action[0] << " on '" << content << "'");
            auto r = w.control(action);
            CHECK(r.exit_code == 102);
            CHECK(r.err == "ringd-control: " + action[0].substr(2) + " " + w.pid +
                               ": not a PID file (it holds other data): left unchanged\n");
        }
        auto started = w.start();
        CHECK(started.exit_code == 102);
        CHECK_THAT(started.err, Catch::Contains("not a PID file"));
        // The daemon started directly refuses it too, before it forks.
        auto direct = run_command(w.echod());
        CHECK(direct.exit_code == 78); // ringd::exit_code::config (EX_CONFIG)
        CHECK_THAT(direct.err, Catch::Contains("lock " + w.pid + ": not a PID file"));
        struct stat after {};
        REQUIRE(::stat(w.pid.c_str(), &after) == 0);
        CHECK(ringd::testing::read_file(w.pid) == content);
        CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
        CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
    }
}

TEST_CASE("after a clean stop start-stop-daemon and LSB pidofproc both say 'not running' (3)") {
    if (::access("/sbin/start-stop-daemon", X_OK) != 0 &&
        ::access("/usr/sbin/start-stop-daemon", X_OK) != 0) {
        WARN("skipped: dpkg's start-stop-daemon is not installed");
        return;
    }
    if (::access("/lib/lsb/init-functions", R_OK) != 0) {
        WARN("skipped: /lib/lsb/init-functions (sysvinit-utils, lsb-base) is not installed");
        return;
    }
    world w;
    auto started = w.start();
    REQUIRE(started.exit_code == 0);
    pid_t pid = pid_of(started);
    CHECK(start_stop_daemon_status(w.pid).exit_code == 0);
    auto running = pidofproc(w.pid);
    CHECK(running.exit_code == 0);
    CHECK(running.out == std::to_string(pid) + "\n");

    REQUIRE(w.control({"--stop"}).exit_code == 0);
    CHECK_FALSE(ringd::testing::process_alive(pid));
    CHECK(start_stop_daemon_status(w.pid).exit_code == 3);
    CHECK(pidofproc(w.pid).exit_code == 3);

    // kill -9 leaves a stale file (start-stop-daemon: 1, dead with a PID file); --check removes
    // it, and says so in those words only because it did.
    started = w.start();
    REQUIRE(started.exit_code == 0);
    pid = pid_of(started);
    ::kill(pid, SIGKILL);
    REQUIRE(eventually([&] { return !ringd::testing::process_alive(pid); }));
    auto check = w.control({"--check"});
    CHECK(check.exit_code == 103);
    CHECK(check.err == "ringd-control: check " + w.pid + ": stale PID file removed (PID " +
                           std::to_string(pid) + " was not running)\n");
    CHECK(::access(w.pid.c_str(), F_OK) != 0);
    CHECK(start_stop_daemon_status(w.pid).exit_code == 3);
    CHECK(pidofproc(w.pid).exit_code == 3);
}

TEST_CASE("a stale PID file that may not be removed is emptied, and the message says emptied") {
    if (::geteuid() != 0 || ::access("/usr/bin/setpriv", X_OK) != 0) {
        WARN("skipped: needs root and setpriv to act as nobody");
        return;
    }
    world w; // its directory: root's, 0755, so nobody may not remove files in it
    std::string guards = w.dir / "guards";
    REQUIRE(::mkdir(guards.c_str(), 0777) == 0);
    REQUIRE(::chmod(guards.c_str(), 0777) == 0);
    std::ofstream(w.pid) << "31337\n";
    REQUIRE(::chown(w.pid.c_str(), 65534, 65534) == 0);
    auto r = run_command({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          ringd::testing::control_path(), "--pid-file", w.pid, "--guard-file",
                          guards + "/echod.lock", "--check"});
    CHECK(r.exit_code == 103);
    CHECK(r.err == "ringd-control: check " + w.pid +
                       ": stale PID file emptied (PID 31337 was not running; cannot remove it: "
                       "Permission denied)\n");
    CHECK(ringd::testing::read_file(w.pid).empty());
}

TEST_CASE("while echod drains after SIGTERM, libucw's check still finds it running") {
    world w;
    auto started = w.start({"--drain-timeout", "60"});
    REQUIRE(started.exit_code == 0);
    pid_t pid = pid_of(started);
    // An open connection keeps echod draining (up to 60 s).
    ringd::unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, w.sock.c_str(), w.sock.size() + 1);
    REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    CHECK(echo(w.sock, "before") == "before");
    REQUIRE(libucw_says_running(w.pid));

    REQUIRE(w.control({"--signal", "TERM"}).exit_code == 0);
    REQUIRE(eventually([&] {
        return w.control({"--check", "--json"}).out.find("\"state\":\"exiting\"") !=
               std::string::npos;
    }));
    // Sample for 300 ms while it drains: libucw must see it running every time.
    int samples = 0, disagreements = 0;
    auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until) {
        ++samples;
        if (!libucw_says_running(w.pid)) ++disagreements;
        std::this_thread::sleep_for(1ms);
    }
    CHECK(ringd::testing::process_alive(pid));
    CHECK(samples > 50);
    CHECK(disagreements == 0);
    auto exiting = w.control({"--check"});
    CHECK(exiting.exit_code == 0);
    CHECK(pid_of(exiting) == pid);

    s.reset(); // the drain ends; echod exits and its file goes with it
    REQUIRE(eventually([&] { return !ringd::testing::process_alive(pid); }));
    CHECK_FALSE(libucw_says_running(w.pid));
    CHECK(w.control({"--check"}).exit_code == 101);
}

TEST_CASE(
    "waits are event-driven and bounded: a lock with no PID, a held guard, --stop's default") {
    world w;
    std::string guard = w.dir / "echod.lock";
    std::ofstream(w.pid) << "";
    {
        // Locked, no PID written yet, and none coming: --check waits until --timeout, idle.
        pid_t holder = lock_with_flock(w.pid, "exec sleep 30");
        auto cpu0 = ringd::testing::children_cpu();
        auto t0 = std::chrono::steady_clock::now();
        auto r = w.control({"--check", "--timeout", "1"});
        auto took = std::chrono::steady_clock::now() - t0;
        auto cpu = ringd::testing::children_cpu() - cpu0;
        CHECK(r.exit_code == 102);
        CHECK(r.err == "ringd-control: check " + w.pid +
                           ": the file is locked but names no PID after 1 s (a daemon that never "
                           "finished starting?)\n");
        CHECK(took >= 1s);
        CHECK(took < 3s);
        CHECK(cpu < 150ms); // it was 1.7 s of CPU in 1.8 s
        end_background(holder);
    }
    {
        // The PID arrives 0.4 s later: --check wakes on the write, not on a timer.
        pid_t holder = lock_with_flock(w.pid, "sleep 0.4; echo $$ > \"$0\"; exec sleep 30");
        auto t0 = std::chrono::steady_clock::now();
        auto r = w.control({"--check"});
        auto took = std::chrono::steady_clock::now() - t0;
        CHECK(r.exit_code == 0);
        CHECK(pid_of(r) > 0);
        CHECK(took < 900ms);
        end_background(holder);
        REQUIRE(eventually([&] { return !flock_held(w.pid); }));
        std::ofstream(w.pid) << ""; // not stale: the guard is what the next waits are about
    }
    {
        // Another action holds the guard and never lets go: --timeout bounds that wait too.
        pid_t holder = lock_with_flock(guard, "exec sleep 30");
        auto cpu0 = ringd::testing::children_cpu();
        auto t0 = std::chrono::steady_clock::now();
        auto r = run_command(
            {ringd::testing::control_path(), "--pid-file", w.pid, "--check", "--timeout", "0.5"},
            10s);
        auto took = std::chrono::steady_clock::now() - t0;
        auto cpu = ringd::testing::children_cpu() - cpu0;
        CHECK(r.exit_code == 102);
        CHECK(r.err == "ringd-control: check " + guard +
                           ": another action holds the lock; gave up after 0.5 s\n");
        CHECK(took >= 500ms);
        CHECK(took < 2s);
        CHECK(cpu < 150ms);
        end_background(holder);
    }
    {
        // The guard's holder lets go after 0.3 s: the waiter wakes on its close at once.
        pid_t holder = lock_with_flock(guard, "exec sleep 0.3");
        auto t0 = std::chrono::steady_clock::now();
        auto r = run_command({ringd::testing::control_path(), "--pid-file", w.pid, "--check"}, 10s);
        auto took = std::chrono::steady_clock::now() - t0;
        CHECK(r.exit_code == 101);
        CHECK(took < 800ms);
        ::waitpid(holder, nullptr, 0);
    }
    // --stop without --timeout: SIGKILL after 90 s, as systemd's default stop timeout; documented.
    CHECK(ringd::control_default_timeout(ringd::control_action::stop) == 90s);
    auto help = run_command({ringd::testing::control_path(), "--help"});
    CHECK_THAT(help.out, Catch::Contains("(default: start and stop 90, reload 30, check and "
                                         "signal 10)"));
}
