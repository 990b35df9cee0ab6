// plugd::tls_options: how context::connect secures an outbound connection with TLS.
#pragma once

#include <string>

namespace plugd {

/// TLS for `context::connect(host, port, tls)`. Default-constructed, it is off (a plain TCP
/// connection); `{.enabled = true}` is TLS verified against the system's CA store with
/// `host` as the expected name, which is what most servers need.
///
/// What is verified: the server's certificate chain up to a trusted CA, and that the
/// certificate names `server_name` (or `host`): a DNS name, or an IP address in a SAN
/// when the name is an address. A failure is never ignored: connect throws, naming the
/// host and what failed ("certificate verify failed: self-signed certificate in
/// certificate chain"). TLS 1.2 is the minimum version.
///
/// Files are PEM; a relative path is resolved against the directory of server.json (the
/// working directory under plugd::testing). They are read once per plugin version: a
/// rotated CA file or client certificate is taken up by the next reload.
///
/// Since SDK 1.4. Its layout is part of the ABI: it is passed by reference to the core,
/// so no field is ever added within major 1 (a new need gets a new struct and overload).
struct tls_options {
    /// false: a plain TCP connection, the other fields ignored.
    bool enabled = false;
    /// CA certificates the server's chain must lead to; empty: the system's CA store.
    std::string ca_file;
    /// The name sent in SNI and checked against the certificate; empty: `host`. (An IP
    /// address is checked against the certificate's IP SANs and not sent in SNI.)
    std::string server_name;
    /// A client certificate (chain) to present, for servers that require one; empty: none.
    std::string client_certificate;
    /// The client certificate's private key (unencrypted); empty: `client_certificate`'s
    /// file holds it too.
    std::string client_key;
};

}  // namespace plugd
