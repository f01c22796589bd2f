// SPDX-License-Identifier: MIT
// tests/xfer/test_certs.hpp — throwaway certificates made with the openssl CLI at test time:
// a CA, a server certificate for localhost/127.0.0.1 and a client certificate, both signed by
// the CA, and a self-signed certificate that chains to nothing.
#pragma once

#include <ringd/tls.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>

namespace xfer::testing {

struct test_certs {
    std::string dir;
    std::string ca() const { return dir + "/ca.pem"; }
    std::string server_cert() const { return dir + "/server.pem"; }
    std::string server_key() const { return dir + "/server.key"; }
    std::string client_cert() const { return dir + "/client.pem"; }
    std::string client_key() const { return dir + "/client.key"; }
    std::string rogue_cert() const { return dir + "/rogue.pem"; }
    std::string rogue_key() const { return dir + "/rogue.key"; }
};

inline test_certs make_test_certs(const std::string& dir) {
    std::string script =
        "set -e\n"
        "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; "
        "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj /CN=xfer-test-ca; "
        "for who in server client; do "
        "  openssl req $K -keyout $who.key -out $who.csr -subj /CN=$who; "
        "  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > $who.ext; "
        "  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "    -extfile $who.ext -out $who.pem; "
        "done; "
        "openssl req -x509 $K -keyout rogue.key -out rogue.pem -days 2 -subj /CN=rogue "
        "  -addext subjectAltName=DNS:localhost,IP:127.0.0.1";
    {
        std::ofstream file(dir + "/make-certs.sh");
        file << script << "\n";
    }
    std::string command = "cd '" + dir + "' && bash -x make-certs.sh >make-certs.log 2>&1";
    int status = std::system(command.c_str());
    if (status != 0) { // what openssl said, so that a failure here can be understood
        std::ifstream log(dir + "/make-certs.log");
        std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
        INFO("make-certs.sh in " << dir << ":\n" << text);
        REQUIRE(status == 0);
    }
    return test_certs{dir};
}

// TLS settings from files, without designated initializers (g++ 12 warns about every field left
// out). Empty strings leave a setting out.
inline ringd::tls_options tls_options_for(std::string cert, std::string key, std::string ca) {
    ringd::tls_options o;
    o.certificate_file = std::move(cert);
    o.private_key_file = std::move(key);
    o.ca_file = std::move(ca);
    return o;
}

} // namespace xfer::testing
