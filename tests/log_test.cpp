// SPDX-License-Identifier: MIT
// The logger's stderr sink: plain lines on a terminal or a file, "<N>"-prefixed lines when stderr
// is the journal (JOURNAL_STREAM names it), and syslog skipped then so nothing is logged twice.
#include <ringd/log.hpp>

#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace {

// Points fd 2 at a fresh pipe for the test's lifetime and reads back what was written.
class captured_stderr {
public:
    captured_stderr() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
        read_end_.reset(fds[0]);
        saved_.reset(::dup(STDERR_FILENO));
        REQUIRE(::dup2(fds[1], STDERR_FILENO) == STDERR_FILENO);
        ::close(fds[1]);
    }
    ~captured_stderr() {
        ::dup2(saved_.get(), STDERR_FILENO);
        ::unsetenv("JOURNAL_STREAM");
    }
    // "DEVICE:INODE" of the pipe that fd 2 now is: what systemd would put in JOURNAL_STREAM.
    [[nodiscard]] std::string identity() const {
        struct stat st {};
        REQUIRE(::fstat(STDERR_FILENO, &st) == 0);
        return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    }
    std::string text() {
        std::string out;
        char buf[4096];
        for (ssize_t n; (n = ::read(read_end_.get(), buf, sizeof buf)) > 0;)
            out.append(buf, static_cast<std::size_t>(n));
        return out;
    }

private:
    ringd::unique_fd read_end_, saved_;
};

} // namespace

TEST_CASE("stderr lines carry no priority prefix when stderr is not the journal") {
    captured_stderr err;
    ::unsetenv("JOURNAL_STREAM");
    ringd::logger log("prog");
    log.log(ringd::log_level::err, "cannot open x: No such file or directory");
    CHECK(err.text() == "prog: cannot open x: No such file or directory\n");
}

TEST_CASE("stderr lines start with <N> when JOURNAL_STREAM names stderr") {
    captured_stderr err;
    ::setenv("JOURNAL_STREAM", err.identity().c_str(), 1);
    REQUIRE(ringd::logger::stderr_is_journal());
    ringd::logger log("prog");
    std::string seen_by_hook;
    log.use_hook([&](ringd::log_level, std::string_view line) { seen_by_hook = line; });
    log.log(ringd::log_level::err, "failed");
    log.log(ringd::log_level::notice, "started");
    CHECK(err.text() == "<3>prog: failed\n<5>prog: started\n");
    CHECK(seen_by_hook == "prog: started"); // the hook never sees the prefix
}

TEST_CASE("a JOURNAL_STREAM that names another file (inherited by a child) adds no prefix") {
    captured_stderr err;
    ::setenv("JOURNAL_STREAM", "1:999999999", 1);
    CHECK_FALSE(ringd::logger::stderr_is_journal());
    ::setenv("JOURNAL_STREAM", "not a pair", 1);
    CHECK_FALSE(ringd::logger::stderr_is_journal());
    ringd::logger log("prog");
    log.log(ringd::log_level::warning, "w");
    CHECK(err.text() == "prog: w\n");
}
