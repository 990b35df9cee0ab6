// The admin endpoint's bearer token check, on request heads as http_framing hands them over.
#include <doctest/doctest.h>

#include <string>

#include "admin/admin_auth.hpp"

namespace {

const std::string token = "s3cret-token-0123456789abcdef";

std::string head_with(const std::string& fields) {
    return "GET /status HTTP/1.1\r\nHost: x\r\n" + fields;
}

}  // namespace

TEST_CASE("a request carries the bearer token only with exactly one matching Authorization") {
    using plugd::has_bearer_token;
    CHECK(has_bearer_token(head_with("Authorization: Bearer " + token), token));
    CHECK(has_bearer_token(head_with("authorization:bearer\t" + token + " "), token));
    CHECK(has_bearer_token(head_with("AUTHORIZATION: BEARER " + token + "\r\nX: y"), token));
    CHECK_FALSE(has_bearer_token(head_with(""), token));
    CHECK_FALSE(has_bearer_token(head_with("Authorization: Bearer " + token + "x"), token));
    CHECK_FALSE(has_bearer_token(head_with("Authorization: Bearer " + token.substr(1)), token));
    CHECK_FALSE(has_bearer_token(head_with("Authorization: Basic " + token), token));
    CHECK_FALSE(has_bearer_token(head_with("Authorization: Bearer" + token), token));
    CHECK_FALSE(has_bearer_token(head_with("Authorization: Bearer "), token));
    CHECK_FALSE(has_bearer_token(head_with("X-Authorization: Bearer " + token), token));
    // Two fields: a proxy and plugd could each read another one.
    CHECK_FALSE(has_bearer_token(
        head_with("Authorization: Bearer " + token + "\r\nAuthorization: Bearer " + token), token));
    // The request line is not a field.
    CHECK_FALSE(has_bearer_token("Authorization: Bearer " + token, token));
}

TEST_CASE("same_secret compares whole strings") {
    using plugd::same_secret;
    CHECK(same_secret("abc", "abc"));
    CHECK(same_secret("", ""));
    CHECK_FALSE(same_secret("abc", "abd"));
    CHECK_FALSE(same_secret("ab", "abc"));
    CHECK_FALSE(same_secret("abcd", "abc"));
    CHECK_FALSE(same_secret(std::string_view{"a\0c", 3}, "abc"));
}
