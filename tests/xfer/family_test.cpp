// SPDX-License-Identifier: MIT
// The xfer family end to end, with real peers (socat, openssl s_client): files over TCP, TLS and
// UNIX arrive with matching digests; bad input gets the right ERR and leaves nothing; a receiving
// child killed with SIGKILL mid-transfer is restarted and the sender's retry completes; a full
// spool answers 507 before any data; required client certificates are enforced; xferdebugd
// rotates its file without losing a record; a second xferrd is refused as already running.
// Needs XFER_BIN (the directory with xferrd, xferctl, xfersqd, xferdebugd).
#include "sha256.hpp"

#include "test_certs.hpp"
#include "test_dir.hpp"

#include "lifecycle/load_client.hpp"

#include <ringd/daemon.hpp>
#include <ringd/fd.hpp>

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using ringd::testing::load_client;
using ringd::testing::trip;
using xfer::testing::files_in;
using xfer::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

std::string bin(const std::string& program) {
    const char* dir = std::getenv("XFER_BIN");
    REQUIRE(dir != nullptr);
    return std::string(dir) + "/" + program;
}

// Runs a shell command; its stdout. `exit_status` (if given) receives its exit code.
std::string run(const std::string& command, int* exit_status = nullptr) {
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    int status = ::pclose(p);
    if (exit_status != nullptr) *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string sha_of(const std::string& data) {
    xfer::sha256 h;
    h.update(std::as_bytes(std::span(data)));
    return h.finish_hex();
}

std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; i += 8) {
        auto v = rng();
        std::memcpy(s.data() + i, &v, std::min<std::size_t>(8, n - i));
    }
    return s;
}

template <class Predicate>
bool wait_until(Predicate done, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return done();
}

// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN in its mount namespace).
bool can_mount_tmpfs() {
    if (::geteuid() != 0) return false;
    temp_dir probe;
    if (::mount("tmpfs", probe.str().c_str(), "tmpfs", 0, "size=64k") != 0) return false;
    ::umount2(probe.str().c_str(), MNT_DETACH);
    return true;
}

// A tmpfs mounted for a test; unmounted when it goes (after the family using it has stopped).
struct tmpfs_mount {
    std::string path; // empty: nothing mounted
    tmpfs_mount() = default;
    tmpfs_mount(const tmpfs_mount&) = delete;
    tmpfs_mount& operator=(const tmpfs_mount&) = delete;
    ~tmpfs_mount() {
        if (!path.empty()) ::umount2(path.c_str(), MNT_DETACH);
    }
};

struct family_options {
    bool send_to_self = false;         // a partner "loop" whose address is our own UNIX socket
    bool require_client_certs = false; // [tcpip_tls] client_ca = the test CA
    std::string spool_tmpfs_size;      // non-empty ("1m"): the spool is a tmpfs of that size
    std::string settings;              // more top-level keys ("max_connections = 3\n")
    std::string idle_timeout_s = "1";
};

