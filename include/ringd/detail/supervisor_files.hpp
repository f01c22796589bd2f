// SPDX-License-Identifier: MIT
// ringd/detail/supervisor_files.hpp — what the supervisor keeps on disk: the persistent
// table (services and whether they are wanted, written with fsync) and <table>.pids (their
// processes), read at start, written at most once per interval under a burst, and the waiters for
// a durable write; and the per-process log files, the earlier ones kept within limits, found again
// in log_dir after a restart, removed with their service.
#pragma once

#include <ringd/atomic_file.hpp>
#include <ringd/detail/supervisor_service.hpp>
#include <ringd/detail/supervisor_table.hpp>
#include <ringd/read_file.hpp>
#include <ringd/start_order.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace ringd {

// ---- the table -------------------------------------------------------------------------------

inline expected<std::vector<table_entry>, std::string>
supervisor::read_table(const std::string& path) {
    auto fail = [&](const std::string& why) {
        return unexpected<std::string>("read table " + path + ": " + why);
    };
    auto text = read_file(path);
    if (!text) {
        if (text.error() == std::errc::no_such_file_or_directory) return std::vector<table_entry>{};
        return fail(text.error().message());
    }
    auto entries = detail::supervisor_table_parse(*text);
    if (!entries) return fail(entries.error());
    return entries;
}

inline std::vector<table_entry> supervisor::impl::load_table() const {
    if (options_.table_path.empty()) return {};
    const std::string& path = options_.table_path;
    auto entries = read_table(path);
    if (!entries) throw std::runtime_error(entries.error());
    // The processes, from <table>.pids: written without fsync (they mean nothing after a
    // reboot), so a missing or torn file only costs the adoption, never the services.
    const std::string pids_path = path + ".pids";
    if (auto pids_text = read_file(pids_path)) {
        auto pids = detail::supervisor_pids_parse(*pids_text);
        if (!pids) {
            log_->logf(log_level::warning, "read %s: %s; not adopting any process",
                       pids_path.c_str(), pids.error().c_str());
        } else {
            for (const table_entry& p : *pids)
                for (table_entry& e : *entries)
                    if (e.spec.name == p.spec.name) {
                        e.pid = p.pid;
                        e.start_time = p.start_time;
                        e.log_path = p.log_path;
                        e.ready = p.ready;
                    }
        }
    }
    return std::move(*entries);
}

inline void supervisor::impl::discard_table() {
    if (options_.table_path.empty()) return;
    for (const char* suffix : {"", ".tmp", ".pids", ".pids.tmp"})
        ::unlink((options_.table_path + suffix).c_str());
}

inline std::vector<table_entry> supervisor::impl::table_entries() const {
    std::vector<const service*> order;
    order.reserve(services_.size());
    for (const auto& [name, s] : services_) order.push_back(s.get());
    std::sort(order.begin(), order.end(), [](const service* a, const service* b) {
        if (a->spec.priority != b->spec.priority) return a->spec.priority < b->spec.priority;
        return supervision::starts_before(a->spec.name, b->spec.name);
    });
    std::vector<table_entry> entries;
    entries.reserve(order.size());
    for (const service* each : order) {
        const service& s = *each;
        if (s.removing && !s.machine.has_process()) continue; // forgotten once down
        table_entry e;
        e.spec = s.spec;
        e.wanted_up = s.wanted_up && !s.removing;
        if (s.machine.has_process() && s.proc.valid()) {
            e.pid = s.proc.pid();
            e.start_time = s.proc.start_time();
            e.ready = s.machine.current() != supervision::state::starting;
        }
        e.log_path = s.log_path;
        entries.push_back(std::move(e));
    }
    return entries;
}

inline void supervisor::impl::mark_table_dirty() noexcept {
    table_dirty_ = true;
    ++table_changes_;
}

inline void supervisor::impl::write_table() {
    table_dirty_ = false;
    pids_dirty_ = true; // a fresh table: write the processes next to it
    const std::uint64_t covering = table_changes_;
    struct settle { // whatever the outcome, those waiting for these changes go on
        impl* self;
        std::uint64_t covering;
        ~settle() { self->table_settled(covering); }
    } settled{this, covering};
    if (options_.table_path.empty()) return;
    std::vector<table_entry> entries = table_entries();
    for (table_entry& e : entries) {
        e.pid = 0; // the processes go to <table>.pids
        e.log_path.clear();
    }
    auto written =
        write_file_atomically(options_.table_path, detail::supervisor_table_format(entries), 0600);
    if (!written) {
        log_->logf(log_level::err, "write table %s: %s", options_.table_path.c_str(),
                   written.error().message().c_str());
        table_dirty_ = true; // the next turn tries again
    }
}

