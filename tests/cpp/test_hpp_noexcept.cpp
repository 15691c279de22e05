// test_hpp_noexcept.cpp: include/phx.hpp built with -fno-exceptions: the non-throwing forms
// (Socket::create, Socket::channel(topic, out), try_* futures, completion callables) and the
// seed's error table as statuses.
#include <phx.hpp>

#include "harness.h"

#include <chrono>
#include <string>

#if PHX_HPP_EXCEPTIONS
#error "this file must be compiled with -fno-exceptions"
#endif

namespace {

phx::Options fast_options() {
    phx::Options o;
    o.timeout_ms = H_OP_MS;
    o.reconnect_schedule_ms = {50, 100, 200};
    o.rejoin_schedule_ms = {50, 100, 200};
    return o;
}

phx::Outcome get(std::future<phx::Outcome> &f) {
    H_CHECKF(f.wait_for(std::chrono::milliseconds(H_WAIT_MS)) == std::future_status::ready, "no outcome in time");
    return f.get();
}

#define H_PHX(expr, want) H_STATUS(static_cast<uint32_t>(expr), static_cast<uint32_t>(want))

void test_quick_start_and_error_rows() {
    h_server *srv = h_server_start();
    {
        phx::Socket bad;
        H_PHX(phx::Socket::create("http://nope", {}, bad), phx::Status::invalid_argument);
        H_CHECK(!bad);

        phx::Socket socket;
        H_PHX(phx::Socket::create(h_server_url(srv), fast_options(), socket), phx::Status::ok);
        H_PHX(socket.connect_wait(), phx::Status::ok);
        phx::Channel lobby;
        H_PHX(socket.channel("room:lobby", lobby), phx::Status::ok);

        auto before = lobby.try_push("echo", "{}");
        H_PHX(get(before).status, phx::Status::state);  // push() before join()
        auto join = lobby.try_join();
        auto twice = lobby.try_join();
        H_PHX(get(twice).status, phx::Status::state);  // join() twice
        phx::Outcome joined = get(join);
        H_CHECK(joined.ok());
        H_EQ_STR(joined.response->payload.c_str(), R"({"joined":"room:lobby"})");

        auto fail = lobby.try_push("fail", "{}");
        phx::Outcome o = get(fail);
        H_PHX(o.status, phx::Status::reply);  // the server replied error, with its response
        H_EQ_STR(o.response->payload.c_str(), R"({"reason":"nope"})");

        auto late = lobby.try_push("noreply", "{}", 200);
        H_PHX(get(late).status, phx::Status::timeout);

        std::promise<phx::Outcome> done;
        auto done_fut = done.get_future();
        H_PHX(lobby.push("echo", R"({"cb":1})", 0, [&](phx::Outcome r) { done.set_value(std::move(r)); }), phx::Status::ok);
        o = get(done_fut);
        H_CHECK(o.ok());
        H_EQ_STR(o.response->payload.c_str(), R"({"cb":1})");

        auto in_flight = lobby.try_push("noreply", "{}");
        auto barrier = lobby.try_push("echo", "{}");
        H_CHECK(get(barrier).ok());
        h_control(srv, "drop");
        H_PHX(get(in_flight).status, phx::Status::disconnected);  // the socket dropped

        phx::Channel slow;
        H_PHX(socket.channel("room:slow", slow), phx::Status::ok);
        auto slow_join = slow.try_join();
        auto leave = slow.try_leave(300);
        H_PHX(get(slow_join).status, phx::Status::left_before_join);
        get(leave);
        auto closed = slow.try_push("echo", "{}");
        H_PHX(get(closed).status, phx::Status::state);  // push() on a closed channel
    }
    h_server_stop(srv);
}

}  // namespace

static const h_case cases[] = {
    H_CASE(quick_start_and_error_rows),
};

H_MAIN(cases)
