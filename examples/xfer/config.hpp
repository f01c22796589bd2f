// SPDX-License-Identifier: MIT
// xfer/config.hpp — the family's one TOML configuration (keys and defaults: docs/xfer/README.md).
// Loading is all or nothing: the error names the file, the place and the fault, and a daemon
// that reloads keeps its running settings when the new file is bad.
#pragma once

#include <ringd/daemon.hpp>
#include <ringd/duration_text.hpp>
#include <ringd/result.hpp>
#include <ringd/tls.hpp>

#include <toml++/toml.h>

#include <csignal>

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace xfer {

struct tcpip_settings {
    std::vector<std::string> listen{"0.0.0.0:3305"};
};
struct tls_settings {
    std::vector<std::string> listen{"0.0.0.0:6619"};
    std::string cert = "/etc/xfer/cert.pem";
    std::string key = "/etc/xfer/key.pem";
    std::string client_ca; // empty: no client certificates asked for
    // What may be negotiated (OpenSSL's syntax); the defaults: AEAD with forward secrecy only.
    // An empty string: OpenSSL's own default for that setting.
    std::string ciphers = ringd::tls_options::default_ciphers;           // TLS 1.2
    std::string ciphersuites = ringd::tls_options::default_ciphersuites; // TLS 1.3
    std::string groups = ringd::tls_options::default_groups;             // key exchange
};
struct unix_settings {
    std::string path = "/run/xfer/xfer.sock";
};
struct partner {
    std::string name;    // out/<name>/ and sent/<name>/
    std::string address; // host:port, [v6]:port or a UNIX path
    bool tls = false;
    std::string ca; // TLS: the CA the partner's certificate must chain to (empty: system)
};

struct config {
    std::string path; // where it was read from
    std::string spool;
    std::string run_dir = "/run/xfer";
    std::string log_dir = "/var/log/xfer";
    std::uint64_t max_file_size = 4294967296;
    std::chrono::milliseconds idle_timeout{60000}; // a window: see min_rate
    std::uint64_t min_rate = 1024;      // bytes/s a body must average over each idle window
    std::size_t max_connections = 4096; // per receiving child; the next ones get ERR 503
    std::chrono::milliseconds drain_timeout{10000};   // SIGTERM: transfers may finish this long
    std::chrono::milliseconds rescan_interval{30000}; // xfersqd's periodic look at out/
    std::optional<tcpip_settings> tcpip;              // absent table: transport not started
    std::optional<tls_settings> tcpip_tls;
    std::optional<unix_settings> unix_socket;
    std::vector<partner> partners;

    [[nodiscard]] std::string pid_file() const { return run_dir + "/xferrd.pid"; }
    [[nodiscard]] std::string status_file() const { return run_dir + "/xferrd.status.json"; }
    [[nodiscard]] std::string debug_socket() const { return run_dir + "/xferdebugd.sock"; }
    [[nodiscard]] std::string listen_file(const std::string& process) const {
        return run_dir + "/" + process + ".listen";
    }
};

// Reads and checks `path`. Errors read "FILE:LINE:COL: what" or "FILE: key 'k': what".
[[nodiscard]] ringd::expected<config, std::string> load_config(const std::string& path);

// The ringd::tls_options of the [tcpip_tls] receiving side.
[[nodiscard]] inline ringd::tls_options tls_options_of(const tls_settings& s) {
    ringd::tls_options o;
    o.certificate_file = s.cert;
    o.private_key_file = s.key;
    o.ca_file = s.client_ca;
    o.ciphers = s.ciphers;
    o.ciphersuites = s.ciphersuites;
    o.groups = s.groups;
    return o;
}

// =============================================================================================

namespace detail {

class config_reader {
public:
    explicit config_reader(std::string path) : path_(std::move(path)) {}

    std::string fail(const std::string& key, const std::string& what) const {
        return path_ + ": key '" + key + "': " + what;
    }

    // Every key of `table` must be one of `known` (a typo is an error, not a silent default).
    std::optional<std::string> check_keys(const toml::table& table, const std::string& prefix,
                                          std::set<std::string> known) const {
        for (const auto& [k, v] : table) {
            std::string key(k.str());
            if (!known.contains(key)) return fail(prefix + key, "unknown key");
        }
        return std::nullopt;
    }

    std::optional<std::string> text(const toml::table& t, const std::string& prefix,
                                    const char* key, std::string& out) const {
        const toml::node* n = t.get(key);
        if (n == nullptr) return std::nullopt;
        auto v = n->value<std::string>();
        if (!v || !n->is_string()) return fail(prefix + key, "expected a string");
        out = *v;
        return std::nullopt;
    }

    std::optional<std::string> number(const toml::table& t, const std::string& prefix,
                                      const char* key, std::int64_t min, std::int64_t& out) const {
        const toml::node* n = t.get(key);
        if (n == nullptr) return std::nullopt;
        if (!n->is_integer()) return fail(prefix + key, "expected an integer");
        std::int64_t v = *n->value<std::int64_t>();
        if (v < min) return fail(prefix + key, "must be at least " + std::to_string(min));
        out = v;
        return std::nullopt;
    }

    std::optional<std::string> seconds(const toml::table& t, const std::string& prefix,
                                       const char* key, std::chrono::milliseconds& out) const {
        const toml::node* n = t.get(key);
        if (n == nullptr) return std::nullopt;
        if (!n->is_number()) return fail(prefix + key, "expected a number of seconds");
        double v = *n->value<double>();
        if (!(v > 0) || v > 1e7)
            return fail(prefix + key, "must be a number of seconds above 0 and at most 1e7");
        // Milliseconds are the unit of every timer: 0.0004 would silently become 0 (no limit).
        if (v < 0.001)
            return fail(prefix + key,
                        "must be at least 0.001 (1 ms); " + ringd::seconds_text(v) + " is less");
        out = std::chrono::milliseconds(static_cast<std::int64_t>(v * 1000));
        return std::nullopt;
    }

    std::optional<std::string> flag(const toml::table& t, const std::string& prefix,
                                    const char* key, bool& out) const {
        const toml::node* n = t.get(key);
        if (n == nullptr) return std::nullopt;
        if (!n->is_boolean()) return fail(prefix + key, "expected true or false");
        out = *n->value<bool>();
        return std::nullopt;
    }

    std::optional<std::string> text_list(const toml::table& t, const std::string& prefix,
                                         const char* key, std::vector<std::string>& out) const {
        const toml::node* n = t.get(key);
        if (n == nullptr) return std::nullopt;
        const toml::array* a = n->as_array();
        if (a == nullptr || a->empty())
            return fail(prefix + key, "expected a non-empty list of strings");
        std::vector<std::string> items;
        for (const auto& item : *a) {
            if (!item.is_string())
                return fail(prefix + key, "expected a non-empty list of strings");
            items.push_back(*item.value<std::string>());
        }
        out = std::move(items);
        return std::nullopt;
    }

private:
    std::string path_;
};

} // namespace detail

inline ringd::expected<config, std::string> load_config(const std::string& path) {
    using ringd::unexpected;
    toml::table root;
    try {
        root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        std::ostringstream where;
        where << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
              << e.description();
        return unexpected<std::string>(where.str());
    }
    detail::config_reader r(path);
    config c;
    c.path = path;
    auto error = r.check_keys(root, "",
                              {"spool", "run_dir", "log_dir", "max_file_size", "idle_timeout_s",
                               "min_rate_bytes_per_s", "max_connections", "drain_timeout_s",
                               "rescan_interval_s", "tcpip", "tcpip_tls", "unix", "partner"});
    if (error) return unexpected<std::string>(*error);
    if (!root.get("spool"))
        return unexpected<std::string>(r.fail("spool", "missing (it has no default)"));
    std::int64_t max_size = static_cast<std::int64_t>(c.max_file_size);
    std::int64_t min_rate = static_cast<std::int64_t>(c.min_rate);
    std::int64_t max_connections = static_cast<std::int64_t>(c.max_connections);
    for (auto e :
         {r.text(root, "", "spool", c.spool), r.text(root, "", "run_dir", c.run_dir),
          r.text(root, "", "log_dir", c.log_dir), r.number(root, "", "max_file_size", 0, max_size),
          r.number(root, "", "min_rate_bytes_per_s", 0, min_rate),
          r.number(root, "", "max_connections", 1, max_connections),
          r.seconds(root, "", "idle_timeout_s", c.idle_timeout),
          r.seconds(root, "", "drain_timeout_s", c.drain_timeout),
          r.seconds(root, "", "rescan_interval_s", c.rescan_interval)})
        if (e) return unexpected<std::string>(*e);
    c.max_file_size = static_cast<std::uint64_t>(max_size);
    c.min_rate = static_cast<std::uint64_t>(min_rate);
    // Each connection takes a descriptor, and this machine's kind allows 20,000 per process.
    if (max_connections > 1'000'000)
        return unexpected<std::string>(r.fail("max_connections", "must be at most 1000000"));
    c.max_connections = static_cast<std::size_t>(max_connections);
    if (c.spool.empty()) return unexpected<std::string>(r.fail("spool", "must not be empty"));

    auto table_of = [&](const char* key, const toml::table*& out) -> std::optional<std::string> {
        out = nullptr;
        const toml::node* n = root.get(key);
        if (n == nullptr) return std::nullopt;
        out = n->as_table();
        if (out == nullptr) return r.fail(key, "expected a table [" + std::string(key) + "]");
        return std::nullopt;
    };
    const toml::table* t = nullptr;
    if (auto e = table_of("tcpip", t)) return unexpected<std::string>(*e);
    if (t != nullptr) {
        tcpip_settings s;
        if (auto e = r.check_keys(*t, "tcpip.", {"listen"})) return unexpected<std::string>(*e);
        if (auto e = r.text_list(*t, "tcpip.", "listen", s.listen))
            return unexpected<std::string>(*e);
        c.tcpip = s;
    }
    if (auto e = table_of("tcpip_tls", t)) return unexpected<std::string>(*e);
    if (t != nullptr) {
        tls_settings s;
        if (auto e = r.check_keys(
                *t, "tcpip_tls.",
                {"listen", "cert", "key", "client_ca", "ciphers", "ciphersuites", "groups"}))
            return unexpected<std::string>(*e);
        for (auto e :
             {r.text_list(*t, "tcpip_tls.", "listen", s.listen),
              r.text(*t, "tcpip_tls.", "cert", s.cert), r.text(*t, "tcpip_tls.", "key", s.key),
              r.text(*t, "tcpip_tls.", "client_ca", s.client_ca),
              r.text(*t, "tcpip_tls.", "ciphers", s.ciphers),
              r.text(*t, "tcpip_tls.", "ciphersuites", s.ciphersuites),
              r.text(*t, "tcpip_tls.", "groups", s.groups)})
            if (e) return unexpected<std::string>(*e);
        // Checked at load, so that a typo is a configuration error, not a child that fails to
        // start over and over.
        if (auto bad = ringd::rejected_tls_setting(tls_options_of(s)))
            return unexpected<std::string>(
                r.fail("tcpip_tls." + bad->name, "OpenSSL accepts none of '" + bad->value + "'"));
        c.tcpip_tls = s;
    }
    if (auto e = table_of("unix", t)) return unexpected<std::string>(*e);
    if (t != nullptr) {
        unix_settings s;
        s.path = c.run_dir + "/xfer.sock";
        if (auto e = r.check_keys(*t, "unix.", {"path"})) return unexpected<std::string>(*e);
        if (auto e = r.text(*t, "unix.", "path", s.path)) return unexpected<std::string>(*e);
        c.unix_socket = s;
    }
    if (const toml::node* n = root.get("partner")) {
        const toml::array* list = n->as_array();
        if (list == nullptr)
            return unexpected<std::string>(r.fail("partner", "expected [[partner]] tables"));
        std::set<std::string> names;
        for (std::size_t i = 0; i < list->size(); ++i) {
            std::string prefix = "partner[" + std::to_string(i) + "].";
            const toml::table* pt = (*list)[i].as_table();
            if (pt == nullptr)
                return unexpected<std::string>(r.fail("partner", "expected [[partner]] tables"));
            partner p;
            if (auto e = r.check_keys(*pt, prefix, {"name", "address", "tls", "ca"}))
                return unexpected<std::string>(*e);
            for (auto e :
                 {r.text(*pt, prefix, "name", p.name), r.text(*pt, prefix, "address", p.address),
                  r.flag(*pt, prefix, "tls", p.tls), r.text(*pt, prefix, "ca", p.ca)})
                if (e) return unexpected<std::string>(*e);
            bool name_ok =
                !p.name.empty() && p.name.find('/') == std::string::npos && p.name[0] != '.';
            if (!name_ok)
                return unexpected<std::string>(
                    r.fail(prefix + "name", "expected a name without '/' or a leading '.'"));
            if (p.address.empty())
                return unexpected<std::string>(r.fail(prefix + "address", "missing"));
            if (!names.insert(p.name).second)
                return unexpected<std::string>(
                    r.fail(prefix + "name", "partner '" + p.name + "' appears twice"));
            c.partners.push_back(std::move(p));
        }
    }
    return c;
}

// The TLS context of the [tcpip_tls] receiving side and of a partner with tls = true (the CA
// its certificate must chain to). Both throw std::system_error naming the file and what is wrong
// with it (ringd::tls_context's setup errors); xferrd --check-config reports them.
inline ringd::tls_context server_tls(const tls_settings& s) {
    return ringd::tls_context::server(tls_options_of(s));
}
inline ringd::tls_context partner_tls(const partner& p) {
    ringd::tls_options o;
    o.ca_file = p.ca;
    return ringd::tls_context::client(o);
}

// How the master's children (xfersqd, xferdebugd, xferrd_*) run through ringd::daemon_run: in
// the foreground (the master supervises them and learns nothing from their readiness), with no
// PID file nor reload-status file, in the master's working directory, umask 022 as the master. It
// ends (SIGTERM: it drains) when the master does, so that no orphan holds a port or the spool.
inline ringd::daemon_params family_child(std::string program) {
    ringd::daemon_params p;
    p.program = std::move(program);
    p.flags.foreground = true;
    p.flags.preserve_cwd = true;
    p.parent_death_signal = SIGTERM;
    return p;
}

} // namespace xfer
