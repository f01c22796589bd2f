// SPDX-License-Identifier: MIT
// ringd/log.hpp — a daemon's log: syslog levels, and sinks for stderr, syslog and a hook.
// One logger per program; messages read `program: action object: reason` (what every ringd program
// prints).
#pragma once

#include <ringd/log_level.hpp>

#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <array>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace ringd {

// "daemon", "local0".."local7", "user", "auth", ... → LOG_DAEMON etc.; nullopt for anything else.
[[nodiscard]] std::optional<int> parse_syslog_facility(std::string_view name) noexcept;

class logger {
public:
    // Receives every message at or above the threshold, with the program name already in front.
    using hook = std::function<void(log_level, std::string_view line)>;

    // Logs as `program` to stderr only, at notice and above (info and debug are dropped).
    explicit logger(std::string program)
        : program_(std::move(program)), journal_(stderr_is_journal()) {}
    ~logger() { close_syslog(); }
    logger(const logger&) = delete;
    logger& operator=(const logger&) = delete;

    // Writes each message to stderr as "program: message\n" (one write(2), so lines from
    // several processes on one terminal do not interleave). When stderr is the journal
    // (systemd's JOURNAL_STREAM names it), each line starts with its priority, "<3>program: ...",
    // so that journald files errors as errors (sd-daemon(3)'s prefixes).
    void use_stderr(bool on) noexcept { stderr_ = on; }
    // Sends each message to syslog with this ident and facility (LOG_DAEMON, LOG_LOCAL0, ...).
    // openlog() is process-wide: the last logger to call this wins. The ident must stay valid
    // while syslog uses it, so the logger keeps it. Never fails: syslog(3) drops what it cannot
    // deliver. While stderr is the journal and in use, syslog is skipped: journald would get
    // every line twice.

    void use_syslog(std::string ident, int facility);
    void close_syslog() noexcept;
    // Also passes each message to `h` (tests; later the debug-collector sink).
    void use_hook(hook h) { hook_ = std::move(h); }
    // Messages less severe than `level` are dropped.
    void set_threshold(log_level level) noexcept { threshold_ = level; }

    [[nodiscard]] const std::string& program() const noexcept { return program_; }
    [[nodiscard]] bool enabled(log_level level) const noexcept { return level <= threshold_; }
    // Whether this process's stderr is the journal: $JOURNAL_STREAM ("DEVICE:INODE", set by
    // systemd for a service whose output goes there) names the file that fd 2 is.
    [[nodiscard]] static bool stderr_is_journal() noexcept;

    // Logs one message (without the program name; a trailing newline is not needed).
    void log(log_level level, std::string_view message) noexcept;
    // printf-style: logf(log_level::err, "cannot open %s: %s", path, strerror(errno)).
    [[gnu::format(printf, 3, 4)]] void logf(log_level level, const char* format, ...) noexcept;

private:
    std::string program_;                     // the prefix of every stderr line
    std::string ident_;                       // what openlog() points at, while syslog_ is on
    bool journal_ = false;                    // stderr is the journal: "<N>" prefixes
    bool stderr_ = true;                      // sink: stderr
    bool syslog_ = false;                     // sink: syslog
    hook hook_;                               // sink: the caller's function, if any
    log_level threshold_ = log_level::notice; // least severe level that is logged
};

// =============================================================================================
// Implementation

inline std::optional<int> parse_syslog_facility(std::string_view name) noexcept {
    struct entry {
        std::string_view name;
        int facility;
    };
    static constexpr std::array<entry, 18> table{{
        {"auth", LOG_AUTH},
        {"authpriv", LOG_AUTHPRIV},
        {"cron", LOG_CRON},
        {"daemon", LOG_DAEMON},
        {"ftp", LOG_FTP},
        {"kern", LOG_KERN},
        {"lpr", LOG_LPR},
        {"mail", LOG_MAIL},
        {"news", LOG_NEWS},
        {"user", LOG_USER},
        {"local0", LOG_LOCAL0},
        {"local1", LOG_LOCAL1},
        {"local2", LOG_LOCAL2},
        {"local3", LOG_LOCAL3},
        {"local4", LOG_LOCAL4},
        {"local5", LOG_LOCAL5},
        {"local6", LOG_LOCAL6},
        {"local7", LOG_LOCAL7},
    }};
    for (const entry& e : table)
        if (e.name == name) return e.facility;
    return std::nullopt;
}

inline void logger::use_syslog(std::string ident, int facility) {
    close_syslog();
    ident_ = std::move(ident);
    // LOG_NDELAY: connect now, while /dev/log is surely reachable (before a chroot, say).
    // glibc opens that socket close-on-exec, so children never inherit it.
    ::openlog(ident_.c_str(), LOG_PID | LOG_NDELAY, facility);
    syslog_ = true;
}

inline void logger::close_syslog() noexcept {
    if (!syslog_) return;
    ::closelog();
    syslog_ = false;
}

inline void logger::log(log_level level, std::string_view message) noexcept {
    if (!enabled(level)) return;
    while (!message.empty() && message.back() == '\n') message.remove_suffix(1);
    const int length = message.size() > 4000 ? 4000 : static_cast<int>(message.size());
    if (syslog_ && !(stderr_ && journal_))
        ::syslog(static_cast<int>(level), "%.*s", length, message.data());
    if (stderr_ || hook_) {
        // "<N>" first (only written when stderr is the journal), then "program: message\n".
        char line[4200];
        const int prefix = std::snprintf(line, sizeof line, "<%d>", static_cast<int>(level));
        if (prefix < 0) return;
        int n = std::snprintf(line + prefix, sizeof line - prefix, "%s: %.*s\n", program_.c_str(),
                              length, message.data());
        if (n < 0) return;
        std::size_t room = sizeof line - static_cast<std::size_t>(prefix);
        std::size_t size =
            static_cast<std::size_t>(n) < room ? static_cast<std::size_t>(n) : room - 1;
        const char* text = line + prefix;
        if (stderr_) {
            const char* out = journal_ ? line : text;
            const std::size_t out_size = journal_ ? size + static_cast<std::size_t>(prefix) : size;
            // Best effort: a closed or full stderr must not stop the daemon.
            for (std::size_t done = 0; done < out_size;) {
                ssize_t w = ::write(STDERR_FILENO, out + done, out_size - done);
                if (w <= 0) break;
                done += static_cast<std::size_t>(w);
            }
        }
        if (hook_) {
            try {
                hook_(level, std::string_view(text, size - 1)); // without the newline
            } catch (...) {
                // A failing hook loses its copy of the message; the others got theirs.
            }
        }
    }
}

inline bool logger::stderr_is_journal() noexcept {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) return false;
    unsigned long long device = 0, inode = 0;
    if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    return st.st_dev == device && st.st_ino == inode;
}

inline void logger::logf(log_level level, const char* format, ...) noexcept {
    if (!enabled(level)) return;
    char message[4000];
    va_list args;
    va_start(args, format);
    int n = std::vsnprintf(message, sizeof message, format, args);
    va_end(args);
    if (n < 0) return;
    log(level, std::string_view(message, static_cast<std::size_t>(n) < sizeof message
                                             ? static_cast<std::size_t>(n)
                                             : sizeof message - 1));
}

} // namespace ringd
