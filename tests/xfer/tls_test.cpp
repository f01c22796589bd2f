// SPDX-License-Identifier: MIT
// ringd/tls.hpp: handshake, data both ways, close_notify, client certificates, and the error
// messages, between two tls_streams on the ring and against `openssl s_client`.
#include <ringd/tls.hpp>

#include "test_certs.hpp"
#include "test_dir.hpp"
#include "test_support.hpp"

#include <ringd/net.hpp>
#include <ringd/scope.hpp>

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

using namespace std::chrono_literals;
using xfer::testing::make_test_certs;
using xfer::testing::temp_dir;
using xfer::testing::tls_options_for;

namespace {

std::span<const std::byte> bytes_of(const std::string& s) {
    return std::as_bytes(std::span(s));
}

struct outcome {
    std::string error; // empty: fine
    std::string received;
    std::string subject;
};

// Reads until the peer's close_notify into out.received; false (with out.error) on an error.
ringd::task<bool> read_to_end(ringd::tls_stream& s, outcome& out) {
    std::byte buf[8192];
    for (;;) {
        auto n = co_await s.read(buf);
        if (!n) {
            out.error = n.error().message();
            co_return false;
        }
        if (*n == 0) co_return true;
        out.received.append(reinterpret_cast<const char*>(buf), *n);
    }
}

// Server: handshake, read everything until close_notify, reply how much it got, close.
ringd::task<void> server(ringd::io_context& ctx, ringd::unique_fd fd, const ringd::tls_context& tls,
                         outcome& out) {
    ringd::tls_stream s(ctx, std::move(fd), tls);
    auto hs = co_await s.handshake();
    if (!hs) {
        out.error = hs.error().message();
        co_return;
    }
    out.subject = s.peer_subject();
    if (!co_await read_to_end(s, out)) co_return;
    std::string reply = "got " + std::to_string(out.received.size()) + "\n";
    auto w = co_await s.write(bytes_of(reply));
    if (w) (void)co_await s.shutdown();
}

// Server for line-oriented peers (openssl s_client stays connected after its input ends): reads
// one line, replies how long it was, sends close_notify.
ringd::task<void> line_server(ringd::io_context& ctx, ringd::unique_fd fd,
                              const ringd::tls_context& tls, outcome& out) {
    ringd::tls_stream s(ctx, std::move(fd), tls);
    auto hs = co_await s.handshake();
    if (!hs) {
        out.error = hs.error().message();
        co_return;
    }
    std::byte buf[512];
    while (out.received.find('\n') == std::string::npos) {
        auto n = co_await s.read(buf);
        if (!n || *n == 0) {
            out.error = n ? "closed early" : n.error().message();
            co_return;
        }
        out.received.append(reinterpret_cast<const char*>(buf), *n);
    }
    std::string reply = "got " + std::to_string(out.received.size()) + "\n";
    auto w = co_await s.write(bytes_of(reply));
    if (w) (void)co_await s.shutdown();
}

ringd::task<void> client(ringd::io_context& ctx, ringd::unique_fd fd, const ringd::tls_context& tls,
                         std::string payload, outcome& out) {
    ringd::tls_stream s(ctx, std::move(fd), tls, "localhost");
    auto hs = co_await s.handshake();
    if (!hs) {
        out.error = hs.error().message();
        co_return;
    }
    auto w = co_await s.write(bytes_of(payload));
    if (!w) {
        out.error = w.error().message();
        co_return;
    }
    (void)co_await s.shutdown();
    (void)co_await read_to_end(s, out);
}

ringd::task<void> pair(ringd::io_context& ctx, const ringd::tls_context& server_tls,
                       const ringd::tls_context& client_tls, std::string payload, outcome& s,
                       outcome& c) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    ringd::scope both;
    both.spawn(server(ctx, ringd::unique_fd(sv[0]), server_tls, s));
    both.spawn(client(ctx, ringd::unique_fd(sv[1]), client_tls, std::move(payload), c));
    co_await both.join();
}

