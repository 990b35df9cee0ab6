// certificate_facts: reading subject, subjectAltName, expiry and serial from an X509.
#include "tls/certificate_facts.hpp"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

#include "config.hpp"
#include "log.hpp"

namespace plugd {
namespace {

std::string rfc2253(const X509_NAME* name) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio{BIO_new(BIO_s_mem()), &BIO_free};
    if (!bio) return {};
    X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return n > 0 ? std::string{data, static_cast<std::size_t>(n)} : std::string{};
}

// An iPAddress entry's 4 or 16 bytes as text ("127.0.0.1", "::1"); other lengths in hex.
std::string ip_text(const ASN1_OCTET_STRING* ip) {
    char text[INET6_ADDRSTRLEN] = {};
    if (ip->length == 4 && inet_ntop(AF_INET, ip->data, text, sizeof text)) return text;
    if (ip->length == 16 && inet_ntop(AF_INET6, ip->data, text, sizeof text)) return text;
    char* hex = OPENSSL_buf2hexstr(ip->data, ip->length);
    std::string out = hex ? hex : "";
    OPENSSL_free(hex);
    return out;
}

}  // namespace

certificate_facts certificate_facts::of(const x509_st* certificate) {
    certificate_facts f;
    f.subject = rfc2253(X509_get_subject_name(certificate));
    std::tm expiry{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &expiry) == 1)
        f.not_after_unix = static_cast<std::int64_t>(timegm(&expiry));
    if (BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr)) {
        if (char* hex = BN_bn2hex(serial)) {
            f.serial = hex;
            OPENSSL_free(hex);
        }
        BN_free(serial);
    }
    auto* names = static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
    if (names) {
        for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
            const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
            if (name->type == GEN_DNS) {
                const ASN1_IA5STRING* dns = name->d.dNSName;
                f.dns_names.emplace_back(reinterpret_cast<const char*>(dns->data),
                                         static_cast<std::size_t>(dns->length));
            } else if (name->type == GEN_IPADD) {
                f.ip_addresses.push_back(ip_text(name->d.iPAddress));
            }
        }
        GENERAL_NAMES_free(names);
    }
    return f;
}

certificate_facts certificate_facts::read(const std::filesystem::path& pem_file) {
    std::unique_ptr<FILE, decltype(&std::fclose)> in{std::fopen(pem_file.c_str(), "rb"),
                                                     &std::fclose};
    if (!in)
        throw config_error(pem_file.string() +
                           ": cannot read the certificate: " + std::strerror(errno));
    X509* cert = PEM_read_X509(in.get(), nullptr, nullptr, nullptr);
    if (!cert) {
        ERR_clear_error();  // this thread's queue: nothing later should find these errors
        throw config_error(pem_file.string() + ": holds no readable PEM certificate");
    }
    certificate_facts f = of(cert);
    X509_free(cert);
    return f;
}

void warn_if_expiring_soon(const std::string& listener, const std::string& file,
                           const certificate_facts& certificate) {
    const std::int64_t now = std::time(nullptr);
    const std::int64_t left = certificate.not_after_unix - now;
    if (left >= 14 * 86400) return;
    log::warn("listener " + listener + ": the certificate in " + file + " (" + certificate.subject +
                  ") " +
                  (left <= 0 ? std::string{"has expired"}
                             : "expires in " + std::to_string(left / 86400) + " day(s), at " +
                                   iso8601_utc(certificate.not_after_unix)) +
                  "; replace it and reload",
              {log::tag("listener", listener)});
}

std::string iso8601_utc(std::int64_t unix_seconds) {
    const auto t = static_cast<std::time_t>(unix_seconds);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return buffer;
}

}  // namespace plugd