// A running family in a temporary directory, stopped (and checked to stop) at the end.
class family {
public:
    explicit family(const family_options& options = {}) {
        std::string extra = options.send_to_self ? "[[partner]]\nname = \"loop\"\naddress = \"" +
                                                       unix_path() + "\"\n"
                                                 : "";
        if (!options.spool_tmpfs_size.empty()) {
            fs::create_directories(spool());
            std::string size = "size=" + options.spool_tmpfs_size;
            REQUIRE(::mount("tmpfs", spool().c_str(), "tmpfs", 0, size.c_str()) == 0);
            spool_mount_.path = spool();
        }
        certs_ = xfer::testing::make_test_certs(dir_.str());
        std::string client_ca =
            options.require_client_certs ? "client_ca = \"" + certs_.ca() + "\"\n" : std::string();
        config_ = dir_.str() + "/xfer.toml";
        std::ofstream(config_) << "spool = \"" << spool() << "\"\n"
                               << "run_dir = \"" << dir_.str() << "/run\"\n"
                               << "log_dir = \"" << dir_.str() << "/log\"\n"
                               << "max_file_size = 104857600\n"
                               << "idle_timeout_s = " << options.idle_timeout_s << "\n"
                               << "drain_timeout_s = 2\n"
                               << "rescan_interval_s = 1\n"
                               << options.settings << "[tcpip]\nlisten = [\"127.0.0.1:0\"]\n"
                               << "[tcpip_tls]\nlisten = [\"127.0.0.1:0\"]\n"
                               << "cert = \"" << certs_.server_cert() << "\"\nkey = \""
                               << certs_.server_key() << "\"\n"
                               << client_ca << "[unix]\npath = \"" << unix_path() << "\"\n"
                               << extra;
        auto started = run(ctl("start") + " 2>&1");
        INFO(started);
        REQUIRE(started.find("started") != std::string::npos);
        REQUIRE(wait_until(
            [&] {
                return !address("xferrd_tcpip").empty() && !address("xferrd_tcpip_tls").empty() &&
                       fs::exists(unix_path());
            },
            10s));
    }
    ~family() {
        std::vector<long> pids;
        auto doc = status();
        for (const auto& p : doc["processes"]) pids.push_back(p.value("pid", 0L));
        std::string stopped = run(ctl("stop") + " 2>&1");
        CHECK(stopped.find("stopped") != std::string::npos);
        for (long pid :
             pids) { // nothing of ours is left (a zombie waiting for init counts as gone)
            std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
            std::string pid_text, comm, state;
            if (pid != 0 && stat >> pid_text >> comm >> state) CHECK(state == "Z");
        }
    }

    [[nodiscard]] std::string ctl(const std::string& command) const {
        return bin("xferctl") + " -c " + config_ + " " + command;
    }
    [[nodiscard]] std::string spool() const { return dir_.str() + "/spool"; }
    [[nodiscard]] std::string unix_path() const { return dir_.str() + "/run/xfer.sock"; }
    [[nodiscard]] std::string config_path() const { return config_; }
    [[nodiscard]] std::string log_dir() const { return dir_.str() + "/log"; }
    [[nodiscard]] std::string run_dir() const { return dir_.str() + "/run"; }
    [[nodiscard]] const xfer::testing::test_certs& certs() const { return certs_; }
    [[nodiscard]] const temp_dir& dir() const { return dir_; }

    // The first address the child `name` listens on ("127.0.0.1:40123"), or empty.
    [[nodiscard]] std::string address(const std::string& name) const {
        auto doc = status();
        for (const auto& p : doc["processes"])
            if (p["name"] == name && !p["listening"].empty())
                return p["listening"][0].get<std::string>();
        return {};
    }
    [[nodiscard]] nlohmann::json status() const {
        auto text = run(ctl("status --json"));
        try {
            return nlohmann::json::parse(text);
        } catch (...) {
            return nlohmann::json::object({{"processes", nlohmann::json::array()}});
        }
    }
    [[nodiscard]] nlohmann::json process(const std::string& name) const {
        auto doc = status(); // a named local: the loop must not run over a destroyed temporary
        for (const auto& p : doc["processes"])
            if (p["name"] == name) return p;
        return {};
    }

    // Edits the configuration file in place (then `xferctl reload` applies it).
    void edit_config(const std::string& from, const std::string& to) const {
        std::string text = read_file(config_);
        auto at = text.find(from);
        REQUIRE(at != std::string::npos);
        text.replace(at, from.size(), to);
        std::ofstream(config_, std::ios::trunc) << text;
    }

    bool spool_clean_of(const std::vector<std::string>& names) const {
        auto in = files_in(spool() + "/in");
        for (const auto& n : names)
            if (std::find(in.begin(), in.end(), n) != in.end()) return false;
        return files_in(spool() + "/tmp").empty();
    }

private:
    temp_dir dir_;
    tmpfs_mount spool_mount_; // declared after dir_: unmounted before dir_ is removed
    xfer::testing::test_certs certs_;
    std::string config_;
};

// One connection carrying every PUT of `files` through `socat_target`; the replies.
std::string put_all(const family& f, const std::map<std::string, std::string>& files,
                    const std::string& socat_target) {
    std::string requests = f.dir().str() + "/requests";
    {
        std::ofstream out(requests, std::ios::binary | std::ios::trunc);
        for (const auto& [name, data] : files)
            out << "PUT " << name << " " << data.size() << "\n" << data;
    }
    return run("socat -t 30 -T 60 - '" + socat_target + "' < " + requests);
}

