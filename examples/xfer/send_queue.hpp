// SPDX-License-Identifier: MIT
// xfer/send_queue.hpp — xfersqd's work for one partner: send every file in out/<partner>/,
// move it to sent/<partner>/ only after an OK with the matching sha256, retry with backoff.
// New files are noticed through a ringd::event (inotify, set by xfersqd) and a periodic rescan.
// Files whose names start with '.' are ignored: producers write there and rename when done.
#pragma once

#include "config.hpp"
#include "sender.hpp"

#include <ringd/event.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/log.hpp>
#include <ringd/net.hpp>
#include <ringd/plain_stream.hpp>
#include <ringd/timer.hpp>
#include <ringd/tls.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace xfer {

class partner_queue {
public:
    using clock = std::chrono::steady_clock;

    // Opens out/<name>/ and sent/<name>/ (creating them). Throws std::system_error at setup,
    // also for a TLS CA file that cannot be loaded.
    partner_queue(ringd::io_context& ctx, ringd::logger& log, const std::string& spool_root,
                  partner p)
        : ctx_(ctx), log_(log), partner_(std::move(p)),
          out_dir_(spool_root + "/out/" + partner_.name),
          sent_dir_(spool_root + "/sent/" + partner_.name) {
        std::filesystem::create_directories(out_dir_);
        std::filesystem::create_directories(sent_dir_);
        out_.reset(::open(out_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        sent_.reset(::open(sent_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!out_ || !sent_) ringd::throw_errno(errno, "open " + out_dir_);
        if (partner_.tls) tls_.emplace(partner_tls(partner_));
    }

    [[nodiscard]] const partner& settings() const noexcept { return partner_; }
    [[nodiscard]] const std::string& out_dir() const noexcept { return out_dir_; }
    // Something may be new in out/<partner>/.
    void wake() noexcept { wake_.set(); }

    // Runs until cancelled. A file held back after a refusal is tried again at the next wake
    // (a new file, the periodic rescan) after its hold time.
    ringd::task<void> run() {
        std::vector<std::byte> buffer(64 * 1024);
        std::chrono::milliseconds backoff = min_backoff;
        for (;;) {
            auto names = pending_files();
            if (names.empty()) {
                auto woken = co_await wake_.take(ctx_);
                if (!woken) co_return;
                continue;
            }
            auto sent = co_await send_batch(names, buffer);
            if (!sent) {
                if (ringd::is_cancelled(sent.error())) co_return;
                log_.logf(ringd::log_level::warning, "send to %s (%s): %s; retrying in %lld ms",
                          partner_.name.c_str(), partner_.address.c_str(),
                          sent.error().message().c_str(), static_cast<long long>(backoff.count()));
                auto slept = co_await ringd::sleep_for(ctx_, backoff);
                if (!slept) co_return;
                backoff = std::min(backoff * 2, max_backoff);
                continue;
            }
            backoff = min_backoff; // files held back after a refusal wait in refused_
        }
    }

private:
    static constexpr std::chrono::milliseconds min_backoff{250};
    static constexpr std::chrono::milliseconds max_backoff{30000};
    static constexpr std::chrono::minutes refused_retry{5}; // after a 4xx refusal
    static constexpr std::chrono::seconds failed_retry{2};  // after a 5xx or a bad reply

    // Names in out/, oldest name first; those refused recently are held back.
    std::vector<std::string> pending_files() {
        std::vector<std::string> names;
        for (const auto& e : std::filesystem::directory_iterator(
                 out_dir_, std::filesystem::directory_options::skip_permission_denied)) {
            std::string name = e.path().filename().string();
            if (name.starts_with('.') || !e.is_regular_file()) continue;
            auto refused = refused_.find(name);
            if (refused != refused_.end() && clock::now() < refused->second) continue;
            names.push_back(std::move(name));
        }
        std::sort(names.begin(), names.end());
        return names;
    }

    ringd::task<ringd::result<ringd::unique_fd>> connect_socket() {
        auto address = ringd::socket_address::parse(partner_.address);
        if (!address) co_return ringd::errno_error(EINVAL);
        auto fd = co_await ringd::connect(ctx_, *address);
        if (fd) { // request, reply, request: no Nagle delay on the header (fails harmlessly on
                  // UNIX)
            int on = 1;
            ::setsockopt(fd->get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        }
        co_return fd;
    }

    std::string host_name() const {
        std::string_view a = partner_.address;
        if (a.starts_with('[')) return std::string(a.substr(1, a.find(']') - 1));
        return std::string(a.substr(0, a.rfind(':')));
    }

    // Sends `names` over one connection; returns how many were confirmed, or the connection's
    // error. A refusal ends the connection (the partner closes after most errors).
    ringd::task<ringd::result<std::size_t>> send_batch(const std::vector<std::string>& names,
                                                       std::span<std::byte> buffer) {
        auto fd = co_await connect_socket();
        if (!fd) co_return ringd::error_of(fd);
        if (tls_) {
            ringd::tls_stream stream(ctx_, std::move(*fd), *tls_, host_name());
            auto hs = co_await stream.handshake();
            if (!hs) co_return ringd::error_of(hs);
            auto n = co_await send_over(stream, names, buffer);
            if (n) (void)co_await stream.shutdown();
            co_return n;
        }
        ringd::plain_stream stream(ctx_, std::move(*fd));
        auto n = co_await send_over(stream, names, buffer);
        co_return n;
    }

    template <ringd::byte_stream Stream>
    ringd::task<ringd::result<std::size_t>>
    send_over(Stream& stream, const std::vector<std::string>& names, std::span<std::byte> buffer) {
        std::size_t confirmed = 0;
        for (const auto& name : names) {
            auto outcome = co_await send_file(ctx_, stream, out_, name, buffer);
            if (!outcome) {
                if (outcome.error() == std::errc::no_such_file_or_directory)
                    continue; // taken away meanwhile
                co_return ringd::error_of(outcome);
            }
            if (!outcome->confirmed) {
                log_.logf(ringd::log_level::err, "send %s to %s: %s%s", name.c_str(),
                          partner_.name.c_str(), outcome->problem.c_str(),
                          outcome->permanent ? "; held back for 5 minutes" : "");
                refused_[name] = clock::now() +
                                 (outcome->permanent
                                      ? std::chrono::duration_cast<clock::duration>(refused_retry)
                                      : std::chrono::duration_cast<clock::duration>(failed_retry));
                co_return confirmed; // reconnect for the rest
            }
            // [confirm]
            refused_.erase(name);
            // Only now, with the partner's digest matching ours, does the file leave out/.
            if (::renameat(out_.get(), name.c_str(), sent_.get(), name.c_str()) != 0) {
                log_.logf(ringd::log_level::err, "move %s/%s to %s: %s", out_dir_.c_str(),
                          name.c_str(), sent_dir_.c_str(), std::strerror(errno));
                refused_[name] = clock::now() + refused_retry; // do not send it in a loop
            }
            log_.logf(ringd::log_level::info, "sent %s to %s: %llu bytes confirmed", name.c_str(),
                      partner_.name.c_str(), static_cast<unsigned long long>(outcome->size));
            ++confirmed;
            // [/confirm]
        }
        co_return confirmed;
    }

    ringd::io_context& ctx_;
    ringd::logger& log_;
    partner partner_;                                  // name, address, tls, ca
    std::string out_dir_, sent_dir_;                   // spool/out/<name>, spool/sent/<name>
    ringd::unique_fd out_, sent_;                      // the same, opened
    std::optional<ringd::tls_context> tls_;            // when partner_.tls
    ringd::event wake_;                                // set by inotify, rescans and reloads
    std::map<std::string, clock::time_point> refused_; // name → when to try again
};

} // namespace xfer
