/* harness.c: see harness.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *g_case = "(none)";
static struct timespec g_start;

/* ---- checks and cases -------------------------------------------------------------------- */

void h_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "FAIL [%s] %s:%d: ", g_case, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    /* _exit: libphx's threads are still running; exit() would run destructors under them. */
    _exit(1);
}

void h_note(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "  [%s] ", g_case);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double h_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)(ts.tv_sec - g_start.tv_sec) * 1000.0 +
           (double)(ts.tv_nsec - g_start.tv_nsec) / 1e6;
}

static void on_watchdog(int sig) {
    static const char msg[] = "FAIL: watchdog: the test case did not finish in time\n";
    ssize_t r;
    (void)sig;
    r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(2);
}

int h_main(int argc, char **argv, const h_case *cases, size_t n) {
    size_t i;
    int ran = 0;
    const char *only = argc > 1 ? argv[1] : NULL;
    unsigned watchdog = 170;
    const char *wd = getenv("PHX_TEST_WATCHDOG_S");

    clock_gettime(CLOCK_MONOTONIC, &g_start);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_watchdog);
    if (wd && atoi(wd) > 0) watchdog = (unsigned)atoi(wd);
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (only && strcmp(only, "--list") == 0) {
        for (i = 0; i < n; i++) printf("%s\n", cases[i].name);
        return 0;
    }
    for (i = 0; i < n; i++) {
        double t0;
        if (only && strcmp(only, cases[i].name) != 0) continue;
        g_case = cases[i].name;
        alarm(watchdog);
        t0 = h_now_ms();
        cases[i].fn();
        alarm(0);
        printf("ok %s (%.0f ms)\n", cases[i].name, h_now_ms() - t0);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test case named %s\n", only ? only : "(any)");
        return 1;
    }
    return 0;
}

