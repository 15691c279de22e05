/* test_events.c: owned delivery: the event queue, its wake-up callback and its descriptor
 * (the integration pattern of Dart's NativeCallable.listener and of single-threaded loops). */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- an owned copy of an event, to check after the fact ----------------------------------- */

typedef struct copied {
    uint32_t kind, status, state, payload_kind;
    uint64_t tag, dropped;
    char *topic, *event, *reply_status;
    unsigned char *payload;
    size_t payload_len;
} copied;

static char *dup_or_null(const char *s) { return s ? h_strndup(s, strlen(s)) : NULL; }

static void copy_event(copied *c, const phx_event_t *ev) {
    c->kind = ev->kind;
    c->status = ev->status;
    c->state = ev->state;
    c->payload_kind = ev->payload_kind;
    c->tag = ev->tag;
    c->dropped = ev->dropped;
    c->topic = dup_or_null(ev->topic);
    c->event = dup_or_null(ev->event);
    c->reply_status = dup_or_null(ev->reply_status);
    c->payload = ev->payload ? (unsigned char *)h_strndup(ev->payload, ev->payload_len) : NULL;
    c->payload_len = ev->payload_len;
    /* Strings are NUL-terminated with their lengths beside them; payloads are not
     * NUL-terminated (ASan and valgrind catch a read past payload_len). */
    H_CHECK(ev->topic ? strlen(ev->topic) == ev->topic_len : ev->topic_len == 0);
    H_CHECK(ev->event ? strlen(ev->event) == ev->event_len : ev->event_len == 0);
    H_CHECK(ev->reply_status ? strlen(ev->reply_status) == ev->reply_status_len
                             : ev->reply_status_len == 0);
    /* Channel events name their instance; socket-level events carry 0. */
    H_CHECK((ev->topic != NULL) == (ev->channel_id != 0));
}

static void free_copied(copied *c) {
    free(c->topic);
    free(c->event);
    free(c->reply_status);
    free(c->payload);
}

typedef struct event_list {
    copied *items;
    size_t n, cap;
} event_list;

static void list_add(event_list *l, const phx_event_t *ev) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->items = (copied *)realloc(l->items, l->cap * sizeof *l->items);
        H_CHECK(l->items != NULL);
    }
    copy_event(&l->items[l->n++], ev);
}

