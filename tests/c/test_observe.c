/* test_observe.c: presence from C (the transcript's steps through the event queue and the
 * extended channel handler), rejoin awareness, statistics and probes. */
#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

static phx_socket_t *connected_as(h_server *srv, const char *token) {
    phx_options_t *o = h_options();
    char params[64];
    snprintf(params, sizeof params, "{\"token\":\"%s\"}", token);
    H_OK(phx_options_set_params_json(o, params));
    phx_socket_t *s = NULL;
    H_OK(phx_socket_new(h_server_url(srv), o, &s));
    phx_options_free(o);
    H_OK(phx_socket_events_enable(s, 1024, NULL, NULL, NULL));
    h_connect(s);
    return s;
}

/* Takes events until one of `kind` (or of `kind2`) comes; the caller frees it. */
static phx_event_t *next_of(phx_socket_t *s, uint32_t kind, uint32_t kind2) {
    double deadline = h_now_ms() + H_WAIT_MS;
    while (h_now_ms() < deadline) {
        phx_event_t *ev = NULL;
        phx_status_t st = phx_socket_next_event(s, 100, &ev);
        if (st == PHX_ERR_AGAIN) continue;
        H_OK(st);
        if (ev->kind == kind || ev->kind == kind2) return ev;
        phx_event_free(ev);
    }
    h_fail(__FILE__, __LINE__, "no event of kind %u", (unsigned)kind);
}

/* True if the JSON text `json` (length `len`) contains `needle`. */
static int has(const void *json, size_t len, const char *needle) {
    size_t n = strlen(needle);
    const char *p = (const char *)json;
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(p + i, needle, n) == 0) return 1;
    return 0;
}

static void test_presence_events(void) {
    h_server *srv = h_server_start();
    /* (a) alice joins: her own join (absent before), then a sync. */
    phx_socket_t *a = connected_as(srv, "alice");
    phx_channel_t *ach = NULL;
    H_OK(phx_socket_channel(a, "presence:room1", &ach));
    H_OK(phx_channel_join_wait(ach, NULL, H_OP_MS, NULL));
    phx_event_t *ev = next_of(a, PHX_EVENT_PRESENCE_JOIN, PHX_EVENT_PRESENCE_JOIN);
    H_EQ_STR(ev->key, "alice");
    H_EQ_U(ev->key_len, 5);
    H_CHECK(ev->payload == NULL && ev->payload_len == 0);
    H_CHECK(has(ev->metas, ev->metas_len, "\"device\":\"default\""));
    phx_event_free(ev);
    phx_event_free(next_of(a, PHX_EVENT_PRESENCE_SYNC, PHX_EVENT_PRESENCE_SYNC));

    /* (b) bob joins with device laptop. */
    phx_socket_t *b = connected_as(srv, "bob");
    phx_channel_t *bch = NULL;
    H_OK(phx_socket_channel(b, "presence:room1", &bch));
    H_OK(phx_channel_join_wait(bch, "{\"device\":\"laptop\"}", H_OP_MS, NULL));
    ev = next_of(a, PHX_EVENT_PRESENCE_JOIN, PHX_EVENT_PRESENCE_LEAVE);
    H_EQ_U(ev->kind, PHX_EVENT_PRESENCE_JOIN);
    H_EQ_STR(ev->key, "bob");
    H_CHECK(has(ev->metas, ev->metas_len, "laptop"));
    phx_event_free(ev);

    /* (d) bob updates: the new meta joins (current: the old), then the old one leaves. */
    H_OK(phx_channel_push_wait(bch, "update", "{\"device\":\"desktop\"}", H_OP_MS, NULL));
    ev = next_of(a, PHX_EVENT_PRESENCE_JOIN, PHX_EVENT_PRESENCE_LEAVE);
    H_EQ_U(ev->kind, PHX_EVENT_PRESENCE_JOIN);
    H_CHECK(has(ev->metas, ev->metas_len, "desktop"));
    H_CHECK(has(ev->payload, ev->payload_len, "laptop"));
    phx_event_free(ev);
    ev = next_of(a, PHX_EVENT_PRESENCE_JOIN, PHX_EVENT_PRESENCE_LEAVE);
    H_EQ_U(ev->kind, PHX_EVENT_PRESENCE_LEAVE);
    H_CHECK(has(ev->metas, ev->metas_len, "laptop"));
    H_CHECK(has(ev->payload, ev->payload_len, "desktop"));
    phx_event_free(ev);

    /* (f) bob's socket goes: he leaves, and the key is gone ([]). */
    phx_channel_free(bch);
    phx_socket_free(b);
    ev = next_of(a, PHX_EVENT_PRESENCE_LEAVE, PHX_EVENT_PRESENCE_LEAVE);
    H_EQ_STR(ev->key, "bob");
    H_CHECK(ev->payload_len == 2 && memcmp(ev->payload, "[]", 2) == 0);
    phx_event_free(ev);
    phx_channel_free(ach);
    phx_socket_free(a);
    h_server_stop(srv);
}

typedef struct seen {
    pthread_mutex_t mu;
    int joins, syncs, rejoined, missed;
} seen;

static void on_presence(void *u, const phx_presence_change_t *c) {
    seen *s = (seen *)u;
    H_CHECK(c->key != NULL && strlen(c->key) == c->key_len && c->metas != NULL);
    pthread_mutex_lock(&s->mu);
    if (c->kind == PHX_PRESENCE_JOIN) s->joins++;
    pthread_mutex_unlock(&s->mu);
}

