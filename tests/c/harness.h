/* harness.h: a small test harness for libphx's C API.
 *
 * - A test program is a table of cases; `prog` runs them all, `prog NAME` runs one (CTest registers
 *   one test per case, see tests/c/CMakeLists.txt, which finds the cases by their H_CASE lines).
 * - h_server_*: spawns phx-testserver ($PHX_TESTSERVER_BIN) with --port 0 --exit-on-stdin-eof,
 *   reads its URL, and posts fault controls over a tiny HTTP/1.1 client.
 * - h_log: a thread-safe record of everything callbacks saw (replies, messages, states, frees),
 *   with condition-variable waits bounded by timeouts: tests wait for events, never sleep for them.
 *
 * The sources compile as C11 and as C++17, both with -Wall -Wextra -Werror -pedantic.
 */
#ifndef PHX_TEST_HARNESS_H
#define PHX_TEST_HARNESS_H

#include <phx.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How long a test waits for something that must happen (generous: valgrind is slow). */
#define H_WAIT_MS 20000
/* Operation timeout for joins/pushes expected to succeed. */
#define H_OP_MS 15000

/* ---- checks ------------------------------------------------------------------------------ */

void h_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
void h_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define H_CHECK(cond)                                                                    \
    do {                                                                                 \
        if (!(cond)) h_fail(__FILE__, __LINE__, "check failed: %s", #cond);              \
    } while (0)

#define H_CHECKF(cond, ...)                                                              \
    do {                                                                                 \
        if (!(cond)) h_fail(__FILE__, __LINE__, __VA_ARGS__);                            \
    } while (0)

/* `expr` must evaluate to the status `expected`. */
#define H_STATUS(expr, expected)                                                         \
    do {                                                                                 \
        uint32_t h_got_ = (uint32_t)(expr);                                              \
        uint32_t h_want_ = (uint32_t)(expected);                                         \
        if (h_got_ != h_want_)                                                           \
            h_fail(__FILE__, __LINE__, "%s returned %s (%u), expected %s (%u)", #expr,   \
                   phx_status_str(h_got_), (unsigned)h_got_, phx_status_str(h_want_),    \
                   (unsigned)h_want_);                                                   \
    } while (0)

#define H_OK(expr) H_STATUS(expr, PHX_OK)

#define H_EQ_U(a, b)                                                                     \
    do {                                                                                 \
        unsigned long long h_a_ = (unsigned long long)(a);                               \
        unsigned long long h_b_ = (unsigned long long)(b);                               \
        if (h_a_ != h_b_)                                                                \
            h_fail(__FILE__, __LINE__, "%s == %llu, expected %s == %llu", #a, h_a_, #b,  \
                   h_b_);                                                                \
    } while (0)

#define H_EQ_STR(a, b)                                                                   \
    do {                                                                                 \
        const char *h_a_ = (a);                                                          \
        const char *h_b_ = (b);                                                          \
        if (h_a_ == NULL || h_b_ == NULL || strcmp(h_a_, h_b_) != 0)                     \
            h_fail(__FILE__, __LINE__, "%s is \"%s\", expected \"%s\"", #a,              \
                   h_a_ ? h_a_ : "(null)", h_b_ ? h_b_ : "(null)");                      \
    } while (0)

/* ---- cases ------------------------------------------------------------------------------- */

typedef struct h_case {
    const char *name;
    void (*fn)(void);
} h_case;

#define H_CASE(name) { #name, test_##name }

int h_main(int argc, char **argv, const h_case *cases, size_t n);

#define H_MAIN(cases)                                                                    \
    int main(int argc, char **argv) {                                                    \
        return h_main(argc, argv, cases, sizeof(cases) / sizeof((cases)[0]));            \
    }

/* Monotonic milliseconds since the program started. */
double h_now_ms(void);

/* ---- the test server --------------------------------------------------------------------- */

typedef struct h_server h_server;

/* Starts phx-testserver (fails the test if it cannot). */
h_server *h_server_start(void);
/* The same with one more command-line flag (NULL: none), e.g. "--auth-token". */
h_server *h_server_start_with(const char *flag);
/* ws://127.0.0.1:PORT/socket/websocket */
const char *h_server_url(const h_server *srv);
/* GET /control/<name_and_query>; returns the HTTP status (-1 when unreachable) and copies the
 * body, NUL-terminated, into body (may be NULL). */
int h_server_control(h_server *srv, const char *name_and_query, char *body, size_t body_cap);
/* The same, failing the test unless the answer is 200. */
void h_control(h_server *srv, const char *name_and_query);
/* The number under "section":{"topic":N} of /control/stats (0 if absent). */
long h_server_stat(h_server *srv, const char *section, const char *topic);
/* Closes the server's stdin (it exits) and reaps it. NULL is ignored. */
void h_server_stop(h_server *srv);

/* ---- the record of callbacks ------------------------------------------------------------- */

enum {
    H_REPLY = 1,         /* a reply callback: id = the op's id */
    H_MESSAGE = 2,       /* channel on_message: id = the handler's id */
    H_SOCKET_STATE = 3,  /* socket on_state */
    H_CHANNEL_STATE = 4, /* channel on_state */
    H_REJOIN = 5,        /* channel on_rejoin */
    H_FREE = 6,          /* free_user_data */
    H_LOG = 7,           /* socket on_log */
    H_NOTE = 8           /* anything a test records itself (h_log_note) */
};

#define H_ANY UINT64_MAX
#define H_ANY_STATE UINT32_MAX

typedef struct h_rec {
    int type;
    uint64_t id;
    uint32_t status;  /* H_REPLY, H_REJOIN, H_NOTE */
    uint32_t state;   /* H_SOCKET_STATE, H_CHANNEL_STATE; reason kind in `kind` for sockets */
    uint32_t kind;    /* payload kind (PHX_PAYLOAD_*) of data */
    char *text;       /* reply status ("ok", "error"), message event, or a note; NUL-terminated */
    char *topic;      /* message topic */
    unsigned char *data; /* payload or response bytes, NUL-terminated copy */
    size_t len;
    int has_reply;    /* the callback received a non-NULL reply */
    double at_ms;
    int late;         /* recorded after h_log_seal() */
} h_rec;

typedef struct h_log h_log;
typedef struct h_op h_op;

/* A callback target: user_data for reply callbacks and handlers. Owned by its log. */
struct h_op {
    h_log *log;
    uint64_t id;
    int calls;        /* completions seen (reply callbacks) */
    int frees;        /* free_user_data calls */
    void *ctx;        /* free for the test's use */
};

h_log *h_log_new(void);
/* Frees the log and its ops; fails the test if a completion fired more than once. */
void h_log_free(h_log *log);
h_op *h_op_new(h_log *log, uint64_t id);
/* After this, every new record is marked late (used to prove that no callback runs after
 * phx_socket_free returned). */
void h_log_seal(h_log *log);
/* Number of records made after h_log_seal. */
size_t h_log_late(h_log *log);
/* Seals the log, then gives callbacks that should never come timeout_ms to show up; returns
 * how many did (a bounded wait on the log's condition variable, not a sleep). */
size_t h_log_seal_and_watch(h_log *log, int timeout_ms);
void h_log_note(h_log *log, uint64_t id, uint32_t status, const char *text);

/* Records matching (type, id, state, text): H_ANY / H_ANY_STATE / NULL match anything. */
size_t h_log_count(h_log *log, int type, uint64_t id, uint32_t state, const char *text);
/* Waits until at least `count` such records exist; false on timeout. */
bool h_log_wait(h_log *log, int type, uint64_t id, uint32_t state, const char *text, size_t count,
                int timeout_ms);
/* The nth (0-based) matching record, or NULL. Records live until h_log_free. */
const h_rec *h_log_get(h_log *log, int type, uint64_t id, uint32_t state, const char *text,
                       size_t nth);
/* Waits for the first reply of op `id` (fails the test on timeout) and returns it. */
const h_rec *h_wait_reply(h_log *log, uint64_t id);
/* Waits for a state record (fails the test on timeout). */
void h_wait_state(h_log *log, int type, uint64_t id, uint32_t state);
/* Prints every record (for failures). */
void h_log_dump(h_log *log);

/* Callbacks that record into an h_op's log. */
void h_on_reply(void *user_data, uint32_t status, const phx_reply_t *reply);
void h_on_free(void *user_data);
void h_on_socket_state(void *user_data, uint32_t state, const phx_reason_t *reason);
void h_on_socket_log(void *user_data, uint32_t level, const char *message);
void h_on_message(void *user_data, const phx_message_t *msg);
void h_on_channel_state(void *user_data, uint32_t state);
void h_on_rejoin(void *user_data, uint32_t status, const phx_reply_t *reply);

/* Handlers whose every callback records (for phx_*_set_handler). */
phx_socket_handler_t h_socket_handler(void);
phx_channel_handler_t h_channel_handler(void);

/* ---- libphx helpers ---------------------------------------------------------------------- */

/* Options with short schedules for tests: timeout H_OP_MS, leave 2 s, connect 10 s,
 * reconnect/rejoin after 50, 100, 200 ms. Caller frees. */
phx_options_t *h_options(void);
/* A socket for srv with h_options(); with a log, a recording handler (op id `id`) is set. */
phx_socket_t *h_socket(h_server *srv, h_log *log, uint64_t id);
/* phx_socket_connect_wait, failing the test unless connected. */
void h_connect(phx_socket_t *s);
/* A channel for topic with a recording handler (op id `id`) when log is given, joined with
 * phx_channel_join_wait (must succeed). */
phx_channel_t *h_join(phx_socket_t *s, const char *topic, h_log *log, uint64_t id);
/* The channel's / socket's current state. */
uint32_t h_channel_state(const phx_channel_t *c);
uint32_t h_socket_state(const phx_socket_t *s);

/* Compares a record's bytes with expected (prints both on mismatch). */
#define H_DATA_EQ(rec, bytes, n) h_data_eq(__FILE__, __LINE__, (rec)->data, (rec)->len, (bytes), (n))
#define H_DATA_STR(rec, str) h_data_eq(__FILE__, __LINE__, (rec)->data, (rec)->len, (str), strlen(str))
void h_data_eq(const char *file, int line, const void *got, size_t got_len, const void *want,
               size_t want_len);

/* Copies n bytes into a new NUL-terminated buffer (malloc). */
char *h_strndup(const void *p, size_t n);

/* ---- threads ----------------------------------------------------------------------------- */

/* A counter with a condition variable. */
typedef struct h_counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long value;
} h_counter;

void h_counter_init(h_counter *c);
void h_counter_destroy(h_counter *c);
void h_counter_add(h_counter *c, long delta);
long h_counter_get(h_counter *c);
/* Waits until value >= target; false on timeout. */
bool h_counter_wait(h_counter *c, long target, int timeout_ms);

/* Absolute CLOCK_MONOTONIC deadline timeout_ms from now, for pthread_cond_timedwait on a
 * condition variable made by h_cond_init. */
void h_cond_init(pthread_cond_t *cv);
void h_deadline(struct timespec *ts, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* PHX_TEST_HARNESS_H */