char *h_strndup(const void *p, size_t n) {
    char *s = (char *)malloc(n + 1);
    H_CHECK(s != NULL);
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

void h_data_eq(const char *file, int line, const void *got, size_t got_len, const void *want,
               size_t want_len) {
    size_t i;
    if (got_len == want_len && (want_len == 0 || (got && memcmp(got, want, want_len) == 0)))
        return;
    for (i = 0; i < got_len && i < want_len; i++)
        if (((const unsigned char *)got)[i] != ((const unsigned char *)want)[i]) break;
    h_fail(file, line, "bytes differ at offset %zu: got %zu bytes \"%.*s\", expected %zu bytes \"%.*s\"",
           i, got_len, (int)(got_len > 200 ? 200 : got_len), got ? (const char *)got : "",
           want_len, (int)(want_len > 200 ? 200 : want_len), (const char *)want);
}

/* ---- time and threads -------------------------------------------------------------------- */

void h_cond_init(pthread_cond_t *cv) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

void h_deadline(struct timespec *ts, int timeout_ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
}

void h_counter_init(h_counter *c) {
    pthread_mutex_init(&c->mu, NULL);
    h_cond_init(&c->cv);
    c->value = 0;
}

void h_counter_destroy(h_counter *c) {
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

void h_counter_add(h_counter *c, long delta) {
    pthread_mutex_lock(&c->mu);
    c->value += delta;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

long h_counter_get(h_counter *c) {
    long v;
    pthread_mutex_lock(&c->mu);
    v = c->value;
    pthread_mutex_unlock(&c->mu);
    return v;
}

bool h_counter_wait(h_counter *c, long target, int timeout_ms) {
    struct timespec dl;
    bool ok;
    h_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (c->value < target) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT) break;
    }
    ok = c->value >= target;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* ---- the test server --------------------------------------------------------------------- */

struct h_server {
    pid_t pid;
    int in_fd;  /* the server's stdin: closing it stops the server */
    int out_fd; /* the server's stdout: EOF once it exited */
    char url[512];
    char host[256];
    char port[16];
};

h_server *h_server_start(void) { return h_server_start_with(NULL); }

h_server *h_server_start_with(const char *flag) {
    static char arg_port[] = "--port";
    static char arg_zero[] = "0";
    static char arg_eof[] = "--exit-on-stdin-eof";
    const char *bin = getenv("PHX_TESTSERVER_BIN");
    int in_p[2], out_p[2];
    posix_spawn_file_actions_t fa;
    char *args[6];
    h_server *srv;
    size_t len = 0;
    int rc;
    const char *p, *colon, *slash;

    H_CHECKF(bin != NULL && bin[0] != '\0',
             "PHX_TESTSERVER_BIN is not set (path of target/debug/phx-testserver)");
    H_CHECKF(access(bin, X_OK) == 0, "PHX_TESTSERVER_BIN=%s is not an executable file", bin);
    H_CHECK(pipe2(in_p, O_CLOEXEC) == 0);
    H_CHECK(pipe2(out_p, O_CLOEXEC) == 0);

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_p[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_p[1], 1);
    if (!getenv("PHX_TEST_SERVER_LOG"))
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    args[0] = (char *)bin;
    args[1] = arg_port;
    args[2] = arg_zero;
    args[3] = arg_eof;
    args[4] = (char *)flag;
    args[5] = NULL;

    srv = (h_server *)calloc(1, sizeof *srv);
    H_CHECK(srv != NULL);
    rc = posix_spawn(&srv->pid, bin, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    H_CHECKF(rc == 0, "cannot start %s: %s", bin, strerror(rc));
    close(in_p[0]);
    close(out_p[1]);
    srv->in_fd = in_p[1];
    srv->out_fd = out_p[0];

    /* The first line on stdout is the URL. */
    for (;;) {
        struct pollfd pfd;
        ssize_t r;
        pfd.fd = srv->out_fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        H_CHECKF(poll(&pfd, 1, 10000) == 1, "phx-testserver printed no URL within 10 s");
        H_CHECK(len < sizeof srv->url - 1);
        r = read(srv->out_fd, srv->url + len, 1);
        H_CHECKF(r == 1, "phx-testserver exited before printing its URL");
        if (srv->url[len] == '\n') break;
        len++;
    }
    srv->url[len] = '\0';
    if (len && srv->url[len - 1] == '\r') srv->url[len - 1] = '\0';

    /* ws://HOST:PORT/... */
    p = strstr(srv->url, "://");
    H_CHECKF(p != NULL, "unexpected URL from phx-testserver: %s", srv->url);
    p += 3;
    slash = strchr(p, '/');
    if (!slash) slash = p + strlen(p);
    colon = NULL;
    {
        const char *q;
        for (q = p; q < slash; q++)
            if (*q == ':') colon = q;
    }
    H_CHECKF(colon != NULL, "no port in URL %s", srv->url);
    H_CHECK((size_t)(colon - p) < sizeof srv->host && (size_t)(slash - colon - 1) < sizeof srv->port);
    memcpy(srv->host, p, (size_t)(colon - p));
    memcpy(srv->port, colon + 1, (size_t)(slash - colon - 1));
    return srv;
}

const char *h_server_url(const h_server *srv) { return srv->url; }

void h_server_stop(h_server *srv) {
    struct pollfd pfd;
    char buf[256];
    int status;
    double deadline;
    if (!srv) return;
    close(srv->in_fd);
    /* Wait for EOF on its stdout (it exited), at most 10 s, then kill it. */
    deadline = h_now_ms() + 10000.0;
    for (;;) {
        int left = (int)(deadline - h_now_ms());
        ssize_t r;
        if (left <= 0) {
            kill(srv->pid, SIGKILL);
            break;
        }
        pfd.fd = srv->out_fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, left) <= 0) continue;
        r = read(srv->out_fd, buf, sizeof buf);
        if (r <= 0 && !(r < 0 && errno == EINTR)) break;
    }
    while (waitpid(srv->pid, &status, 0) < 0 && errno == EINTR) {
    }
    close(srv->out_fd);
    free(srv);
}

static int connect_to(const char *host, const char *port) {
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0) return -1;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Case-insensitive search for a header name at a line start within [p, end). */
static const char *find_header(const char *head, size_t head_len, const char *name) {
    size_t nlen = strlen(name);
    size_t i;
    for (i = 0; i + nlen < head_len; i++) {
        if ((i == 0 || head[i - 1] == '\n') && strncasecmp(head + i, name, nlen) == 0 &&
            head[i + nlen] == ':')
            return head + i + nlen + 1;
    }
    return NULL;
}

int h_server_control(h_server *srv, const char *name_and_query, char *body, size_t body_cap) {
    char req[1024];
    char *resp = NULL;
    size_t len = 0, cap = 0;
    int fd, n, status = -1;
    size_t sent = 0;
    const char *hdr_end;
    double deadline = h_now_ms() + 10000.0;

    if (body && body_cap) body[0] = '\0';
    fd = connect_to(srv->host, srv->port);
    if (fd < 0) return -1;
    n = snprintf(req, sizeof req,
                 "POST /control/%s HTTP/1.1\r\nHost: %s:%s\r\nContent-Length: 0\r\n"
                 "Connection: close\r\n\r\n",
                 name_and_query, srv->host, srv->port);
    H_CHECK(n > 0 && (size_t)n < sizeof req);
    while (sent < (size_t)n) {
        ssize_t w = send(fd, req + sent, (size_t)n - sent, 0);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        sent += (size_t)w;
    }

    /* Read the whole response: until EOF, or until Content-Length bytes of body arrived. */
    for (;;) {
        struct pollfd pfd;
        ssize_t r;
        int left = (int)(deadline - h_now_ms());
        if (len > 0 && (hdr_end = strstr(resp, "\r\n\r\n")) != NULL) {
            const char *cl = find_header(resp, (size_t)(hdr_end - resp), "content-length");
            if (cl && len >= (size_t)(hdr_end + 4 - resp) + strtoul(cl, NULL, 10)) break;
        }
        if (left <= 0) break;
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            resp = (char *)realloc(resp, cap);
            H_CHECK(resp != NULL);
        }
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, left) <= 0) continue;
        r = recv(fd, resp + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
        resp[len] = '\0';
    }
    close(fd);
    if (!resp) return -1;
    if (strncmp(resp, "HTTP/1.", 7) == 0 && len > 12) status = atoi(resp + 9);
    hdr_end = strstr(resp, "\r\n\r\n");
    if (body && body_cap && hdr_end) {
        const char *b = hdr_end + 4;
        size_t blen = len - (size_t)(b - resp);
        const char *te = find_header(resp, (size_t)(hdr_end - resp), "transfer-encoding");
        if (te && strstr(te, "chunked") && strstr(te, "chunked") < hdr_end) {
            /* De-chunk in place into body. */
            size_t out = 0;
            const char *q = b, *end = b + blen;
            while (q < end) {
                char *after;
                unsigned long sz = strtoul(q, &after, 16);
                const char *data = strstr(after, "\r\n");
                if (!data || sz == 0) break;
                data += 2;
                if (data + sz > end) sz = (unsigned long)(end - data);
                if (out + sz >= body_cap) sz = (unsigned long)(body_cap - 1 - out);
                memcpy(body + out, data, sz);
                out += sz;
                q = data + sz + 2;
            }
            body[out] = '\0';
        } else {
            if (blen >= body_cap) blen = body_cap - 1;
            memcpy(body, b, blen);
            body[blen] = '\0';
        }
    }
    free(resp);
    return status;
}