struct fixture {
    temp_dir dir;
    xfer::testing::test_certs certs = make_test_certs(dir.str());
    ringd::io_context ctx;
};

// Runs `command` (an openssl s_client) in the background while one connection on `l` is served
// by line_server; what the server saw.
outcome serve_s_client(fixture& f, const ringd::tls_context& tls, const ringd::listener& l,
                       const std::string& command) {
    FILE* client = ::popen(command.c_str(), "r");
    REQUIRE(client != nullptr);
    auto accept_and_serve = [](ringd::io_context& ctx, const ringd::listener& lst,
                               const ringd::tls_context& t, outcome& o) -> ringd::task<void> {
        auto fd = co_await ringd::async_accept(ctx, lst.fd());
        REQUIRE(fd);
        co_await line_server(ctx, std::move(*fd), t, o);
    };
    outcome s;
    ringd::testing::run_bounded(f.ctx, accept_and_serve(f.ctx, l, tls, s));
    ::pclose(client);
    return s;
}

} // namespace

TEST_CASE("a TLS client and server exchange data and close with close_notify", "[tls]") {
    fixture f;
    auto server_tls = ringd::tls_context::server(
        tls_options_for(f.certs.server_cert(), f.certs.server_key(), ""));
    auto client_tls = ringd::tls_context::client(tls_options_for("", "", f.certs.ca()));
    std::string payload(1 << 20, 'p'); // many records
    outcome s, c;
    ringd::testing::run_bounded(f.ctx, pair(f.ctx, server_tls, client_tls, payload, s, c));
    CHECK(s.error.empty());
    CHECK(c.error.empty());
    CHECK(s.received == payload);
    CHECK(c.received == "got 1048576\n");
    CHECK(s.subject.empty()); // no client certificate was asked for
}

TEST_CASE("a client that does not trust the server's certificate fails with the verify reason",
          "[tls]") {
    fixture f;
    auto server_tls =
        ringd::tls_context::server(tls_options_for(f.certs.rogue_cert(), f.certs.rogue_key(), ""));
    auto client_tls = ringd::tls_context::client(tls_options_for("", "", f.certs.ca()));
    outcome s, c;
    ringd::testing::run_bounded(f.ctx, pair(f.ctx, server_tls, client_tls, "x", s, c));
    CHECK(c.error == "certificate verify failed: self-signed certificate");
    CHECK_FALSE(s.error.empty());
}

TEST_CASE("a server that requires client certificates accepts a signed one and refuses none",
          "[tls]") {
    fixture f;
    auto server_tls = ringd::tls_context::server(
        tls_options_for(f.certs.server_cert(), f.certs.server_key(), f.certs.ca()));
    SECTION("with a certificate signed by the CA") {
        auto client_tls = ringd::tls_context::client(
            tls_options_for(f.certs.client_cert(), f.certs.client_key(), f.certs.ca()));
        outcome s, c;
        ringd::testing::run_bounded(f.ctx, pair(f.ctx, server_tls, client_tls, "hello", s, c));
        CHECK(s.error.empty());
        CHECK(s.subject == "/CN=client");
        CHECK(c.received == "got 5\n");
    }
    SECTION("without a certificate") {
        auto client_tls = ringd::tls_context::client(tls_options_for("", "", f.certs.ca()));
        outcome s, c;
        ringd::testing::run_bounded(f.ctx, pair(f.ctx, server_tls, client_tls, "hello", s, c));
        INFO(s.error);
        CHECK(s.error.find("peer did not return a certificate") != std::string::npos);
        CHECK(s.received.empty());
    }
}

