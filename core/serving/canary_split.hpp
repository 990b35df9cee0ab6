// canary_split: which side of a canary a new request (or a raw connection, or a WebSocket
// session's upgrade) goes to, decided on its shard's thread alone.
//
// On the request path: no lock, no shared write, no allocation. Not sticky, each shard draws
// from a generator of its own; sticky, a hash of the client's address or of a header's value
// decides, salted with the canary's generation, so that each canary tries its new version on
// another set of clients, and every shard (and every worker) puts a client on the same side.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <plugd/request.hpp>

#include "config.hpp"

namespace plugd {

struct canary_split {
    unsigned percent = 0;  ///< of new requests that go to the canary, 1 to 99
    canary_sticky sticky = canary_sticky::none;
    std::string header;       ///< canary_sticky::header: the field's name
    std::uint64_t salt = 0;   ///< the canary's generation
    std::uint64_t state = 0;  ///< the shard's generator (canary_sticky::none)

    /// Whether the request goes to the canary. `peer`: "ip:port" (a client keeps its side
    /// across connections, whose ports differ); `http`: the request's, or null (line,
    /// oneshot, raw: no header to be sticky by, so by peer).
    bool takes(std::string_view peer, const http_request_view* http) noexcept {
        switch (sticky) {
            case canary_sticky::none:
                return share(mix(state += 0x9e3779b97f4a7c15)) < percent;
            case canary_sticky::header:
                if (http) {
                    const std::string_view value = request{{}, {}, {}, http}.header(header);
                    if (!value.empty()) return share(mix(hash(value) ^ salt)) < percent;
                }
                [[fallthrough]];  // a request without it: by its client
            case canary_sticky::peer:
                return share(mix(hash(address_of(peer)) ^ salt)) < percent;
        }
        return false;
    }

    /// "ip" of "ip:port" ("[ip]" of "[ip]:port").
    static std::string_view address_of(std::string_view peer) noexcept {
        const auto colon = peer.rfind(':');
        return colon == std::string_view::npos ? peer : peer.substr(0, colon);
    }
    /// splitmix64's finalizer: every input bit moves every output bit.
    static std::uint64_t mix(std::uint64_t z) noexcept {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
        z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
        return z ^ (z >> 31);
    }
    /// FNV-1a over the bytes.
    static std::uint64_t hash(std::string_view bytes) noexcept {
        std::uint64_t h = 0xcbf29ce484222325;
        for (const char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3;
        return h;
    }
    /// 0 to 99, evenly.
    static unsigned share(std::uint64_t random) noexcept {
        return static_cast<unsigned>(((random >> 32) * 100) >> 32);
    }
};

}  // namespace plugd
