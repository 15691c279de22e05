/* test_reentrancy.c: calling libphx from inside its own callbacks. */
#include "harness.h"

#include <stdlib.h>

#define SENTINEL ((void *)0x5a5a5a5a)

/* What the callbacks below need; reached through h_op.ctx. */
typedef struct reent {
    h_log *log;
    phx_socket_t *s;
    phx_channel_t *c;
    phx_channel_t *c2;
    int freed;        /* the socket was freed inside a callback */
    int messages;     /* messages seen by the freeing handler */
    int done;         /* the one-shot action already ran */
} reent;

static reent *ctx_of(void *user_data) { return (reent *)((h_op *)user_data)->ctx; }

/* Waits briefly for a record that must never come (a callback after the socket was freed). */
static void expect_no_late_callbacks(h_log *log) {
    if (h_log_seal_and_watch(log, 300) != 0) {
        h_log_dump(log);
        H_CHECKF(0, "%zu callback(s) ran after the socket was freed", h_log_late(log));
    }
}

/* ---- phx_socket_free inside the socket's own state callback --------------------------------- */

static void free_on_connected(void *user_data, uint32_t state, const phx_reason_t *reason) {
    reent *x = ctx_of(user_data);
    h_on_socket_state(user_data, state, reason);
    if (state == PHX_SOCKET_CONNECTED && !x->freed) {
        x->freed = 1;
        phx_socket_free(x->s);
        /* Still inside the callback: nothing else has run, the user data is still ours. */
        h_log_note(x->log, 1, PHX_OK, "freed");
    }
}

