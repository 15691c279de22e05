// phx.hpp: a header-only C++17 interface to libphx, over the C ABI of phx.h.
//
//   phx::Socket socket("ws://localhost:4000/socket/websocket");
//   socket.connect_wait();
//   phx::Channel lobby = socket.channel("room:lobby");
//   lobby.set_handler({[](const phx::MessageView &m) { /* a libphx thread */ }});
//   lobby.join().get();                                      // throws phx::Error on failure
//   phx::Response r = lobby.push("new_msg", R"({"body":"hello"})").get();
//   lobby.leave().get();
//
// - Socket and Channel are move-only RAII owners of their C handles (phx_socket_free,
//   phx_channel_free). A Channel stays valid after its Socket is destroyed: its operations then
//   fail with Status::closed.
// - join/push/leave come in three forms: returning std::future<Response> whose get() throws
//   phx::Error (exceptions builds only); try_join/try_push/try_leave returning
//   std::future<Outcome>, which never throws; and taking a completion callable
//   (void(Outcome)), called exactly once on a libphx thread if the call returned Status::ok,
//   never otherwise.
// - Handlers and completions run on libphx's threads and may call any function of this header
//   except the blocking ones (connect_wait, and std::future::get/wait on an operation of the
//   same socket, which would wait for the thread that is running the callback). Exceptions
//   thrown by a callable never cross into C: std::terminate is called.
// - With -fno-exceptions, the throwing forms are left out; Socket::create and
//   Socket::channel(topic, out) report errors as a Status.
#ifndef PHX_HPP
#define PHX_HPP

#include <phx.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define PHX_HPP_EXCEPTIONS 1
#include <stdexcept>
#else
#define PHX_HPP_EXCEPTIONS 0
#endif

namespace phx {

/// libphx's status codes (phx_status_t).
enum class Status : std::uint32_t {
    ok = PHX_OK,
    reply = PHX_ERR_REPLY,
    timeout = PHX_ERR_TIMEOUT,
    disconnected = PHX_ERR_DISCONNECTED,
    channel_errored = PHX_ERR_CHANNEL_ERRORED,
    closed = PHX_ERR_CLOSED,
    left_before_join = PHX_ERR_LEFT_BEFORE_JOIN,
    state = PHX_ERR_STATE,
    invalid_argument = PHX_ERR_INVALID_ARGUMENT,
    wrong_thread = PHX_ERR_WRONG_THREAD,
    again = PHX_ERR_AGAIN,
    internal = PHX_ERR_INTERNAL,
    queue_full = PHX_ERR_QUEUE_FULL,
    buffer_full = PHX_ERR_BUFFER_FULL,
    too_many_channels = PHX_ERR_TOO_MANY_CHANNELS,
};

enum class SocketState : std::uint32_t {
    disconnected = PHX_SOCKET_DISCONNECTED,
    connecting = PHX_SOCKET_CONNECTING,
    connected = PHX_SOCKET_CONNECTED,
    reconnecting = PHX_SOCKET_RECONNECTING,
};

enum class ChannelState : std::uint32_t {
    closed = PHX_CHANNEL_CLOSED,
    joining = PHX_CHANNEL_JOINING,
    joined = PHX_CHANNEL_JOINED,
    leaving = PHX_CHANNEL_LEAVING,
    errored = PHX_CHANNEL_ERRORED,
};

enum class PayloadKind : std::uint32_t { json = PHX_PAYLOAD_JSON, binary = PHX_PAYLOAD_BINARY };

/// A short English description of a status (static text).
inline const char *to_string(Status s) noexcept { return phx_status_str(static_cast<std::uint32_t>(s)); }

inline const char *to_string(SocketState s) noexcept {
    switch (s) {
    case SocketState::disconnected: return "disconnected";
    case SocketState::connecting: return "connecting";
    case SocketState::connected: return "connected";
    case SocketState::reconnecting: return "reconnecting";
    }
    return "unknown";
}

inline const char *to_string(ChannelState s) noexcept {
    switch (s) {
    case ChannelState::closed: return "closed";
    case ChannelState::joining: return "joining";
    case ChannelState::joined: return "joined";
    case ChannelState::leaving: return "leaving";
    case ChannelState::errored: return "errored";
    }
    return "unknown";
}

/// A server reply, owned: the reply status ("ok", "error", ...) and the server's response.
struct Response {
    std::string status;
    PayloadKind kind = PayloadKind::json;
    std::string payload;  // JSON text, or the bytes of a binary reply
};

/// The outcome of a join, push or leave. `response` is set when the server replied
/// (Status::ok, Status::reply); a leave with nothing to tell the server completes ok without.
struct Outcome {
    Status status = Status::internal;
    std::optional<Response> response;
    bool ok() const noexcept { return status == Status::ok; }
    explicit operator bool() const noexcept { return ok(); }
};

/// An application message, borrowed for the duration of the handler call.
struct MessageView {
    std::string_view topic;
    std::string_view event;
    std::optional<std::string_view> join_ref;  // absent for broadcasts
    std::optional<std::string_view> ref;       // absent for pushes that expect no reply
    PayloadKind kind = PayloadKind::json;
    std::string_view payload;
};

/// Why the last connection ended (a copy of phx_reason_t).
struct Reason {
    std::uint32_t kind = PHX_REASON_NONE;  // a PHX_REASON_* value
    std::uint32_t code = 0;                // close code or HTTP status
    std::string text;
    std::uint64_t retry_after_ms = 0;      // PHX_REASON_HTTP_STATUS: the Retry-After; 0: none
};

/// One connection attempt's request for params and token (see Options::connect_provider).
/// Move-only; answer it once, from any thread. Destroyed unanswered, it fails the attempt.
class ProvideRequest {
  public:
    explicit ProvideRequest(phx_provide_t *r) noexcept : r_(r) {}
    ProvideRequest(ProvideRequest &&o) noexcept : r_(o.r_) { o.r_ = nullptr; }
    ProvideRequest &operator=(ProvideRequest &&o) noexcept {
        if (this != &o) {
            fail("the request was replaced unanswered");
            r_ = o.r_;
            o.r_ = nullptr;
        }
        return *this;
    }
    ProvideRequest(const ProvideRequest &) = delete;
    ProvideRequest &operator=(const ProvideRequest &) = delete;
    ~ProvideRequest() { fail("the request was dropped unanswered"); }