inline void supervisor::impl::table_settled(std::uint64_t covering) noexcept {
    table_written_upto_ = std::max(table_written_upto_, covering);
    // Resumed here, on the loop's thread (their next step is a send on the ring).
    while (!durable_waiters_.empty()) {
        auto it = std::find_if(durable_waiters_.begin(), durable_waiters_.end(),
                               [&](const auto& w) { return w.first <= table_written_upto_; });
        if (it == durable_waiters_.end()) return;
        const std::coroutine_handle<> h = it->second;
        durable_waiters_.erase(it);
        h.resume();
    }
}

inline void supervisor::impl::flush_tables() {
    if (!table_dirty_ && !pids_dirty_) return;
    if (options_.table_path.empty()) {
        table_dirty_ = pids_dirty_ = false;
        return;
    }
    // Each file waits at least 3 times as long as its last write took (at least 10 ms): at most
    // a quarter of the loop's time goes to the table under a burst (the requests that wait for
    // a durable table share each write), and an isolated change is written at once.
    auto interval = [](supervision::duration took) {
        return std::max<supervision::duration>(std::chrono::milliseconds(10), took * 3);
    };
    // <table>.pids at least every 100 ms: a process it does not name yet would be started a
    // second time by a supervisor restarted after a crash.
    auto pids_interval = [&](supervision::duration took) {
        return std::min<supervision::duration>(interval(took), std::chrono::milliseconds(100));
    };
    supervision::time_point now = supervision::clock::now();
    std::optional<supervision::time_point> later;
    if (table_dirty_) {
        if (now - table_written_ >= table_interval_) {
            write_table();
            const auto done = supervision::clock::now();
            table_interval_ = interval(done - now);
            table_written_ = now = done;
        } else {
            later = table_written_ + table_interval_;
        }
    }
    if (pids_dirty_) {
        if (now - pids_written_ >= pids_interval_) {
            write_pids();
            const auto done = supervision::clock::now();
            pids_interval_ = pids_interval(done - now);
            pids_written_ = done;
        } else {
            const auto when = pids_written_ + pids_interval_;
            later = later ? std::min(*later, when) : when;
        }
    }
    if (table_dirty_ && !later) later = now + table_interval_; // a failed write: try again
    if (pids_dirty_ && !later) later = now + pids_interval_;
    if (later) arm_flush(*later);
}

inline void supervisor::impl::write_pids() {
    pids_dirty_ = false;
    if (options_.table_path.empty()) return;
    // Replaced atomically, but not fsynced: the loop never waits for the disk after a respawn,
    // and the file only matters while this boot lasts.
    const std::string path = options_.table_path + ".pids";
    // Only what the file holds (no spec copies, in no particular order): it is rewritten often.
    std::vector<table_entry> entries;
    entries.reserve(services_.size());
    for (const auto& [name, s] : services_) {
        if (s->removing && !s->machine.has_process()) continue; // forgotten once down
        table_entry& e = entries.emplace_back();
        e.spec.name = name;
        if (s->machine.has_process() && s->proc.valid()) {
            e.pid = s->proc.pid();
            e.start_time = s->proc.start_time();
            e.ready = s->machine.current() != supervision::state::starting;
        }
        e.log_path = s->log_path;
    }
    auto written = write_file_atomically(path, detail::supervisor_pids_format(entries), 0600,
                                         file_durability::survives_process_crash);
    if (!written) {
        log_->logf(log_level::err, "write %s: %s", path.c_str(), written.error().message().c_str());
        pids_dirty_ = true;
    }
}

// ---- log files -------------------------------------------------------------------------------

inline void supervisor::impl::remove_log(const std::string& path) noexcept {
    if (!path.empty()) ::unlink(path.c_str());
}