void h_control(h_server *srv, const char *name_and_query) {
    char body[512];
    int st = h_server_control(srv, name_and_query, body, sizeof body);
    H_CHECKF(st == 200, "control %s answered %d: %s", name_and_query, st, body);
}

long h_server_stat(h_server *srv, const char *section, const char *topic) {
    char body[8192];
    char key[300];
    const char *sec, *end, *hit;
    int st = h_server_control(srv, "stats", body, sizeof body);
    H_CHECKF(st == 200, "control stats answered %d", st);
    snprintf(key, sizeof key, "\"%s\":{", section);
    sec = strstr(body, key);
    if (!sec) return 0;
    sec += strlen(key);
    end = strchr(sec, '}');
    snprintf(key, sizeof key, "\"%s\":", topic);
    hit = strstr(sec, key);
    if (!hit || (end && hit > end)) return 0;
    return strtol(hit + strlen(key), NULL, 10);
}

/* ---- the record of callbacks ------------------------------------------------------------- */

struct h_log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    h_rec **recs;
    size_t n, cap;
    h_op **ops;
    size_t nops, opcap;
    int sealed;
    size_t late;
    int violations;
};

h_log *h_log_new(void) {
    h_log *log = (h_log *)calloc(1, sizeof *log);
    H_CHECK(log != NULL);
    pthread_mutex_init(&log->mu, NULL);
    h_cond_init(&log->cv);
    return log;
}

