/* test_lifecycle.c: what phx_socket_free, handler replacement and channel references promise. */
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

static void record_wake(void *user_data) {
    h_op *op = (h_op *)user_data;
    h_log_note(op->log, op->id, PHX_OK, "wake");
}

/* Once phx_socket_free returns, every pending operation has completed, every free_user_data
 * has run exactly once, and no callback runs again, even with a flood under way. */
static void test_free_then_silence(void) {
    h_server *srv = h_server_start();
    h_log *log = h_log_new();
    phx_socket_t *s = h_socket(srv, log, 1);
    phx_channel_t *c;
    const h_rec *r;

    H_OK(phx_socket_events_enable(s, 16, record_wake, h_op_new(log, 3), h_on_free));
    h_connect(s);
    c = h_join(s, "room:lobby", log, 2);
    H_OK(phx_channel_push(c, "noreply", "{}", H_OP_MS, h_on_reply, h_op_new(log, 10)));
    H_OK(phx_channel_push(c, "flood", "{\"n\":3000}", H_OP_MS, h_on_reply, h_op_new(log, 11)));
    H_CHECK(h_log_wait(log, H_MESSAGE, 2, H_ANY_STATE, "flood_msg", 1, H_WAIT_MS));

    phx_socket_free(s);

    /* Everything already happened, without waiting. */
    H_EQ_U(h_log_count(log, H_FREE, 1, H_ANY_STATE, NULL), 1);
    H_EQ_U(h_log_count(log, H_FREE, 2, H_ANY_STATE, NULL), 1);
    H_EQ_U(h_log_count(log, H_FREE, 3, H_ANY_STATE, NULL), 1);
    r = h_log_get(log, H_REPLY, 10, H_ANY_STATE, NULL, 0);
    H_CHECKF(r != NULL, "%s", "the pending push had not completed when phx_socket_free returned");
    H_STATUS(r->status, PHX_ERR_CLOSED);
    r = h_log_get(log, H_REPLY, 11, H_ANY_STATE, NULL, 0);
    H_CHECKF(r != NULL, "%s", "the flood push had not completed when phx_socket_free returned");
    H_CHECKF(r->status == PHX_ERR_CLOSED || r->status == PHX_OK, "flood completed with %s",
             phx_status_str(r->status));
    if (h_log_seal_and_watch(log, 300) != 0) {
        h_log_dump(log);
        H_CHECKF(0, "%zu callback(s) after phx_socket_free returned", h_log_late(log));
    }
    /* The channel handle outlives the socket. */
    H_EQ_U(h_channel_state(c), PHX_CHANNEL_CLOSED);
    phx_channel_free(c);
    h_log_free(log);
    h_server_stop(srv);
}

/* free_user_data runs exactly once per registration: on replacement, removal, channel close
 * or socket free; a replaced handler is never called again. */
