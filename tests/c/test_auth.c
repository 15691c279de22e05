/* test_auth.c: the auth token, upgrade headers, the connect provider answered from another
 * thread, refused upgrades (status, Retry-After, giving up), as a C application uses them. */
#include "harness.h"

#include <pthread.h>
#include <stdlib.h>

/* Joins `connect_info` and returns the server's response (what connect/3 was given) as a
 * NUL-terminated copy the caller frees. */
static char *connect_info(phx_socket_t *s) {
    phx_channel_t *c = NULL;
    phx_response_t *resp = NULL;
    char *text;
    H_OK(phx_socket_channel(s, "connect_info", &c));
    H_OK(phx_channel_join_wait(c, NULL, H_OP_MS, &resp));
    text = (char *)malloc(resp->payload_len + 1);
    H_CHECK(text != NULL);
    memcpy(text, resp->payload, resp->payload_len);
    text[resp->payload_len] = '\0';
    phx_response_free(resp);
    H_OK(phx_channel_leave_wait(c, 0));
    phx_channel_free(c);
    return text;
}

#define H_CONTAINS(haystack, needle) \
    H_CHECKF(strstr((haystack), (needle)) != NULL, "\"%s\" not in %s", (needle), (haystack))

static void test_auth_token_and_headers(void) {
    h_server *srv = h_server_start_with("--auth-token");
    phx_options_t *o = h_options();
    phx_socket_t *s = NULL;
    char *info;
    H_OK(phx_options_set_auth_token(o, "s3cr+t/?"));
    H_OK(phx_options_add_header(o, "X-Api-Key", "k-1"));
    H_OK(phx_options_set_params_json(o, "{\"token\":\"p\"}"));
    H_OK(phx_socket_new(h_server_url(srv), o, &s));
    phx_options_free(o);
    h_connect(s);
    info = connect_info(s);
    H_CONTAINS(info, "\"auth_token\":\"s3cr+t/?\"");
    H_CONTAINS(info, "\"x-api-key\":\"k-1\"");
    H_CONTAINS(info, "\"token\":\"p\"");
    free(info);
    phx_socket_free(s);
    h_server_stop(srv);
}

static void test_option_errors(void) {
    phx_options_t *o = h_options();
    H_STATUS(phx_options_set_auth_token(o, NULL), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_auth_token(NULL, "t"), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_add_header(o, "bad name", "v"), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_add_header(o, "X-A", "line\nbreak"), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_add_header(o, "Sec-WebSocket-Protocol", "x"),
             PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_add_header(o, NULL, "v"), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_max_refusals(NULL, 3), PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_options_set_connect_provider(o, NULL, NULL, NULL, 1000),
             PHX_ERR_INVALID_ARGUMENT);
    H_STATUS(phx_provide_complete(NULL, NULL, NULL), PHX_ERR_INVALID_ARGUMENT);
    phx_provide_fail(NULL, "ignored");
    phx_options_free(o);
}

/* The provider hands each request to a thread of its own, which answers it. */
typedef struct provider {
    pthread_mutex_t mu;
    int asked;
    int frees;
} provider;

typedef struct answer {
    phx_provide_t *request;
    int n;
} answer;

static void *answer_later(void *arg) {
    answer *a = (answer *)arg;
    char params[64];
    snprintf(params, sizeof params, "{\"token\":\"fresh-%d\"}", a->n);
    /* Invalid params are refused and the request is not consumed: answer again. */
    H_STATUS(phx_provide_complete(a->request, "[1]", NULL), PHX_ERR_INVALID_ARGUMENT);
    H_OK(phx_provide_complete(a->request, params, "tok"));
    free(a);
    return NULL;
}

static void provide(void *user_data, phx_provide_t *request) {
    provider *p = (provider *)user_data;
    answer *a = (answer *)malloc(sizeof *a);
    pthread_t t;
    H_CHECK(a != NULL);
    pthread_mutex_lock(&p->mu);
    a->n = ++p->asked;
    pthread_mutex_unlock(&p->mu);
    a->request = request;
    H_CHECK(pthread_create(&t, NULL, answer_later, a) == 0);
    H_CHECK(pthread_detach(t) == 0);
}

static void free_provider(void *user_data) {
    provider *p = (provider *)user_data;
    pthread_mutex_lock(&p->mu);
    p->frees++;
    pthread_mutex_unlock(&p->mu);
}

