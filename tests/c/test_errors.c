/* test_errors.c: every row of the client contract's error table, through the C API
 * (tests/fixtures/client-contract.md, "Errors"). */
#include "harness.h"

#include <stdlib.h>

/* A connected socket with a recording handler (id 1) on a fresh server. */
typedef struct fixture {
    h_server *srv;
    h_log *log;
    phx_socket_t *s;
} fixture;

static fixture setup(void) {
    fixture f;
    f.srv = h_server_start();
    f.log = h_log_new();
    f.s = h_socket(f.srv, f.log, 1);
    h_connect(f.s);
    return f;
}

static void teardown(fixture *f) {
    phx_socket_free(f->s);
    h_log_free(f->log);
    h_server_stop(f->srv);
}

/* Makes sure the server has received everything pushed on c so far: frames are handled in
 * order, so once an echo pushed after them is answered, they have arrived. */
static void flush(phx_channel_t *c) {
    H_OK(phx_channel_push_wait(c, "echo", "{}", H_OP_MS, NULL));
}

/* ---- reply error ------------------------------------------------------------------------- */

static void test_reply_error_push(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    phx_response_t *resp = NULL;
    const h_rec *r;

    /* Callback: PHX_ERR_REPLY with the server's status and response. */
    H_OK(phx_channel_push(c, "fail", "{}", H_OP_MS, h_on_reply, h_op_new(f.log, 10)));
    r = h_wait_reply(f.log, 10);
    H_STATUS(r->status, PHX_ERR_REPLY);
    H_CHECK(r->has_reply);
    H_EQ_STR(r->text, "error");
    H_EQ_U(r->kind, PHX_PAYLOAD_JSON);
    H_DATA_STR(r, "{\"reason\":\"nope\"}");

    /* Blocking: the same, with the response handed out. */
    H_STATUS(phx_channel_push_wait(c, "fail", "{}", H_OP_MS, &resp), PHX_ERR_REPLY);
    H_CHECK(resp != NULL);
    H_EQ_STR(resp->status, "error");
    h_data_eq(__FILE__, __LINE__, resp->payload, resp->payload_len, "{\"reason\":\"nope\"}", 17);
    phx_response_free(resp);

    /* The channel is still joined. */
    H_EQ_U(h_channel_state(c), PHX_CHANNEL_JOINED);
    phx_channel_free(c);
    teardown(&f);
}

static void test_reply_error_join(void) {
    fixture f = setup();
    phx_channel_t *c = NULL, *again = NULL;
    phx_response_t *resp = NULL;
    const h_rec *r;

    H_OK(phx_socket_channel(f.s, "room:private", &c));
    H_STATUS(phx_channel_join_wait(c, "{}", H_OP_MS, &resp), PHX_ERR_REPLY);
    H_CHECK(resp != NULL);
    H_EQ_STR(resp->status, "error");
    h_data_eq(__FILE__, __LINE__, resp->payload, resp->payload_len, "{\"reason\":\"unauthorized\"}", 25);
    phx_response_free(resp);
    /* The channel is closed, so the app can take a fresh instance and try again. */
    H_EQ_U(h_channel_state(c), PHX_CHANNEL_CLOSED);
    H_OK(phx_socket_channel(f.s, "room:private", &again));
    H_OK(phx_channel_join(again, NULL, H_OP_MS, h_on_reply, h_op_new(f.log, 10)));
    r = h_wait_reply(f.log, 10);
    H_STATUS(r->status, PHX_ERR_REPLY);
    H_DATA_STR(r, "{\"reason\":\"unauthorized\"}");

    phx_channel_free(c);
    phx_channel_free(again);
    teardown(&f);
}

/* ---- disconnected ------------------------------------------------------------------------ */

