/* test_basic.c: the happy path through the C API (also linked against libphx.a). */
#include "harness.h"

#include <stdlib.h>

/* Connect, join with a payload, echo JSON and bytes, receive a broadcast, leave, disconnect. */
static void test_roundtrip(void) {
    h_server *srv = h_server_start();
    h_log *log = h_log_new();
    phx_socket_t *s = h_socket(srv, log, 1);
    phx_channel_t *c = NULL;
    phx_response_t *resp = NULL;
    phx_channel_handler_t ch = h_channel_handler();
    phx_reason_t reason;
    static const uint8_t bytes[] = {0, 1, 2, 0xfe, 0xff, 'x'};
    const h_rec *r;
    size_t i;

    h_connect(s);
    H_OK(phx_socket_channel(s, "room:lobby", &c));
    H_OK(phx_channel_set_handler(c, &ch, h_op_new(log, 2), h_on_free));
    H_OK(phx_channel_join_wait(c, "{\"echo\":\"hi\"}", H_OP_MS, &resp));
    H_CHECK(resp != NULL);
    H_EQ_STR(resp->status, "ok");
    H_EQ_U(resp->payload_kind, PHX_PAYLOAD_JSON);
    {
        /* {"echo":"hi","joined":"room:lobby"}, keys in any order */
        char *text = h_strndup(resp->payload, resp->payload_len);
        H_CHECKF(strstr(text, "\"echo\":\"hi\"") && strstr(text, "\"joined\":\"room:lobby\"") &&
                     resp->payload_len == 35,
                 "join response %s", text);
        free(text);
    }
    phx_response_free(resp);
    resp = NULL;
    H_EQ_U(h_channel_state(c), PHX_CHANNEL_JOINED);

    /* JSON echo, blocking. */
    H_OK(phx_channel_push_wait(c, "echo", "{\"n\":1}", H_OP_MS, &resp));
    H_EQ_STR(resp->status, "ok");
    h_data_eq(__FILE__, __LINE__, resp->payload, resp->payload_len, "{\"n\":1}", 7);
    phx_response_free(resp);
    resp = NULL;

    /* Binary echo, with a callback. */
    H_OK(phx_channel_push_binary(c, "echo", bytes, sizeof bytes, H_OP_MS, h_on_reply, h_op_new(log, 10)));
    r = h_wait_reply(log, 10);
    H_STATUS(r->status, PHX_OK);
    H_EQ_U(r->kind, PHX_PAYLOAD_BINARY);
    H_DATA_EQ(r, bytes, sizeof bytes);

    /* A broadcast reaches the sender too, before the reply. */
    H_OK(phx_channel_push(c, "new_msg", "{\"body\":\"hello\"}", H_OP_MS, h_on_reply, h_op_new(log, 11)));
    r = h_wait_reply(log, 11);
    H_STATUS(r->status, PHX_OK);
    H_CHECK(h_log_count(log, H_MESSAGE, 2, H_ANY_STATE, "new_msg") == 1);
    r = h_log_get(log, H_MESSAGE, 2, H_ANY_STATE, "new_msg", 0);
    H_EQ_STR(r->topic, "room:lobby");
    H_EQ_U(r->kind, PHX_PAYLOAD_JSON);
    H_DATA_STR(r, "{\"body\":\"hello\"}");

    /* A server push. */
    H_OK(phx_channel_push_wait(c, "push_me", "{\"x\":[1,2]}", H_OP_MS, NULL));
    r = h_log_get(log, H_MESSAGE, 2, H_ANY_STATE, "pushed", 0);
    H_CHECK(r != NULL);
    H_DATA_STR(r, "{\"x\":[1,2]}");

    H_OK(phx_channel_leave_wait(c, H_OP_MS));
    H_EQ_U(h_channel_state(c), PHX_CHANNEL_CLOSED);
    H_OK(phx_socket_disconnect(s));
    h_wait_state(log, H_SOCKET_STATE, 1, PHX_SOCKET_DISCONNECTED);
    H_EQ_U(h_socket_state(s), PHX_SOCKET_DISCONNECTED);
    memset(&reason, 0xab, sizeof reason);
    H_OK(phx_socket_last_reason(s, &reason));
    H_EQ_U(reason.kind, PHX_REASON_CLIENT_CLOSED);
    H_CHECK(reason.text_len < sizeof reason.text && reason.text[reason.text_len] == '\0');

    /* Socket states were reported once each, in order. */
    {
        static const uint32_t want[] = {PHX_SOCKET_CONNECTING, PHX_SOCKET_CONNECTED, PHX_SOCKET_DISCONNECTED};
        for (i = 0; i < 3; i++) {
            r = h_log_get(log, H_SOCKET_STATE, 1, H_ANY_STATE, NULL, i);
            H_CHECKF(r != NULL && r->state == want[i], "socket state #%zu is %u, expected %u", i,
                     r ? (unsigned)r->state : 99u, (unsigned)want[i]);
        }
        H_EQ_U(h_log_count(log, H_SOCKET_STATE, 1, H_ANY_STATE, NULL), 3);
    }
    /* Channel states: joining, joined, leaving, closed. */
    {
        static const uint32_t want[] = {PHX_CHANNEL_JOINING, PHX_CHANNEL_JOINED, PHX_CHANNEL_LEAVING,
                                        PHX_CHANNEL_CLOSED};
        for (i = 0; i < 4; i++) {
            r = h_log_get(log, H_CHANNEL_STATE, 2, H_ANY_STATE, NULL, i);
            H_CHECKF(r != NULL && r->state == want[i], "channel state #%zu is %u, expected %u", i,
                     r ? (unsigned)r->state : 99u, (unsigned)want[i]);
        }
    }

    phx_channel_free(c);
    phx_socket_free(s);
    H_EQ_U(h_log_count(log, H_FREE, 1, H_ANY_STATE, NULL), 1);
    H_EQ_U(h_log_count(log, H_FREE, 2, H_ANY_STATE, NULL), 1);
    h_log_free(log);
    h_server_stop(srv);
}