static void test_provider_answers_from_another_thread(void) {
    h_server *srv = h_server_start_with("--auth-token");
    h_log *log = h_log_new();
    provider p;
    phx_options_t *o = h_options();
    phx_socket_t *s = NULL;
    phx_socket_handler_t h = h_socket_handler();
    char *info;
    memset(&p, 0, sizeof p);
    pthread_mutex_init(&p.mu, NULL);
    H_OK(phx_options_set_connect_provider(o, provide, &p, free_provider, 5000));
    H_OK(phx_socket_new(h_server_url(srv), o, &s));
    H_OK(phx_socket_set_handler(s, &h, h_op_new(log, 1), h_on_free));
    phx_options_free(o);
    H_EQ_U(p.frees, 0); /* the socket still holds the provider */
    h_connect(s);
    info = connect_info(s);
    H_CONTAINS(info, "\"token\":\"fresh-1\"");
    H_CONTAINS(info, "\"auth_token\":\"tok\"");
    free(info);

    /* The reconnect after a drop asks again: fresh params. */
    h_control(srv, "drop");
    H_CHECK(h_log_wait(log, H_SOCKET_STATE, 1, PHX_SOCKET_CONNECTED, NULL, 2, H_WAIT_MS));
    info = connect_info(s);
    H_CONTAINS(info, "\"token\":\"fresh-2\"");
    free(info);

    phx_socket_free(s);
    H_EQ_U(p.frees, 1);
    H_EQ_U(p.asked, 2);
    pthread_mutex_destroy(&p.mu);
    h_log_free(log);
    h_server_stop(srv);
}

/* Records the reasons of the socket's state changes. */
typedef struct reasons {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    phx_reason_t refused; /* the first PHX_REASON_HTTP_STATUS */
    phx_reason_t final;   /* the reason of PHX_SOCKET_DISCONNECTED */
    int disconnected;
} reasons;

static void on_state(void *user_data, uint32_t state, const phx_reason_t *reason) {
    reasons *r = (reasons *)user_data;
    pthread_mutex_lock(&r->mu);
    if (reason && reason->kind == PHX_REASON_HTTP_STATUS && r->refused.kind == PHX_REASON_NONE)
        r->refused = *reason;
    if (state == PHX_SOCKET_DISCONNECTED && reason) {
        r->final = *reason;
        r->disconnected = 1;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

static void test_refusals_report_status_and_give_up(void) {
    h_server *srv = h_server_start();
    phx_options_t *o = h_options();
    phx_socket_t *s = NULL;
    phx_socket_handler_t h;
    phx_reason_t last;
    reasons r;
    struct timespec deadline;
    memset(&r, 0, sizeof r);
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    h.on_state = on_state;
    H_OK(phx_options_set_max_refusals(o, 2));
    H_OK(phx_socket_new(h_server_url(srv), o, &s));
    phx_options_free(o);
    H_OK(phx_socket_set_handler(s, &h, &r, NULL));
    h_control(srv, "refuse?status=429&retry_after=1");
    H_OK(phx_socket_connect(s));

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += H_WAIT_MS / 1000;
    pthread_mutex_lock(&r.mu);
    while (!r.disconnected)
        H_CHECKF(pthread_cond_timedwait(&r.cv, &r.mu, &deadline) == 0, "%s",
                 "the socket did not give up");
    pthread_mutex_unlock(&r.mu);

    H_EQ_U(r.refused.kind, PHX_REASON_HTTP_STATUS);
    H_EQ_U(r.refused.code, 429);
    H_EQ_U(r.refused.retry_after_ms, 1000);
    H_EQ_U(r.final.kind, PHX_REASON_GAVE_UP);
    H_EQ_U(r.final.code, 429);
    H_OK(phx_socket_last_reason(s, &last));
    H_EQ_U(last.kind, PHX_REASON_GAVE_UP);
    H_CONTAINS(last.text, "after 2 refused upgrades");
    H_EQ_U(h_socket_state(s), PHX_SOCKET_DISCONNECTED);
    phx_socket_free(s);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    h_server_stop(srv);
}

/* A provider that fails: the attempt fails with PHX_REASON_PROVIDER and its text. */
static void provide_fail(void *user_data, phx_provide_t *request) {
    (void)user_data;
    phx_provide_fail(request, "no token yet");
}

static void test_provider_failure_is_a_reason(void) {
    h_server *srv = h_server_start();
    h_log *log = h_log_new();
    phx_options_t *o = h_options();
    phx_socket_t *s = NULL;
    phx_socket_handler_t h = h_socket_handler();
    phx_reason_t last;
    H_OK(phx_options_set_connect_provider(o, provide_fail, NULL, NULL, 1000));
    H_OK(phx_socket_new(h_server_url(srv), o, &s));
    phx_options_free(o);
    H_OK(phx_socket_set_handler(s, &h, h_op_new(log, 1), h_on_free));
    H_OK(phx_socket_connect(s));
    H_CHECK(h_log_wait(log, H_SOCKET_STATE, 1, PHX_SOCKET_RECONNECTING, NULL, 1, H_WAIT_MS));
    H_OK(phx_socket_last_reason(s, &last));
    H_EQ_U(last.kind, PHX_REASON_PROVIDER);
    H_CONTAINS(last.text, "no token yet");
    phx_socket_free(s);
    h_log_free(log);
    h_server_stop(srv);
}

static const h_case cases[] = {
    H_CASE(auth_token_and_headers),
    H_CASE(option_errors),
    H_CASE(provider_answers_from_another_thread),
    H_CASE(refusals_report_status_and_give_up),
    H_CASE(provider_failure_is_a_reason),
};

H_MAIN(cases)
