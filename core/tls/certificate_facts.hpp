// certificate_facts: what /status and /metrics say of a TLS listener's certificate, as
// plain values (no OpenSSL type), so the admin thread formats them without touching the
// context a connection may be handshaking on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

struct x509_st;  // OpenSSL's X509

namespace plugd {

struct certificate_facts {
    std::string subject;                    ///< RFC 2253
    std::vector<std::string> dns_names;     ///< subjectAltName DNS entries, in order
    std::vector<std::string> ip_addresses;  ///< subjectAltName IP entries, as text
    std::int64_t not_after_unix = 0;        ///< when it expires, Unix time (seconds)
    std::string serial;                     ///< hexadecimal, as `openssl x509 -serial`

    /// The facts of a parsed certificate (used by tls_context at load).
    static certificate_facts of(const x509_st* certificate);
    /// The facts of the first certificate in a PEM file: what a supervising master, which
    /// builds no TLS context, reports. Throws config_error naming the file if it cannot.
    static certificate_facts read(const std::filesystem::path& pem_file);
};

/// Logs a warning if `certificate` (of `listener`, read from `file`) expires within 14 days
/// or has expired: at each load, and once a day while it serves.
void warn_if_expiring_soon(const std::string& listener, const std::string& file,
                           const certificate_facts& certificate);

/// not_after_unix as ISO 8601 in UTC ("2027-03-01T12:00:00Z").
std::string iso8601_utc(std::int64_t unix_seconds);

}  // namespace plugd
