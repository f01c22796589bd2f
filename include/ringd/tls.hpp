// SPDX-License-Identifier: MIT
// ringd/tls.hpp — TLS (OpenSSL 3) over a connected socket, driven by the ring. OpenSSL reads
// ciphertext straight out of the bytes the ring received (a view of a buffer_ring, or the
// stream's own buffer) and writes into a memory BIO that ringd sends; nothing blocks and every
// wait is cancellable like any other ring operation. After the handshake a tls_stream is a
// byte_stream (stream.hpp), like plain_stream. Link with OpenSSL (`dependency('openssl')`).
//
//   ringd::tls_context tls = ringd::tls_context::server({.certificate_file = "cert.pem",
//                                                        .private_key_file = "key.pem"});
//   ringd::tls_stream s(ctx, std::move(fd), tls, pool); // pool: a buffer_ring (or none)
//   if (auto ok = co_await s.handshake(); !ok) log(ok.error().message()); // OpenSSL's reason
//   auto n = co_await s.read(buf);   // result<size_t>; 0: the peer sent close_notify
#pragma once

#include <ringd/buffer_ring.hpp>
#include <ringd/detail/tls_error.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/recv_stream.hpp>
#include <ringd/result.hpp>
#include <ringd/stream.hpp>
#include <ringd/task.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace ringd {

// Errors from OpenSSL: tls_category() (message: OpenSSL's reason, e.g. "wrong version number
// (SSL routines)") and tls_verify_error_category() ("certificate verify failed: self-signed
// certificate"). A peer that closes the connection without close_notify reads as
// "unexpected eof while reading (SSL routines)".
using detail::tls_category;
using detail::tls_verify_error_category;

struct tls_options {
    std::string certificate_file; // PEM, leaf first then the chain. Server: required. Client:
                                  // optional, presented when the server asks (mutual TLS)
    std::string private_key_file; // PEM key of certificate_file, not encrypted (no passphrase)
    // Server: when set, clients must present a certificate that chains to these CAs.
    // Client: the CAs that the server's certificate must chain to; empty: the system's store.
    std::string ca_file;
    bool verify_peer = true; // client only: check the server's certificate (off: tests only)
    int min_version = TLS1_2_VERSION; // never below TLS 1.2
    // What may be negotiated, in OpenSSL's syntax (openssl-ciphers(1), SSL_CTX_set1_groups_list).
    // The defaults allow AEAD ciphers with forward secrecy only: no CBC, no RSA key exchange,
    // no static (EC)DH. An empty string keeps OpenSSL's own default for that setting.
    std::string ciphers = default_ciphers;           // TLS 1.2
    std::string ciphersuites = default_ciphersuites; // TLS 1.3
    std::string groups = default_groups;             // key exchange groups (curves)

    static constexpr const char* default_ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL";
    static constexpr const char* default_ciphersuites =
        "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
    static constexpr const char* default_groups = "X25519:P-256:P-384";
};

// A negotiation setting of tls_options, by its name: "ciphers", "ciphersuites" or "groups".
struct tls_setting {
    std::string name;
    std::string value;
};
// The first of options.ciphers, .ciphersuites and .groups that OpenSSL accepts none of, or
// nothing when each is usable (an empty one keeps OpenSSL's default). Checked without
// certificates or keys, so that a configuration with a typo there is refused when it is read,
// not at every start of the process that makes the context.
[[nodiscard]] std::optional<tls_setting> rejected_tls_setting(const tls_options& options);

// The shared settings (SSL_CTX) for many connections. Copies share one context.
class tls_context {
public:
    // Setup: throws std::system_error (tls_category()) naming the file or setting and what is
    // wrong with it, e.g. "certificate /etc/x/cert.pem: No such file or directory" (== the
    // std::errc), "certificate /etc/x/cert.pem is not a PEM certificate: no start line (PEM
    // routines)", "private key /etc/x/key.pem does not match certificate /etc/x/cert.pem: key
    // values mismatch (x509 certificate routines)", "CA file /etc/x/ca.pem has no certificate in
    // it: ..." or "set ciphers 'RC4': no cipher match (SSL routines)".
    static tls_context server(const tls_options& options);
    static tls_context client(const tls_options& options);

    tls_context(const tls_context& other) noexcept : ctx_(other.ctx_), server_(other.server_) {
        SSL_CTX_up_ref(ctx_);
    }
    tls_context& operator=(tls_context other) noexcept {
        std::swap(ctx_, other.ctx_);
        std::swap(server_, other.server_);
        return *this;
    }
    ~tls_context() { SSL_CTX_free(ctx_); }