void check_arrived(const family& f, const std::map<std::string, std::string>& files,
                   const std::string& replies) {
    std::istringstream lines(replies);
    std::string line;
    auto it = files.begin();
    std::size_t ok = 0;
    for (; std::getline(lines, line) && it != files.end(); ++it, ++ok) {
        INFO(it->first);
        CHECK(line == "OK " + std::to_string(it->second.size()) + " " + sha_of(it->second));
        CHECK(sha_of(read_file(f.spool() + "/in/" + it->first)) == sha_of(it->second));
    }
    CHECK(ok == files.size());
}

std::map<std::string, std::string> random_files(const std::string& prefix, std::size_t count,
                                                std::uint64_t seed, std::size_t big = 0) {
    std::mt19937_64 rng(seed);
    std::map<std::string, std::string> files;
    files[prefix + "-empty"] = "";
    for (std::size_t i = 1; i < count; ++i) {
        std::size_t size = rng() % 3 == 0 ? rng() % 64 : rng() % (256 * 1024);
        files[prefix + "-" + std::to_string(i)] = random_bytes(rng, size);
    }
    if (big > 0) files[prefix + "-big"] = random_bytes(rng, big);
    return files;
}

} // namespace

TEST_CASE("hundreds of files, one above 64 MiB, arrive intact over TCP, TLS and UNIX", "[family]") {
    family f;
    constexpr std::size_t big = (64u << 20) + 12345;
    auto tcp_files = random_files("tcp", 200, 1, big);
    check_arrived(f, tcp_files, put_all(f, tcp_files, "TCP:" + f.address("xferrd_tcpip")));
    auto tls_files = random_files("tls", 200, 2, big);
    check_arrived(f, tls_files,
                  put_all(f, tls_files,
                          "OPENSSL:" + f.address("xferrd_tcpip_tls") + ",cafile=" + f.certs().ca() +
                              ",commonname=localhost"));
    auto unix_files = random_files("unix", 200, 3, big);
    check_arrived(f, unix_files, put_all(f, unix_files, "UNIX-CONNECT:" + f.unix_path()));
    CHECK(files_in(f.spool() + "/in").size() == 603);
    CHECK(files_in(f.spool() + "/tmp").empty());

    // openssl s_client as a peer too, and an idempotent retry of a file already there.
    std::string retry = "PUT tcp-1 " + std::to_string(tcp_files["tcp-1"].size()) + "\n";
    std::ofstream(f.dir().str() + "/retry", std::ios::binary) << retry << tcp_files["tcp-1"];
    auto reply = run("timeout 10 openssl s_client -quiet -verify_return_error -CAfile " +
                     f.certs().ca() + " -connect " + f.address("xferrd_tcpip_tls") + " < " +
                     f.dir().str() + "/retry 2>/dev/null | head -1");
    CHECK(reply == "OK " + std::to_string(tcp_files["tcp-1"].size()) + " " +
                       sha_of(tcp_files["tcp-1"]) + "\n");
}

TEST_CASE("bad input gets the right ERR and leaves nothing in the spool", "[family]") {
    family f;
    std::string tcp = "TCP:" + f.address("xferrd_tcpip");
    auto ask = [&](const std::string& input) {
        std::ofstream(f.dir().str() + "/bad", std::ios::binary | std::ios::trunc) << input;
        return run("socat -t 5 -T 5 - '" + tcp + "' < " + f.dir().str() + "/bad");
    };
    CHECK(ask("PUT bad/name 3\nabc").starts_with("ERR 400 bad name"));
    CHECK(ask("PUT ../escape 3\nabc").starts_with("ERR 400 bad name"));
    CHECK(ask("PUT short 100\nabc") == "ERR 400 connection closed after 3 of 100 bytes\n");
    CHECK(ask("PUT huge 209715200\nabc").starts_with("ERR 413 "));
    CHECK(ask("\x16\x03\x01 garbage\n").starts_with("ERR 400 unknown request"));
    CHECK(ask("PUT ok 2\nokPUT ok 2\nKO") ==
          "OK 2 " + sha_of("ok") + "\nERR 409 ok exists with other content\n");
    // Idle: socat keeps the connection open (-t 5) while the server waits 1 s for more.
    auto idle = run("(printf 'PUT slow 10\\nabc'; sleep 3) | socat -T 10 - '" + tcp + "'");
    CHECK(idle == "ERR 400 idle for 1000 ms\n");
    CHECK(f.spool_clean_of({"bad", "name", "escape", "short", "huge", "slow"}));
    CHECK_FALSE(fs::exists(f.dir().path() / "escape"));
    CHECK(files_in(f.spool() + "/in") == std::vector<std::string>{"ok"});
}