    /// Answers with the params (a JSON object, empty: none) and the token (absent: none).
    /// Status::invalid_argument for bad params leaves the request unanswered.
    Status complete(const std::string &params_json, const std::optional<std::string> &auth_token = std::nullopt) noexcept {
        if (r_ == nullptr) return Status::invalid_argument;
        phx_status_t s = phx_provide_complete(r_, params_json.empty() ? nullptr : params_json.c_str(),
                                              auth_token ? auth_token->c_str() : nullptr);
        if (s == PHX_OK) r_ = nullptr;
        return static_cast<Status>(s);
    }
    /// Fails the attempt with `reason` (logged: no secrets in it).
    void fail(const char *reason) noexcept {
        if (r_ != nullptr) phx_provide_fail(r_, reason);
        r_ = nullptr;
    }

  private:
    phx_provide_t *r_ = nullptr;
};

#if PHX_HPP_EXCEPTIONS
/// A failed call or operation: the status, and the server's reply when there was one.
class Error : public std::runtime_error {
  public:
    explicit Error(Status status, std::optional<Response> response = std::nullopt)
        : std::runtime_error(describe(status, response)), status_(status), response_(std::move(response)) {}
    Status status() const noexcept { return status_; }
    /// The server's reply (Status::reply), absent otherwise.
    const std::optional<Response> &response() const noexcept { return response_; }