static void list_free(event_list *l) {
    size_t i;
    for (i = 0; i < l->n; i++) free_copied(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

static const copied *find_reply(const event_list *l, uint64_t tag, size_t *count) {
    size_t i;
    const copied *found = NULL;
    *count = 0;
    for (i = 0; i < l->n; i++) {
        if (l->items[i].kind == PHX_EVENT_REPLY && l->items[i].tag == tag) {
            if (!found) found = &l->items[i];
            (*count)++;
        }
    }
    return found;
}

static size_t count_kind(const event_list *l, uint32_t kind, const char *event) {
    size_t i, n = 0;
    for (i = 0; i < l->n; i++)
        if (l->items[i].kind == kind && (!event || (l->items[i].event && strcmp(l->items[i].event, event) == 0)))
            n++;
    return n;
}

/* Takes every queued event without waiting (until PHX_ERR_AGAIN). */
static size_t drain(phx_socket_t *s, event_list *l) {
    size_t n = 0;
    for (;;) {
        phx_event_t *ev = NULL;
        phx_status_t st = phx_socket_try_event(s, &ev);
        if (st == PHX_ERR_AGAIN) return n;
        H_OK(st);
        H_CHECK(ev != NULL);
        list_add(l, ev);
        phx_event_free(ev);
        n++;
    }
}

/* ---- payloads ---------------------------------------------------------------------------- */

/* JSON that the server re-encodes byte for byte (keys sorted, compact, raw UTF-8). */
static char *json_payload(int i) {
    char *buf = (char *)malloc(256);
    H_CHECK(buf != NULL);
    snprintf(buf, 256, "{\"i\":%d,\"s\":\"caf\xc3\xa9 \xe2\x9c\x93 \\\"q\\\" \\\\ %d\",\"z\":[%d,true,null]}",
             i, i * 31, -i);
    return buf;
}

static unsigned char *binary_payload(int i, size_t *len) {
    size_t n = (size_t)(i * 997) % 5000, k;
    unsigned char *b;
    if (i == 3) n = 200000; /* one large enough to span several reads */
    if (i == 4) n = 0;
    b = (unsigned char *)malloc(n ? n : 1);
    H_CHECK(b != NULL);
    for (k = 0; k < n; k++) b[k] = (unsigned char)((k * 7 + (size_t)i * 13) & 0xff);
    *len = n;
    return b;
}

/* ---- the Dart pattern: a data-less wake-up, events drained later on another thread ------- */

#define N_JSON 20
#define N_BIN 12

typedef struct waker {
    int pipe_r, pipe_w;
    h_counter wakes;
    h_counter freed;
} waker;

/* Only signals: no libphx call, no data (like NativeCallable.listener's void callback). */
static void on_wake(void *user_data) {
    waker *w = (waker *)user_data;
    char b = 1;
    ssize_t r = write(w->pipe_w, &b, 1); /* non-blocking; a full pipe is readable already */
    (void)r;
    h_counter_add(&w->wakes, 1);
}

static void on_waker_free(void *user_data) { h_counter_add(&((waker *)user_data)->freed, 1); }

typedef struct drainer {
    phx_socket_t *s;
    waker *w;
    event_list events;
    size_t want_replies;  /* stop once this many replies ... */
    size_t want_messages; /* ... and this many `pushed` messages arrived */
    h_counter replies;    /* replies taken so far, for the main thread to wait on */
    int timed_out;
} drainer;

static void *drain_thread(void *arg) {
    drainer *d = (drainer *)arg;
    double deadline = h_now_ms() + H_WAIT_MS;
    for (;;) {
        struct pollfd pfd;
        char buf[256];
        if (count_kind(&d->events, PHX_EVENT_REPLY, NULL) >= d->want_replies &&
            count_kind(&d->events, PHX_EVENT_MESSAGE, "pushed") >= d->want_messages)
            return NULL;
        if (h_now_ms() > deadline) {
            d->timed_out = 1;
            return NULL;
        }
        pfd.fd = d->w->pipe_r;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, 1000) <= 0) continue;
        while (read(d->w->pipe_r, buf, sizeof buf) > 0) {
        }
        /* Woken: take everything there is, from this (non-library) thread. */
        for (;;) {
            phx_event_t *ev = NULL;
            phx_status_t st = phx_socket_next_event(d->s, 0, &ev);
            if (st == PHX_ERR_AGAIN) break;
            H_OK(st);
            list_add(&d->events, ev);
            if (ev->kind == PHX_EVENT_REPLY) h_counter_add(&d->replies, 1);
            phx_event_free(ev);
        }
    }
}