/* socket.channel(topic) returns the same channel until it is closed, then a fresh one. */
static void test_channel_identity(void) {
    h_server *srv = h_server_start();
    phx_socket_t *s = h_socket(srv, NULL, 0);
    phx_channel_t *a = NULL, *b = NULL, *fresh = NULL;

    h_connect(s);
    H_OK(phx_socket_channel(s, "room:same", &a));
    H_OK(phx_socket_channel(s, "room:same", &b));
    H_OK(phx_channel_join_wait(a, NULL, H_OP_MS, NULL));
    /* b is the same channel: joined, and a second join is a state error. */
    H_EQ_U(h_channel_state(b), PHX_CHANNEL_JOINED);
    H_STATUS(phx_channel_join_wait(b, NULL, H_OP_MS, NULL), PHX_ERR_STATE);
    H_OK(phx_channel_push_wait(b, "echo", "{}", H_OP_MS, NULL));
    H_OK(phx_channel_leave_wait(b, H_OP_MS));
    H_EQ_U(h_channel_state(a), PHX_CHANNEL_CLOSED);
    /* Closed: the next call hands out a fresh instance that can join again. */
    H_OK(phx_socket_channel(s, "room:same", &fresh));
    H_EQ_U(h_channel_state(fresh), PHX_CHANNEL_CLOSED);
    H_OK(phx_channel_join_wait(fresh, NULL, H_OP_MS, NULL));
    H_EQ_U(h_channel_state(a), PHX_CHANNEL_CLOSED);
    H_EQ_U(h_server_stat(srv, "joined", "room:same"), 1);
    phx_channel_free(a);
    phx_channel_free(b);
    phx_channel_free(fresh);
    phx_socket_free(s);
    h_server_stop(srv);
}

/* Connect params reach the server; a refused upgrade (token=bad) is an observable reason. */
static void test_params_and_refusal(void) {
    h_server *srv = h_server_start();
    h_log *log = h_log_new();
    phx_options_t *o = h_options();
    phx_socket_t *s = NULL;
    phx_socket_handler_t sh = h_socket_handler();
    phx_reason_t reason;
    const h_rec *r;

    H_OK(phx_options_set_params_json(o, "{\"token\":\"bad\",\"n\":1,\"b\":true}"));
    H_OK(phx_socket_new(h_server_url(srv), o, &s));
    phx_options_free(o);
    H_OK(phx_socket_set_handler(s, &sh, h_op_new(log, 1), h_on_free));
    H_STATUS(phx_socket_connect_wait(s, 300), PHX_ERR_TIMEOUT);
    h_wait_state(log, H_SOCKET_STATE, 1, PHX_SOCKET_RECONNECTING);
    r = h_log_get(log, H_SOCKET_STATE, 1, PHX_SOCKET_RECONNECTING, NULL, 0);
    H_EQ_U(r->kind, PHX_REASON_HTTP_STATUS);
    H_OK(phx_socket_last_reason(s, &reason));
    H_EQ_U(reason.kind, PHX_REASON_HTTP_STATUS);
    H_EQ_U(reason.code, 403);
    phx_socket_free(s);
    H_EQ_U(h_log_count(log, H_FREE, 1, H_ANY_STATE, NULL), 1);
    h_log_free(log);

    /* A good token connects. */
    o = h_options();
    H_OK(phx_options_set_params_json(o, "{\"token\":\"good\"}"));
    H_OK(phx_socket_new(h_server_url(srv), o, &s));
    phx_options_free(o);
    h_connect(s);
    phx_socket_free(s);
    h_server_stop(srv);
}

static const h_case cases[] = {
    H_CASE(roundtrip),
    H_CASE(channel_identity),
    H_CASE(params_and_refusal),
};

H_MAIN(cases)