TEST_CASE("a receiving child killed mid-transfer is restarted and every file arrives exactly once",
          "[family]") {
    family_options options;
    options.send_to_self = true;
    family f(options);
    auto files = random_files("q", 40, 4, 90u << 20);
    files["0-big"] =
        std::move(files["q-big"]); // sorts first: sent first, so the kill finds it in flight
    files.erase("q-big");
    std::string out = f.spool() + "/out/loop/";
    for (const auto& [name, data] :
         files) { // producers write a dot name, then rename: xfersqd skips dot names
        std::ofstream(out + "." + name, std::ios::binary) << data;
        fs::rename(out + "." + name, out + name);
    }
    long victim = f.process("xferrd_unix").value("pid", 0L);
    REQUIRE(victim > 0);
    // In flight: the child holds the unnamed temporary file of spool/tmp open.
    auto receiving = [&] {
        std::error_code ec;
        for (const auto& e :
             fs::directory_iterator("/proc/" + std::to_string(victim) + "/fd", ec)) {
            auto target = fs::read_symlink(e.path(), ec).string();
            if (target.find("/spool/tmp/") != std::string::npos) return true;
        }
        return false;
    };
    REQUIRE(wait_until(receiving, 20s));
    REQUIRE(::kill(static_cast<pid_t>(victim), SIGKILL) == 0);
    auto in = files_in(f.spool() + "/in");
    if (std::find(in.begin(), in.end(), "0-big") != in.end()) // visible only if complete
        CHECK(fs::file_size(f.spool() + "/in/0-big") == files["0-big"].size());

    REQUIRE(wait_until([&] { return files_in(out).empty(); }, 60s));
    auto restarted = f.process("xferrd_unix");
    CHECK(restarted["state"] == "running");
    CHECK(restarted["pid"].get<long>() != victim);
    CHECK(restarted["restarts"].get<int>() >= 1);
    CHECK(files_in(f.spool() + "/sent/loop").size() == files.size());
    CHECK(files_in(f.spool() + "/in").size() == files.size());
    for (const auto& [name, data] : files) {
        INFO(name);
        CHECK(sha_of(read_file(f.spool() + "/in/" + name)) == sha_of(data));
    }
    CHECK(files_in(f.spool() + "/tmp").empty());
}

TEST_CASE("a reload applies new limits to new connections while a transfer in progress completes",
          "[family]") {
    family f;
    std::string tcp = "TCP:" + f.address("xferrd_tcpip");
    // 2 MB in two halves with a pause between them (shorter than the 1 s idle limit).
    FILE* slow =
        ::popen(("(printf 'PUT during-reload 2000000\\n'; head -c 1000000 /dev/zero; sleep 0.7; "
                 "head -c 1000000 /dev/zero) | socat -t 5 - '" +
                 tcp + "'")
                    .c_str(),
                "r");
    REQUIRE(slow != nullptr);
    std::this_thread::sleep_for(200ms);
    f.edit_config("max_file_size = 104857600", "max_file_size = 1000");
    CHECK(run(f.ctl("reload") + " 2>&1").find("reloaded") != std::string::npos);
    std::this_thread::sleep_for(100ms); // the child re-reads the file on its SIGHUP
    auto refused = run("printf 'PUT after-reload 2000\\n' | socat -t 5 - '" + tcp + "'");
    CHECK(refused.starts_with("ERR 413 2000 bytes is above the limit of 1000"));
    char line[256] = {};
    CHECK(std::fgets(line, sizeof line, slow) != nullptr);
    ::pclose(slow);
    CHECK(std::string(line) == "OK 2000000 " + sha_of(std::string(2000000, '\0')) + "\n");
    CHECK(f.process("xferrd_tcpip")["restarts"].get<int>() == 0);
}

