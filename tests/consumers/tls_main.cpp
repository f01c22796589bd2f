// SPDX-License-Identifier: MIT
// The TLS program every consumer builds (ringd::tls, ringd-tls.pc): <ringd/tls.hpp> calls OpenSSL
// from its headers, so a program that includes it links OpenSSL.
#include <ringd/tls.hpp>

int main() {
    return ringd::tls_context::client({}).native_handle() != nullptr ? 0 : 1;
}