h_op *h_op_new(h_log *log, uint64_t id) {
    h_op *op = (h_op *)calloc(1, sizeof *op);
    H_CHECK(op != NULL);
    op->log = log;
    op->id = id;
    pthread_mutex_lock(&log->mu);
    if (log->nops == log->opcap) {
        log->opcap = log->opcap ? log->opcap * 2 : 64;
        log->ops = (h_op **)realloc(log->ops, log->opcap * sizeof *log->ops);
        H_CHECK(log->ops != NULL);
    }
    log->ops[log->nops++] = op;
    pthread_mutex_unlock(&log->mu);
    return op;
}

void h_log_dump(h_log *log) {
    size_t i;
    pthread_mutex_lock(&log->mu);
    fprintf(stderr, "  record (%zu entries):\n", log->n);
    for (i = 0; i < log->n; i++) {
        const h_rec *r = log->recs[i];
        fprintf(stderr, "   %8.1f ms type=%d id=%llu status=%s state=%u text=%s len=%zu%s\n",
                r->at_ms, r->type, (unsigned long long)r->id, phx_status_str(r->status), r->state,
                r->text ? r->text : "-", r->len, r->late ? " LATE" : "");
    }
    pthread_mutex_unlock(&log->mu);
}

void h_log_free(h_log *log) {
    size_t i;
    int violations;
    if (!log) return;
    pthread_mutex_lock(&log->mu);
    violations = log->violations;
    pthread_mutex_unlock(&log->mu);
    if (violations) {
        h_log_dump(log);
        H_CHECKF(violations == 0, "%d callback contract violation(s), see above", violations);
    }
    for (i = 0; i < log->n; i++) {
        free(log->recs[i]->text);
        free(log->recs[i]->topic);
        free(log->recs[i]->data);
        free(log->recs[i]);
    }
    for (i = 0; i < log->nops; i++) free(log->ops[i]);
    free(log->recs);
    free(log->ops);
    pthread_mutex_destroy(&log->mu);
    pthread_cond_destroy(&log->cv);
    free(log);
}

void h_log_seal(h_log *log) {
    pthread_mutex_lock(&log->mu);
    log->sealed = 1;
    pthread_mutex_unlock(&log->mu);
}

size_t h_log_late(h_log *log) {
    size_t n;
    pthread_mutex_lock(&log->mu);
    n = log->late;
    pthread_mutex_unlock(&log->mu);
    return n;
}

size_t h_log_seal_and_watch(h_log *log, int timeout_ms) {
    struct timespec dl;
    size_t n;
    h_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&log->mu);
    log->sealed = 1;
    while (log->late == 0) {
        if (pthread_cond_timedwait(&log->cv, &log->mu, &dl) == ETIMEDOUT) break;
    }
    n = log->late;
    pthread_mutex_unlock(&log->mu);
    return n;
}

static h_rec *rec_new(int type, uint64_t id) {
    h_rec *r = (h_rec *)calloc(1, sizeof *r);
    H_CHECK(r != NULL);
    r->type = type;
    r->id = id;
    r->state = H_ANY_STATE;
    r->at_ms = h_now_ms();
    return r;
}

static void rec_add(h_log *log, h_rec *r) {
    pthread_mutex_lock(&log->mu);
    if (log->n == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 64;
        log->recs = (h_rec **)realloc(log->recs, log->cap * sizeof *log->recs);
        H_CHECK(log->recs != NULL);
    }
    if (log->sealed) {
        r->late = 1;
        log->late++;
    }
    log->recs[log->n++] = r;
    pthread_cond_broadcast(&log->cv);
    pthread_mutex_unlock(&log->mu);
}

static void violation(h_log *log, const char *what, uint64_t id) {
    fprintf(stderr, "  [%s] violation: %s (id %llu)\n", g_case, what, (unsigned long long)id);
    pthread_mutex_lock(&log->mu);
    log->violations++;
    pthread_mutex_unlock(&log->mu);
}

void h_log_note(h_log *log, uint64_t id, uint32_t status, const char *text) {
    h_rec *r = rec_new(H_NOTE, id);
    r->status = status;
    r->text = text ? h_strndup(text, strlen(text)) : NULL;
    rec_add(log, r);
}

static bool rec_match(const h_rec *r, int type, uint64_t id, uint32_t state, const char *text) {
    if (r->type != type) return false;
    if (id != H_ANY && r->id != id) return false;
    if (state != H_ANY_STATE && r->state != state) return false;
    if (text && (!r->text || strcmp(r->text, text) != 0)) return false;
    return true;
}

