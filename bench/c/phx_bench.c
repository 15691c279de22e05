/* phx_bench: libphx through its C ABI, for scripts/bench.sh.
 *
 *   phx_bench URL cb|queue|batch recv|reqresp|latency N [WINDOW]
 *   phx_bench URL cb memory SOCKETS
 *
 * cb:    channel callbacks (phx_channel_set_handler) count messages; completions are
 *        phx_reply_cb callbacks, and each completion pushes the next request from inside the
 *        callback (on the library thread).
 * queue: the owned event queue (phx_socket_events_enable): the main thread takes events with
 *        phx_socket_next_event, frees them, and pushes with phx_channel_push_tagged.
 * batch: queue, taking events with phx_socket_next_events, up to BATCH_MAX at a time.
 *
 * memory (cb only): opens SOCKETS sockets at once, each connected and joined to one channel
 *        (phx_socket_connect, phx_channel_join with a callback), after 10 first, and reports the
 *        resident memory (VmRSS) they added, per socket.
 *
 * Prints one line: RESULT client=c-cb|c-queue|c-batch scenario=... count=... wall_s=... cpu_s=...
 * csw=... (the measured phase only; connecting, joining and the warm-up are excluded; csw: the
 * process's context switches, voluntary + involuntary). Readers ignore fields they do not know.
 */
#define _GNU_SOURCE
#include <phx.h>

#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define TOPIC "echo:bench"
#define BLAST_EVENT "m"
#define ECHO_PAYLOAD "{\"body\":\"0123456789abcdef\"}"
#define PUSH_TIMEOUT_MS 600000u
#define QUEUE_CAPACITY (1u << 20)
#define BATCH_MAX 256