TEST_CASE("a spool that cannot hold a file answers 507 before any data and keeps what it has",
          "[family]") {
    if (!can_mount_tmpfs()) {
        WARN("skipped: needs root and permission to mount a tmpfs for a small spool");
        return;
    }
    family_options options;
    options.spool_tmpfs_size = "1m"; // the whole spool: 1 MiB
    family f(options);
    std::string tcp = "TCP:" + f.address("xferrd_tcpip");
    std::mt19937_64 rng(5);
    std::map<std::string, std::string> earlier{{"earlier", random_bytes(rng, 400 * 1024)}};
    check_arrived(f, earlier, put_all(f, earlier, tcp));

    // 800 KiB fits the file system but not what is left of it. Only the request line is sent,
    // and the connection stays open for longer than the 1 s idle limit: the answer must come
    // from the reservation, before any data (without it: "ERR 400 idle for 1000 ms").
    auto refused = run("(printf 'PUT big 819200\\n'; sleep 2) | socat -T 10 - '" + tcp + "'");
    INFO(refused);
    CHECK(refused.starts_with("ERR 507 cannot store 819200 bytes: No space left on device"));
    CHECK(files_in(f.spool() + "/in") == std::vector<std::string>{"earlier"});
    CHECK(files_in(f.spool() + "/tmp").empty());
    CHECK(sha_of(read_file(f.spool() + "/in/earlier")) == sha_of(earlier["earlier"]));

    // The space reserved for the refused file was given back: 500 KiB fits again.
    std::map<std::string, std::string> after{{"later", random_bytes(rng, 500 * 1024)}};
    check_arrived(f, after, put_all(f, after, tcp));
    CHECK(files_in(f.spool() + "/tmp").empty());
}

TEST_CASE("with client_ca, the TLS child refuses clients without a CA-signed certificate",
          "[family]") {
    family_options options;
    options.require_client_certs = true;
    family f(options);
    std::string tls = "OPENSSL:" + f.address("xferrd_tcpip_tls") + ",cafile=" + f.certs().ca() +
                      ",commonname=localhost";
    auto put = [&](const std::string& name, const std::string& client_options) {
        std::ofstream(f.dir().str() + "/" + name, std::ios::binary | std::ios::trunc)
            << "PUT " << name << " 5\nhello";
        return run("socat -t 5 -T 10 - '" + tls + client_options + "' < " + f.dir().str() + "/" +
                   name + " 2>/dev/null");
    };
    // The reason is in the child's log (its stderr file in log_dir, and xferdebugd's records).
    auto logged = [&](const std::string& reason) {
        for (const auto& name : files_in(f.log_dir())) {
            std::istringstream log(read_file(f.log_dir() + "/" + name));
            for (std::string line; std::getline(log, line);)
                if (line.find("TLS handshake with 127.0.0.1:") != std::string::npos &&
                    line.find(reason) != std::string::npos)
                    return true;
        }
        return false;
    };

    CHECK(put("anonymous", "") == "");
    CHECK(wait_until([&] { return logged("peer did not return a certificate"); }, 5s));
    CHECK(put("rogue", ",cert=" + f.certs().rogue_cert() + ",key=" + f.certs().rogue_key()) == "");
    CHECK(wait_until([&] { return logged("certificate verify failed"); }, 5s));
    CHECK(f.spool_clean_of({"anonymous", "rogue"}));

    auto signed_reply =
        put("signed", ",cert=" + f.certs().client_cert() + ",key=" + f.certs().client_key());
    CHECK(signed_reply == "OK 5 " + sha_of("hello") + "\n");
    CHECK(read_file(f.spool() + "/in/signed") == "hello");
    CHECK(files_in(f.spool() + "/in") == std::vector<std::string>{"signed"});
}

