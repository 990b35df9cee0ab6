// admin_auth: whether an admin request carries the bearer token (RFC 6750) the endpoint
// was configured with (server.json `admin.token_file`).
#pragma once

#include <string_view>

namespace plugd {

/// True when `head` (a request's line and header fields, as http_framing hands them over)
/// has exactly one `Authorization: Bearer <token>` field whose token equals `token`. The
/// comparison takes the same time wherever the tokens differ, so the time an answer
/// takes tells nothing of how much of a guess was right. Two Authorization fields are
/// refused (a proxy and a client may read different ones).
bool has_bearer_token(std::string_view head, std::string_view token) noexcept;

/// True when `a` and `b` are equal; its time depends on their lengths only.
bool same_secret(std::string_view a, std::string_view b) noexcept;

}  // namespace plugd