static void die(const char *what, phx_status_t st) {
    fprintf(stderr, "phx_bench: %s: %s\n", what, phx_status_str(st));
    exit(2);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        phx_status_t st_ = (call);                                                                 \
        if (st_ != PHX_OK) die(#call, st_);                                                        \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

/* Context switches (voluntary + involuntary, every thread) of the process so far. */
static long long csw_now(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (long long)u.ru_nvcsw + (long long)u.ru_nivcsw;
}

/* The process's resident set (VmRSS of /proc/self/status), in KiB; 0 if unknown. */
static unsigned long long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib;
}

/* CPU time of the benchmark server (PHX_BENCH_SERVER_PID): the sum of the run times in
 * /proc/PID/task/TID/schedstat over every thread TID, in seconds; -1 if unknown. */
static double server_cpu_s(void) {
    const char *pid = getenv("PHX_BENCH_SERVER_PID");
    if (!pid || !*pid) return -1;
    char path[320];
    snprintf(path, sizeof path, "/proc/%s/task", pid);
    DIR *dir = opendir(path);
    if (!dir) return -1;
    unsigned long long total = 0;
    struct dirent *d;
    while ((d = readdir(dir)) != NULL) {
        if (d->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/%s/task/%s/schedstat", pid, d->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long ns = 0;
        if (f && fscanf(f, "%llu", &ns) == 1) total += ns;
        if (f) fclose(f);
    }
    closedir(dir);
    return total ? (double)total / 1e9 : -1;
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi) {
    return v < lo ? lo : v > hi ? hi : v;
}
/* The same warm-up sizes as the Rust and JS clients. */
static uint64_t warmup_recv(uint64_t n) { return clamp_u64(n / 10, 1, 50000); }
static uint64_t warmup_reqresp(uint64_t n) { return clamp_u64(n / 10, 1, 20000); }
static uint64_t warmup_latency(uint64_t n) { return clamp_u64(n / 10, 1, 2000); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(const double *sorted, uint64_t n, double q) {
    if (n == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)n + 0.999999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

/* ---- a one-shot signal from the library thread to the main thread ------------------------ */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int set;
} signal_t;

static void signal_init(signal_t *s) {
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->set = 0;
}

static void signal_set(signal_t *s) {
    pthread_mutex_lock(&s->mu);
    s->set = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void signal_wait(signal_t *s) {
    pthread_mutex_lock(&s->mu);
    while (!s->set) pthread_cond_wait(&s->cv, &s->mu);
    s->set = 0;
    pthread_mutex_unlock(&s->mu);
}

/* ---- shared state of a run ------------------------------------------------------------------- */

typedef struct {
    phx_channel_t *ch;
    /* recv */
    uint64_t messages, target;
    signal_t reached;
    /* reqresp: the main thread issues the first window while completions already run on the
     * library thread, so these are updated atomically. */
    uint64_t total, issued, completed, errors;
    signal_t done;
    /* latency */
    double sent_at, *rtts;
    uint64_t rtt_count, rtt_target;
} bench_t;

/* Server CPU and the process's context switches at the start of the measured phase (-1:
 * unknown). */
static double server_cpu_start = -1;
static long long csw_start;

static void print_result(const char *client, const char *scenario, uint64_t count, double wall,
                         double cpu, const char *extra) {
    double server_end = server_cpu_s();
    char server[64] = "";
    if (server_cpu_start >= 0 && server_end >= 0)
        snprintf(server, sizeof server, " server_cpu_s=%.4f", server_end - server_cpu_start);
    printf("RESULT client=%s scenario=%s count=%llu wall_s=%.4f cpu_s=%.4f csw=%lld%s%s\n",
           client, scenario, (unsigned long long)count, wall, cpu, csw_now() - csw_start, server,
           extra ? extra : "");
}

static void latency_fields(char *buf, size_t len, double *rtts, uint64_t n) {
    double sum = 0;
    for (uint64_t i = 0; i < n; i++) sum += rtts[i];
    qsort(rtts, n, sizeof *rtts, cmp_double);
    snprintf(buf, len, " p50_us=%.1f p99_us=%.1f mean_us=%.1f", quantile(rtts, n, 0.50),
             quantile(rtts, n, 0.99), n ? sum / (double)n : 0.0);
}

/* ---- callbacks mode ---------------------------------------------------------------------------- */

static void on_message(void *user_data, const phx_message_t *msg) {
    bench_t *b = user_data;
    if (msg->event_len == 1 && msg->event[0] == 'm') {
        /* Callbacks of one socket never run concurrently; the main thread reads the count
         * only after the signal. */
        uint64_t c = __atomic_add_fetch(&b->messages, 1, __ATOMIC_RELAXED);
        if (c == __atomic_load_n(&b->target, __ATOMIC_ACQUIRE)) signal_set(&b->reached);
    }
}

static void on_blast_reply(void *user_data, uint32_t status, const phx_reply_t *reply) {
    (void)reply;
    if (status != PHX_OK) die("blast", status);
    signal_set((signal_t *)user_data);
}

static void cb_blast(bench_t *b, uint64_t n) {
    char payload[64];
    signal_t replied;
    signal_init(&replied);
    snprintf(payload, sizeof payload, "{\"n\":%llu}", (unsigned long long)n);
    __atomic_store_n(&b->target, __atomic_load_n(&b->messages, __ATOMIC_ACQUIRE) + n,
                     __ATOMIC_RELEASE);
    CHECK(phx_channel_push(b->ch, "blast", payload, PUSH_TIMEOUT_MS, on_blast_reply, &replied));
    signal_wait(&b->reached);
    signal_wait(&replied);
}

static void cb_issue(bench_t *b);

static void on_echo_reply(void *user_data, uint32_t status, const phx_reply_t *reply) {
    (void)reply;
    bench_t *b = user_data;
    if (status != PHX_OK) __atomic_add_fetch(&b->errors, 1, __ATOMIC_RELAXED);
    cb_issue(b);
    if (__atomic_add_fetch(&b->completed, 1, __ATOMIC_ACQ_REL) == b->total) signal_set(&b->done);
}

static void cb_issue(bench_t *b) {
    if (__atomic_fetch_add(&b->issued, 1, __ATOMIC_ACQ_REL) >= b->total) return;
    CHECK(phx_channel_push(b->ch, "echo", ECHO_PAYLOAD, PUSH_TIMEOUT_MS, on_echo_reply, b));
}

static void cb_pipeline(bench_t *b, uint64_t total, uint64_t window) {
    b->total = total;
    __atomic_store_n(&b->issued, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&b->completed, 0, __ATOMIC_RELEASE);
    for (uint64_t i = 0; i < window && i < total; i++) cb_issue(b);
    signal_wait(&b->done);
}

static void on_ping_reply(void *user_data, uint32_t status, const phx_reply_t *reply) {
    (void)reply;
    bench_t *b = user_data;
    double t = now_s();
    if (status != PHX_OK) die("echo", status);
    if (b->rtts) b->rtts[b->rtt_count] = (t - b->sent_at) * 1e6;
    if (++b->rtt_count < b->rtt_target) {
        b->sent_at = now_s();
        CHECK(phx_channel_push(b->ch, "echo", ECHO_PAYLOAD, PUSH_TIMEOUT_MS, on_ping_reply, b));
    } else {
        signal_set(&b->done);
    }
}

static void cb_round_trips(bench_t *b, uint64_t n, double *rtts) {
    b->rtts = rtts;
    b->rtt_count = 0;
    b->rtt_target = n;
    b->sent_at = now_s();
    CHECK(phx_channel_push(b->ch, "echo", ECHO_PAYLOAD, PUSH_TIMEOUT_MS, on_ping_reply, b));
    signal_wait(&b->done);
}

/* ---- queue mode ------------------------------------------------------------------------------- */

/* Batch mode: events taken by phx_socket_next_events and not handed out yet. */
static int batch_mode;
static phx_event_t *batch[BATCH_MAX];
static size_t batch_len, batch_at;

/* The next event (waiting as long as it takes); an overflow ends the run. */
static phx_event_t *next_event(phx_socket_t *s) {
    phx_event_t *ev;
    if (batch_mode) {
        if (batch_at == batch_len) {
            CHECK(phx_socket_next_events(s, batch, BATCH_MAX, UINT64_MAX, &batch_len));
            batch_at = 0;
        }
        ev = batch[batch_at++];
    } else {
        CHECK(phx_socket_next_event(s, UINT64_MAX, &ev));
    }
    if (ev->kind == PHX_EVENT_OVERFLOW) {
        fprintf(stderr, "phx_bench: event queue overflow: %llu events dropped\n",
                (unsigned long long)ev->dropped);
        exit(2);
    }
    return ev;
}

static void q_blast(phx_socket_t *s, bench_t *b, uint64_t n) {
    char payload[64];
    snprintf(payload, sizeof payload, "{\"n\":%llu}", (unsigned long long)n);
    CHECK(phx_channel_push_tagged(b->ch, "blast", payload, PUSH_TIMEOUT_MS, 1));
    uint64_t got = 0;
    int replied = 0;
    while (got < n || !replied) {
        phx_event_t *ev = next_event(s);
        if (ev->kind == PHX_EVENT_MESSAGE && strcmp(ev->event, BLAST_EVENT) == 0) {
            got++;
        } else if (ev->kind == PHX_EVENT_REPLY && ev->tag == 1) {
            if (ev->status != PHX_OK) die("blast", ev->status);
            replied = 1;
        }
        phx_event_free(ev);
    }
    b->messages += got;
}

static void q_pipeline(phx_socket_t *s, bench_t *b, uint64_t total, uint64_t window) {
    uint64_t issued = 0, completed = 0;
    for (; issued < window && issued < total; issued++)
        CHECK(phx_channel_push_tagged(b->ch, "echo", ECHO_PAYLOAD, PUSH_TIMEOUT_MS, 2));
    while (completed < total) {
        phx_event_t *ev = next_event(s);
        if (ev->kind == PHX_EVENT_REPLY && ev->tag == 2) {
            if (ev->status != PHX_OK) b->errors++;
            completed++;
            if (issued < total) {
                issued++;
                CHECK(phx_channel_push_tagged(b->ch, "echo", ECHO_PAYLOAD, PUSH_TIMEOUT_MS, 2));
            }
        }
        phx_event_free(ev);
    }
    b->completed = completed;
}

static void q_round_trips(phx_socket_t *s, bench_t *b, uint64_t n, double *rtts) {
    for (uint64_t i = 0; i < n; i++) {
        double t = now_s();
        CHECK(phx_channel_push_tagged(b->ch, "echo", ECHO_PAYLOAD, PUSH_TIMEOUT_MS, 3));
        for (;;) {
            phx_event_t *ev = next_event(s);
            int done = ev->kind == PHX_EVENT_REPLY && ev->tag == 3;
            if (done && ev->status != PHX_OK) die("echo", ev->status);
            phx_event_free(ev);
            if (done) break;
        }
        if (rtts) rtts[i] = (now_s() - t) * 1e6;
    }
    b->rtt_count = n;
}

/* ---- memory (callbacks) ------------------------------------------------------------------------ */

typedef struct {
    uint64_t joined, failed, target;
    signal_t done;
} joins_t;

static void on_join_reply(void *user_data, uint32_t status, const phx_reply_t *reply) {
    (void)reply;
    joins_t *j = user_data;
    if (status != PHX_OK) __atomic_add_fetch(&j->failed, 1, __ATOMIC_RELAXED);
    uint64_t n = __atomic_add_fetch(&j->joined, 1, __ATOMIC_ACQ_REL);
    if (n == __atomic_load_n(&j->target, __ATOMIC_ACQUIRE)) signal_set(&j->done);
}

/* Opens `count` sockets at once, each joining one channel; waits for every join reply. The
 * sockets stay open (the process exits without closing them). */
static void open_many(const char *url, uint64_t count, joins_t *j) {
    __atomic_store_n(&j->target, __atomic_load_n(&j->joined, __ATOMIC_ACQUIRE) + count,
                     __ATOMIC_RELEASE);
    for (uint64_t i = 0; i < count; i++) {
        phx_socket_t *s;
        phx_channel_t *ch;
        CHECK(phx_socket_new(url, NULL, &s));
        CHECK(phx_socket_connect(s));
        CHECK(phx_socket_channel(s, TOPIC, &ch));
        CHECK(phx_channel_join(ch, "{}", 60000, on_join_reply, j));
    }
    if (count > 0) signal_wait(&j->done);
    uint64_t failed = __atomic_load_n(&j->failed, __ATOMIC_ACQUIRE);
    if (failed > 0) {
        fprintf(stderr, "phx_bench: %llu joins failed\n", (unsigned long long)failed);
        exit(2);
    }
}

static void memory(const char *url, const char *client, uint64_t sockets) {
    joins_t j;
    memset(&j, 0, sizeof j);
    signal_init(&j.done);
    open_many(url, 10, &j);
    usleep(300000);
    unsigned long long before = rss_kib();
    csw_start = csw_now(), server_cpu_start = server_cpu_s();
    double c0 = cpu_s(), t0 = now_s();
    open_many(url, sockets, &j);
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    usleep(300000);
    unsigned long long after = rss_kib();
    char extra[160];
    snprintf(extra, sizeof extra, " rss_before_kib=%llu rss_after_kib=%llu kib_per_socket=%.2f",
             before, after, after > before ? (double)(after - before) / (double)sockets : 0.0);
    print_result(client, "memory", sockets, wall, cpu, extra);
}

/* ---- main -------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s URL cb|queue|batch recv|reqresp|latency|memory N [WINDOW]\n",
                argv[0]);
        return 2;
    }
    const char *url = argv[1], *mode = argv[2], *scenario = argv[3];
    uint64_t n = strtoull(argv[4], NULL, 10);
    uint64_t window = argc > 5 ? strtoull(argv[5], NULL, 10) : 1000;
    batch_mode = strcmp(mode, "batch") == 0;
    int queue = batch_mode || strcmp(mode, "queue") == 0;
    if (!queue && strcmp(mode, "cb") != 0) {
        fprintf(stderr, "phx_bench: mode must be cb, queue or batch\n");
        return 2;
    }
    const char *client = batch_mode ? "c-batch" : queue ? "c-queue" : "c-cb";
    if (window == 0) window = 1;

    if (strcmp(scenario, "memory") == 0) {
        if (queue) {
            fprintf(stderr, "phx_bench: the memory scenario runs in cb mode only\n");
            return 2;
        }
        memory(url, client, n ? n : 1);
        fflush(stdout);
        _exit(0);
    }

    bench_t b;
    memset(&b, 0, sizeof b);
    signal_init(&b.reached);
    signal_init(&b.done);

    phx_socket_t *s;
    CHECK(phx_socket_new(url, NULL, &s));
    if (queue) CHECK(phx_socket_events_enable(s, QUEUE_CAPACITY, NULL, NULL, NULL));
    CHECK(phx_socket_connect_wait(s, 10000));
    CHECK(phx_socket_channel(s, TOPIC, &b.ch));
    if (!queue) {
        phx_channel_handler_t h = {.on_message = on_message};
        CHECK(phx_channel_set_handler(b.ch, &h, &b, NULL));
    }
    phx_response_t *resp = NULL;
    CHECK(phx_channel_join_wait(b.ch, "{}", 10000, &resp));
    phx_response_free(resp);
    if (queue) { /* drop the state events of connecting and joining */
        phx_event_t *ev;
        while (phx_socket_try_event(s, &ev) == PHX_OK) phx_event_free(ev);
    }

    double t0, c0, wall, cpu;
    char extra[160] = "";
    if (strcmp(scenario, "recv") == 0) {
        if (queue) q_blast(s, &b, warmup_recv(n)); else cb_blast(&b, warmup_recv(n));
        uint64_t before = b.messages;
        server_cpu_start = server_cpu_s(), csw_start = csw_now(), c0 = cpu_s(), t0 = now_s();
        if (queue) q_blast(s, &b, n); else cb_blast(&b, n);
        wall = now_s() - t0, cpu = cpu_s() - c0;
        print_result(client, scenario, b.messages - before, wall, cpu, NULL);
    } else if (strcmp(scenario, "reqresp") == 0) {
        if (queue) q_pipeline(s, &b, warmup_reqresp(n), window);
        else cb_pipeline(&b, warmup_reqresp(n), window);
        b.errors = 0;
        server_cpu_start = server_cpu_s(), csw_start = csw_now(), c0 = cpu_s(), t0 = now_s();
        if (queue) q_pipeline(s, &b, n, window); else cb_pipeline(&b, n, window);
        wall = now_s() - t0, cpu = cpu_s() - c0;
        snprintf(extra, sizeof extra, " window=%llu errors=%llu", (unsigned long long)window,
                 (unsigned long long)b.errors);
        print_result(client, scenario, b.completed, wall, cpu, extra);
    } else if (strcmp(scenario, "latency") == 0) {
        double *rtts = malloc(sizeof(double) * (n ? n : 1));
        if (!rtts) return 2;
        if (queue) q_round_trips(s, &b, warmup_latency(n), NULL);
        else cb_round_trips(&b, warmup_latency(n), NULL);
        server_cpu_start = server_cpu_s(), csw_start = csw_now(), c0 = cpu_s(), t0 = now_s();
        if (queue) q_round_trips(s, &b, n, rtts); else cb_round_trips(&b, n, rtts);
        wall = now_s() - t0, cpu = cpu_s() - c0;
        latency_fields(extra, sizeof extra, rtts, b.rtt_count);
        print_result(client, scenario, b.rtt_count, wall, cpu, extra);
        free(rtts);
    } else {
        fprintf(stderr, "phx_bench: unknown scenario %s\n", scenario);
        return 2;
    }
    fflush(stdout);
    /* Skip the teardown: the measurement is over. */
    _exit(0);
}