static void test_dart_wake_pattern(void) {
    h_server *srv = h_server_start();
    phx_socket_t *s = h_socket(srv, NULL, 0);
    phx_channel_t *echo = NULL, *room = NULL;
    waker w;
    drainer d;
    pthread_t th;
    int fds[2], i;
    char *json[N_JSON];
    unsigned char *bin[N_BIN];
    size_t bin_len[N_BIN];
    size_t count, msg_json = 0, msg_bin = 0;
    const copied *c;

    H_CHECK(pipe(fds) == 0);
    w.pipe_r = fds[0];
    w.pipe_w = fds[1];
    H_CHECK(fcntl(w.pipe_r, F_SETFL, O_NONBLOCK) == 0);
    H_CHECK(fcntl(w.pipe_w, F_SETFL, O_NONBLOCK) == 0);
    h_counter_init(&w.wakes);
    h_counter_init(&w.freed);
    H_OK(phx_socket_events_enable(s, 1024, on_wake, &w, on_waker_free));

    memset(&d, 0, sizeof d);
    d.s = s;
    d.w = &w;
    d.want_replies = 2 + N_JSON + N_BIN + 2 + 2; /* joins, echoes, push_me, leaves */
    d.want_messages = 2;
    h_counter_init(&d.replies);
    H_CHECK(pthread_create(&th, NULL, drain_thread, &d) == 0);

    h_connect(s);
    H_OK(phx_socket_channel(s, "echo:dart", &echo));
    H_OK(phx_socket_channel(s, "room:dart", &room));
    H_OK(phx_channel_join_tagged(echo, NULL, H_OP_MS, 1));
    H_OK(phx_channel_join_tagged(room, "{\"echo\":\"r\"}", H_OP_MS, 2));
    for (i = 0; i < N_JSON; i++) {
        json[i] = json_payload(i);
        H_OK(phx_channel_push_tagged(echo, "echo", json[i], H_OP_MS, (uint64_t)(100 + i)));
    }
    for (i = 0; i < N_BIN; i++) {
        bin[i] = binary_payload(i, &bin_len[i]);
        H_OK(phx_channel_push_binary_tagged(echo, "echo", bin[i], bin_len[i], H_OP_MS, (uint64_t)(200 + i)));
    }
    H_OK(phx_channel_push_tagged(room, "push_me", json[5], H_OP_MS, 300));
    H_OK(phx_channel_push_binary_tagged(room, "push_me", bin[5], bin_len[5], H_OP_MS, 301));
    /* Leave once everything above was answered (the drainer counts the replies it takes). */
    H_CHECK(h_counter_wait(&d.replies, (long)d.want_replies - 2, H_WAIT_MS));
    H_OK(phx_channel_leave_tagged(echo, H_OP_MS, 400));
    H_OK(phx_channel_leave_tagged(room, H_OP_MS, 401));

    H_CHECK(pthread_join(th, NULL) == 0);
    if (d.timed_out) {
        size_t k;
        for (k = 0; k < d.events.n; k++)
            fprintf(stderr, "  event %zu: kind %u tag %llu status %s state %u topic %s event %s\n", k,
                    (unsigned)d.events.items[k].kind, (unsigned long long)d.events.items[k].tag,
                    phx_status_str(d.events.items[k].status), (unsigned)d.events.items[k].state,
                    d.events.items[k].topic ? d.events.items[k].topic : "-",
                    d.events.items[k].event ? d.events.items[k].event : "-");
        H_CHECKF(0, "drained %zu events, not all the expected ones", d.events.n);
    }

    /* Every reply exactly once, with every byte of its payload. */
    c = find_reply(&d.events, 1, &count);
    H_CHECK(c && count == 1 && c->status == PHX_OK);
    H_EQ_STR(c->topic, "echo:dart");
    c = find_reply(&d.events, 2, &count);
    H_CHECK(c && count == 1 && c->status == PHX_OK);
    H_EQ_STR(c->reply_status, "ok");
    h_data_eq(__FILE__, __LINE__, c->payload, c->payload_len, "{\"echo\":\"r\"}", 12);
    for (i = 0; i < N_JSON; i++) {
        c = find_reply(&d.events, (uint64_t)(100 + i), &count);
        H_CHECKF(c && count == 1, "reply %d: %zu events", 100 + i, count);
        H_STATUS(c->status, PHX_OK);
        H_EQ_STR(c->reply_status, "ok");
        H_EQ_U(c->payload_kind, PHX_PAYLOAD_JSON);
        h_data_eq(__FILE__, __LINE__, c->payload, c->payload_len, json[i], strlen(json[i]));
    }
    for (i = 0; i < N_BIN; i++) {
        c = find_reply(&d.events, (uint64_t)(200 + i), &count);
        H_CHECKF(c && count == 1, "reply %d: %zu events", 200 + i, count);
        H_STATUS(c->status, PHX_OK);
        H_EQ_U(c->payload_kind, PHX_PAYLOAD_BINARY);
        h_data_eq(__FILE__, __LINE__, c->payload, c->payload_len, bin[i], bin_len[i]);
    }
    {
        static const uint64_t tags[] = {300, 301, 400, 401}; /* push_me x2, leave x2 */
        size_t k;
        for (k = 0; k < 4; k++) {
            c = find_reply(&d.events, tags[k], &count);
            H_CHECKF(c && count == 1 && c->status == PHX_OK, "reply %d", (int)tags[k]);
        }
    }
    /* The server pushes, as messages, JSON and binary. */
    for (i = 0; i < (int)d.events.n; i++) {
        c = &d.events.items[i];
        if (c->kind != PHX_EVENT_MESSAGE || strcmp(c->event, "pushed") != 0) continue;
        H_EQ_STR(c->topic, "room:dart");
        if (c->payload_kind == PHX_PAYLOAD_JSON) {
            h_data_eq(__FILE__, __LINE__, c->payload, c->payload_len, json[5], strlen(json[5]));
            msg_json++;
        } else {
            h_data_eq(__FILE__, __LINE__, c->payload, c->payload_len, bin[5], bin_len[5]);
            msg_bin++;
        }
    }
    H_EQ_U(msg_json, 1);
    H_EQ_U(msg_bin, 1);
    /* State events came too: the socket connected, the channels joined. */
    H_CHECK(count_kind(&d.events, PHX_EVENT_SOCKET_STATE, NULL) >= 1);
    H_CHECK(count_kind(&d.events, PHX_EVENT_CHANNEL_STATE, NULL) >= 4);
    H_CHECK(h_counter_get(&w.wakes) > 0);

    H_EQ_U(h_counter_get(&w.freed), 0);
    phx_socket_free(s);
    H_EQ_U(h_counter_get(&w.freed), 1);

    for (i = 0; i < N_JSON; i++) free(json[i]);
    for (i = 0; i < N_BIN; i++) free(bin[i]);
    list_free(&d.events);
    h_counter_destroy(&d.replies);
    phx_channel_free(echo);
    phx_channel_free(room);
    close(w.pipe_r);
    close(w.pipe_w);
    h_counter_destroy(&w.wakes);
    h_counter_destroy(&w.freed);
    h_server_stop(srv);
}

