// topic_board: a serving thread's topic logs, and the cursors of its subscribers into them.
#include "host/topic_board.hpp"

#include <limits>
#include <utility>

#include "host/topic_directory.hpp"

namespace plugd {

void entry_ring::push_back(log_entry e) {
    if (size_ == capacity_) {
        // Doubling: a topic's burst costs log(burst) copies of the entries, and the slots
        // go back when it empties (pop_front).
        const std::size_t grown = capacity_ == 0 ? 4 : capacity_ * 2;
        auto slots = std::make_unique<log_entry[]>(grown);
        for (std::size_t i = 0; i < size_; ++i) slots[i] = std::move((*this)[i]);
        slots_ = std::move(slots);
        capacity_ = grown;
        head_ = 0;
    }
    slots_[(head_ + size_) & (capacity_ - 1)] = std::move(e);
    ++size_;
}

void entry_ring::pop_front() noexcept {
    slots_[head_] = log_entry{};  // gives its reference back now
    head_ = (head_ + 1) & (capacity_ - 1);
    if (--size_ == 0 && capacity_ > 8) {
        slots_.reset();
        capacity_ = 0;
        head_ = 0;
    }
}

topic_board::~topic_board() {
    // Every subscriber has left by now (they end before the board's host); whatever is
    // left is unlinked so that nothing points here.
    for (auto& [topic, log] : logs_) {
        while (!log->subscribers.empty()) {
            subscription& s = log->subscribers.front();
            log->subscribers.pop_front();
            s.who->subscriptions.erase(s.who->subscriptions.iterator_to(s));
            if (s.who->delivering == &s) s.who->delivering = nullptr;
            delete &s;
        }
    }
}

const topic_log* topic_board::find(std::string_view topic) const noexcept {
    const auto it = logs_.find(topic);
    return it == logs_.end() ? nullptr : it->second.get();
}

void topic_board::subscribe(subscriber_endpoint& who, std::string_view topic) {
    for (const subscription& s : who.subscriptions) {
        if (s.log->topic == topic) return;
    }
    auto it = logs_.find(topic);
    if (it == logs_.end()) {
        auto fresh = std::make_unique<topic_log>();
        fresh->topic = std::string{topic};
        const std::string_view key = fresh->topic;
        it = logs_.emplace(key, std::move(fresh)).first;
        try {
            directory_.add(key, index_);  // publishers from now on post here
        } catch (...) {
            logs_.erase(it);
            throw;
        }
    }
    topic_log& log = *it->second;
    // The board's index in the high bits: unique across boards without a shared counter.
    if (who.serial == 0) who.serial = (std::uint64_t{index_} << 40) | ++serials_;
    auto* s = new subscription{&who, &log, log.end(), {}, {}};
    log.subscribers.push_back(*s);
    who.subscriptions.push_back(*s);
}

void topic_board::unsubscribe(subscriber_endpoint& who, std::string_view topic) noexcept {
    for (subscription& s : who.subscriptions) {
        if (s.log->topic == topic) {
            remove(s);
            return;
        }
    }
}

void topic_board::leave(subscriber_endpoint& who) noexcept {
    while (!who.subscriptions.empty()) remove(who.subscriptions.front());
}

void topic_board::remove(subscription& s) noexcept {
    topic_log& log = *s.log;
    subscriber_endpoint& who = *s.who;
    if (who.delivering == &s) {
        // The plugin may still read the event next() returned: its message stays.
        who.kept = log.at(s.next).message;
        who.delivering = nullptr;
    }
    for (std::uint64_t i = s.next; i < log.end(); ++i) --log.at(i).pending;
    log.subscribers.erase(log.subscribers.iterator_to(s));
    who.subscriptions.erase(who.subscriptions.iterator_to(s));
    delete &s;
    pop_released(log);
    forget_if_unused(log);
}

void topic_board::pop_released(topic_log& log) noexcept {
    while (!log.entries.empty() && log.entries.front().pending == 0) {
        log.entries.pop_front();
        ++log.first;
    }
}

void topic_board::forget_if_unused(topic_log& log) noexcept {
    if (&log == appending_ || !log.subscribers.empty()) return;
    // No subscription left, so no entry either (each was kept only by subscriptions).
    directory_.remove(log.topic, index_);
    logs_.erase(logs_.find(log.topic));
}

void topic_board::append(message_ref m) {
    const auto it = logs_.find(m->topic());
    if (it == logs_.end()) return;  // its last subscriber here left after it was posted
    topic_log& log = *it->second;
    // What may throw comes first: from here on nothing does, so no cursor moves for an
    // entry that is not there.
    behind_.reserve(log.subscribers.size());
    log.entries.push_back({nullptr, 0, 0});
    const std::uint64_t index = log.end() - 1;
    const std::uint64_t origin = m->origin();
    std::uint32_t pending = 0;
    for (subscription& s : log.subscribers) {
        subscriber_endpoint& who = *s.who;
        if (origin != 0 && origin == who.serial && s.next == index) {
            ++s.next;  // its own message (publish's except), and nothing before it: passed
            continue;
        }
        ++pending;
        if (index + 1 - s.next > who.subscriber_limits().max_queued_messages) {
            behind_.push_back(&s);
            continue;
        }
        if (who.waiting) {
            who.waiting = false;
            who.wake();
        }
    }
    log.at(index) = {std::move(m), ++sequence_, pending};
    if (!behind_.empty()) {
        // The policy may end other subscriptions of the same endpoints: this log must stay
        // until the end of append, and the list of offenders is taken out of the member.
        appending_ = &log;
        std::vector<subscription*> cut = std::exchange(behind_, {});
        for (subscription* s : cut) {
            subscriber_endpoint& who = *s->who;
            const slow_subscriber_policy policy = who.subscriber_limits().slow_subscriber;
            if (policy == slow_subscriber_policy::close) {
                leave(who);
            } else {
                remove(*s);
            }
            who.fell_behind(policy);
        }
        cut.clear();
        behind_ = std::move(cut);  // keeps its capacity for the next time
        appending_ = nullptr;
    }
    pop_released(log);
    forget_if_unused(log);
}

const topic_message* topic_board::take(subscriber_endpoint& who) noexcept {
    subscription* best = nullptr;
    std::uint64_t best_sequence = std::numeric_limits<std::uint64_t>::max();
    for (subscription& s : who.subscriptions) {
        topic_log& log = *s.log;
        bool skipped = false;
        // Its own messages, published while it was behind: moved past, not delivered.
        while (s.next < log.end() && log.at(s.next).message->origin() == who.serial) {
            --log.at(s.next).pending;
            ++s.next;
            skipped = true;
        }
        if (skipped) pop_released(log);
        if (s.next < log.end() && log.at(s.next).sequence < best_sequence) {
            best = &s;
            best_sequence = log.at(s.next).sequence;
        }
    }
    if (!best) return nullptr;
    who.delivering = best;
    return best->log->at(best->next).message.get();
}

void topic_board::release(subscriber_endpoint& who) noexcept {
    who.kept.reset();
    subscription* s = std::exchange(who.delivering, nullptr);
    if (!s) return;
    topic_log& log = *s->log;
    --log.at(s->next).pending;
    ++s->next;
    pop_released(log);
}

bool topic_board::has_more(const subscriber_endpoint& who) const noexcept {
    for (const subscription& s : who.subscriptions) {
        const std::uint64_t after = s.next + (&s == who.delivering ? 1 : 0);
        if (after < s.log->end()) return true;
    }
    return false;
}

std::size_t topic_board::queued(std::string_view topic) const noexcept {
    const topic_log* log = find(topic);
    return log ? log->entries.size() : 0;
}

std::size_t topic_board::slots(std::string_view topic) const noexcept {
    const topic_log* log = find(topic);
    return log ? log->entries.capacity() : 0;
}

}  // namespace plugd