static size_t count_locked(h_log *log, int type, uint64_t id, uint32_t state, const char *text) {
    size_t i, c = 0;
    for (i = 0; i < log->n; i++)
        if (rec_match(log->recs[i], type, id, state, text)) c++;
    return c;
}

size_t h_log_count(h_log *log, int type, uint64_t id, uint32_t state, const char *text) {
    size_t c;
    pthread_mutex_lock(&log->mu);
    c = count_locked(log, type, id, state, text);
    pthread_mutex_unlock(&log->mu);
    return c;
}

bool h_log_wait(h_log *log, int type, uint64_t id, uint32_t state, const char *text, size_t count,
                int timeout_ms) {
    struct timespec dl;
    bool ok;
    h_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&log->mu);
    while (count_locked(log, type, id, state, text) < count) {
        if (pthread_cond_timedwait(&log->cv, &log->mu, &dl) == ETIMEDOUT) break;
    }
    ok = count_locked(log, type, id, state, text) >= count;
    pthread_mutex_unlock(&log->mu);
    return ok;
}

const h_rec *h_log_get(h_log *log, int type, uint64_t id, uint32_t state, const char *text,
                       size_t nth) {
    size_t i;
    const h_rec *found = NULL;
    pthread_mutex_lock(&log->mu);
    for (i = 0; i < log->n; i++) {
        if (rec_match(log->recs[i], type, id, state, text)) {
            if (nth == 0) {
                found = log->recs[i];
                break;
            }
            nth--;
        }
    }
    pthread_mutex_unlock(&log->mu);
    return found;
}

const h_rec *h_wait_reply(h_log *log, uint64_t id) {
    if (!h_log_wait(log, H_REPLY, id, H_ANY_STATE, NULL, 1, H_WAIT_MS)) {
        h_log_dump(log);
        h_fail(__FILE__, __LINE__, "no completion for op %llu within %d ms", (unsigned long long)id,
               H_WAIT_MS);
    }
    return h_log_get(log, H_REPLY, id, H_ANY_STATE, NULL, 0);
}

void h_wait_state(h_log *log, int type, uint64_t id, uint32_t state) {
    if (!h_log_wait(log, type, id, state, NULL, 1, H_WAIT_MS)) {
        h_log_dump(log);
        h_fail(__FILE__, __LINE__, "no %s state %u for id %llu within %d ms",
               type == H_SOCKET_STATE ? "socket" : "channel", (unsigned)state,
               (unsigned long long)id, H_WAIT_MS);
    }
}

/* The only places that read phx_reply_t / phx_message_t / phx_reason_t fields. */
static void rec_set_reply(h_rec *r, const phx_reply_t *reply) {
    r->has_reply = reply != NULL;
    if (!reply) return;
    r->text = h_strndup(reply->status, reply->status_len);
    r->kind = reply->payload_kind;
    r->data = (unsigned char *)h_strndup(reply->payload, reply->payload_len);
    r->len = reply->payload_len;
}

void h_on_reply(void *user_data, uint32_t status, const phx_reply_t *reply) {
    h_op *op = (h_op *)user_data;
    h_rec *r = rec_new(H_REPLY, op->id);
    int calls;
    r->status = status;
    rec_set_reply(r, reply);
    pthread_mutex_lock(&op->log->mu);
    calls = ++op->calls;
    pthread_mutex_unlock(&op->log->mu);
    if (calls > 1) violation(op->log, "completion fired more than once", op->id);
    /* reply is set for PHX_ERR_REPLY and for PHX_OK answered by the server (a leave with
     * nothing to tell the server completes PHX_OK without one), NULL for anything else. */
    if ((status == PHX_ERR_REPLY && reply == NULL) ||
        (status != PHX_OK && status != PHX_ERR_REPLY && reply != NULL))
        violation(op->log, "reply pointer set for the wrong status", op->id);
    rec_add(op->log, r);
}

void h_on_free(void *user_data) {
    h_op *op = (h_op *)user_data;
    int frees;
    pthread_mutex_lock(&op->log->mu);
    frees = ++op->frees;
    pthread_mutex_unlock(&op->log->mu);
    if (frees > 1) violation(op->log, "free_user_data called more than once", op->id);
    rec_add(op->log, rec_new(H_FREE, op->id));
}