/* ---- the descriptor with poll() ----------------------------------------------------------- */

static int readable(int fd, int timeout_ms) {
    struct pollfd pfd;
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    return poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN);
}

static void test_event_fd_poll(void) {
    h_server *srv = h_server_start();
    phx_socket_t *s = h_socket(srv, NULL, 0);
    phx_channel_t *c = NULL;
    event_list l;
    int fd = -1, fd2 = -1;
    size_t count;
    const copied *r;

    memset(&l, 0, sizeof l);
    H_OK(phx_socket_events_enable(s, 64, NULL, NULL, NULL));
    H_OK(phx_socket_event_fd(s, &fd));
    H_CHECK(fd >= 0);
    H_OK(phx_socket_event_fd(s, &fd2));
    H_EQ_U(fd2, fd);
    H_CHECK(!readable(fd, 0)); /* nothing happened yet */

    H_OK(phx_socket_connect(s));
    H_OK(phx_socket_channel(s, "room:fd", &c));
    H_OK(phx_channel_join_tagged(c, NULL, H_OP_MS, 1));
    /* A single-threaded loop: poll, then drain, until the join reply is in. */
    while (find_reply(&l, 1, &count) == NULL) {
        H_CHECKF(readable(fd, H_WAIT_MS), "event fd not readable within %d ms", H_WAIT_MS);
        H_CHECK(drain(s, &l) > 0);
    }
    /* Drained: no longer readable. */
    H_CHECK(!readable(fd, 0));
    H_STATUS(find_reply(&l, 1, &count)->status, PHX_OK);

    H_OK(phx_channel_push_tagged(c, "echo", "{\"fd\":1}", H_OP_MS, 2));
    while (find_reply(&l, 2, &count) == NULL) {
        H_CHECK(readable(fd, H_WAIT_MS));
        drain(s, &l);
    }
    r = find_reply(&l, 2, &count);
    H_EQ_U(count, 1);
    H_STATUS(r->status, PHX_OK);
    h_data_eq(__FILE__, __LINE__, r->payload, r->payload_len, "{\"fd\":1}", 8);
    H_CHECK(!readable(fd, 0));
    /* The first event was the socket connecting. */
    H_EQ_U(l.items[0].kind, PHX_EVENT_SOCKET_STATE);
    H_EQ_U(l.items[0].state, PHX_SOCKET_CONNECTING);

    list_free(&l);
    phx_channel_free(c);
    phx_socket_free(s);
    h_server_stop(srv);
}

