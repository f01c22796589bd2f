// SPDX-License-Identifier: MIT
// tests/process/process_test_support.hpp — helpers for tests that start real processes: a
// temporary directory, a guard that ends every process a test started (even when it fails),
// bounded polling, and file reading.
#pragma once

#include <catch2/catch.hpp>

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ringd::testing {

// A fresh directory under /tmp, removed with its contents at the end.
class temp_dir {
public:
    temp_dir() {
        char name[] = "/tmp/ringd-process-test-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path_ = name;
        ::chmod(path_.c_str(), 0755); // services running as nobody must reach their files
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::string operator/(const std::string& name) const {
        return path_ + "/" + name;
    }

private:
    std::string path_;
};

inline std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

inline void write_file(const std::string& path, const std::string& text, mode_t mode = 0644) {
    {
        std::ofstream out(path, std::ios::trunc);
        out << text;
    }
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

// Makes this test process the reaper of every orphan its children leave (PID 1 here may not
// reap them), so that nothing a test starts outlives it as a zombie.
inline void become_subreaper() {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
}

// Whether a process exists and has not ended (a zombie counts as ended).
inline bool alive(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = text.rfind(')');
    if (close == std::string::npos || close + 2 >= text.size()) return false;
    return text[close + 2] != 'Z' && text[close + 2] != 'X';
}

// Polls `done` every 10 ms until it holds or `limit` passes; returns whether it held.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

// The pids of this process's children (zombies included).
inline std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> out;
    const std::string dir = "/proc/" + std::to_string(parent) + "/task";
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            std::istringstream in(read_file(dir + "/" + e->d_name + "/children"));
            for (pid_t p; in >> p;) out.push_back(p);
        }
        ::closedir(d);
    }
    return out;
}

// Ends every process a test started: at destruction each registered process group (and each
// remaining child of this process) gets SIGKILL, and everything is reaped.
class process_reaper {
public:
    process_reaper() { become_subreaper(); }
    ~process_reaper() { end_all(); }
    process_reaper(const process_reaper&) = delete;
    process_reaper& operator=(const process_reaper&) = delete;

    void watch_group(pid_t pgid) { groups_.push_back(pgid); }

    void end_all() {
        for (pid_t g : groups_) ::kill(-g, SIGKILL);
        groups_.clear();
        // Everything left below us (children and adopted orphans): kill, then reap, bounded.
        for (int round = 0; round < 200; ++round) {
            auto kids = children_of(::getpid());
            if (kids.empty()) return;
            for (pid_t k : kids) {
                ::kill(-k, SIGKILL); // its group, if it leads one
                ::kill(k, SIGKILL);
            }
            while (::waitpid(-1, nullptr, WNOHANG) > 0) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

private:
    std::vector<pid_t> groups_;
};

} // namespace ringd::testing