static void test_free_in_state_callback(void) {
    h_server *srv = h_server_start();
    reent x;
    h_op *sop;
    phx_socket_handler_t sh = h_socket_handler();
    phx_channel_handler_t ch = h_channel_handler();
    const h_rec *r;
    uint32_t st = 99;

    memset(&x, 0, sizeof x);
    x.log = h_log_new();
    x.s = h_socket(srv, NULL, 0);
    sop = h_op_new(x.log, 1);
    sop->ctx = &x;
    sh.on_state = free_on_connected;
    H_OK(phx_socket_set_handler(x.s, &sh, sop, h_on_free));
    /* A join queued before connecting: it is pending when the socket goes. */
    H_OK(phx_socket_channel(x.s, "room:lobby", &x.c));
    H_OK(phx_channel_set_handler(x.c, &ch, h_op_new(x.log, 2), h_on_free));
    H_OK(phx_channel_join(x.c, NULL, H_OP_MS, h_on_reply, h_op_new(x.log, 10)));
    H_OK(phx_socket_connect(x.s)); /* async: the callback frees the socket, so no _wait here */

    H_CHECK(h_log_wait(x.log, H_FREE, 1, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    H_CHECK(h_log_wait(x.log, H_FREE, 2, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    /* The join completes exactly once: PHX_ERR_CLOSED, or PHX_OK if its reply was already in
     * when the socket was freed. */
    r = h_wait_reply(x.log, 10);
    H_CHECKF(r->status == PHX_ERR_CLOSED || r->status == PHX_OK, "join completed with %s",
             phx_status_str(r->status));
    H_EQ_U(h_log_count(x.log, H_NOTE, 1, H_ANY_STATE, "freed"), 1);
    /* The socket handler's free came after its last call. */
    H_CHECK(h_log_get(x.log, H_FREE, 1, H_ANY_STATE, NULL, 0)->at_ms >=
            h_log_get(x.log, H_NOTE, 1, H_ANY_STATE, "freed", 0)->at_ms);
    expect_no_late_callbacks(x.log);

    /* The channel handle outlives its socket. */
    H_OK(phx_channel_state(x.c, &st));
    H_EQ_U(st, PHX_CHANNEL_CLOSED);
    {
        phx_status_t ps = phx_channel_push(x.c, "echo", "{}", 100, NULL, NULL);
        H_CHECKF(ps == PHX_ERR_CLOSED || ps == PHX_ERR_STATE, "push after free: %s", phx_status_str(ps));
    }
    phx_channel_free(x.c);
    h_log_free(x.log);
    h_server_stop(srv);
}

/* ---- phx_socket_free inside a message callback, in the middle of a flood ------------------ */

static void free_on_tenth_message(void *user_data, const phx_message_t *msg) {
    reent *x = ctx_of(user_data);
    h_on_message(user_data, msg);
    if (++x->messages == 10) {
        x->freed = 1;
        phx_socket_free(x->s);
        h_log_note(x->log, 2, PHX_OK, "freed");
    }
}

static void test_free_in_message_callback(void) {
    h_server *srv = h_server_start();
    reent x;
    h_op *cop;
    phx_channel_handler_t ch = h_channel_handler();
    const h_rec *r;

    memset(&x, 0, sizeof x);
    x.log = h_log_new();
    x.s = h_socket(srv, x.log, 1);
    h_connect(x.s);
    H_OK(phx_socket_channel(x.s, "room:lobby", &x.c));
    cop = h_op_new(x.log, 2);
    cop->ctx = &x;
    ch.on_message = free_on_tenth_message;
    H_OK(phx_channel_set_handler(x.c, &ch, cop, h_on_free));
    H_OK(phx_channel_join_wait(x.c, NULL, H_OP_MS, NULL));
    H_OK(phx_channel_push(x.c, "flood", "{\"n\":500}", H_OP_MS, h_on_reply, h_op_new(x.log, 10)));

    H_CHECK(h_log_wait(x.log, H_FREE, 1, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    H_CHECK(h_log_wait(x.log, H_FREE, 2, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    r = h_wait_reply(x.log, 10);
    H_STATUS(r->status, PHX_ERR_CLOSED);
    /* No message after the one whose callback freed the socket. */
    H_EQ_U(h_log_count(x.log, H_MESSAGE, 2, H_ANY_STATE, "flood_msg"), 10);
    expect_no_late_callbacks(x.log);
    phx_channel_free(x.c);
    h_log_free(x.log);
    h_server_stop(srv);
}

/* ---- push inside a message callback -------------------------------------------------------- */

static void push_on_pushed(void *user_data, const phx_message_t *msg) {
    reent *x = ctx_of(user_data);
    h_on_message(user_data, msg);
    if (strcmp(msg->event, "pushed") == 0 && !x->done) {
        phx_status_t st;
        x->done = 1;
        st = phx_channel_push(x->c, "echo", "{\"from\":\"callback\"}", H_OP_MS, h_on_reply,
                              h_op_new(x->log, 20));
        h_log_note(x->log, 20, st, "push in callback");
    }
}

static void test_push_in_message_callback(void) {
    h_server *srv = h_server_start();
    reent x;
    h_op *cop;
    phx_channel_handler_t ch = h_channel_handler();
    const h_rec *r;

    memset(&x, 0, sizeof x);
    x.log = h_log_new();
    x.s = h_socket(srv, x.log, 1);
    h_connect(x.s);
    H_OK(phx_socket_channel(x.s, "room:lobby", &x.c));
    cop = h_op_new(x.log, 2);
    cop->ctx = &x;
    ch.on_message = push_on_pushed;
    H_OK(phx_channel_set_handler(x.c, &ch, cop, h_on_free));
    H_OK(phx_channel_join_wait(x.c, NULL, H_OP_MS, NULL));
    H_OK(phx_channel_push_wait(x.c, "push_me", "{\"x\":1}", H_OP_MS, NULL));

    r = h_wait_reply(x.log, 20);
    H_STATUS(h_log_get(x.log, H_NOTE, 20, H_ANY_STATE, NULL, 0)->status, PHX_OK);
    H_STATUS(r->status, PHX_OK);
    H_DATA_STR(r, "{\"from\":\"callback\"}");
    phx_channel_free(x.c);
    phx_socket_free(x.s);
    h_log_free(x.log);
    h_server_stop(srv);
}

/* ---- leave inside a reply callback ------------------------------------------------------- */

static void leave_on_reply(void *user_data, uint32_t status, const phx_reply_t *reply) {
    reent *x = ctx_of(user_data);
    phx_status_t st;
    h_on_reply(user_data, status, reply);
    st = phx_channel_leave(x->c, H_OP_MS, h_on_reply, h_op_new(x->log, 21));
    h_log_note(x->log, 21, st, "leave in callback");
}

static void test_leave_in_reply_callback(void) {
    h_server *srv = h_server_start();
    reent x;
    h_op *op;
    const h_rec *r;

    memset(&x, 0, sizeof x);
    x.log = h_log_new();
    x.s = h_socket(srv, x.log, 1);
    h_connect(x.s);
    x.c = h_join(x.s, "room:lobby", x.log, 2);
    op = h_op_new(x.log, 20);
    op->ctx = &x;
    H_OK(phx_channel_push(x.c, "echo", "{\"a\":1}", H_OP_MS, leave_on_reply, op));

    r = h_wait_reply(x.log, 20);
    H_STATUS(r->status, PHX_OK);
    r = h_wait_reply(x.log, 21);
    H_STATUS(h_log_get(x.log, H_NOTE, 21, H_ANY_STATE, NULL, 0)->status, PHX_OK);
    H_STATUS(r->status, PHX_OK);
    h_wait_state(x.log, H_CHANNEL_STATE, 2, PHX_CHANNEL_CLOSED);
    H_EQ_U(h_channel_state(x.c), PHX_CHANNEL_CLOSED);
    H_EQ_U(h_server_stat(srv, "leaves", "room:lobby"), 1);
    H_EQ_U(h_server_stat(srv, "joined", "room:lobby"), 0);
    phx_channel_free(x.c);
    phx_socket_free(x.s);
    h_log_free(x.log);
    h_server_stop(srv);
}

/* ---- blocking calls inside callbacks -------------------------------------------------------- */

/* Makes every blocking call; each must refuse with PHX_ERR_WRONG_THREAD and touch nothing. */
static void try_blocking_calls(reent *x, uint64_t id) {
    phx_response_t *resp = (phx_response_t *)SENTINEL;
    phx_event_t *ev = (phx_event_t *)SENTINEL;
    phx_status_t st;

    st = phx_socket_connect_wait(x->s, 100);
    h_log_note(x->log, id, st, "connect_wait");
    st = phx_channel_join_wait(x->c2, NULL, 100, &resp);
    h_log_note(x->log, id, st, "join_wait");
    st = phx_channel_push_wait(x->c, "echo", "{}", 100, &resp);
    h_log_note(x->log, id, st, "push_wait");
    st = phx_channel_leave_wait(x->c, 100);
    h_log_note(x->log, id, st, "leave_wait");
    st = phx_socket_next_event(x->s, 100, &ev);
    h_log_note(x->log, id, st, "next_event");
    h_log_note(x->log, id, resp == (phx_response_t *)SENTINEL && ev == (phx_event_t *)SENTINEL ? PHX_OK : PHX_ERR_INTERNAL,
               "outputs untouched");
    /* Non-blocking event polling is fine on a library thread. */
    st = phx_socket_try_event(x->s, &ev);
    if (st == PHX_OK) {
        phx_event_free(ev);
    }
    h_log_note(x->log, id, (st == PHX_OK || st == PHX_ERR_AGAIN) ? (uint32_t)PHX_OK : (uint32_t)st, "try_event");
}

static void blocking_on_reply(void *user_data, uint32_t status, const phx_reply_t *reply) {
    try_blocking_calls(ctx_of(user_data), 30);
    h_on_reply(user_data, status, reply);
}

static void blocking_on_message(void *user_data, const phx_message_t *msg) {
    reent *x = ctx_of(user_data);
    if (!x->done) {
        x->done = 1;
        try_blocking_calls(x, 31);
    }
    h_on_message(user_data, msg);
}

static void check_wrong_thread(h_log *log, uint64_t id) {
    static const char *const calls[] = {"connect_wait", "join_wait", "push_wait", "leave_wait", "next_event"};
    size_t i;
    for (i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        const h_rec *r = h_log_get(log, H_NOTE, id, H_ANY_STATE, calls[i], 0);
        H_CHECKF(r != NULL, "%s was not tried", calls[i]);
        H_CHECKF(r->status == PHX_ERR_WRONG_THREAD, "%s in a callback returned %s", calls[i],
                 phx_status_str(r->status));
    }
    H_STATUS(h_log_get(log, H_NOTE, id, H_ANY_STATE, "outputs untouched", 0)->status, PHX_OK);
    H_STATUS(h_log_get(log, H_NOTE, id, H_ANY_STATE, "try_event", 0)->status, PHX_OK);
}

static void test_blocking_in_callback(void) {
    h_server *srv = h_server_start();
    reent x;
    h_op *op, *cop;
    phx_channel_handler_t ch = h_channel_handler();
    const h_rec *r;

    memset(&x, 0, sizeof x);
    x.log = h_log_new();
    x.s = h_socket(srv, x.log, 1);
    H_OK(phx_socket_events_enable(x.s, 64, NULL, NULL, NULL));
    h_connect(x.s);
    H_OK(phx_socket_channel(x.s, "room:lobby", &x.c));
    cop = h_op_new(x.log, 2);
    cop->ctx = &x;
    ch.on_message = blocking_on_message;
    H_OK(phx_channel_set_handler(x.c, &ch, cop, h_on_free));
    H_OK(phx_channel_join_wait(x.c, NULL, H_OP_MS, NULL));
    H_OK(phx_socket_channel(x.s, "room:other", &x.c2));

    /* In a reply callback. */
    op = h_op_new(x.log, 20);
    op->ctx = &x;
    H_OK(phx_channel_push(x.c, "echo", "{}", H_OP_MS, blocking_on_reply, op));
    r = h_wait_reply(x.log, 20);
    H_STATUS(r->status, PHX_OK);
    check_wrong_thread(x.log, 30);
    /* In a message callback. */
    H_OK(phx_channel_push_wait(x.c, "push_me", "{}", H_OP_MS, NULL));
    check_wrong_thread(x.log, 31);

    /* The refused calls had no effect: the channel is joined, the other can join. */
    H_EQ_U(h_channel_state(x.c), PHX_CHANNEL_JOINED);
    H_EQ_U(h_channel_state(x.c2), PHX_CHANNEL_CLOSED);
    H_OK(phx_channel_join_wait(x.c2, NULL, H_OP_MS, NULL));
    H_OK(phx_channel_push_wait(x.c, "echo", "{}", H_OP_MS, NULL));

    phx_channel_free(x.c);
    phx_channel_free(x.c2);
    phx_socket_free(x.s);
    h_log_free(x.log);
    h_server_stop(srv);
}

static const h_case cases[] = {
    H_CASE(free_in_state_callback),
    H_CASE(free_in_message_callback),
    H_CASE(push_in_message_callback),
    H_CASE(leave_in_reply_callback),
    H_CASE(blocking_in_callback),
};

H_MAIN(cases)