/* ---- overflow on a tiny queue ------------------------------------------------------------- */

static void test_overflow(void) {
    h_server *srv = h_server_start();
    phx_socket_t *s = h_socket(srv, NULL, 0);
    phx_channel_t *c = NULL;
    event_list l;
    size_t i, flood_msgs, count;
    uint64_t dropped = 0;
    const copied *r;
    int fd;

    memset(&l, 0, sizeof l);
    H_OK(phx_socket_events_enable(s, 4, NULL, NULL, NULL));
    H_OK(phx_socket_event_fd(s, &fd));
    h_connect(s);
    c = h_join(s, "room:flood", NULL, 0);
    drain(s, &l); /* the state events so far: the flood starts on an empty queue */
    H_OK(phx_channel_push_tagged(c, "flood", "{\"n\":200}", H_OP_MS, 7));
    /* Once this echo is answered, every flood message has been delivered (in order). */
    H_OK(phx_channel_push_wait(c, "echo", "{}", H_OP_MS, NULL));
    H_CHECK(readable(fd, 0));
    drain(s, &l);

    flood_msgs = count_kind(&l, PHX_EVENT_MESSAGE, "flood_msg");
    for (i = 0; i < l.n; i++)
        if (l.items[i].kind == PHX_EVENT_OVERFLOW) dropped += l.items[i].dropped;
    H_CHECKF(count_kind(&l, PHX_EVENT_OVERFLOW, NULL) >= 1, "no overflow event (%zu events)", l.n);
    H_CHECK(flood_msgs < 200);
    H_CHECK(dropped > 0);
    /* The tagged reply is never dropped. */
    r = find_reply(&l, 7, &count);
    H_CHECKF(r != NULL && count == 1, "flood reply: %zu", count);
    H_STATUS(r->status, PHX_OK);
    h_data_eq(__FILE__, __LINE__, r->payload, r->payload_len, "{\"sent\":200}", 12);
    /* Loss is never silent: delivered + dropped covers every message-like event. */
    H_CHECKF(flood_msgs + dropped >= 200, "%zu delivered + %llu dropped < 200", flood_msgs,
             (unsigned long long)dropped);
    /* Queued in order: the first flood messages are the ones delivered. */
    {
        size_t k = 0;
        for (i = 0; i < l.n; i++) {
            char want[32];
            if (l.items[i].kind != PHX_EVENT_MESSAGE) continue;
            snprintf(want, sizeof want, "{\"i\":%zu}", ++k);
            H_EQ_STR((const char *)l.items[i].payload, want);
        }
    }

    list_free(&l);
    phx_channel_free(c);
    phx_socket_free(s);
    h_server_stop(srv);
}

/* ---- the queue's own rules ---------------------------------------------------------------- */