TEST_CASE("xferdebugd rotates its records file by size and loses no record at the boundary",
          "[family]") {
    family f;
    constexpr std::uint64_t rotate_at = 4u << 20; // xferdebugd.cpp: rotate_bytes
    constexpr int count = 1500;                   // ~6 MB of records: exactly one rotation
    std::string records = f.log_dir() + "/xferdebugd.records";
    ringd::unique_fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    timeval patience{10, 0}; // a collector that stops reading fails the test, never hangs it
    REQUIRE(::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &patience, sizeof patience) == 0);
    sockaddr_un to{};
    to.sun_family = AF_UNIX;
    std::string socket_path = f.run_dir() + "/xferdebugd.sock";
    REQUIRE(socket_path.size() < sizeof to.sun_path);
    std::strcpy(to.sun_path, socket_path.c_str());
    int sent = 0;
    for (; sent < count; ++sent) {
        char head[64];
        std::snprintf(head, sizeof head, "info 0 rotation-test: seq=%05d ", sent);
        std::string record = head + std::string(4000 - std::strlen(head), 'r');
        // Blocking: when xferdebugd's queue is full this waits instead of dropping the record.
        if (::sendto(fd.get(), record.data(), record.size(), 0,
                     reinterpret_cast<const sockaddr*>(&to),
                     sizeof to) != static_cast<ssize_t>(record.size()))
            break;
    }
    REQUIRE(sent == count);

    // The sequence numbers in the rotated file, then the current one.
    auto sequence = [&] {
        std::vector<int> seen;
        for (const auto& file : {records + ".1", records}) {
            std::istringstream lines(read_file(file));
            for (std::string line; std::getline(lines, line);) {
                auto at = line.find("rotation-test: seq=");
                if (at != std::string::npos) seen.push_back(std::stoi(line.substr(at + 19, 5)));
            }
        }
        return seen;
    };
    std::vector<int> expected(count);
    for (int i = 0; i < count; ++i) expected[static_cast<std::size_t>(i)] = i;
    CHECK(wait_until([&] { return sequence().size() == expected.size(); }, 30s));
    REQUIRE(fs::exists(records + ".1"));
    CHECK(fs::file_size(records + ".1") >= rotate_at);
    CHECK(fs::file_size(records) < rotate_at);
    CHECK(sequence() == expected); // in order, each once, nothing lost across the two files
}

TEST_CASE("a second xferrd on the same configuration is refused and the first one goes on",
          "[family]") {
    family f;
    long master = f.process("xferrd").value("pid", 0L);
    REQUIRE(master > 0);
    for (const std::string mode : {"", " --foreground"}) {
        INFO("xferrd" << mode);
        int status = -1;
        auto said =
            run("timeout 20 " + bin("xferrd") + " -c " + f.config_path() + mode + " 2>&1", &status);
        CHECK(status == ringd::exit_code::already_running); // 73
        CHECK(said == "xferrd: start " + f.run_dir() + "/xferrd.pid: already running as PID " +
                          std::to_string(master) + "\n");
    }
    CHECK(f.process("xferrd").value("pid", 0L) == master);
    CHECK(f.process("xferrd_tcpip")["state"] == "running");
    std::map<std::string, std::string> files{{"still-served", "data"}};
    check_arrived(f, files, put_all(f, files, "TCP:" + f.address("xferrd_tcpip")));
}

