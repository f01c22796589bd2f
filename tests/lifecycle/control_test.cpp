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