static void on_sync(void *u) {
    seen *s = (seen *)u;
    pthread_mutex_lock(&s->mu);
    s->syncs++;
    pthread_mutex_unlock(&s->mu);
}

static void on_rejoined(void *u, const phx_reply_t *reply, bool missed) {
    seen *s = (seen *)u;
    H_CHECK(reply != NULL && reply->payload_kind == PHX_PAYLOAD_JSON);
    pthread_mutex_lock(&s->mu);
    s->rejoined++;
    s->missed += missed;
    pthread_mutex_unlock(&s->mu);
}

static int read_count(seen *s, const int *field) {
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static void wait_count(seen *s, const int *field, int want) {
    double deadline = h_now_ms() + H_WAIT_MS;
    while (read_count(s, field) < want) {
        H_CHECKF(h_now_ms() < deadline, "count stayed at %d, wanted %d", read_count(s, field), want);
        usleep(2000);
    }
}

static void test_handler_ex_presence_and_rejoined(void) {
    h_server *srv = h_server_start();
    seen s = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    phx_channel_handler_ex_t h;
    memset(&h, 0, sizeof h);
    h.size = sizeof h;
    h.on_presence = on_presence;
    h.on_presence_sync = on_sync;
    h.on_rejoined = on_rejoined;

    phx_socket_t *a = connected_as(srv, "alice");
    phx_channel_t *p = NULL;
    H_OK(phx_socket_channel(a, "presence:room1", &p));
    H_OK(phx_channel_set_handler_ex(p, &h, &s, NULL));
    H_OK(phx_channel_join_wait(p, NULL, H_OP_MS, NULL));
    wait_count(&s, &s.syncs, 1);
    H_CHECK(read_count(&s, &s.joins) >= 1);

    /* A joined channel rejoins after the connection drops: reported, messages maybe missed. */
    phx_channel_t *lobby = NULL;
    H_OK(phx_socket_channel(a, "room:lobby", &lobby));
    H_OK(phx_channel_set_handler_ex(lobby, &h, &s, NULL));
    H_OK(phx_channel_join_wait(lobby, NULL, H_OP_MS, NULL));
    h_control(srv, "drop");
    wait_count(&s, &s.rejoined, 1);
    H_EQ_U(read_count(&s, &s.missed), read_count(&s, &s.rejoined));
    phx_event_t *ev = next_of(a, PHX_EVENT_REJOINED, PHX_EVENT_REJOINED);
    H_EQ_U(ev->missed, 1);
    H_EQ_U(ev->status, PHX_OK);
    phx_event_free(ev);

    /* A size smaller than a size_t is refused. */
    h.size = 0;
    H_STATUS(phx_channel_set_handler_ex(lobby, &h, &s, NULL), PHX_ERR_INVALID_ARGUMENT);
    phx_socket_free(a); /* before the counters go out of scope: no callback runs after it */
    phx_channel_free(p);
    phx_channel_free(lobby);
    h_server_stop(srv);
}

static void on_probe(void *u, uint32_t status, uint64_t rtt_us) {
    seen *s = (seen *)u;
    pthread_mutex_lock(&s->mu);
    s->rejoined = (int)status + 1;
    s->missed = rtt_us > 0;
    pthread_mutex_unlock(&s->mu);
}

static void test_stats_and_probe(void) {
    h_server *srv = h_server_start();
    phx_socket_t *s = connected_as(srv, "tester");
    phx_socket_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    H_OK(phx_socket_stats(s, &st));
    H_EQ_U(st.size, sizeof st);
    H_EQ_U(st.connects, 1);
    H_EQ_U(st.reconnects, 0);
    H_EQ_U(st.rtt_last_us, 0);

    seen r = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    H_OK(phx_socket_probe(s, on_probe, &r));
    wait_count(&r, &r.rejoined, 1);
    H_EQ_U(read_count(&r, &r.rejoined), PHX_OK + 1);
    H_EQ_U(read_count(&r, &r.missed), 1);
    H_OK(phx_socket_probe_tagged(s, 9));
    phx_event_t *ev = next_of(s, PHX_EVENT_PROBE, PHX_EVENT_PROBE);
    H_EQ_U(ev->tag, 9);
    H_EQ_U(ev->status, PHX_OK);
    H_CHECK(ev->rtt_us > 0);
    phx_event_free(ev);

    h_control(srv, "drop");
    double deadline = h_now_ms() + H_WAIT_MS;
    do {
        H_CHECK(h_now_ms() < deadline);
        usleep(2000);
        H_OK(phx_socket_stats(s, &st));
    } while (st.reconnects < 1);
    H_EQ_U(st.disconnects[PHX_REASON_IO], 1);
    H_CHECK(st.rtt_last_us > 0 && st.rtt_smoothed_us > 0);
    H_CHECK(st.frames_out >= 2 && st.bytes_out > st.frames_out);
    H_STATUS(phx_socket_stats(s, NULL), PHX_ERR_INVALID_ARGUMENT);
    phx_socket_free(s);
    h_server_stop(srv);
}

static const h_case cases[] = {
    H_CASE(presence_events),
    H_CASE(handler_ex_presence_and_rejoined),
    H_CASE(stats_and_probe),
};

H_MAIN(cases)