namespace {

// A client connection on a plain socket, with a receive timeout so that no test can hang.
ringd::unique_fd dial(const std::string& address) {
    auto colon = address.rfind(':');
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    REQUIRE(::inet_pton(AF_INET, address.substr(0, colon).c_str(), &to.sin_addr) == 1);
    ringd::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
    timeval patience{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    return fd;
}

void send_text(const ringd::unique_fd& fd, const std::string& text) {
    REQUIRE(::send(fd.get(), text.data(), text.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(text.size()));
}

// Reads one line (up to and with its newline), or what came before the end.
std::string read_line(const ringd::unique_fd& fd) {
    std::string line;
    char c = 0;
    while (line.find('\n') == std::string::npos && ::recv(fd.get(), &c, 1, 0) == 1) line += c;
    return line;
}

// Whether the server has closed the connection (EOF within the receive timeout).
bool closed_by_server(const ringd::unique_fd& fd) {
    char c = 0;
    return ::recv(fd.get(), &c, 1, 0) == 0;
}

} // namespace

TEST_CASE("beyond max_connections a new connection gets ERR 503 and is closed while the others "
          "are served",
          "[family]") {
    family_options options;
    options.settings = "max_connections = 3\n";
    options.idle_timeout_s = "4"; // longer than the held connections must wait
    family f(options);
    std::string address = f.address("xferrd_tcpip");
    std::vector<ringd::unique_fd> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(dial(address));
        send_text(held.back(), "PING\n"); // served: the child has counted it
        CHECK(read_line(held.back()) == "PONG\n");
    }
    auto extra = dial(address);
    CHECK(read_line(extra) == "ERR 503 too many connections\n");
    CHECK(closed_by_server(extra));
    for (auto& fd : held) {
        send_text(fd, "PING\n");
        CHECK(read_line(fd) == "PONG\n");
    }
    // Over TLS the refusal comes after the handshake, as a line the client can read.
    auto tls_held = std::vector<FILE*>{};
    std::string tls = f.address("xferrd_tcpip_tls");
    std::string s_client = "timeout 10 openssl s_client -quiet -CAfile " + f.certs().ca() +
                           " -connect " + tls + " 2>/dev/null";
    std::string tls_hold = "(printf 'PING\\n'; sleep 3) | " + s_client;
    for (int i = 0; i < 3; ++i) tls_held.push_back(::popen(tls_hold.c_str(), "r"));
    char line[128] = {};
    for (FILE* p : tls_held) {
        REQUIRE(p != nullptr);
        CHECK(std::fgets(line, sizeof line, p) != nullptr);
        CHECK(std::string(line) == "PONG\n");
    }
    CHECK(run("(sleep 1; printf 'PING\\n') | " + s_client) == "ERR 503 too many connections\n");
    for (FILE* p : tls_held) ::pclose(p);

    // A connection that ends makes room for the next one.
    held.pop_back();
    ringd::unique_fd next;
    CHECK(wait_until(
        [&] {
            next = dial(address);
            send_text(next, "PING\n");
            return read_line(next) == "PONG\n";
        },
        5s));
    CHECK(f.process("xferrd_tcpip")["restarts"].get<int>() == 0);
}

TEST_CASE("a client that trickles a body below min_rate is dropped after the idle window",
          "[family]") {
    family_options options;
    options.settings = "min_rate_bytes_per_s = 1000\n"; // idle_timeout_s = 1: 1000 bytes/window
    family f(options);
    auto fd = dial(f.address("xferrd_tcpip"));
    send_text(fd, "PUT slowloris 1000\n");
    auto started = std::chrono::steady_clock::now();
    std::string reply;
    // One byte every 100 ms (10 bytes/s): before, each byte restarted the idle clock.
    while (std::chrono::steady_clock::now() - started < 10s) {
        std::this_thread::sleep_for(100ms);
        char c = 's';
        if (::send(fd.get(), &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) break;
        char buf[256];
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) reply.append(buf, static_cast<std::size_t>(n));
        if (n == 0) break;
    }
    auto took = std::chrono::steady_clock::now() - started;
    INFO(reply);
    CHECK(reply.starts_with("ERR 400 "));
    CHECK(reply.find("bytes in 1000 ms, below the minimum of 1000 bytes/s") != std::string::npos);
    CHECK(took < 3s);
    CHECK(f.spool_clean_of({"slowloris"}));
}

TEST_CASE("a PUT that announces a large file and sends nothing reserves no spool: other clients "
          "do not get 507",
          "[family]") {
    if (!can_mount_tmpfs()) {
        WARN("skipped: needs root and permission to mount a tmpfs for a small spool");
        return;
    }
    family_options options;
    options.spool_tmpfs_size = "64m";
    options.idle_timeout_s = "30";
    family f(options);
    std::string address = f.address("xferrd_tcpip");
    auto hog = dial(address);
    send_text(hog, "PUT hog 60000000\n"); // fits the free space now, then nothing comes
    std::this_thread::sleep_for(300ms);
    std::mt19937_64 rng(6);
    std::map<std::string, std::string> others{{"other-1", random_bytes(rng, 8 << 20)},
                                              {"other-2", random_bytes(rng, 4 << 20)}};
    check_arrived(f, others, put_all(f, others, "TCP:" + address));
    // The hog is still waiting, and still gets its answer when it sends too little.
    send_text(hog, "abc");
    ::shutdown(hog.get(), SHUT_WR);
    CHECK(read_line(hog) == "ERR 400 connection closed after 3 of 60000000 bytes\n");
    CHECK(f.spool_clean_of({"hog"}));
}

namespace {
int port_of(const std::string& address) {
    return std::atoi(address.c_str() + address.rfind(':') + 1);
}
// After a restart: the load goes on being served, by a child on the master's socket (not one
// it bound itself: the port is the same).
void still_served(const family& f, const load_client& client, const std::string& address) {
    long before = client.count(trip::ok);
    CHECK(wait_until([&] { return client.count(trip::ok) > before + 20; }, 10s));
    CHECK(f.address("xferrd_tcpip") == address);
}
// Whether `pid` runs (a zombie that init has not reaped yet does not).
bool running(long pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string pid_text, comm, state;
    return static_cast<bool>(stat >> pid_text >> comm >> state) && state != "Z";
}
} // namespace

TEST_CASE("a killed xferrd_tcpip is replaced on the master's socket: the same port, and no "
          "connection refused meanwhile",
          "[family]") {
    family f;
    const std::string address = f.address("xferrd_tcpip"); // port 0 in the configuration
    REQUIRE(!address.empty());
    load_client client(port_of(address), "PING", "PONG");
    REQUIRE(wait_until([&] { return client.count(trip::ok) > 20; }, 10s));
    for (int kill = 0; kill < 3; ++kill) {
        long victim = f.process("xferrd_tcpip").value("pid", 0L);
        REQUIRE(victim > 0);
        REQUIRE(::kill(static_cast<pid_t>(victim), SIGKILL) == 0);
        REQUIRE(wait_until(
            [&] {
                auto p = f.process("xferrd_tcpip");
                return p.value("state", "") == "running" && p.value("pid", 0L) != victim &&
                       p.value("pid", 0L) != 0;
            },
            10s));
        still_served(f, client, address);
    }
    client.stop();
    INFO(client.summary());
    CHECK(client.count(trip::refused) == 0);
    CHECK(client.count(trip::other) == 0);
    // Connections the killed child had already accepted die with it (reset or unanswered):
    // kill -9 leaves it no time to finish them. Those waiting in the backlog are all served.
    CHECK(client.count(trip::reset) + client.count(trip::unanswered) < 3 * 70);
}

TEST_CASE("xferctl upgrade replaces the master and its children on the same sockets: no "
          "connection refused, reset or unanswered",
          "[family]") {
    family f;
    const std::string address = f.address("xferrd_tcpip");
    REQUIRE(!address.empty());
    load_client client(port_of(address), "PING", "PONG");
    REQUIRE(wait_until([&] { return client.count(trip::ok) > 20; }, 10s));
    for (int upgrade = 0; upgrade < 3; ++upgrade) {
        long old_master = f.process("xferrd").value("pid", 0L);
        REQUIRE(old_master > 0);
        int code = -1;
        auto out = run(f.ctl("upgrade") + " 2>&1", &code);
        INFO(out);
        REQUIRE(code == 0);
        CHECK(out.find("upgraded") != std::string::npos);
        CHECK_FALSE(running(old_master)); // the old master is gone
        REQUIRE(wait_until(
            [&] {
                long now = f.process("xferrd").value("pid", 0L);
                return now != 0 && now != old_master &&
                       f.process("xferrd_tcpip").value("state", "") == "running";
            },
            10s));
        still_served(f, client, address);
    }
    client.stop();
    INFO(client.summary());
    CHECK(client.lost_none());
    CHECK(fs::exists(f.unix_path())); // the UNIX transport's path outlived the old master
}
