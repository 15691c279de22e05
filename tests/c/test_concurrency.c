/* test_concurrency.c: many threads sharing one socket. */
#include "harness.h"

#include <stdlib.h>

#define N_THREADS 8
#define N_PUSHES 40

typedef struct worker {
    int index;
    phx_socket_t *s;
    h_log *log;
    h_op *ops[N_PUSHES];
    char payloads[N_PUSHES][64];
    phx_status_t wait_status[N_PUSHES]; /* for the pushes made with push_wait */
    char *wait_response[N_PUSHES];
} worker;

static uint64_t op_id(int thread, int k) { return (uint64_t)(thread * 1000 + k); }

/* Joins its own topic, pushes N echoes (one in four blocking, the rest with callbacks),
 * waits for all of them and leaves. */
static void *work(void *arg) {
    worker *w = (worker *)arg;
    phx_channel_t *c = NULL;
    char topic[32];
    int k;

    snprintf(topic, sizeof topic, "room:thread%d", w->index);
    H_OK(phx_socket_channel(w->s, topic, &c));
    H_OK(phx_channel_join_wait(c, NULL, H_OP_MS, NULL));
    for (k = 0; k < N_PUSHES; k++) {
        snprintf(w->payloads[k], sizeof w->payloads[k], "{\"k\":%d,\"op\":%llu,\"t\":%d}", k,
                 (unsigned long long)op_id(w->index, k), w->index);
        if (k % 4 == 3) {
            phx_response_t *resp = NULL;
            w->wait_status[k] = phx_channel_push_wait(c, "echo", w->payloads[k], H_OP_MS, &resp);
            if (resp) {
                w->wait_response[k] = h_strndup(resp->payload, resp->payload_len);
                phx_response_free(resp);
            }
        } else {
            w->ops[k] = h_op_new(w->log, op_id(w->index, k));
            H_OK(phx_channel_push(c, "echo", w->payloads[k], H_OP_MS, h_on_reply, w->ops[k]));
        }
    }
    for (k = 0; k < N_PUSHES; k++)
        if (w->ops[k]) h_wait_reply(w->log, op_id(w->index, k));
    H_OK(phx_channel_leave_wait(c, H_OP_MS));
    phx_channel_free(c);
    return NULL;
}

static void test_threads_share_socket(void) {
    h_server *srv = h_server_start();
    h_log *log = h_log_new();
    phx_socket_t *s = h_socket(srv, log, 1);
    pthread_t th[N_THREADS];
    worker *w = (worker *)calloc(N_THREADS, sizeof *w);
    int i, k;

    H_CHECK(w != NULL);
    h_connect(s);
    for (i = 0; i < N_THREADS; i++) {
        w[i].index = i;
        w[i].s = s;
        w[i].log = log;
        H_CHECK(pthread_create(&th[i], NULL, work, &w[i]) == 0);
    }
    for (i = 0; i < N_THREADS; i++) H_CHECK(pthread_join(th[i], NULL) == 0);
    /* After phx_socket_free no completion can come any more: the counts are final. */
    phx_socket_free(s);

    for (i = 0; i < N_THREADS; i++) {
        char topic[32];
        for (k = 0; k < N_PUSHES; k++) {
            if (w[i].ops[k]) {
                const h_rec *r;
                H_CHECKF(w[i].ops[k]->calls == 1, "op %llu completed %d times",
                         (unsigned long long)op_id(i, k), w[i].ops[k]->calls);
                H_EQ_U(h_log_count(log, H_REPLY, op_id(i, k), H_ANY_STATE, NULL), 1);
                r = h_log_get(log, H_REPLY, op_id(i, k), H_ANY_STATE, NULL, 0);
                H_STATUS(r->status, PHX_OK);
                H_DATA_STR(r, w[i].payloads[k]);
            } else {
                H_STATUS(w[i].wait_status[k], PHX_OK);
                H_EQ_STR(w[i].wait_response[k], w[i].payloads[k]);
                free(w[i].wait_response[k]);
            }
        }
        snprintf(topic, sizeof topic, "room:thread%d", i);
        H_EQ_U(h_server_stat(srv, "joins", topic), 1);
        H_EQ_U(h_server_stat(srv, "leaves", topic), 1);
    }
    free(w);
    h_log_free(log);
    h_server_stop(srv);
}

/* ---- pushing from several threads while the socket is freed ------------------------------- */

typedef struct pusher {
    phx_channel_t *c;
    h_log *log;
    int index;
    int accepted;       /* pushes that returned PHX_OK (each must complete exactly once) */
    phx_status_t final; /* the status that stopped the loop */
    h_counter *started;
} pusher;

static void *push_until_closed(void *arg) {
    pusher *p = (pusher *)arg;
    int k;
    for (k = 0; k < 100000; k++) {
        h_op *op = h_op_new(p->log, (uint64_t)(p->index * 1000000 + k));
        phx_status_t st = phx_channel_push(p->c, "echo", "{}", H_OP_MS, h_on_reply, op);
        if (st != PHX_OK) {
            p->final = st;
            break;
        }
        p->accepted++;
        if (k == 20) h_counter_add(p->started, 1);
    }
    return NULL;
}

static void test_free_while_pushing(void) {
    h_server *srv = h_server_start();
    h_log *log = h_log_new();
    phx_socket_t *s = h_socket(srv, NULL, 0);
    pusher p[4];
    pthread_t th[4];
    h_counter started;
    int i;
    long completions = 0;

    h_counter_init(&started);
    h_connect(s);
    for (i = 0; i < 4; i++) {
        char topic[32];
        snprintf(topic, sizeof topic, "room:race%d", i);
        memset(&p[i], 0, sizeof p[i]);
        p[i].c = h_join(s, topic, NULL, 0);
        p[i].log = log;
        p[i].index = i;
        p[i].started = &started;
    }
    for (i = 0; i < 4; i++) H_CHECK(pthread_create(&th[i], NULL, push_until_closed, &p[i]) == 0);
    H_CHECK(h_counter_wait(&started, 4, H_WAIT_MS));
    phx_socket_free(s); /* the channel handles stay valid: pushes now fail */
    for (i = 0; i < 4; i++) H_CHECK(pthread_join(th[i], NULL) == 0);

    for (i = 0; i < 4; i++) {
        H_CHECKF(p[i].final == PHX_ERR_CLOSED || p[i].final == PHX_ERR_STATE,
                 "pushes stopped with %s", phx_status_str(p[i].final));
        completions += p[i].accepted;
        phx_channel_free(p[i].c);
    }
    /* Every accepted push completed exactly once (h_log_free fails on a second completion),
     * all before phx_socket_free returned or, for pushes racing with it, with PHX_ERR_CLOSED. */
    H_CHECK(h_log_wait(log, H_REPLY, H_ANY, H_ANY_STATE, NULL, (size_t)completions, H_WAIT_MS));
    H_EQ_U(h_log_count(log, H_REPLY, H_ANY, H_ANY_STATE, NULL), completions);
    h_counter_destroy(&started);
    h_log_free(log);
    h_server_stop(srv);
}

static const h_case cases[] = {
    H_CASE(threads_share_socket),
    H_CASE(free_while_pushing),
};

H_MAIN(cases)