  private:
    static std::string describe(Status status, const std::optional<Response> &r) {
        std::string text = "phx: ";
        text += to_string(status);
        if (r) {
            text += ": ";
            text += r->status;
            if (r->kind == PayloadKind::json) {
                text += ' ';
                text += r->payload;
            }
        }
        return text;
    }
    Status status_;
    std::optional<Response> response_;
};
#endif

/// Socket options; durations in milliseconds (0: libphx's default).
struct Options {
    std::string params_json;  // e.g. {"token":"t"}; empty: none
    std::uint64_t heartbeat_ms = 0;
    std::uint64_t timeout_ms = 0;  // default join and push timeout (10 s)
    std::uint64_t leave_timeout_ms = 0;
    std::uint64_t connect_timeout_ms = 0;
    std::vector<std::uint64_t> reconnect_schedule_ms;
    std::vector<std::uint64_t> rejoin_schedule_ms;
    std::string ca_pem;
    double reconnect_jitter = 0;  // 0..1: each delay d drawn from [d(1-j), d]; 0: exact
    double rejoin_jitter = 0;
    std::optional<std::uint64_t> jitter_seed;
    std::vector<std::uint16_t> stop_close_codes;  // server close codes that stop reconnecting
    std::uint64_t heartbeat_timeout_ms = 0;       // 0: the heartbeat interval
    std::uint32_t log_level = 0;                  // a PHX_LOG_* value; 0: every line
    /// Auth token sent as Phoenix 1.8 reads it (subprotocols; see phx_options_set_auth_token).
    std::optional<std::string> auth_token;
    /// Extra headers on the upgrade request, in order.
    std::vector<std::pair<std::string, std::string>> headers;
    /// Stop reconnecting after this many consecutive refused upgrades (0: never).
    std::uint32_t max_refusals = 0;
    /// Asked before every connection attempt, on a libphx thread; answers through the request,
    /// now or later, from any thread (see phx_options_set_connect_provider). Must not throw.
    std::function<void(ProvideRequest)> connect_provider;
    std::uint64_t provider_timeout_ms = 10000;
    // Bounds (0: libphx's default; see "Bounds" in docs/c-api.md).
    std::size_t max_frame_size = 0;         // 16 MiB
    std::size_t max_write_queue_bytes = 0;  // 8 MiB
    std::size_t max_buffered_pushes = 0;    // 1024 per channel
    std::size_t max_channels = 0;           // 100 per socket
    std::size_t max_event_queue_bytes = 0;  // 32 MiB
};

/// One change to a channel's presence list, borrowed for the duration of the handler call.
/// Metas are JSON arrays; `current` is absent for a join of a key that was absent.
struct PresenceChangeView {
    bool join = true;  // false: a leave
    std::string_view key;
    std::optional<std::string_view> current;
    std::string_view metas;  // the metas that joined or left
};

/// Callables of a socket (each may be empty). They run on libphx's threads.
struct SocketHandler {
    std::function<void(SocketState, const Reason *)> on_state;
    std::function<void(std::uint32_t level, std::string_view message)> on_log;
    /// A log line with its target ("phx::socket", ...); when set, on_log is not called.
    std::function<void(std::uint32_t level, std::string_view target, std::string_view message)> on_log_record{};
};

/// Callables of a channel (each may be empty). They run on libphx's threads.
struct ChannelHandler {
    std::function<void(const MessageView &)> on_message;
    std::function<void(ChannelState)> on_state;
    std::function<void(const Outcome &)> on_rejoin;
    std::function<void(const PresenceChangeView &)> on_presence{};
    std::function<void()> on_presence_sync{};
    /// A successful automatic rejoin: the join response, and whether messages may have been
    /// missed (the channel had been joined before).
    std::function<void(const Response &, bool missed)> on_rejoined{};
};

/// A probe's completion: Status::ok with the round trip in microseconds, or why not.
using ProbeCompletion = std::function<void(Status, std::uint64_t rtt_us)>;

/// A completion callable: called exactly once, on a libphx thread.
using Completion = std::function<void(Outcome)>;

namespace detail {

inline Status status_of(phx_status_t s) noexcept { return static_cast<Status>(static_cast<std::uint32_t>(s)); }

inline std::optional<Response> response_of(const phx_reply_t *r) {
    if (r == nullptr) return std::nullopt;
    Response out;
    out.status.assign(r->status, r->status_len);
    out.kind = static_cast<PayloadKind>(r->payload_kind);
    out.payload.assign(reinterpret_cast<const char *>(r->payload), r->payload_len);
    return out;
}

inline Reason reason_of(const phx_reason_t &r) {
    return Reason{r.kind, r.code, std::string(r.text, r.text_len), r.retry_after_ms};
}

// The connect provider's callable; released by libphx (free_user_data).
struct ProviderBox {
    std::function<void(ProvideRequest)> fn;
    static void provide(void *u, phx_provide_t *request) noexcept {
        static_cast<ProviderBox *>(u)->fn(ProvideRequest(request));
    }
    static void release(void *u) noexcept { delete static_cast<ProviderBox *>(u); }
};

// The completion of one operation; owned by libphx from a successful call until it fires.
struct Pending {
    Completion done;
    static void fire(void *user_data, std::uint32_t status, const phx_reply_t *reply) noexcept {
        std::unique_ptr<Pending> self(static_cast<Pending *>(user_data));
        self->done(Outcome{static_cast<Status>(status), response_of(reply)});
    }
};

// Starts an operation whose completion is `done`: `start(cb, user_data)` is the C call.
template <class Start>
Status start(Start &&start_op, Completion done) noexcept {
    auto *pending = new Pending{std::move(done)};
    Status s = status_of(start_op(&Pending::fire, static_cast<void *>(pending)));
    if (s != Status::ok) delete pending;  // a refused call never completes
    return s;
}

template <class Start>
std::future<Outcome> start_future(Start &&start_op) {
    auto promise = std::make_shared<std::promise<Outcome>>();
    std::future<Outcome> fut = promise->get_future();
    Status s = start(std::forward<Start>(start_op), [promise](Outcome o) { promise->set_value(std::move(o)); });
    if (s != Status::ok) promise->set_value(Outcome{s, std::nullopt});
    return fut;
}

#if PHX_HPP_EXCEPTIONS
inline void check(phx_status_t s) {
    if (s != PHX_OK) throw Error(status_of(s));
}

template <class Start>
std::future<Response> start_throwing(Start &&start_op) {
    auto promise = std::make_shared<std::promise<Response>>();
    std::future<Response> fut = promise->get_future();
    Status s = start(std::forward<Start>(start_op), [promise](Outcome o) {
        if (o.ok()) {
            promise->set_value(o.response ? std::move(*o.response) : Response{});
        } else {
            promise->set_exception(std::make_exception_ptr(Error(o.status, std::move(o.response))));
        }
    });
    if (s != Status::ok) throw Error(s);
    return fut;
}
#endif

struct SocketHandlerBox {
    SocketHandler h;
    static void on_state(void *u, std::uint32_t state, const phx_reason_t *reason) noexcept {
        auto *self = static_cast<SocketHandlerBox *>(u);
        if (!self->h.on_state) return;
        if (reason != nullptr) {
            Reason r = reason_of(*reason);
            self->h.on_state(static_cast<SocketState>(state), &r);
        } else {
            self->h.on_state(static_cast<SocketState>(state), nullptr);
        }
    }
    static void on_log(void *u, std::uint32_t level, const char *message) noexcept {
        auto *self = static_cast<SocketHandlerBox *>(u);
        if (self->h.on_log) self->h.on_log(level, std::string_view(message));
    }
    static void on_log_record(void *u, std::uint32_t level, const char *target, const char *message) noexcept {
        auto *self = static_cast<SocketHandlerBox *>(u);
        if (self->h.on_log_record) {
            self->h.on_log_record(level, std::string_view(target), std::string_view(message));
        } else if (self->h.on_log) {
            self->h.on_log(level, std::string_view(message));
        }
    }
    static void release(void *u) noexcept { delete static_cast<SocketHandlerBox *>(u); }
};

struct ChannelHandlerBox {
    ChannelHandler h;
    static void on_message(void *u, const phx_message_t *m) noexcept {
        auto *self = static_cast<ChannelHandlerBox *>(u);
        if (!self->h.on_message) return;
        MessageView v;
        v.topic = std::string_view(m->topic, m->topic_len);
        v.event = std::string_view(m->event, m->event_len);
        if (m->join_ref != nullptr) v.join_ref = std::string_view(m->join_ref, m->join_ref_len);
        if (m->ref != nullptr) v.ref = std::string_view(m->ref, m->ref_len);
        v.kind = static_cast<PayloadKind>(m->payload_kind);
        v.payload = std::string_view(reinterpret_cast<const char *>(m->payload), m->payload_len);
        self->h.on_message(v);
    }
    static void on_state(void *u, std::uint32_t state) noexcept {
        auto *self = static_cast<ChannelHandlerBox *>(u);
        if (self->h.on_state) self->h.on_state(static_cast<ChannelState>(state));
    }
    static void on_rejoin(void *u, std::uint32_t status, const phx_reply_t *reply) noexcept {
        auto *self = static_cast<ChannelHandlerBox *>(u);
        if (self->h.on_rejoin) self->h.on_rejoin(Outcome{static_cast<Status>(status), response_of(reply)});
    }
    static void on_presence(void *u, const phx_presence_change_t *c) noexcept {
        auto *self = static_cast<ChannelHandlerBox *>(u);
        if (!self->h.on_presence) return;
        PresenceChangeView v;
        v.join = c->kind == PHX_PRESENCE_JOIN;
        v.key = std::string_view(c->key, c->key_len);
        if (c->current != nullptr) v.current = std::string_view(c->current, c->current_len);
        v.metas = std::string_view(c->metas, c->metas_len);
        self->h.on_presence(v);
    }
    static void on_presence_sync(void *u) noexcept {
        auto *self = static_cast<ChannelHandlerBox *>(u);
        if (self->h.on_presence_sync) self->h.on_presence_sync();
    }
    static void on_rejoined(void *u, const phx_reply_t *reply, bool missed) noexcept {
        auto *self = static_cast<ChannelHandlerBox *>(u);
        if (!self->h.on_rejoined) return;
        std::optional<Response> r = response_of(reply);
        self->h.on_rejoined(r ? *r : Response{}, missed);
    }
    static void release(void *u) noexcept { delete static_cast<ChannelHandlerBox *>(u); }
};

}  // namespace detail

class Socket;

/// A channel of a socket: owns one reference to the C channel (phx_channel_free on
/// destruction, which neither leaves a joined channel nor removes its handler).
class Channel {
  public:
    Channel() noexcept = default;
    /// Takes ownership of one reference.
    explicit Channel(phx_channel_t *c) noexcept : c_(c) {}
    Channel(Channel &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    Channel &operator=(Channel &&o) noexcept {
        if (this != &o) {
            phx_channel_free(c_);
            c_ = std::exchange(o.c_, nullptr);
        }
        return *this;
    }
    Channel(const Channel &) = delete;
    Channel &operator=(const Channel &) = delete;
    ~Channel() { phx_channel_free(c_); }

    phx_channel_t *get() const noexcept { return c_; }
    explicit operator bool() const noexcept { return c_ != nullptr; }
    /// The channel instance's id (phx_channel_id): the same for two handles of one instance.
    std::uint64_t id() const noexcept { return phx_channel_id(c_); }

    ChannelState state() const noexcept {
        std::uint32_t s = PHX_CHANNEL_CLOSED;
        if (c_ != nullptr) phx_channel_state(c_, &s);
        return static_cast<ChannelState>(s);
    }

    /// Installs the channel's callables (replacing earlier ones); Status::closed once the
    /// channel closed for good or its socket was destroyed.
    Status set_handler(ChannelHandler h) noexcept {
        auto *box = new detail::ChannelHandlerBox{std::move(h)};
        phx_channel_handler_ex_t ch{};
        ch.size = sizeof ch;
        ch.on_message = &detail::ChannelHandlerBox::on_message;
        ch.on_state = &detail::ChannelHandlerBox::on_state;
        ch.on_rejoin = &detail::ChannelHandlerBox::on_rejoin;
        ch.on_presence = &detail::ChannelHandlerBox::on_presence;
        ch.on_presence_sync = &detail::ChannelHandlerBox::on_presence_sync;
        ch.on_rejoined = &detail::ChannelHandlerBox::on_rejoined;
        Status s = detail::status_of(phx_channel_set_handler_ex(c_, &ch, box, &detail::ChannelHandlerBox::release));
        if (s != Status::ok) delete box;
        return s;
    }

    // ---- completion callables: the returned status is the call's; `done` runs once iff ok ----

    Status join(std::string_view payload_json, std::uint64_t timeout_ms, Completion done) noexcept {
        std::string body(payload_json.empty() ? std::string_view("{}") : payload_json);
        return detail::start([&](phx_reply_cb cb, void *u) { return phx_channel_join(c_, body.c_str(), timeout_ms, cb, u); },
                             std::move(done));
    }
    Status push(std::string_view event, std::string_view payload_json, std::uint64_t timeout_ms, Completion done) noexcept {
        std::string ev(event), body(payload_json);
        return detail::start(
            [&](phx_reply_cb cb, void *u) { return phx_channel_push(c_, ev.c_str(), body.c_str(), timeout_ms, cb, u); },
            std::move(done));
    }
    Status push_binary(std::string_view event, const void *data, std::size_t len, std::uint64_t timeout_ms,
                       Completion done) noexcept {
        std::string ev(event);
        return detail::start(
            [&](phx_reply_cb cb, void *u) {
                return phx_channel_push_binary(c_, ev.c_str(), static_cast<const std::uint8_t *>(data), len, timeout_ms, cb, u);
            },
            std::move(done));
    }
    Status leave(std::uint64_t timeout_ms, Completion done) noexcept {
        return detail::start([&](phx_reply_cb cb, void *u) { return phx_channel_leave(c_, timeout_ms, cb, u); },
                             std::move(done));
    }

    // ---- non-throwing futures: Outcome carries the status (also that of a refused call) ----

    std::future<Outcome> try_join(std::string_view payload_json = "{}", std::uint64_t timeout_ms = 0) {
        std::string body(payload_json.empty() ? std::string_view("{}") : payload_json);
        return detail::start_future([&](phx_reply_cb cb, void *u) { return phx_channel_join(c_, body.c_str(), timeout_ms, cb, u); });
    }
    std::future<Outcome> try_push(std::string_view event, std::string_view payload_json, std::uint64_t timeout_ms = 0) {
        std::string ev(event), body(payload_json);
        return detail::start_future(
            [&](phx_reply_cb cb, void *u) { return phx_channel_push(c_, ev.c_str(), body.c_str(), timeout_ms, cb, u); });
    }
    std::future<Outcome> try_push_binary(std::string_view event, const void *data, std::size_t len, std::uint64_t timeout_ms = 0) {
        std::string ev(event);
        return detail::start_future([&](phx_reply_cb cb, void *u) {
            return phx_channel_push_binary(c_, ev.c_str(), static_cast<const std::uint8_t *>(data), len, timeout_ms, cb, u);
        });
    }
    std::future<Outcome> try_leave(std::uint64_t timeout_ms = 0) {
        return detail::start_future([&](phx_reply_cb cb, void *u) { return phx_channel_leave(c_, timeout_ms, cb, u); });
    }

#if PHX_HPP_EXCEPTIONS
    // ---- throwing futures: a refused call throws Error at once; a failed outcome from get() ----

    std::future<Response> join(std::string_view payload_json = "{}", std::uint64_t timeout_ms = 0) {
        std::string body(payload_json.empty() ? std::string_view("{}") : payload_json);
        return detail::start_throwing(
            [&](phx_reply_cb cb, void *u) { return phx_channel_join(c_, body.c_str(), timeout_ms, cb, u); });
    }
    std::future<Response> push(std::string_view event, std::string_view payload_json, std::uint64_t timeout_ms = 0) {
        std::string ev(event), body(payload_json);
        return detail::start_throwing(
            [&](phx_reply_cb cb, void *u) { return phx_channel_push(c_, ev.c_str(), body.c_str(), timeout_ms, cb, u); });
    }
    std::future<Response> push_binary(std::string_view event, const void *data, std::size_t len, std::uint64_t timeout_ms = 0) {
        std::string ev(event);
        return detail::start_throwing([&](phx_reply_cb cb, void *u) {
            return phx_channel_push_binary(c_, ev.c_str(), static_cast<const std::uint8_t *>(data), len, timeout_ms, cb, u);
        });
    }
    /// Resolves with the server's reply, or an empty Response when there was nothing to tell it.
    std::future<Response> leave(std::uint64_t timeout_ms = 0) {
        return detail::start_throwing([&](phx_reply_cb cb, void *u) { return phx_channel_leave(c_, timeout_ms, cb, u); });
    }
#endif

  private:
    phx_channel_t *c_ = nullptr;
};

/// A Phoenix socket: owns the C socket (phx_socket_free on destruction, which completes every
/// pending operation with Status::closed and waits until no callback of it runs any more;
/// destroying a Socket inside one of its own callbacks is allowed and does not wait).
class Socket {
  public:
    Socket() noexcept = default;
    explicit Socket(phx_socket_t *s) noexcept : s_(s) {}
    Socket(Socket &&o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    Socket &operator=(Socket &&o) noexcept {
        if (this != &o) {
            phx_socket_free(s_);
            s_ = std::exchange(o.s_, nullptr);
        }
        return *this;
    }
    Socket(const Socket &) = delete;
    Socket &operator=(const Socket &) = delete;
    ~Socket() { phx_socket_free(s_); }

    /// Creates a socket for `url` without throwing; `out` is set only on Status::ok.
    static Status create(const std::string &url, const Options &opts, Socket &out) noexcept {
        phx_options_t *o = phx_options_new();
        if (o == nullptr) return Status::internal;
        phx_status_t s = PHX_OK;
        auto set = [&s](phx_status_t r) {
            if (s == PHX_OK) s = r;
        };
        if (!opts.params_json.empty()) set(phx_options_set_params_json(o, opts.params_json.c_str()));
        if (opts.heartbeat_ms) set(phx_options_set_heartbeat_ms(o, opts.heartbeat_ms));
        if (opts.timeout_ms) set(phx_options_set_timeout_ms(o, opts.timeout_ms));
        if (opts.leave_timeout_ms) set(phx_options_set_leave_timeout_ms(o, opts.leave_timeout_ms));
        if (opts.connect_timeout_ms) set(phx_options_set_connect_timeout_ms(o, opts.connect_timeout_ms));
        if (!opts.reconnect_schedule_ms.empty())
            set(phx_options_set_reconnect_schedule_ms(o, opts.reconnect_schedule_ms.data(), opts.reconnect_schedule_ms.size()));
        if (!opts.rejoin_schedule_ms.empty())
            set(phx_options_set_rejoin_schedule_ms(o, opts.rejoin_schedule_ms.data(), opts.rejoin_schedule_ms.size()));
        if (!opts.ca_pem.empty()) set(phx_options_set_ca_pem(o, opts.ca_pem.c_str()));
        if (opts.reconnect_jitter != 0 || opts.rejoin_jitter != 0)
            set(phx_options_set_jitter(o, opts.reconnect_jitter, opts.rejoin_jitter));
        if (opts.jitter_seed) set(phx_options_set_jitter_seed(o, *opts.jitter_seed));
        if (!opts.stop_close_codes.empty())
            set(phx_options_set_stop_close_codes(o, opts.stop_close_codes.data(), opts.stop_close_codes.size()));
        if (opts.heartbeat_timeout_ms) set(phx_options_set_heartbeat_timeout_ms(o, opts.heartbeat_timeout_ms));
        if (opts.log_level) set(phx_options_set_log_level(o, opts.log_level));
        if (opts.auth_token) set(phx_options_set_auth_token(o, opts.auth_token->c_str()));
        for (const auto &h : opts.headers) set(phx_options_add_header(o, h.first.c_str(), h.second.c_str()));
        if (opts.max_refusals) set(phx_options_set_max_refusals(o, opts.max_refusals));
        if (opts.connect_provider && s == PHX_OK) {
            auto *box = new detail::ProviderBox{opts.connect_provider};
            s = phx_options_set_connect_provider(o, &detail::ProviderBox::provide, box,
                                                 &detail::ProviderBox::release, opts.provider_timeout_ms);
            if (s != PHX_OK) delete box;
        }
        if (opts.max_frame_size) set(phx_options_set_max_frame_size(o, opts.max_frame_size));
        if (opts.max_write_queue_bytes) set(phx_options_set_max_write_queue_bytes(o, opts.max_write_queue_bytes));
        if (opts.max_buffered_pushes) set(phx_options_set_max_buffered_pushes(o, opts.max_buffered_pushes));
        if (opts.max_channels) set(phx_options_set_max_channels(o, opts.max_channels));
        if (opts.max_event_queue_bytes) set(phx_options_set_max_event_queue_bytes(o, opts.max_event_queue_bytes));
        phx_socket_t *sock = nullptr;
        if (s == PHX_OK) s = phx_socket_new(url.c_str(), o, &sock);
        phx_options_free(o);
        if (s == PHX_OK) out = Socket(sock);
        return detail::status_of(s);
    }

#if PHX_HPP_EXCEPTIONS
    /// Creates a socket for `url`; throws Error (Status::invalid_argument) for a bad URL or option.
    explicit Socket(const std::string &url, const Options &opts = Options{}) {
        Status s = create(url, opts, *this);
        if (s != Status::ok) throw Error(s);
    }

    /// The channel for `topic` (see phx_socket_channel); throws Error on failure.
    Channel channel(std::string_view topic) const {
        Channel out;
        Status s = channel(topic, out);
        if (s != Status::ok) throw Error(s);
        return out;
    }
#endif

    /// The channel for `topic` without throwing; `out` is set only on Status::ok.
    Status channel(std::string_view topic, Channel &out) const noexcept {
        std::string t(topic);
        phx_channel_t *c = nullptr;
        Status s = detail::status_of(phx_socket_channel(s_, t.c_str(), &c));
        if (s == Status::ok) out = Channel(c);
        return s;
    }

    phx_socket_t *get() const noexcept { return s_; }
    explicit operator bool() const noexcept { return s_ != nullptr; }

    /// Starts connecting (asynchronous, idempotent).
    Status connect() noexcept { return detail::status_of(phx_socket_connect(s_)); }
    /// Connects and blocks until connected (0: the connect timeout). Not in a callback.
    Status connect_wait(std::uint64_t timeout_ms = 0) noexcept { return detail::status_of(phx_socket_connect_wait(s_, timeout_ms)); }
    /// Closes the connection (1000) and stops reconnecting; pending operations complete closed.
    Status disconnect() noexcept { return detail::status_of(phx_socket_disconnect(s_)); }

    SocketState state() const noexcept {
        std::uint32_t st = PHX_SOCKET_DISCONNECTED;
        if (s_ != nullptr) phx_socket_state(s_, &st);
        return static_cast<SocketState>(st);
    }

    Reason last_reason() const {
        phx_reason_t r{};
        if (s_ == nullptr || phx_socket_last_reason(s_, &r) != PHX_OK) return Reason{};
        return detail::reason_of(r);
    }

    /// Installs the socket's callables, replacing earlier ones.
    Status set_handler(SocketHandler h) noexcept {
        auto *box = new detail::SocketHandlerBox{std::move(h)};
        phx_socket_handler_ex_t sh{};
        sh.size = sizeof sh;
        sh.on_state = &detail::SocketHandlerBox::on_state;
        sh.on_log = &detail::SocketHandlerBox::on_log;
        sh.on_log_record = &detail::SocketHandlerBox::on_log_record;
        Status s = detail::status_of(phx_socket_set_handler_ex(s_, &sh, box, &detail::SocketHandlerBox::release));
        if (s != Status::ok) delete box;
        return s;
    }

    /// The socket's statistics (phx_socket_stats: blocks briefly; not in a callback).
    Status stats(phx_socket_stats_t &out) const noexcept {
        out = phx_socket_stats_t{};
        out.size = sizeof out;
        return detail::status_of(phx_socket_stats(s_, &out));
    }

    /// Sends a heartbeat now; `done` runs once on a libphx thread iff this returns Status::ok.
    Status probe(ProbeCompletion done) noexcept {
        auto *box = new ProbeCompletion(std::move(done));
        auto fire = [](void *u, std::uint32_t status, std::uint64_t rtt_us) noexcept {
            std::unique_ptr<ProbeCompletion> d(static_cast<ProbeCompletion *>(u));
            if (*d) (*d)(static_cast<Status>(status), rtt_us);
        };
        Status s = detail::status_of(phx_socket_probe(s_, fire, box));
        if (s != Status::ok) delete box;
        return s;
    }

  private:
    phx_socket_t *s_ = nullptr;
};

}  // namespace phx

#endif  // PHX_HPP