inline void supervisor::impl::retire_log(service& s, const std::string& new_log) {
    // A recycled pid reuses a name: that file is the new process's now, not a kept one.
    for (std::size_t i = 0; i < s.old_logs.size(); ++i) {
        if (s.old_logs[i] != new_log) continue;
        s.old_logs.erase(s.old_logs.begin() + static_cast<std::ptrdiff_t>(i));
        s.old_log_sizes.erase(s.old_log_sizes.begin() + static_cast<std::ptrdiff_t>(i));
        break;
    }
    if (s.log_path.empty() || s.log_path == new_log) return;
    struct stat st {};
    if (::stat(s.log_path.c_str(), &st) != 0) return; // gone already: nothing to keep
    s.old_logs.push_back(s.log_path);
    s.old_log_sizes.push_back(static_cast<std::uint64_t>(st.st_size));
    std::uint64_t total = 0;
    for (std::uint64_t size : s.old_log_sizes) total += size;
    const std::size_t keep = std::max<std::size_t>(options_.keep_logs, 1);
    // The oldest go first; the one just added (the crashed instance's) stays whatever its size.
    std::size_t doomed = 0;
    while (s.old_logs.size() - doomed > 1 &&
           (s.old_logs.size() - doomed > keep || total > options_.keep_logs_bytes)) {
        remove_log(s.old_logs[doomed]);
        total -= s.old_log_sizes[doomed];
        ++doomed;
    }
    const auto cut = static_cast<std::ptrdiff_t>(doomed);
    s.old_logs.erase(s.old_logs.begin(), s.old_logs.begin() + cut);
    s.old_log_sizes.erase(s.old_log_sizes.begin(), s.old_log_sizes.begin() + cut);
}

inline std::vector<std::pair<std::string, std::uint64_t>>
supervisor::impl::take_found_logs(const std::string& name) {
    if (options_.log_dir.empty()) return {};
    if (!logs_scanned_) {
        // Once: what earlier supervisors left, <name>.<digits>, oldest first (by mtime).
        logs_scanned_ = true;
        struct found {
            std::string name, path;
            std::uint64_t size;
            std::int64_t mtime_ns;
        };
        std::vector<found> all;
        if (DIR* dir = ::opendir(options_.log_dir.c_str())) {
            while (dirent* e = ::readdir(dir)) {
                const std::string_view file(e->d_name);
                const auto dot = file.rfind('.');
                if (dot == std::string_view::npos || dot == 0 || dot + 1 == file.size() ||
                    file.find_first_not_of("0123456789", dot + 1) != std::string_view::npos)
                    continue;
                const std::string path = options_.log_dir + "/" + std::string(file);
                struct stat st {};
                if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
                all.push_back({std::string(file.substr(0, dot)), path,
                               static_cast<std::uint64_t>(st.st_size),
                               static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                                   st.st_mtim.tv_nsec});
            }
            ::closedir(dir);
        }
        std::sort(all.begin(), all.end(), [](const found& a, const found& b) {
            return a.mtime_ns != b.mtime_ns ? a.mtime_ns < b.mtime_ns : a.path < b.path;
        });
        for (found& f : all) found_logs_[f.name].emplace_back(std::move(f.path), f.size);
    }
    auto it = found_logs_.find(name);
    if (it == found_logs_.end()) return {};
    auto out = std::move(it->second);
    found_logs_.erase(it);
    return out;
}

inline void supervisor::impl::remove_unused_logs(const std::vector<std::string>& more_names) {
    if (options_.log_dir.empty()) return;
    std::vector<std::string> in_use;
    for (auto& [name, s] : services_)
        if (s->machine.has_process()) in_use.push_back(s->log_path);
    DIR* dir = ::opendir(options_.log_dir.c_str());
    if (dir == nullptr) return;
    std::vector<std::string> doomed;
    while (dirent* e = ::readdir(dir)) {
        const std::string_view file(e->d_name);
        const auto dot = file.rfind('.');
        if (dot == std::string_view::npos || dot + 1 == file.size()) continue;
        if (file.find_first_not_of("0123456789", dot + 1) != std::string_view::npos) continue;
        const std::string_view name = file.substr(0, dot);
        const bool ours = lookup(name) != nullptr ||
                          std::find(more_names.begin(), more_names.end(), name) != more_names.end();
        const std::string path = options_.log_dir + "/" + std::string(file);
        if (ours && std::find(in_use.begin(), in_use.end(), path) == in_use.end())
            doomed.push_back(path);
    }
    ::closedir(dir);
    for (const std::string& path : doomed) remove_log(path);
}

} // namespace ringd