void h_on_socket_state(void *user_data, uint32_t state, const phx_reason_t *reason) {
    h_op *op = (h_op *)user_data;
    h_rec *r = rec_new(H_SOCKET_STATE, op->id);
    r->state = state;
    r->kind = reason ? (uint32_t)reason->kind : (uint32_t)PHX_REASON_NONE;
    rec_add(op->log, r);
}

void h_on_socket_log(void *user_data, uint32_t level, const char *message) {
    h_op *op = (h_op *)user_data;
    h_rec *r = rec_new(H_LOG, op->id);
    r->status = level;
    r->text = h_strndup(message, strlen(message));
    rec_add(op->log, r);
}

void h_on_message(void *user_data, const phx_message_t *msg) {
    h_op *op = (h_op *)user_data;
    h_rec *r = rec_new(H_MESSAGE, op->id);
    r->text = h_strndup(msg->event, msg->event_len);
    r->topic = h_strndup(msg->topic, msg->topic_len);
    r->kind = msg->payload_kind;
    r->data = (unsigned char *)h_strndup(msg->payload, msg->payload_len);
    r->len = msg->payload_len;
    rec_add(op->log, r);
}

void h_on_channel_state(void *user_data, uint32_t state) {
    h_op *op = (h_op *)user_data;
    h_rec *r = rec_new(H_CHANNEL_STATE, op->id);
    r->state = state;
    rec_add(op->log, r);
}

void h_on_rejoin(void *user_data, uint32_t status, const phx_reply_t *reply) {
    h_op *op = (h_op *)user_data;
    h_rec *r = rec_new(H_REJOIN, op->id);
    r->status = status;
    rec_set_reply(r, reply);
    rec_add(op->log, r);
}

phx_socket_handler_t h_socket_handler(void) {
    phx_socket_handler_t h;
    memset(&h, 0, sizeof h);
    h.on_state = h_on_socket_state;
    h.on_log = h_on_socket_log;
    return h;
}

phx_channel_handler_t h_channel_handler(void) {
    phx_channel_handler_t h;
    memset(&h, 0, sizeof h);
    h.on_message = h_on_message;
    h.on_state = h_on_channel_state;
    h.on_rejoin = h_on_rejoin;
    return h;
}

/* ---- libphx helpers ---------------------------------------------------------------------- */

phx_options_t *h_options(void) {
    static const uint64_t schedule[] = {50, 100, 200};
    phx_options_t *o = phx_options_new();
    H_CHECK(o != NULL);
    H_OK(phx_options_set_timeout_ms(o, H_OP_MS));
    H_OK(phx_options_set_leave_timeout_ms(o, 2000));
    H_OK(phx_options_set_connect_timeout_ms(o, 10000));
    H_OK(phx_options_set_reconnect_schedule_ms(o, schedule, 3));
    H_OK(phx_options_set_rejoin_schedule_ms(o, schedule, 3));
    return o;
}

phx_socket_t *h_socket(h_server *srv, h_log *log, uint64_t id) {
    phx_options_t *o = h_options();
    phx_socket_t *s = NULL;
    H_OK(phx_socket_new(h_server_url(srv), o, &s));
    H_CHECK(s != NULL);
    phx_options_free(o);
    if (log) {
        phx_socket_handler_t h = h_socket_handler();
        H_OK(phx_socket_set_handler(s, &h, h_op_new(log, id), h_on_free));
    }
    return s;
}

void h_connect(phx_socket_t *s) {
    H_OK(phx_socket_connect_wait(s, H_WAIT_MS));
    H_EQ_U(h_socket_state(s), PHX_SOCKET_CONNECTED);
}

phx_channel_t *h_join(phx_socket_t *s, const char *topic, h_log *log, uint64_t id) {
    phx_channel_t *c = NULL;
    H_OK(phx_socket_channel(s, topic, &c));
    H_CHECK(c != NULL);
    if (log) {
        phx_channel_handler_t h = h_channel_handler();
        H_OK(phx_channel_set_handler(c, &h, h_op_new(log, id), h_on_free));
    }
    H_OK(phx_channel_join_wait(c, NULL, H_OP_MS, NULL));
    H_EQ_U(h_channel_state(c), PHX_CHANNEL_JOINED);
    return c;
}

uint32_t h_channel_state(const phx_channel_t *c) {
    uint32_t st = 99;
    H_OK(phx_channel_state(c, &st));
    return st;
}

uint32_t h_socket_state(const phx_socket_t *s) {
    uint32_t st = 99;
    H_OK(phx_socket_state(s, &st));
    return st;
}