static void test_queue_rules(void) {
    h_server *srv = h_server_start();
    phx_socket_t *s = h_socket(srv, NULL, 0);
    phx_channel_t *c = NULL;
    phx_event_t *ev = (phx_event_t *)0x1;
    int fd = -1;
    double t0;

    /* Before enabling: state errors, and tagged operations are refused. */
    H_STATUS(phx_socket_event_fd(s, &fd), PHX_ERR_STATE);
    H_STATUS(phx_socket_try_event(s, &ev), PHX_ERR_STATE);
    H_STATUS(phx_socket_next_event(s, 0, &ev), PHX_ERR_STATE);
    H_OK(phx_socket_channel(s, "room:q", &c));
    H_STATUS(phx_channel_join_tagged(c, NULL, H_OP_MS, 1), PHX_ERR_STATE);
    H_STATUS(phx_socket_events_enable(s, 0, NULL, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_OK(phx_socket_events_enable(s, 16, NULL, NULL, NULL));
    H_STATUS(phx_socket_events_enable(s, 16, NULL, NULL, NULL), PHX_ERR_STATE);
    H_CHECK(ev == (phx_event_t *)0x1);

    /* Empty: AGAIN at once, or after the wait. */
    H_STATUS(phx_socket_try_event(s, &ev), PHX_ERR_AGAIN);
    t0 = h_now_ms();
    H_STATUS(phx_socket_next_event(s, 100, &ev), PHX_ERR_AGAIN);
    H_CHECK(h_now_ms() - t0 >= 95.0);
    H_CHECK(ev == (phx_event_t *)0x1);

    /* A blocking wait returns as soon as an event comes. */
    H_OK(phx_socket_connect(s));
    H_OK(phx_socket_next_event(s, H_WAIT_MS, &ev));
    H_EQ_U(ev->kind, PHX_EVENT_SOCKET_STATE);
    H_EQ_U(ev->state, PHX_SOCKET_CONNECTING);
    phx_event_free(ev);
    H_OK(phx_socket_next_event(s, H_WAIT_MS, &ev));
    H_EQ_U(ev->kind, PHX_EVENT_SOCKET_STATE);
    H_EQ_U(ev->state, PHX_SOCKET_CONNECTED);
    /* Events stay valid after the socket is freed; queued ones are freed with it. */
    H_OK(phx_channel_join_tagged(c, NULL, H_OP_MS, 1));
    phx_socket_free(s);
    H_EQ_U(ev->kind, PHX_EVENT_SOCKET_STATE);
    H_CHECK(ev->reason != NULL);
    H_EQ_U(ev->reason->kind, PHX_REASON_NONE);
    phx_event_free(ev);
    phx_channel_free(c);
    h_server_stop(srv);
}

/* ---- the batched take --------------------------------------------------------------------- */

/* phx_socket_next_events takes up to max events at once, in order, each owned by the caller
 * (freed one by one or by phx_events_free, valid after the socket is freed); it writes nothing
 * past max and n = 0 on errors. */
static void test_batched_take(void) {
    h_server *srv = h_server_start();
    phx_socket_t *s = h_socket(srv, NULL, 0);
    phx_channel_t *c = NULL;
    phx_event_t *evs[17];
    phx_event_t *sentinel = (phx_event_t *)0x1;
    size_t n = 99, i, messages = 0;
    long next_i = 1;
    int replied = 0;

    H_STATUS(phx_socket_next_events(s, evs, 16, 0, &n), PHX_ERR_STATE);
    H_EQ_U(n, 0);
    H_OK(phx_socket_events_enable(s, 4096, NULL, NULL, NULL));
    H_STATUS(phx_socket_next_events(s, evs, 0, 0, &n), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_next_events(s, NULL, 16, 0, &n), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_next_events(s, evs, 16, 0, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_socket_next_events(s, evs, 16, 0, &n), PHX_ERR_AGAIN);
    H_EQ_U(n, 0);

    h_connect(s);
    H_OK(phx_socket_channel(s, "room:batch", &c));
    H_OK(phx_channel_join_tagged(c, NULL, H_OP_MS, 1));
    H_OK(phx_channel_push_tagged(c, "flood", "{\"n\":300}", H_OP_MS, 2));
    evs[16] = sentinel;
    while (!replied) {
        H_OK(phx_socket_next_events(s, evs, 16, H_WAIT_MS, &n));
        H_CHECK(n >= 1 && n <= 16);
        H_CHECK(evs[16] == sentinel);
        for (i = 0; i < n; i++) {
            if (evs[i]->kind == PHX_EVENT_MESSAGE) {
                char want[32];
                int len = snprintf(want, sizeof want, "{\"i\":%ld}", next_i++);
                h_data_eq(__FILE__, __LINE__, evs[i]->payload, evs[i]->payload_len, want, (size_t)len);
                messages++;
            } else if (evs[i]->kind == PHX_EVENT_REPLY && evs[i]->tag == 2) {
                H_STATUS(evs[i]->status, PHX_OK);
                replied = 1;
            }
        }
        if (n > 1) {
            phx_event_free(evs[0]); /* one by one or all at once: each is owned separately */
            phx_events_free(evs + 1, n - 1);
        } else {
            phx_events_free(evs, n);
        }
    }
    H_EQ_U(messages, 300);

    /* Taken events outlive the socket. */
    H_OK(phx_channel_push_tagged(c, "echo", "{\"x\":1}", H_OP_MS, 3));
    H_OK(phx_socket_next_events(s, evs, 16, H_WAIT_MS, &n));
    phx_socket_free(s);
    for (i = 0; i < n; i++) H_CHECK(evs[i]->kind >= PHX_EVENT_REPLY && evs[i]->kind <= PHX_EVENT_OVERFLOW);
    phx_events_free(evs, n);
    phx_events_free(NULL, 0);
    phx_channel_free(c);
    h_server_stop(srv);
}

/* ---- tagged pushes outlive their handles ------------------------------------------------- */

/* Takes events until the reply carrying `tag`; returns its status. */
static uint32_t reply_of(phx_socket_t *s, uint64_t tag) {
    for (;;) {
        phx_event_t *ev = NULL;
        H_OK(phx_socket_next_event(s, H_WAIT_MS, &ev));
        if (ev->kind == PHX_EVENT_REPLY && ev->tag == tag) {
            uint32_t status = ev->status;
            phx_event_free(ev);
            return status;
        }
        phx_event_free(ev);
    }
}

/* A tagged push completes into the queue after its channel handle is freed; one refused at
 * once holds nothing (no leak under valgrind); pending ones at phx_socket_free complete into
 * the freed queue after the handles and the socket are gone (no use after free under
 * valgrind and ASan). */
static void test_tagged_pushes_outlive_handles(void) {
    h_server *srv = h_server_start();
    phx_socket_t *s = h_socket(srv, NULL, 0);
    phx_channel_t *c = NULL, *never = NULL;
    uint64_t tag;

    H_OK(phx_socket_events_enable(s, 256, NULL, NULL, NULL));
    h_connect(s);
    H_OK(phx_socket_channel(s, "room:outlive", &c));
    H_OK(phx_channel_join_tagged(c, NULL, H_OP_MS, 1));
    H_STATUS(reply_of(s, 1), PHX_OK);

    for (tag = 10; tag < 20; tag++) H_OK(phx_channel_push_tagged(c, "noreply", "{}", 60000, tag));
    H_OK(phx_channel_push_tagged(c, "echo", "{\"x\":1}", H_OP_MS, 20));
    phx_channel_free(c);
    H_STATUS(reply_of(s, 20), PHX_OK);

    H_OK(phx_socket_channel(s, "room:never", &never));
    for (tag = 30; tag < 130; tag++) {
        H_STATUS(phx_channel_push_tagged(never, "echo", "{}", H_OP_MS, tag), PHX_ERR_STATE);
        H_STATUS(phx_channel_push_binary_tagged(never, "echo", NULL, 0, H_OP_MS, tag), PHX_ERR_STATE);
    }
    phx_channel_free(never);

    /* Ten pushes still pending, no handle left: they complete after the queue is closed. */
    phx_socket_free(s);
    h_server_stop(srv);
}

static const h_case cases[] = {
    H_CASE(dart_wake_pattern),
    H_CASE(event_fd_poll),
    H_CASE(overflow),
    H_CASE(queue_rules),
    H_CASE(batched_take),
    H_CASE(tagged_pushes_outlive_handles),
};

H_MAIN(cases)
