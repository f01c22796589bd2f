// SPDX-License-Identifier: MIT
// A daemon's log with ringd::logger (docs/lifecycle/05-logging.md): syslog ident and facility
// from the command line, stderr as the log under a supervisor, journald's "<N>" priorities when
// stderr is the journal. Built and run as a test: it checks what the chapter says the logger
// writes, on a pipe that stands in for the journal.
#include <ringd/log.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

// [setup]
// The daemon's options: --syslog-ident, --syslog-facility, --log-level, --foreground.
struct log_options {
    std::string ident = "echod";
    std::string facility = "daemon";
    std::string level = "notice";
    bool foreground = false; // under a supervisor: stderr is the log (a file, a pipe, the journal)
};

// Configures the program's one logger. A bad option is a configuration error (exit 78) that
// names the option and the value.
bool setup_logging(ringd::logger& log, const log_options& o) {
    auto facility = ringd::parse_syslog_facility(o.facility);
    auto level = ringd::parse_log_level(o.level);
    if (!facility || !level) {
        log.logf(ringd::log_level::err, "--syslog-facility %s / --log-level %s: not a %s",
                 o.facility.c_str(), o.level.c_str(), !facility ? "facility" : "level");
        return false;
    }
    log.use_syslog(o.ident, *facility); // skipped while stderr is the journal: no line twice
    log.use_stderr(o.foreground);       // detached, stderr is /dev/null once ready()
    log.set_threshold(*level);          // less severe messages are dropped
    return true;
}
// [/setup]

namespace {

// Points fd 2 at a pipe and reads back what the logger wrote there.
struct captured_stderr {
    int read_end = -1, saved = -1;
    captured_stderr() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) std::exit(1);
        read_end = fds[0];
        saved = ::dup(STDERR_FILENO);
        ::dup2(fds[1], STDERR_FILENO);
        ::close(fds[1]);
    }
    ~captured_stderr() {
        ::dup2(saved, STDERR_FILENO);
        ::close(saved);
        ::close(read_end);
    }
    // What systemd puts in $JOURNAL_STREAM for a service whose stderr is the journal.
    [[nodiscard]] std::string identity() const {
        struct stat st {};
        ::fstat(STDERR_FILENO, &st);
        return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    }
    std::string text() const {
        char buf[4096];
        const ssize_t n = ::read(read_end, buf, sizeof buf);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    }
};

bool expect(const std::string& got, const std::string& want) {
    if (got == want) return true;
    std::printf("logging: expected '%s', got '%s'\n", want.c_str(), got.c_str());
    return false;
}

} // namespace

int main() {
    bool ok = true;
    {
        // Under a supervisor that writes stderr to a file: plain "program: message" lines.
        captured_stderr err;
        ::unsetenv("JOURNAL_STREAM");
        ringd::logger log("echod");
        ok &= setup_logging(log, {"echod", "local3", "info", true});
        // [log]
        log.logf(ringd::log_level::err, "accept on %s: %s", "0.0.0.0:7", "Too many open files");
        log.log(ringd::log_level::debug, "not written: below the threshold (info)");
        // [/log]
        ok &= expect(err.text(), "echod: accept on 0.0.0.0:7: Too many open files\n");
    }
    {
        // Under systemd with StandardError=journal: each line starts with its priority.
        captured_stderr err;
        ::setenv("JOURNAL_STREAM", err.identity().c_str(), 1);
        ringd::logger log("echod"); // reads $JOURNAL_STREAM here
        ok &= setup_logging(log, {"echod", "daemon", "notice", true});
        log.log(ringd::log_level::warning, "drain timeout: closed 3 connections");
        ok &= expect(err.text(), "<4>echod: drain timeout: closed 3 connections\n");
        ::unsetenv("JOURNAL_STREAM");
    }
    {
        // A facility that syslog does not have is refused, naming it.
        captured_stderr err;
        ringd::logger log("echod");
        ok &= !setup_logging(log, {"echod", "local9", "notice", true});
        ok &= expect(err.text(), "echod: --syslog-facility local9 / --log-level notice: not a "
                                 "facility\n");
    }
    return ok ? 0 : 1;
}
