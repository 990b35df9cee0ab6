// bearer_auth: a filter that lets a request through only with `Authorization: Bearer
// <token>` for one of the configured tokens, and attaches which one ("bearer_auth.token":
// its index in `tokens`) for the plugins after it in the chain.
//   config: {"tokens": ["<a long random string>", ...]}
#include <plugd/plugin.hpp>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

// The accepted tokens, checked once: a list plugd could never match is refused at load.
std::vector<std::string> read_tokens(const nlohmann::json& config) {
    const auto found = config.find("tokens");
    if (found == config.end())
        throw std::invalid_argument(
            "tokens: missing; give the accepted bearer tokens, e.g. \"tokens\": [\"<a long "
            "random string>\"]");
    if (!found->is_array() || found->empty())
        throw std::invalid_argument("tokens: expected a non-empty array of strings, got " +
                                    found->dump());
    std::vector<std::string> tokens;
    for (std::size_t i = 0; i < found->size(); ++i) {
        const auto& token = (*found)[i];
        const std::string where = "tokens[" + std::to_string(i) + "]";
        if (!token.is_string() || token.get_ref<const std::string&>().empty())
            throw std::invalid_argument(where + ": expected a non-empty string, got " +
                                        token.dump());
        const auto& text = token.get_ref<const std::string&>();
        for (const char c : text) {
            if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
                throw std::invalid_argument(
                    where +
                    ": holds a space or a control character, which an Authorization "
                    "header cannot carry; no client could ever send it");
        }
        tokens.push_back(text);
    }
    return tokens;
}

// The credentials of an "Authorization: Bearer <token>" value; empty for another scheme.
std::string_view bearer_credentials(std::string_view authorization) {
    constexpr std::string_view scheme = "bearer";
    if (authorization.size() <= scheme.size()) return {};
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        const char c = authorization[i];
        if ((c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c) != scheme[i]) return {};
    }
    std::string_view rest = authorization.substr(scheme.size());
    if (rest.front() != ' ') return {};
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    return rest;
}

class bearer_auth final : public plugd::handler {
  public:
    explicit bearer_auth(plugd::context& ctx) : tokens_{read_tokens(ctx.config())} {}

    plugd::task<void> filter(plugd::request req, plugd::reply& out,
                             plugd::chain_next next) override {
        if (!req.is_http()) {
            // A line protocol has no header to carry a token.
            out << "ERR bearer_auth needs an http listener";
            co_return;
        }
        const std::string_view given = bearer_credentials(req.header("Authorization"));
        const std::optional<std::size_t> index = match(given);
        if (!index) {
            out.status(401);
            out.header("WWW-Authenticate",
                       given.empty() ? "Bearer" : "Bearer error=\"invalid_token\"");
            out << (given.empty() ? "unauthorized: send Authorization: Bearer <token>"
                                  : "unauthorized: this bearer token is not accepted");
            co_return;
        }
        req.attach("bearer_auth.token", std::to_string(*index));
        co_await next(req, out);
    }

  private:
    // Which token `given` is. Every token is compared in full, whatever matched before, so
    // the time taken does not tell a client how much of a guess was right.
    std::optional<std::size_t> match(std::string_view given) const noexcept {
        if (given.empty()) return std::nullopt;
        std::size_t found = 0;
        bool any = false;
        for (std::size_t i = 0; i < tokens_.size(); ++i) {
            const std::string& token = tokens_[i];
            std::size_t difference = token.size() ^ given.size();
            for (std::size_t j = 0; j < token.size(); ++j) {
                const unsigned char sent =
                    j < given.size() ? static_cast<unsigned char>(given[j]) : 0;
                difference |= static_cast<unsigned char>(token[j]) ^ sent;
            }
            const bool equal = difference == 0;
            found = equal ? i : found;
            any = any | equal;
        }
        return any ? std::optional<std::size_t>{found} : std::nullopt;
    }

    std::vector<std::string> tokens_;
};

}  // namespace

PLUGD_PLUGIN(bearer_auth)
