// test_hpp.cpp: include/phx.hpp against phx-testserver: the seed's quick start, every row of the
// seed's error table (throwing futures, non-throwing futures, completion callables), a socket
// destroyed with operations pending, and callables that call back into the API.
#include <phx.hpp>

#include "harness.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr auto kWait = std::chrono::milliseconds(H_WAIT_MS);

phx::Options fast_options() {
    phx::Options o;
    o.timeout_ms = H_OP_MS;
    o.leave_timeout_ms = 2000;
    o.reconnect_schedule_ms = {50, 100, 200};
    o.rejoin_schedule_ms = {50, 100, 200};
    return o;
}

template <class T>
T get(std::future<T> &f) {
    H_CHECKF(f.wait_for(kWait) == std::future_status::ready, "an operation did not complete in time");
    return f.get();
}

template <class T>
phx::Error get_error(std::future<T> &f) {
    H_CHECKF(f.wait_for(kWait) == std::future_status::ready, "an operation did not complete in time");
    try {
        f.get();
    } catch (const phx::Error &e) {
        return e;
    }
    h_fail(__FILE__, __LINE__, "the operation succeeded; an error was expected");
}

// `expr` must throw phx::Error with `status` at once.
#define EXPECT_THROW_STATUS(expr, want)                                                           \
    do {                                                                                           \
        bool thrown_ = false;                                                                      \
        try {                                                                                      \
            (void)(expr);                                                                          \
        } catch (const phx::Error &e_) {                                                           \
            thrown_ = true;                                                                        \
            H_STATUS(static_cast<uint32_t>(e_.status()), static_cast<uint32_t>(want));             \
        }                                                                                          \
        H_CHECKF(thrown_, "%s did not throw", #expr);                                              \
    } while (0)

struct Server {
    explicit Server(const char *flag = nullptr) : srv(h_server_start_with(flag)) {}
    h_server *srv;
    ~Server() { h_server_stop(srv); }
    std::string url() const { return h_server_url(srv); }
    void control(const char *what) { h_control(srv, what); }
};

// A thread-safe list of what handlers saw, with a bounded wait.
struct Seen {
    std::mutex mu;
    std::vector<std::string> items;
    h_counter count;
    Seen() { h_counter_init(&count); }
    ~Seen() { h_counter_destroy(&count); }
    void add(std::string s) {
        {
            std::lock_guard<std::mutex> g(mu);
            items.push_back(std::move(s));
        }
        h_counter_add(&count, 1);
    }
    void wait(long n) { H_CHECKF(h_counter_wait(&count, n, H_WAIT_MS), "expected %ld records", n); }
    std::vector<std::string> snapshot() {
        std::lock_guard<std::mutex> g(mu);
        return items;
    }
};

// ---- the seed's quick start -------------------------------------------------------------------

void test_quick_start() {
    Server server;
    phx::Options opts = fast_options();
    opts.params_json = R"({"token":"my-user-token"})";
    phx::Socket socket(server.url(), opts);
    H_OK(static_cast<uint32_t>(socket.connect_wait()));
    H_CHECK(socket.state() == phx::SocketState::connected);
    phx::Channel channel = socket.channel("room:lobby");
    Seen seen;
    H_CHECK(channel.set_handler({[&](const phx::MessageView &m) {
                                     seen.add(std::string(m.event) + ": " + std::string(m.payload));
                                 },
                                 nullptr, nullptr}) == phx::Status::ok);
    auto joined = channel.join();
    const phx::Response join_reply = get(joined);
    H_EQ_STR(join_reply.payload.c_str(), R"({"joined":"room:lobby"})");
    auto pushed = channel.push("new_msg", R"({"body":"hello"})");
    phx::Response reply = get(pushed);
    H_EQ_STR(reply.status.c_str(), "ok");
    H_EQ_STR(reply.payload.c_str(), "{}");
    seen.wait(1);
    const std::string first = seen.snapshot()[0];
    H_EQ_STR(first.c_str(), R"(new_msg: {"body":"hello"})");
    auto left = channel.leave();
    get(left);
    H_CHECK(channel.state() == phx::ChannelState::closed);
    H_CHECK(socket.disconnect() == phx::Status::ok);
    H_CHECK(socket.state() == phx::SocketState::disconnected);
}

// ---- the error table, row by row --------------------------------------------------------------

void test_row_server_replied_error() {
    Server server;
    phx::Socket socket(server.url(), fast_options());
    socket.connect_wait();
    phx::Channel denied = socket.channel("room:private");
    auto join = denied.join();
    phx::Error e = get_error(join);
    H_CHECK(e.status() == phx::Status::reply);
    H_CHECK(e.response().has_value());
    H_EQ_STR(e.response()->status.c_str(), "error");
    H_EQ_STR(e.response()->payload.c_str(), R"({"reason":"unauthorized"})");
    phx::Channel lobby = socket.channel("room:lobby");
    auto lobby_join = lobby.join();
    get(lobby_join);
    auto push = lobby.push("fail", "{}");
    e = get_error(push);
    H_CHECK(e.status() == phx::Status::reply);
    H_EQ_STR(e.response()->payload.c_str(), R"({"reason":"nope"})");
    H_CHECK(std::string(e.what()).find("nope") != std::string::npos);
}

void test_row_socket_dropped_with_push_in_flight() {
    Server server;
    phx::Socket socket(server.url(), fast_options());
    socket.connect_wait();
    phx::Channel c = socket.channel("room:lobby");
    auto join = c.join();
    get(join);
    auto push = c.push("noreply", "{}");
    // A second push answered proves the first reached the server before the drop.
    auto barrier = c.push("echo", "{}");
    get(barrier);
    server.control("drop");
    phx::Error e = get_error(push);
    H_CHECK(e.status() == phx::Status::disconnected);
    H_CHECK(!e.response().has_value());
}

void test_row_leave_while_join_pending() {
    Server server;
    phx::Socket socket(server.url(), fast_options());
    socket.connect_wait();
    phx::Channel c = socket.channel("room:slow");
    auto join = c.join();
    auto leave = c.leave(500);
    phx::Error e = get_error(join);
    H_CHECK(e.status() == phx::Status::left_before_join);
    H_CHECK(!e.response().has_value());
    H_CHECK(leave.wait_for(kWait) == std::future_status::ready);
}

void test_row_join_and_push_timeouts() {
    Server server;
    phx::Socket socket(server.url(), fast_options());
    socket.connect_wait();
    phx::Channel lobby = socket.channel("room:lobby");
    auto joined = lobby.join();
    get(joined);
    auto push = lobby.push("noreply", "{}", 300);
    H_CHECK(get_error(push).status() == phx::Status::timeout);
    server.control("silence?on=1");
    phx::Channel other = socket.channel("room:other");
    auto join = other.join("{}", 300);
    H_CHECK(get_error(join).status() == phx::Status::timeout);
    H_CHECK(other.state() == phx::ChannelState::errored);
}

void test_row_state_errors() {
    Server server;
    phx::Socket socket(server.url(), fast_options());
    socket.connect_wait();
    phx::Channel c = socket.channel("room:lobby");
    EXPECT_THROW_STATUS(c.push("echo", "{}"), phx::Status::state);  // push() before join()
    auto join = c.join();
    EXPECT_THROW_STATUS(c.join(), phx::Status::state);  // join() twice
    get(join);
    server.control("delay?ms=500");                   // the leave stays pending a while
    auto leave = c.leave();
    H_CHECK(c.state() == phx::ChannelState::leaving);
    EXPECT_THROW_STATUS(c.push("echo", "{}"), phx::Status::state);  // push() on a leaving channel
    get(leave);
    EXPECT_THROW_STATUS(c.push("echo", "{}"), phx::Status::state);  // push() on a closed channel
    EXPECT_THROW_STATUS(c.push("echo", "not json"), phx::Status::invalid_argument);
    EXPECT_THROW_STATUS(phx::Socket("http://nope"), phx::Status::invalid_argument);
}

void test_row_channel_errored_and_closed() {
    Server server;
    phx::Socket socket(server.url(), fast_options());
    socket.connect_wait();
    phx::Channel c = socket.channel("room:crashy");
    auto join = c.join();
    get(join);
    auto in_flight = c.push("noreply", "{}");
    auto crash = c.push("crash", "{}");
    H_CHECK(get_error(in_flight).status() == phx::Status::channel_errored);
    H_CHECK(get_error(crash).status() == phx::Status::channel_errored);
    // disconnect() with work pending and buffered fails it at once with closed.
    phx::Channel slow = socket.channel("room:slow");
    auto slow_join = slow.join();
    auto buffered = slow.push("echo", "{}");
    socket.disconnect();
    H_CHECK(get_error(slow_join).status() == phx::Status::closed);
    H_CHECK(get_error(buffered).status() == phx::Status::closed);
    H_CHECK(slow.state() == phx::ChannelState::closed);
}

// ---- the non-throwing forms -------------------------------------------------------------------

void test_try_forms_and_completions() {
    Server server;
    phx::Socket socket(server.url(), fast_options());
    socket.connect_wait();
    phx::Channel c = socket.channel("echo:cpp");
    auto early = c.try_push("echo", "{}");
    H_CHECK(get(early).status == phx::Status::state);  // a refused call: a ready outcome
    auto join = c.try_join();
    phx::Outcome joined = get(join);
    H_CHECK(joined.ok() && joined.response && joined.response->status == "ok");

    std::promise<phx::Outcome> done;
    auto fut = done.get_future();
    H_CHECK(c.push("echo", R"({"a":1})", 0, [&](phx::Outcome o) { done.set_value(std::move(o)); }) == phx::Status::ok);
    phx::Outcome o = get(fut);
    H_CHECK(o.ok());
    H_EQ_STR(o.response->payload.c_str(), R"({"a":1})");

    const unsigned char bytes[] = {0, 1, 2, 255};
    auto bin = c.try_push_binary("echo", bytes, sizeof bytes);
    o = get(bin);
    H_CHECK(o.ok() && o.response->kind == phx::PayloadKind::binary);
    h_data_eq(__FILE__, __LINE__, o.response->payload.data(), o.response->payload.size(), bytes, sizeof bytes);

    // A refused call never runs its completion.
    std::atomic<int> calls{0};
    H_CHECK(c.join("{}", 0, [&](phx::Outcome) { calls++; }) == phx::Status::state);
    auto left = c.try_leave();
    H_CHECK(get(left).ok());
    H_EQ_U(calls.load(), 0);
}

// ---- bounds ------------------------------------------------------------------------------------

// The bounds of Options reach the socket: past max_channels a join is refused at once with its
// own status, and a refused join never runs its completion.
void test_channel_limit_from_options() {
    Server server;
    phx::Options opts = fast_options();
    opts.max_channels = 1;
    opts.max_buffered_pushes = 4;
    opts.max_write_queue_bytes = 1 << 20;
    opts.max_frame_size = 1 << 20;
    opts.max_event_queue_bytes = 1 << 20;
    phx::Socket socket(server.url(), opts);
    socket.connect_wait();
    phx::Channel a = socket.channel("room:a");
    phx::Channel b = socket.channel("room:b");
    auto joined = a.join();
    std::atomic<int> calls{0};
    H_CHECK(b.join("{}", 0, [&](phx::Outcome) { calls++; }) == phx::Status::too_many_channels);
    H_CHECK(b.state() == phx::ChannelState::closed);
    get(joined);  // throws unless the join succeeded
    H_EQ_U(calls.load(), 0);
}

// ---- destroying a socket with operations pending ---------------------------------------------

void test_destroy_socket_with_operations_pending() {
    Server server;
    auto socket = std::make_unique<phx::Socket>(server.url(), fast_options());
    socket->connect_wait();
    phx::Channel lobby = socket->channel("room:lobby");
    auto joined = lobby.join();
    get(joined);
    phx::Channel slow = socket->channel("room:slow");
    auto slow_join = slow.join();
    auto in_flight = lobby.push("noreply", "{}");
    auto buffered = slow.try_push("echo", "{}");
    std::promise<phx::Status> cb;
    auto cb_fut = cb.get_future();
    H_CHECK(lobby.push("noreply", "{}", 0, [&](phx::Outcome o) { cb.set_value(o.status); }) == phx::Status::ok);
    Seen states;
    lobby.set_handler({nullptr, [&](phx::ChannelState s) { states.add(phx::to_string(s)); }, nullptr});

    socket.reset();  // every pending operation completes with closed before this returns
    H_CHECK(in_flight.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
    H_CHECK(get_error(in_flight).status() == phx::Status::closed);
    H_CHECK(get_error(slow_join).status() == phx::Status::closed);
    H_CHECK(get(buffered).status == phx::Status::closed);
    H_CHECK(get(cb_fut) == phx::Status::closed);
    // The channel handles outlive their socket; their operations fail with closed.
    H_CHECK(lobby.state() == phx::ChannelState::closed);
    EXPECT_THROW_STATUS(lobby.push("echo", "{}"), phx::Status::closed);
    H_CHECK(lobby.set_handler({}) == phx::Status::closed);
}

// ---- callables that call back into the API ---------------------------------------------------

void test_callbacks_call_back_into_the_api() {
    Server server;
    phx::Socket socket(server.url(), fast_options());
    Seen socket_states;
    socket.set_handler({[&](phx::SocketState s, const phx::Reason *) {
                            // Blocking calls are refused on a library thread.
                            if (s == phx::SocketState::connected) socket_states.add(phx::to_string(socket.connect_wait(10)));
                        },
                        nullptr});
    socket.connect_wait();
    socket_states.wait(1);
    const std::string refused = socket_states.snapshot()[0];
    H_EQ_STR(refused.c_str(), phx::to_string(phx::Status::wrong_thread));

    phx::Channel room = socket.channel("room:reentrant");
    Seen seen;
    std::atomic<int> chain{0};
    std::function<void(phx::Outcome)> next;  // each completion starts the next push
    next = [&](phx::Outcome o) {
        H_CHECK(o.ok());
        int n = ++chain;
        if (n < 5) {
            H_CHECK(room.push("echo", "{\"n\":" + std::to_string(n) + "}", 0, next) == phx::Status::ok);
        } else {
            seen.add("chain done");
        }
    };
    room.set_handler({[&](const phx::MessageView &m) {
                          if (m.event == "pushed") {
                              // From the message handler: a push, and a fresh channel handle.
                              phx::Channel again = socket.channel("room:reentrant");
                              H_CHECK(again.id() == room.id());
                              auto f = again.try_push("echo", "{}");
                              (void)f;  // not waited on here: that would block this thread
                              H_CHECK(again.push("echo", "{}", 0, next) == phx::Status::ok);
                          }
                      },
                      nullptr, nullptr});
    auto joined = room.join();
    get(joined);
    auto pushed = room.push("push_me", "{}");
    get(pushed);
    seen.wait(1);
    H_EQ_U(chain.load(), 5);

    // Destroying the socket from inside one of its callbacks.
    phx::Socket *doomed = new phx::Socket(server.url(), fast_options());
    doomed->connect_wait();
    phx::Channel c = doomed->channel("room:doomed");
    std::promise<void> freed;
    auto freed_fut = freed.get_future();
    auto join = c.try_join("{}", 0);
    get(join);
    H_CHECK(c.push("echo", "{}", 0, [&](phx::Outcome) {
                delete doomed;  // allowed: does not wait for itself
                freed.set_value();
            }) == phx::Status::ok);
    H_CHECK(freed_fut.wait_for(kWait) == std::future_status::ready);
    H_CHECK(c.state() == phx::ChannelState::closed);
}

// ---- authentication ----------------------------------------------------------------------------

void test_auth_token_headers_and_provider() {
    Server server("--auth-token");
    phx::Options opts = fast_options();
    opts.headers = {{"X-Api-Key", "k-1"}};
    std::atomic<int> asked{0};
    // The request is answered on a thread of the application's own.
    opts.connect_provider = [&asked](phx::ProvideRequest request) {
        int n = ++asked;
        std::thread([n, r = std::move(request)]() mutable {
            std::string params = R"({"token":"fresh-)" + std::to_string(n) + R"("})";
            H_CHECK(r.complete(params, std::string("tok")) == phx::Status::ok);
        }).detach();
    };
    phx::Socket socket(server.url(), opts);
    H_OK(static_cast<uint32_t>(socket.connect_wait()));
    phx::Channel channel = socket.channel("connect_info");
    auto joined = channel.join();
    const std::string info = get(joined).payload;
    H_CHECKF(info.find(R"("auth_token":"tok")") != std::string::npos, "%s", info.c_str());
    H_CHECKF(info.find(R"("token":"fresh-1")") != std::string::npos, "%s", info.c_str());
    H_CHECKF(info.find(R"("x-api-key":"k-1")") != std::string::npos, "%s", info.c_str());
    H_CHECK(asked == 1);
    // A request dropped unanswered fails its attempt.
    phx::Options dropping = fast_options();
    dropping.connect_provider = [](phx::ProvideRequest) {};
    phx::Socket other(server.url(), dropping);
    Seen reasons;
    H_CHECK(other.set_handler({[&](phx::SocketState, const phx::Reason *r) {
                                   if (r) reasons.add(std::to_string(r->kind) + " " + r->text);
                               },
                               nullptr}) == phx::Status::ok);
    H_CHECK(other.connect() == phx::Status::ok);
    reasons.wait(1);
    const std::string first = reasons.snapshot()[0];
    H_CHECKF(first.find("dropped unanswered") != std::string::npos, "%s", first.c_str());
    H_CHECK(other.last_reason().kind == PHX_REASON_PROVIDER);
    // Refused upgrades report their status and Retry-After.
    server.control("refuse?status=503&retry_after=2");
    phx::Options limited = fast_options();
    limited.max_refusals = 1;
    phx::Socket refused(server.url(), limited);
    H_CHECK(refused.connect_wait(3000) == phx::Status::closed);
    H_CHECK(refused.last_reason().kind == PHX_REASON_GAVE_UP);
    H_CHECK(refused.last_reason().code == 503);
}

void test_move_only_raii() {
    Server server;
    phx::Socket a(server.url(), fast_options());
    phx::Socket b(std::move(a));
    H_CHECK(!a && b);
    H_CHECK(a.state() == phx::SocketState::disconnected);
    phx::Socket c;
    c = std::move(b);
    H_CHECK(c.connect_wait() == phx::Status::ok);
    phx::Channel x = c.channel("room:x");
    phx::Channel y = c.channel("room:x");
    H_CHECK(x.get() == y.get() && x.id() == y.id() && x.id() != 0);
    phx::Channel z(std::move(x));
    H_CHECK(!x && z.id() == y.id());
    H_CHECK(x.state() == phx::ChannelState::closed);
}


// ---- presence, rejoin awareness, statistics, probes ----------------------------------------------

void test_presence_rejoined_stats_probe() {
    Server server;
    phx::Options o = fast_options();
    o.params_json = "{\"token\":\"alice\"}";
    o.heartbeat_timeout_ms = 5000;
    o.stop_close_codes = {4001};
    Seen presence, rejoined;  // outlive the socket: its callables use them until it is destroyed
    phx::Socket socket(server.url(), o);
    phx::Channel room = socket.channel("presence:room1");
    phx::ChannelHandler h;
    h.on_presence = [&](const phx::PresenceChangeView &c) {
        presence.add(std::string(c.join ? "join " : "leave ") + std::string(c.key) + (c.current ? " had" : " new"));
    };
    h.on_presence_sync = [&] { presence.add("sync"); };
    h.on_rejoined = [&](const phx::Response &r, bool missed) { rejoined.add(r.status + (missed ? " missed" : " complete")); };
    H_CHECK(room.set_handler(std::move(h)) == phx::Status::ok);
    socket.connect_wait();
    auto joined = room.join();
    get(joined);
    presence.wait(2);
    auto items = presence.snapshot();
    H_EQ_STR(items[0].c_str(), "join alice new");

    phx_socket_stats_t st;
    H_CHECK(socket.stats(st) == phx::Status::ok);
    H_EQ_U(st.connects, 1);
    std::promise<std::pair<phx::Status, std::uint64_t>> probed;
    auto probed_fut = probed.get_future();
    H_CHECK(socket.probe([&](phx::Status s, std::uint64_t rtt) { probed.set_value({s, rtt}); }) == phx::Status::ok);
    H_CHECK(probed_fut.wait_for(kWait) == std::future_status::ready);
    auto result = probed_fut.get();
    H_CHECK(result.first == phx::Status::ok && result.second > 0);

    server.control("drop");
    rejoined.wait(1);
    const std::string first_rejoin = rejoined.snapshot()[0];
    H_EQ_STR(first_rejoin.c_str(), "ok missed");
    H_CHECK(socket.stats(st) == phx::Status::ok);
    H_EQ_U(st.reconnects, 1);
}

static_assert(!std::is_copy_constructible_v<phx::Socket> && std::is_nothrow_move_constructible_v<phx::Socket>);
static_assert(!std::is_copy_constructible_v<phx::Channel> && std::is_nothrow_move_constructible_v<phx::Channel>);

}  // namespace

static const h_case cases[] = {
    H_CASE(quick_start),
    H_CASE(row_server_replied_error),
    H_CASE(row_socket_dropped_with_push_in_flight),
    H_CASE(row_leave_while_join_pending),
    H_CASE(row_join_and_push_timeouts),
    H_CASE(row_state_errors),
    H_CASE(row_channel_errored_and_closed),
    H_CASE(try_forms_and_completions),
    H_CASE(channel_limit_from_options),
    H_CASE(destroy_socket_with_operations_pending),
    H_CASE(callbacks_call_back_into_the_api),
    H_CASE(move_only_raii),
    H_CASE(presence_rejoined_stats_probe),
    H_CASE(auth_token_headers_and_provider),
};

H_MAIN(cases)