static void test_disconnected_in_flight(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    const h_rec *r;
    double t0;

    H_OK(phx_channel_push(c, "noreply", "{}", H_OP_MS, h_on_reply, h_op_new(f.log, 10)));
    flush(c);
    t0 = h_now_ms();
    h_control(f.srv, "drop");
    r = h_wait_reply(f.log, 10);
    H_STATUS(r->status, PHX_ERR_DISCONNECTED);
    H_CHECK(!r->has_reply);
    H_CHECKF(r->at_ms - t0 < H_OP_MS / 2, "failed after %.0f ms: not at the drop", r->at_ms - t0);
    /* The channel errored and is rejoined once the socket reconnects. */
    h_wait_state(f.log, H_CHANNEL_STATE, 2, PHX_CHANNEL_ERRORED);
    H_CHECK(h_log_wait(f.log, H_REJOIN, 2, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    r = h_log_get(f.log, H_REJOIN, 2, H_ANY_STATE, NULL, 0);
    H_STATUS(r->status, PHX_OK);
    H_EQ_U(h_channel_state(c), PHX_CHANNEL_JOINED);
    flush(c);

    phx_channel_free(c);
    teardown(&f);
}

/* ---- channel errored --------------------------------------------------------------------- */

static void test_channel_errored_in_flight(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    const h_rec *r;

    H_OK(phx_channel_push(c, "noreply", "{}", H_OP_MS, h_on_reply, h_op_new(f.log, 10)));
    flush(c);
    H_OK(phx_channel_push(c, "crash", "{}", H_OP_MS, h_on_reply, h_op_new(f.log, 11)));
    r = h_wait_reply(f.log, 10);
    H_STATUS(r->status, PHX_ERR_CHANNEL_ERRORED);
    r = h_wait_reply(f.log, 11);
    H_STATUS(r->status, PHX_ERR_CHANNEL_ERRORED);
    h_wait_state(f.log, H_CHANNEL_STATE, 2, PHX_CHANNEL_ERRORED);
    /* It is rejoined on the rejoin schedule while the socket stays connected. */
    H_CHECK(h_log_wait(f.log, H_REJOIN, 2, H_ANY_STATE, NULL, 1, H_WAIT_MS));
    H_STATUS(h_log_get(f.log, H_REJOIN, 2, H_ANY_STATE, NULL, 0)->status, PHX_OK);
    flush(c);

    phx_channel_free(c);
    teardown(&f);
}

/* ---- closed ------------------------------------------------------------------------------ */

static void test_closed_by_disconnect(void) {
    fixture f = setup();
    phx_channel_t *lobby = h_join(f.s, "room:lobby", f.log, 2);
    phx_channel_t *slow = NULL;
    phx_channel_handler_t ch = h_channel_handler();
    double t0;
    static const uint64_t ids[] = {10, 20, 21}; /* in flight, pending join, buffered push */
    size_t i;

    /* In flight on a joined channel. */
    H_OK(phx_channel_push(lobby, "noreply", "{}", H_OP_MS, h_on_reply, h_op_new(f.log, 10)));
    flush(lobby);
    /* A join pending (the server takes 3 s) and a push buffered behind it. */
    H_OK(phx_socket_channel(f.s, "room:slow", &slow));
    H_OK(phx_channel_set_handler(slow, &ch, h_op_new(f.log, 3), h_on_free));
    H_OK(phx_channel_join(slow, NULL, H_OP_MS, h_on_reply, h_op_new(f.log, 20)));
    h_wait_state(f.log, H_CHANNEL_STATE, 3, PHX_CHANNEL_JOINING);
    H_OK(phx_channel_push(slow, "echo", "{}", H_OP_MS, h_on_reply, h_op_new(f.log, 21)));

    t0 = h_now_ms();
    H_OK(phx_socket_disconnect(f.s));
    /* Everything fails at once with PHX_ERR_CLOSED, not after its timeout. */
    for (i = 0; i < 3; i++) {
        const h_rec *r = h_wait_reply(f.log, ids[i]);
        H_STATUS(r->status, PHX_ERR_CLOSED);
        H_CHECKF(r->at_ms - t0 < H_OP_MS / 2, "op %d failed %.0f ms after disconnect", (int)ids[i],
                 r->at_ms - t0);
    }
    h_wait_state(f.log, H_CHANNEL_STATE, 2, PHX_CHANNEL_CLOSED);
    h_wait_state(f.log, H_CHANNEL_STATE, 3, PHX_CHANNEL_CLOSED);
    h_wait_state(f.log, H_SOCKET_STATE, 1, PHX_SOCKET_DISCONNECTED);
    H_EQ_U(h_channel_state(lobby), PHX_CHANNEL_CLOSED);
    /* And a closed channel refuses pushes. */
    H_STATUS(phx_channel_push(lobby, "echo", "{}", 0, NULL, NULL), PHX_ERR_STATE);

    phx_channel_free(lobby);
    phx_channel_free(slow);
    teardown(&f);
}

static void test_closed_by_server_close(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    phx_channel_t *c2;
    const h_rec *r;

    H_OK(phx_channel_push(c, "noreply", "{}", H_OP_MS, h_on_reply, h_op_new(f.log, 10)));
    flush(c);
    /* `stop`: the server sends phx_close; no reply. */
    H_OK(phx_channel_push(c, "stop", "{}", H_OP_MS, h_on_reply, h_op_new(f.log, 11)));
    r = h_wait_reply(f.log, 10);
    H_STATUS(r->status, PHX_ERR_CLOSED);
    r = h_wait_reply(f.log, 11);
    H_STATUS(r->status, PHX_ERR_CLOSED);
    h_wait_state(f.log, H_CHANNEL_STATE, 2, PHX_CHANNEL_CLOSED);
    H_EQ_U(h_channel_state(c), PHX_CHANNEL_CLOSED);
    H_STATUS(phx_channel_push(c, "echo", "{}", 0, NULL, NULL), PHX_ERR_STATE);
    H_EQ_U(h_log_count(f.log, H_REJOIN, 2, H_ANY_STATE, NULL), 0);

    /* `stop_reply`: replied ok, then closed; a push still in flight fails closed. */
    c2 = h_join(f.s, "room:lobby", f.log, 3);
    H_OK(phx_channel_push(c2, "noreply", "{}", H_OP_MS, h_on_reply, h_op_new(f.log, 20)));
    H_OK(phx_channel_push(c2, "stop_reply", "{}", H_OP_MS, h_on_reply, h_op_new(f.log, 21)));
    r = h_wait_reply(f.log, 21);
    H_STATUS(r->status, PHX_OK);
    H_DATA_STR(r, "{\"bye\":true}");
    r = h_wait_reply(f.log, 20);
    H_STATUS(r->status, PHX_ERR_CLOSED);
    h_wait_state(f.log, H_CHANNEL_STATE, 3, PHX_CHANNEL_CLOSED);

    phx_channel_free(c);
    phx_channel_free(c2);
    teardown(&f);
}

/* ---- left before join -------------------------------------------------------------------- */

static void test_left_before_join(void) {
    fixture f = setup();
    phx_channel_t *c = NULL;
    phx_channel_handler_t ch = h_channel_handler();
    const h_rec *r;

    H_OK(phx_socket_channel(f.s, "room:slow", &c));
    H_OK(phx_channel_set_handler(c, &ch, h_op_new(f.log, 2), h_on_free));
    H_OK(phx_channel_join(c, NULL, H_OP_MS, h_on_reply, h_op_new(f.log, 10)));
    h_wait_state(f.log, H_CHANNEL_STATE, 2, PHX_CHANNEL_JOINING);
    H_OK(phx_channel_leave(c, 300, h_on_reply, h_op_new(f.log, 11)));
    r = h_wait_reply(f.log, 10);
    H_STATUS(r->status, PHX_ERR_LEFT_BEFORE_JOIN);
    H_CHECK(!r->has_reply);
    /* The leave itself completes (the busy server may not answer within 300 ms), and the
     * channel is closed either way. */
    r = h_wait_reply(f.log, 11);
    H_CHECKF(r->status == PHX_OK || r->status == PHX_ERR_TIMEOUT, "leave completed with %s",
             phx_status_str(r->status));
    h_wait_state(f.log, H_CHANNEL_STATE, 2, PHX_CHANNEL_CLOSED);

    phx_channel_free(c);
    teardown(&f);
}

/* ---- timeout ----------------------------------------------------------------------------- */

static void test_timeout_push(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    const h_rec *r;
    double t0 = h_now_ms();

    H_OK(phx_channel_push(c, "noreply", "{}", 200, h_on_reply, h_op_new(f.log, 10)));
    r = h_wait_reply(f.log, 10);
    H_STATUS(r->status, PHX_ERR_TIMEOUT);
    H_CHECK(!r->has_reply);
    H_CHECKF(r->at_ms - t0 >= 190.0, "timed out after %.0f ms, before 200 ms", r->at_ms - t0);
    /* Blocking variant. */
    H_STATUS(phx_channel_push_wait(c, "noreply", "{}", 200, NULL), PHX_ERR_TIMEOUT);
    /* The channel is unaffected. */
    flush(c);
    phx_channel_free(c);
    teardown(&f);
}

static void test_timeout_join(void) {
    fixture f = setup();
    phx_channel_t *c = NULL;
    phx_channel_handler_t ch = h_channel_handler();
    const h_rec *r;
    double t0;

    H_OK(phx_socket_channel(f.s, "room:slow", &c));
    H_OK(phx_channel_set_handler(c, &ch, h_op_new(f.log, 2), h_on_free));
    t0 = h_now_ms();
    H_OK(phx_channel_join(c, NULL, 500, h_on_reply, h_op_new(f.log, 10)));
    r = h_wait_reply(f.log, 10);
    H_STATUS(r->status, PHX_ERR_TIMEOUT);
    H_CHECKF(r->at_ms - t0 >= 490.0, "timed out after %.0f ms, before 500 ms", r->at_ms - t0);
    /* A timed-out join leaves the channel errored (it will be rejoined). */
    h_wait_state(f.log, H_CHANNEL_STATE, 2, PHX_CHANNEL_ERRORED);
    phx_channel_free(c);
    teardown(&f);
}

/* ---- state error ------------------------------------------------------------------------- */

static void test_state_join_twice(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    h_op *op = h_op_new(f.log, 10);

    H_STATUS(phx_channel_join(c, NULL, H_OP_MS, h_on_reply, op), PHX_ERR_STATE);
    H_STATUS(phx_channel_join_wait(c, NULL, H_OP_MS, NULL), PHX_ERR_STATE);
    H_STATUS(phx_channel_join_tagged(c, NULL, H_OP_MS, 5), PHX_ERR_STATE);
    flush(c);
    /* A call that failed never fires its completion. */
    phx_socket_free(f.s);
    f.s = NULL;
    H_EQ_U(op->calls, 0);
    /* Only one join reached the server. */
    H_EQ_U(h_server_stat(f.srv, "joins", "room:lobby"), 1);
    phx_channel_free(c);
    teardown(&f);
}

static void test_state_push_before_join(void) {
    fixture f = setup();
    phx_channel_t *c = NULL;
    h_op *op = h_op_new(f.log, 10);
    static const uint8_t b[] = {1, 2, 3};

    H_OK(phx_socket_channel(f.s, "room:lobby", &c));
    H_STATUS(phx_channel_push(c, "echo", "{}", H_OP_MS, h_on_reply, op), PHX_ERR_STATE);
    H_STATUS(phx_channel_push_binary(c, "echo", b, sizeof b, H_OP_MS, h_on_reply, op), PHX_ERR_STATE);
    H_STATUS(phx_channel_push_wait(c, "echo", "{}", H_OP_MS, NULL), PHX_ERR_STATE);
    /* Nothing was sent: the channel can still join and push normally. */
    H_OK(phx_channel_join_wait(c, NULL, H_OP_MS, NULL));
    flush(c);
    phx_socket_free(f.s);
    f.s = NULL;
    H_EQ_U(op->calls, 0);
    phx_channel_free(c);
    teardown(&f);
}

static void test_state_push_closed(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    phx_channel_t *denied = NULL;
    static const uint8_t b[] = {1};

    /* Closed by leave(). */
    H_OK(phx_channel_leave_wait(c, H_OP_MS));
    H_EQ_U(h_channel_state(c), PHX_CHANNEL_CLOSED);
    H_STATUS(phx_channel_push(c, "echo", "{}", H_OP_MS, NULL, NULL), PHX_ERR_STATE);
    H_STATUS(phx_channel_push_binary(c, "echo", b, 1, H_OP_MS, NULL, NULL), PHX_ERR_STATE);
    H_STATUS(phx_channel_push_wait(c, "echo", "{}", H_OP_MS, NULL), PHX_ERR_STATE);
    /* Closed by an error reply to its join. */
    H_OK(phx_socket_channel(f.s, "room:private", &denied));
    H_STATUS(phx_channel_join_wait(denied, NULL, H_OP_MS, NULL), PHX_ERR_REPLY);
    H_STATUS(phx_channel_push(denied, "echo", "{}", H_OP_MS, NULL, NULL), PHX_ERR_STATE);
    phx_channel_free(c);
    phx_channel_free(denied);
    teardown(&f);
}

static void test_state_push_leaving(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    const h_rec *r;

    /* The server stops answering, so the channel stays `leaving` until the leave times out. */
    h_control(f.srv, "silence?on=1");
    H_OK(phx_channel_leave(c, 1000, h_on_reply, h_op_new(f.log, 10)));
    h_wait_state(f.log, H_CHANNEL_STATE, 2, PHX_CHANNEL_LEAVING);
    H_EQ_U(h_channel_state(c), PHX_CHANNEL_LEAVING);
    H_STATUS(phx_channel_push(c, "echo", "{}", H_OP_MS, NULL, NULL), PHX_ERR_STATE);
    H_STATUS(phx_channel_push_wait(c, "echo", "{}", H_OP_MS, NULL), PHX_ERR_STATE);
    r = h_wait_reply(f.log, 10);
    H_CHECKF(r->status == PHX_OK || r->status == PHX_ERR_TIMEOUT, "leave completed with %s",
             phx_status_str(r->status));
    h_wait_state(f.log, H_CHANNEL_STATE, 2, PHX_CHANNEL_CLOSED);
    h_control(f.srv, "reset");
    phx_channel_free(c);
    teardown(&f);
}

/* A push made right after join() (the channel is joining) is buffered, not refused. */
static void test_push_buffered_right_after_join(void) {
    fixture f = setup();
    int i;
    for (i = 0; i < 20; i++) {
        char topic[32];
        phx_channel_t *c = NULL;
        const h_rec *r;
        snprintf(topic, sizeof topic, "room:buffer%d", i);
        H_OK(phx_socket_channel(f.s, topic, &c));
        H_OK(phx_channel_join(c, NULL, H_OP_MS, NULL, NULL));
        H_OK(phx_channel_push(c, "echo", "{\"b\":1}", H_OP_MS, h_on_reply, h_op_new(f.log, (uint64_t)(100 + i))));
        r = h_wait_reply(f.log, (uint64_t)(100 + i));
        H_STATUS(r->status, PHX_OK);
        H_DATA_STR(r, "{\"b\":1}");
        phx_channel_free(c);
    }
    teardown(&f);
}

/* ---- invalid argument -------------------------------------------------------------------- */

#define SENTINEL ((void *)0x5a5a5a5a)

static void test_invalid_null(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    phx_options_t *o = phx_options_new();
    phx_socket_t *s_out = (phx_socket_t *)SENTINEL;
    phx_channel_t *c_out = (phx_channel_t *)SENTINEL;
    phx_event_t *e_out = (phx_event_t *)SENTINEL;
    phx_response_t *r_out = (phx_response_t *)SENTINEL;
    phx_socket_handler_t sh = h_socket_handler();
    phx_channel_handler_t ch = h_channel_handler();
    phx_reason_t reason;
    uint32_t st = 77;
    int fd = -7;
    const h_rec *r;
    static const uint64_t delays[] = {10};
    static const uint8_t b[] = {1};

    /* options */
    H_STATUS(phx_options_set_params_json(NULL, "{}"), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_params_json(o, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_heartbeat_ms(NULL, 100), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_reconnect_schedule_ms(NULL, delays, 1), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_reconnect_schedule_ms(o, NULL, 1), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_rejoin_schedule_ms(NULL, delays, 1), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_rejoin_schedule_ms(o, NULL, 1), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_timeout_ms(NULL, 100), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_leave_timeout_ms(NULL, 100), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_connect_timeout_ms(NULL, 100), PHX_ERR_INVALID_ARGUMENT);

    /* socket */
    H_STATUS(phx_socket_new(NULL, NULL, &s_out), PHX_ERR_INVALID_ARGUMENT);
    H_CHECK(s_out == (phx_socket_t *)SENTINEL);
    H_STATUS(phx_socket_new(h_server_url(f.srv), NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_connect(NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_connect_wait(NULL, 10), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_disconnect(NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_state(NULL, &st), PHX_ERR_INVALID_ARGUMENT);
    H_EQ_U(st, 77);
    H_STATUS(phx_socket_state(f.s, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_last_reason(NULL, &reason), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_last_reason(f.s, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_set_handler(NULL, &sh, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_channel(NULL, "room:x", &c_out), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_channel(f.s, NULL, &c_out), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_channel(f.s, "room:x", NULL), PHX_ERR_INVALID_ARGUMENT);
    H_CHECK(c_out == (phx_channel_t *)SENTINEL);

    /* channel */
    H_STATUS(phx_channel_state(NULL, &st), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_state(c, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_EQ_U(st, 77);
    H_STATUS(phx_channel_set_handler(NULL, &ch, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_join(NULL, NULL, 0, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push(NULL, "echo", "{}", 0, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push(c, NULL, "{}", 0, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_binary(NULL, "echo", b, 1, 0, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_binary(c, NULL, b, 1, 0, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    /* (NULL, n > 0) is invalid; (NULL, 0) is the empty slice. */
    H_STATUS(phx_channel_push_binary(c, "echo", NULL, 4, 0, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_OK(phx_channel_push_binary(c, "echo", NULL, 0, H_OP_MS, h_on_reply, h_op_new(f.log, 10)));
    r = h_wait_reply(f.log, 10);
    H_STATUS(r->status, PHX_OK);
    H_EQ_U(r->kind, PHX_PAYLOAD_BINARY);
    H_EQ_U(r->len, 0);
    H_STATUS(phx_channel_leave(NULL, 0, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_join_wait(NULL, NULL, 10, &r_out), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_wait(NULL, "echo", "{}", 10, &r_out), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_wait(c, NULL, "{}", 10, &r_out), PHX_ERR_INVALID_ARGUMENT);
    H_CHECK(r_out == (phx_response_t *)SENTINEL);
    H_STATUS(phx_channel_leave_wait(NULL, 10), PHX_ERR_INVALID_ARGUMENT);

    /* events */
    H_STATUS(phx_socket_events_enable(NULL, 8, NULL, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_event_fd(NULL, &fd), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_next_event(NULL, 0, &e_out), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_try_event(NULL, &e_out), PHX_ERR_INVALID_ARGUMENT);
    H_OK(phx_socket_events_enable(f.s, 8, NULL, NULL, NULL));
    H_STATUS(phx_socket_event_fd(f.s, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_next_event(f.s, 0, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_try_event(f.s, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_CHECK(e_out == (phx_event_t *)SENTINEL);
    H_EQ_U(fd, -7);
    H_STATUS(phx_channel_join_tagged(NULL, NULL, 0, 1), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_tagged(NULL, "echo", "{}", 0, 1), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_tagged(c, NULL, "{}", 0, 1), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_binary_tagged(NULL, "echo", b, 1, 0, 1), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_binary_tagged(c, "echo", NULL, 1, 0, 1), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_leave_tagged(NULL, 0, 1), PHX_ERR_INVALID_ARGUMENT);

    /* Every free function accepts NULL. */
    phx_options_free(NULL);
    phx_socket_free(NULL);
    phx_channel_free(NULL);
    phx_event_free(NULL);
    phx_response_free(NULL);
    H_CHECK(phx_status_str(PHX_ERR_INVALID_ARGUMENT) != NULL);

    /* After all that the channel still works. */
    flush(c);
    phx_options_free(o);
    phx_channel_free(c);
    teardown(&f);
}

static void test_invalid_utf8(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    H_OK(phx_socket_events_enable(f.s, 64, NULL, NULL, NULL)); /* for the *_tagged calls */
    phx_channel_t *c_out = (phx_channel_t *)SENTINEL;
    phx_socket_t *s_out = (phx_socket_t *)SENTINEL;
    phx_options_t *o = phx_options_new();
    h_op *op = h_op_new(f.log, 10);
    static const uint8_t b[] = {1};
    static const char bad[] = "room:\xff\xfe";         /* not UTF-8 */
    static const char bad_json[] = "{\"a\":\"\xc3\x28\"}"; /* a broken two-byte sequence */

    H_STATUS(phx_socket_channel(f.s, bad, &c_out), PHX_ERR_INVALID_ARGUMENT);
    H_CHECK(c_out == (phx_channel_t *)SENTINEL);
    H_STATUS(phx_socket_new("ws://127.0.0.1:1/\xff", NULL, &s_out), PHX_ERR_INVALID_ARGUMENT);
    H_CHECK(s_out == (phx_socket_t *)SENTINEL);
    H_STATUS(phx_options_set_params_json(o, "{\"token\":\"\xff\"}"), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push(c, "ev\xff", "{}", H_OP_MS, h_on_reply, op), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push(c, "echo", bad_json, H_OP_MS, h_on_reply, op), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_binary(c, "ev\xff", b, 1, H_OP_MS, h_on_reply, op), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_wait(c, "echo", bad_json, H_OP_MS, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_tagged(c, "ev\xff", "{}", H_OP_MS, 1), PHX_ERR_INVALID_ARGUMENT);
    flush(c);
    phx_socket_free(f.s);
    f.s = NULL;
    H_EQ_U(op->calls, 0);
    phx_options_free(o);
    phx_channel_free(c);
    teardown(&f);
}

static void test_invalid_json(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    H_OK(phx_socket_events_enable(f.s, 64, NULL, NULL, NULL)); /* for the *_tagged calls */
    phx_channel_t *fresh = NULL;
    phx_options_t *o = phx_options_new();
    h_op *op = h_op_new(f.log, 10);
    static const char *const bad[] = {"", "{", "not json", "{\"a\":1,}", "[1,2", "{\"a\":1} trailing", "nul"};
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        H_STATUS(phx_channel_push(c, "echo", bad[i], H_OP_MS, h_on_reply, op), PHX_ERR_INVALID_ARGUMENT);
        H_STATUS(phx_channel_push_wait(c, "echo", bad[i], H_OP_MS, NULL), PHX_ERR_INVALID_ARGUMENT);
        H_STATUS(phx_channel_push_tagged(c, "echo", bad[i], H_OP_MS, 1), PHX_ERR_INVALID_ARGUMENT);
    }
    /* A join with an invalid payload consumes nothing: the channel can still join. */
    H_OK(phx_socket_channel(f.s, "room:json", &fresh));
    H_STATUS(phx_channel_join(fresh, "{oops", H_OP_MS, h_on_reply, op), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_join_wait(fresh, "[", H_OP_MS, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_OK(phx_channel_join_wait(fresh, "{\"ok\":true}", H_OP_MS, NULL));
    /* Connect params: a JSON object of strings, numbers and booleans only. */
    H_STATUS(phx_options_set_params_json(o, "{bad"), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_params_json(o, "[1]"), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_params_json(o, "{\"a\":[1]}"), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_params_json(o, "{\"a\":{\"b\":1}}"), PHX_ERR_INVALID_ARGUMENT);
    H_OK(phx_options_set_params_json(o, "{\"s\":\"x y&z\",\"n\":1.5,\"b\":false}"));
    /* Any JSON value is a valid payload. */
    H_OK(phx_channel_push_wait(c, "echo", "[1,\"two\",null]", H_OP_MS, NULL));
    flush(c);
    phx_socket_free(f.s);
    f.s = NULL;
    H_EQ_U(op->calls, 0);
    phx_options_free(o);
    phx_channel_free(c);
    phx_channel_free(fresh);
    teardown(&f);
}

/* Each of join_ref, ref, topic and event must fit in 255 bytes in a binary frame. */
static void test_invalid_binary_field(void) {
    fixture f = setup();
    phx_channel_t *c = h_join(f.s, "room:lobby", f.log, 2);
    H_OK(phx_socket_events_enable(f.s, 64, NULL, NULL, NULL)); /* for the *_tagged calls */
    phx_channel_t *long_topic = NULL;
    char event[257];
    char topic[300];
    static const uint8_t b[] = {7, 8, 9};
    h_op *op = h_op_new(f.log, 10);
    const h_rec *r;

    memset(event, 'e', 256);
    event[256] = '\0';
    H_STATUS(phx_channel_push_binary(c, event, b, sizeof b, H_OP_MS, h_on_reply, op), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_channel_push_binary_tagged(c, event, b, sizeof b, H_OP_MS, 1), PHX_ERR_INVALID_ARGUMENT);
    /* 255 bytes fit (room:* answers any binary push with the same bytes). */
    event[255] = '\0';
    H_OK(phx_channel_push_binary(c, event, b, sizeof b, H_OP_MS, h_on_reply, h_op_new(f.log, 11)));
    r = h_wait_reply(f.log, 11);
    H_STATUS(r->status, PHX_OK);
    H_EQ_U(r->kind, PHX_PAYLOAD_BINARY);
    H_DATA_EQ(r, b, sizeof b);

    /* A 256-byte topic cannot carry binary pushes either. */
    memcpy(topic, "room:", 5);
    memset(topic + 5, 't', 251);
    topic[256] = '\0';
    H_OK(phx_socket_channel(f.s, topic, &long_topic));
    H_OK(phx_channel_join_wait(long_topic, NULL, H_OP_MS, NULL));
    H_STATUS(phx_channel_push_binary(long_topic, "echo", b, sizeof b, H_OP_MS, h_on_reply, op), PHX_ERR_INVALID_ARGUMENT);
    H_OK(phx_channel_push_wait(long_topic, "echo", "{}", H_OP_MS, NULL));

    flush(c);
    phx_socket_free(f.s);
    f.s = NULL;
    H_EQ_U(op->calls, 0);
    phx_channel_free(c);
    phx_channel_free(long_topic);
    teardown(&f);
}

static void test_invalid_url(void) {
    static const char *const bad[] = {
        "", "not a url", "http://127.0.0.1:4000/socket/websocket", "ftp://x/y", "ws://", "ws//127.0.0.1:4000",
    };
    size_t i;
    phx_socket_t *s = (phx_socket_t *)SENTINEL;
    phx_options_t *o = phx_options_new();

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        H_STATUS(phx_socket_new(bad[i], NULL, &s), PHX_ERR_INVALID_ARGUMENT);
        H_STATUS(phx_socket_new(bad[i], o, &s), PHX_ERR_INVALID_ARGUMENT);
        H_CHECK(s == (phx_socket_t *)SENTINEL);
    }
    /* Well-formed ws:// and wss:// URLs are accepted without connecting. */
    H_OK(phx_socket_new("ws://127.0.0.1:9/socket/websocket", NULL, &s));
    H_EQ_U(h_socket_state(s), PHX_SOCKET_DISCONNECTED);
    phx_socket_free(s);
    s = NULL;
    H_OK(phx_socket_new("wss://example.invalid/socket/websocket?x=1", o, &s));
    phx_socket_free(s);
    phx_options_free(o);
}

static const h_case cases[] = {
    H_CASE(reply_error_push),
    H_CASE(reply_error_join),
    H_CASE(disconnected_in_flight),
    H_CASE(channel_errored_in_flight),
    H_CASE(closed_by_disconnect),
    H_CASE(closed_by_server_close),
    H_CASE(left_before_join),
    H_CASE(timeout_push),
    H_CASE(timeout_join),
    H_CASE(state_join_twice),
    H_CASE(state_push_before_join),
    H_CASE(state_push_closed),
    H_CASE(state_push_leaving),
    H_CASE(push_buffered_right_after_join),
    H_CASE(invalid_null),
    H_CASE(invalid_utf8),
    H_CASE(invalid_json),
    H_CASE(invalid_binary_field),
    H_CASE(invalid_url),
};

H_MAIN(cases)