TEST_CASE("plain text sent to a TLS server fails the handshake with OpenSSL's reason", "[tls]") {
    fixture f;
    auto server_tls = ringd::tls_context::server(
        tls_options_for(f.certs.server_cert(), f.certs.server_key(), ""));
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    ringd::unique_fd peer(sv[1]);
    std::string junk = "xfer hello\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";
    REQUIRE(::write(peer.get(), junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
    outcome s;
    ringd::testing::run_bounded(f.ctx, server(f.ctx, ringd::unique_fd(sv[0]), server_tls, s));
    CHECK(s.error == "wrong version number (SSL routines)");
}

namespace {

// What tls_context::server (or ::client) threw for `o`: what() and the code.
struct setup_failure {
    std::string what = "no exception";
    std::error_code code;
};
setup_failure setup_error(const ringd::tls_options& o, bool server = true) {
    setup_failure f;
    try {
        (void)(server ? ringd::tls_context::server(o) : ringd::tls_context::client(o));
    } catch (const std::system_error& e) {
        f.what = e.what();
        f.code = e.code();
    }
    return f;
}

std::string write_file(const temp_dir& dir, const std::string& name, const std::string& text) {
    std::string path = dir.str() + "/" + name;
    std::FILE* file = std::fopen(path.c_str(), "w");
    REQUIRE(file != nullptr);
    std::fputs(text.c_str(), file);
    std::fclose(file);
    return path;
}

} // namespace

TEST_CASE("a missing certificate, key or CA file is a setup error naming the file and errno's "
          "text",
          "[tls]") {
    fixture f;
    std::string missing = f.dir.str() + "/missing.pem";
    SECTION("certificate") {
        auto e = setup_error(tls_options_for(missing, f.certs.server_key(), ""));
        CHECK(e.what == "certificate " + missing + ": No such file or directory");
        CHECK(e.code == std::errc::no_such_file_or_directory);
        CHECK(e.code.category() == ringd::tls_category());
    }
    SECTION("private key") {
        auto e = setup_error(tls_options_for(f.certs.server_cert(), missing, ""));
        CHECK(e.what == "private key " + missing + ": No such file or directory");
    }
    SECTION("client CA file of a server") {
        auto e = setup_error(tls_options_for(f.certs.server_cert(), f.certs.server_key(), missing));
        CHECK(e.what == "client CA file " + missing + ": No such file or directory");
    }
    SECTION("CA file of a client") {
        auto e = setup_error(tls_options_for("", "", missing), false);
        CHECK(e.what == "CA file " + missing + ": No such file or directory");
    }
}

TEST_CASE("a directory given as a certificate or CA file is named as one", "[tls]") {
    fixture f;
    auto e = setup_error(tls_options_for(f.dir.str(), f.certs.server_key(), ""));
    CHECK(e.what == "certificate " + f.dir.str() + ": Is a directory");
    CHECK(e.code == std::errc::is_a_directory);
    e = setup_error(tls_options_for("", "", f.dir.str()), false);
    CHECK(e.what == "CA file " + f.dir.str() + ": Is a directory");
}

TEST_CASE("an unreadable certificate is named with 'Permission denied'", "[tls]") {
    if (::geteuid() == 0) {
        WARN("running as root: every file is readable, the case cannot be made");
        return;
    }
    fixture f;
    std::string cert = write_file(f.dir, "locked.pem", "x");
    REQUIRE(::chmod(cert.c_str(), 0) == 0);
    auto e = setup_error(tls_options_for(cert, f.certs.server_key(), ""));
    CHECK(e.what == "certificate " + cert + ": Permission denied");
}

TEST_CASE("a certificate or key file that is not PEM is named as not PEM", "[tls]") {
    fixture f;
    std::string garbage = write_file(f.dir, "garbage.pem", "this is not a certificate\n");
    SECTION("certificate") {
        auto e = setup_error(tls_options_for(garbage, f.certs.server_key(), ""));
        INFO(e.what);
        CHECK(e.what.starts_with("certificate " + garbage + " is not a PEM certificate: "));
        CHECK(e.code.category() == ringd::tls_category());
    }
    SECTION("a key given as the certificate") {
        auto e = setup_error(tls_options_for(f.certs.server_key(), f.certs.server_key(), ""));
        INFO(e.what);
        CHECK(e.what.starts_with("certificate " + f.certs.server_key() +
                                 " is not a PEM certificate: "));
    }
    SECTION("private key") {
        auto e = setup_error(tls_options_for(f.certs.server_cert(), garbage, ""));
        INFO(e.what);
        CHECK(e.what.starts_with("private key " + garbage + " is not a PEM private key: "));
    }
}

TEST_CASE("an encrypted private key is an error naming it, not a passphrase prompt", "[tls]") {
    fixture f;
    std::string key = f.dir.str() + "/encrypted.key";
    std::string command = "openssl pkey -in " + f.certs.server_key() +
                          " -aes256 -passout pass:secret -out " + key + " >/dev/null 2>&1";
    REQUIRE(std::system(command.c_str()) == 0);
    auto e = setup_error(tls_options_for(f.certs.server_cert(), key, ""));
    CHECK(e.what == "private key " + key +
                        " is encrypted (a key without a passphrase is needed): bad password read "
                        "(PEM routines)");
    CHECK(e.code.category() == ringd::tls_category());
}

TEST_CASE("a private key that does not match the certificate names both files", "[tls]") {
    fixture f;
    auto e = setup_error(tls_options_for(f.certs.server_cert(), f.certs.client_key(), ""));
    INFO(e.what);
    CHECK(e.what.starts_with("private key " + f.certs.client_key() +
                             " does not match certificate " + f.certs.server_cert() + ": "));
    CHECK(e.code.category() == ringd::tls_category());
}

TEST_CASE("a CA file with no certificate in it (empty, or a key) is named as such", "[tls]") {
    fixture f;
    std::string empty = write_file(f.dir, "empty.pem", "");
    auto e = setup_error(tls_options_for("", "", empty), false);
    INFO(e.what);
    CHECK(e.what.starts_with("CA file " + empty + " has no certificate in it: "));
    e = setup_error(tls_options_for(f.certs.server_cert(), f.certs.server_key(), empty));
    INFO(e.what);
    CHECK(e.what.starts_with("client CA file " + empty + " has no certificate in it: "));
    e = setup_error(
        tls_options_for("", "", f.certs.ca().substr(0, f.certs.ca().size() - 4) + ".key"), false);
    INFO(e.what);
    CHECK(e.what.find(" has no certificate in it: ") != std::string::npos);
}

TEST_CASE("tls_category() gives errno's text for a failed system call and never 'TLS error N'",
          "[tls]") {
    // OpenSSL 3 queues a failed fopen as ERR_SYSTEM_FLAG | errno; the code keeps errno.
    std::error_code enoent(ENOENT, ringd::tls_category());
    CHECK(enoent.message() == "No such file or directory");
    CHECK(enoent == std::errc::no_such_file_or_directory);
    // A code OpenSSL has no text for: its packed value, not "TLS error N".
    std::string unknown = std::error_code(0x0A000FFF, ringd::tls_category()).message();
    INFO(unknown);
    CHECK(unknown.find("TLS error") == std::string::npos);
    CHECK(unknown.starts_with("OpenSSL error 0A000FFF"));
}

TEST_CASE("openssl s_client talks to a tls_stream server", "[tls]") {
    fixture f;
    auto server_tls = ringd::tls_context::server(
        tls_options_for(f.certs.server_cert(), f.certs.server_key(), ""));
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    std::string port = std::to_string(l.address().port());
    std::string out_file = f.dir.str() + "/s_client.out";
    std::string command =
        "printf 'hello from s_client\\n' | timeout 10 openssl s_client -quiet -verify_return_error "
        "-CAfile " +
        f.certs.ca() + " -servername localhost -connect 127.0.0.1:" + port + " > " + out_file +
        " 2>/dev/null";
    outcome s = serve_s_client(f, server_tls, l, command);
    INFO(s.error);
    CHECK(s.error.empty());
    CHECK(s.received == "hello from s_client\n");
    std::FILE* out = std::fopen(out_file.c_str(), "r");
    REQUIRE(out != nullptr);
    char line[64] = {};
    CHECK(std::fgets(line, sizeof line, out) != nullptr);
    std::fclose(out);
    CHECK(std::string(line) == "got 20\n");
}

TEST_CASE("a copied tls_context keeps its role", "[tls]") {
    fixture f;
    auto original = ringd::tls_context::server(
        tls_options_for(f.certs.server_cert(), f.certs.server_key(), ""));
    ringd::tls_context copy = original;
    CHECK(copy.is_server());
    auto client = ringd::tls_context::client(tls_options_for("", "", f.certs.ca()));
    copy = client;
    CHECK_FALSE(copy.is_server());
    CHECK(copy.native_handle() == client.native_handle());
}

namespace {

// What the server saw when `openssl s_client ARGS` connected: the handshake's error (empty:
// it succeeded and the line came through). The server has an RSA certificate, so that suites
// with RSA key exchange (no forward secrecy) are possible at all unless the settings refuse them.
std::string s_client_against(fixture& f, const ringd::tls_options& server_options,
                             const std::string& args) {
    auto server_tls = ringd::tls_context::server(server_options);
    auto l = ringd::listener::bind(ringd::testing::loopback_any_port());
    std::string command = "printf 'hello\\n' | timeout 10 openssl s_client -quiet " + args +
                          " -connect 127.0.0.1:" + std::to_string(l.address().port()) +
                          " >/dev/null 2>&1";
    return serve_s_client(f, server_tls, l, command).error;
}

struct rsa_server {
    std::string cert, key;
    explicit rsa_server(const temp_dir& dir)
        : cert(dir.str() + "/rsa.pem"), key(dir.str() + "/rsa.key") {
        std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key +
                              " -out " + cert + " -days 2 -subj /CN=localhost >/dev/null 2>&1";
        REQUIRE(std::system(command.c_str()) == 0);
    }
};

} // namespace

TEST_CASE("by default a TLS server refuses CBC suites and suites without forward secrecy, and a "
          "default client gets AEAD with forward secrecy",
          "[tls]") {
    fixture f;
    rsa_server rsa(f.dir);
    auto o = tls_options_for(rsa.cert, rsa.key, "");
    SECTION("CBC (AES128-SHA256)") {
        CHECK(s_client_against(f, o, "-tls1_2 -cipher AES128-SHA256") ==
              "no shared cipher (SSL routines)");
    }
    SECTION("CBC with forward secrecy (ECDHE-RSA-AES128-SHA256)") {
        CHECK(s_client_against(f, o, "-tls1_2 -cipher ECDHE-RSA-AES128-SHA256") ==
              "no shared cipher (SSL routines)");
    }
    SECTION("AEAD with RSA key exchange, no forward secrecy (AES128-GCM-SHA256)") {
        CHECK(s_client_against(f, o, "-tls1_2 -cipher AES128-GCM-SHA256") ==
              "no shared cipher (SSL routines)");
    }
    SECTION("a default client, TLS 1.3 and TLS 1.2") {
        CHECK(s_client_against(f, o, "") == "");
        CHECK(s_client_against(f, o, "-tls1_2") == "");
        CHECK(s_client_against(f, o, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256") == "");
    }
    SECTION("a TLS 1.3 suite left out of ciphersuites") {
        o.ciphersuites = "TLS_AES_256_GCM_SHA384";
        CHECK(s_client_against(f, o, "-tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256") ==
              "no shared cipher (SSL routines)");
        CHECK(s_client_against(f, o, "-tls1_3") == "");
    }
    SECTION("a group left out of groups") {
        o.groups = "P-384";
        CHECK_FALSE(s_client_against(f, o, "-groups X25519").empty());
        CHECK(s_client_against(f, o, "-groups P-384") == "");
    }
}

TEST_CASE("cipher settings that OpenSSL cannot use are a setup error naming the setting", "[tls]") {
    fixture f;
    auto o = tls_options_for(f.certs.server_cert(), f.certs.server_key(), "");
    o.ciphers = "NO-SUCH-CIPHER";
    try {
        (void)ringd::tls_context::server(o);
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).starts_with("set ciphers 'NO-SUCH-CIPHER': "));
    }
}