static void test_handler_replacement(void) {
    h_server *srv = h_server_start();
    h_log *log = h_log_new();
    phx_socket_t *s = h_socket(srv, log, 1); /* socket handler A: id 1 */
    phx_socket_handler_t sh = h_socket_handler();
    phx_channel_handler_t ch = h_channel_handler();
    phx_channel_t *c = NULL;
    size_t calls_a, calls_x;

    h_connect(s);
    /* Replace A by B (id 2): A is released. */
    H_OK(phx_socket_set_handler(s, &sh, h_op_new(log, 2), h_on_free));
    H_CHECK(h_log_wait(log, H_FREE, 1, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    calls_a = h_log_count(log, H_SOCKET_STATE, 1, H_ANY_STATE, NULL);
    /* Remove B: released; user_data and free_user_data are ignored with NULL. */
    H_OK(phx_socket_set_handler(s, NULL, h_op_new(log, 99), h_on_free));
    H_CHECK(h_log_wait(log, H_FREE, 2, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    /* C (id 3) stays until the socket is freed. */
    H_OK(phx_socket_set_handler(s, &sh, h_op_new(log, 3), h_on_free));

    /* Channel: X (id 4) replaced by Y (id 5); Y released when the channel closes. */
    H_OK(phx_socket_channel(s, "room:handlers", &c));
    H_OK(phx_channel_set_handler(c, &ch, h_op_new(log, 4), h_on_free));
    H_OK(phx_channel_join_wait(c, NULL, H_OP_MS, NULL));
    H_OK(phx_channel_set_handler(c, &ch, h_op_new(log, 5), h_on_free));
    H_CHECK(h_log_wait(log, H_FREE, 4, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    calls_x = h_log_count(log, H_MESSAGE, 4, H_ANY_STATE, NULL) + h_log_count(log, H_CHANNEL_STATE, 4, H_ANY_STATE, NULL);
    H_OK(phx_channel_push_wait(c, "push_me", "{}", H_OP_MS, NULL));
    H_EQ_U(h_log_count(log, H_MESSAGE, 5, H_ANY_STATE, "pushed"), 1);
    H_OK(phx_channel_leave_wait(c, H_OP_MS));
    H_CHECK(h_log_wait(log, H_FREE, 5, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    H_EQ_U(h_log_count(log, H_CHANNEL_STATE, 5, PHX_CHANNEL_CLOSED, NULL), 1);
    /* A closed channel takes no new handler. */
    H_STATUS(phx_channel_set_handler(c, &ch, h_op_new(log, 6), h_on_free), PHX_ERR_CLOSED);

    H_OK(phx_socket_disconnect(s));
    h_wait_state(log, H_SOCKET_STATE, 3, PHX_SOCKET_DISCONNECTED);
    phx_socket_free(s);

    H_EQ_U(h_log_count(log, H_FREE, 1, H_ANY_STATE, NULL), 1);
    H_EQ_U(h_log_count(log, H_FREE, 2, H_ANY_STATE, NULL), 1);
    H_EQ_U(h_log_count(log, H_FREE, 3, H_ANY_STATE, NULL), 1);
    H_EQ_U(h_log_count(log, H_FREE, 4, H_ANY_STATE, NULL), 1);
    H_EQ_U(h_log_count(log, H_FREE, 5, H_ANY_STATE, NULL), 1);
    H_EQ_U(h_log_count(log, H_FREE, 6, H_ANY_STATE, NULL), 0);
    H_EQ_U(h_log_count(log, H_FREE, 99, H_ANY_STATE, NULL), 0);
    /* Replaced handlers were not called again. */
    H_EQ_U(h_log_count(log, H_SOCKET_STATE, 1, H_ANY_STATE, NULL), calls_a);
    H_EQ_U(h_log_count(log, H_MESSAGE, 4, H_ANY_STATE, NULL) + h_log_count(log, H_CHANNEL_STATE, 4, H_ANY_STATE, NULL), calls_x);
    H_EQ_U(h_log_count(log, H_SOCKET_STATE, 2, H_ANY_STATE, NULL), 0);
    phx_channel_free(c);
    h_log_free(log);
    h_server_stop(srv);
}

/* Channel references: counted, and valid after the socket is freed (operations refused). */
static void test_channel_outlives_socket(void) {
    h_server *srv = h_server_start();
    phx_socket_t *s = h_socket(srv, NULL, 0);
    phx_channel_t *joined = NULL, *again = NULL, *never = NULL;
    phx_channel_handler_t ch = h_channel_handler();
    h_log *log = h_log_new();
    static const uint8_t b[] = {1};

    h_connect(s);
    joined = h_join(s, "room:outlive", NULL, 0);
    H_OK(phx_socket_channel(s, "room:outlive", &again));
    H_CHECK(again == joined); /* the same channel: the same pointer, another reference */
    H_OK(phx_socket_channel(s, "room:never", &never));
    phx_channel_free(again); /* one reference released: the other still works */
    H_OK(phx_channel_push_wait(joined, "echo", "{}", H_OP_MS, NULL));

    phx_socket_free(s);

    H_EQ_U(h_channel_state(joined), PHX_CHANNEL_CLOSED);
    H_EQ_U(h_channel_state(never), PHX_CHANNEL_CLOSED);
    H_STATUS(phx_channel_join(never, NULL, 100, h_on_reply, h_op_new(log, 1)), PHX_ERR_CLOSED);
    H_STATUS(phx_channel_join_wait(never, NULL, 100, NULL), PHX_ERR_CLOSED);
    H_STATUS(phx_channel_push(joined, "echo", "{}", 100, h_on_reply, h_op_new(log, 2)), PHX_ERR_CLOSED);
    H_STATUS(phx_channel_push_binary(joined, "echo", b, 1, 100, NULL, NULL), PHX_ERR_CLOSED);
    H_STATUS(phx_channel_push_wait(joined, "echo", "{}", 100, NULL), PHX_ERR_CLOSED);
    H_STATUS(phx_channel_leave(joined, 100, h_on_reply, h_op_new(log, 3)), PHX_ERR_CLOSED);
    H_STATUS(phx_channel_leave_wait(joined, 100), PHX_ERR_CLOSED);
    H_STATUS(phx_channel_set_handler(never, &ch, h_op_new(log, 4), h_on_free), PHX_ERR_CLOSED);
    phx_channel_free(joined);
    phx_channel_free(never);
    /* Nothing was called: failed calls never complete and consume nothing. */
    H_EQ_U(h_log_count(log, H_REPLY, H_ANY, H_ANY_STATE, NULL), 0);
    H_EQ_U(h_log_count(log, H_FREE, H_ANY, H_ANY_STATE, NULL), 0);
    h_log_free(log);
    h_server_stop(srv);
}

/* A socket disconnected by the app can connect again; the server closing it reconnects. */
static void test_reconnect(void) {
    h_server *srv = h_server_start();
    h_log *log = h_log_new();
    phx_socket_t *s = h_socket(srv, log, 1);
    phx_channel_t *c, *fresh;
    phx_reason_t reason;

    h_connect(s);
    c = h_join(s, "room:again", log, 2);
    H_OK(phx_socket_disconnect(s));
    h_wait_state(log, H_CHANNEL_STATE, 2, PHX_CHANNEL_CLOSED);
    h_wait_state(log, H_SOCKET_STATE, 1, PHX_SOCKET_DISCONNECTED);
    H_OK(phx_socket_connect_wait(s, H_WAIT_MS));
    fresh = h_join(s, "room:again", log, 3);
    H_CHECK(fresh != c);

    /* The server closes the connection (code 4000): the socket reconnects, the channel rejoins. */
    h_control(srv, "close?code=4000");
    h_wait_state(log, H_SOCKET_STATE, 1, PHX_SOCKET_RECONNECTING);
    H_CHECK(h_log_wait(log, H_REJOIN, 3, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    H_STATUS(h_log_get(log, H_REJOIN, 3, H_ANY_STATE, NULL, 0)->status, PHX_OK);
    H_OK(phx_socket_last_reason(s, &reason));
    H_EQ_U(reason.kind, PHX_REASON_CLOSE_FRAME);
    H_EQ_U(reason.code, 4000);
    H_OK(phx_channel_push_wait(fresh, "echo", "{}", H_OP_MS, NULL));

    phx_channel_free(c);
    phx_channel_free(fresh);
    phx_socket_free(s);
    h_log_free(log);
    h_server_stop(srv);
}

/* A thread blocked in phx_socket_connect_wait when another frees the socket: the wait keeps
 * what it uses alive and returns PHX_ERR_CLOSED (the suite runs this under valgrind and ASan,
 * which catch any use after free). Nobody listens on the URL, so the wait never succeeds. */
typedef struct waiter {
    phx_socket_t *s;
    phx_status_t rc;
} waiter;

static void *wait_connected(void *arg) {
    waiter *w = (waiter *)arg;
    w->rc = phx_socket_connect_wait(w->s, 60000);
    return NULL;
}

static void test_free_while_waiting(void) {
    int round;
    for (round = 0; round < 20; round++) {
        phx_options_t *o = h_options();
        waiter w;
        pthread_t th;
        double deadline = h_now_ms() + H_WAIT_MS;
        w.s = NULL;
        w.rc = PHX_OK;
        H_OK(phx_socket_new("ws://127.0.0.1:1/socket/websocket", o, &w.s));
        phx_options_free(o);
        H_CHECK(pthread_create(&th, NULL, wait_connected, &w) == 0);
        /* The wait has begun once its connect is visible (it holds the socket from then on). */
        while (h_socket_state(w.s) == PHX_SOCKET_DISCONNECTED && h_now_ms() < deadline) sched_yield();
        H_CHECK(h_socket_state(w.s) != PHX_SOCKET_DISCONNECTED);
        phx_socket_free(w.s);
        H_CHECK(pthread_join(th, NULL) == 0);
        H_STATUS(w.rc, PHX_ERR_CLOSED);
    }
}

static const h_case cases[] = {
    H_CASE(free_while_waiting),
    H_CASE(free_then_silence),
    H_CASE(handler_replacement),
    H_CASE(channel_outlives_socket),
    H_CASE(reconnect),
};

H_MAIN(cases)