    [[nodiscard]] SSL_CTX* native_handle() const noexcept { return ctx_; }
    [[nodiscard]] bool is_server() const noexcept { return server_; }

private:
    tls_context(SSL_CTX* ctx, bool server) noexcept : ctx_(ctx), server_(server) {}
    static tls_context make(const tls_options& options, bool server);

    SSL_CTX* ctx_;        // owned reference
    bool server_ = false; // which side handshake() plays
};

namespace detail {
// The read side of a tls_stream, as OpenSSL sees it (a BIO): ciphertext received and not yet
// read by OpenSSL, which copies it out of the received buffer itself.
struct tls_input {
    received view;                    // a buffer_ring's buffer, given back once read through
    std::span<const std::byte> bytes; // what is left to read (in `view` or the stream's buffer)
};
BIO_METHOD* tls_input_method();
} // namespace detail

// One TLS connection over a socket it owns. Memory: OpenSSL's (its record buffers are released
// between records: SSL_MODE_RELEASE_BUFFERS) and what the peer's last flight left in the write
// BIO; reading through a buffer_ring adds ~128 bytes and one pool buffer while a record arrives,
// reading on its own a 17 KiB buffer, taken at the first read. Not copyable or movable:
// in-flight ring operations point into it.
class tls_stream {
public:
    // `server_name` (client only): sent as SNI and checked against the certificate when the
    // context verifies. Throws std::bad_alloc when OpenSSL cannot allocate.
    tls_stream(io_context& ctx, unique_fd socket, const tls_context& tls,
               std::string_view server_name = {});
    // The same, reading the socket through a recv_stream on `pool` (which must outlive the
    // stream): an idle connection holds no receive buffer.
    tls_stream(io_context& ctx, unique_fd socket, const tls_context& tls, buffer_ring& pool,
               std::string_view server_name = {});
    tls_stream(const tls_stream&) = delete;
    tls_stream& operator=(const tls_stream&) = delete;
    ~tls_stream() { SSL_free(ssl_); } // frees both BIOs too

    // Runs the handshake. Errors: OpenSSL's (tls/tls-verify categories), the socket's, or
    // operation_canceled.
    task<result<void>> handshake();
    // Up to data.size() bytes of plaintext; 0 once the peer sent close_notify.
    task<result<std::size_t>> read(std::span<std::byte> data);
    // Waits until read() has something to work on (plaintext or ciphertext already received,
    // or the end), so that a caller can wait without holding a buffer for read(). Errors:
    // receive's (the socket's, EOF without close_notify, operation_canceled).
    task<result<void>> wait_readable();
    // All of `data` (in records of at most 16 KiB), or the error that stopped it.
    task<result<std::size_t>> write(std::span<const std::byte> data);
    // Sends close_notify (our direction ends; reads stay possible until the peer's close_notify).
    task<result<void>> shutdown();

    [[nodiscard]] borrowed_fd socket() const noexcept { return socket_; }
    [[nodiscard]] SSL* native_handle() const noexcept { return ssl_; }
    // "TLSv1.3" after the handshake.
    [[nodiscard]] std::string_view protocol_version() const noexcept {
        return SSL_get_version(ssl_);
    }
    // The peer certificate's subject ("CN=client,O=x"), or empty when it sent none.
    [[nodiscard]] std::string peer_subject() const;

private:
    enum class step { handshake, read, write, shutdown };

    // Runs `what` until OpenSSL is done with it, moving bytes between socket and BIOs; returns
    // what the SSL call returned (> 0), or 0 for close_notify on a read.
    task<result<int>> drive(step what, std::span<std::byte> in, std::span<const std::byte> out);
    int call(step what, std::span<std::byte> in, std::span<const std::byte> out) noexcept;
    // Sends whatever OpenSSL has put into the write BIO, straight from the BIO's memory.
    task<result<void>> flush();
    // Receives one chunk from the socket for OpenSSL to read. EOF: an error (no close_notify).
    task<result<void>> receive();

    static constexpr std::size_t chunk = 17 * 1024; // one TLS record with its overhead

    io_context* ctx_;                     // the ring
    unique_fd socket_;                    // the connection
    std::optional<recv_stream> stream_;   // reads through a buffer_ring; empty: into buffer_
    detail::tls_input input_;             // ciphertext received, not yet read by OpenSSL
    std::unique_ptr<std::byte[]> buffer_; // without a pool: `chunk` bytes, from the first read
    SSL* ssl_ = nullptr;                  // owned; owns rbio_ and wbio_
    BIO* rbio_ = nullptr;                 // reads input_
    BIO* wbio_ = nullptr;                 // ciphertext from OpenSSL, for us to send
};

static_assert(byte_stream<tls_stream>);

} // namespace ringd

// The implementation.
#include <ringd/detail/tls_context_impl.hpp>
#include <ringd/detail/tls_stream_impl.hpp>
