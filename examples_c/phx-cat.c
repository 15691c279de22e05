/*
 * phx-cat: a Phoenix channel on standard input and output.
 *
 *     phx-cat URL TOPIC [--params JSON] [--join JSON]
 *
 * Connects to URL (connect params from --params, a JSON object of strings, numbers and
 * booleans), joins TOPIC (join payload from --join, default {}), then:
 *
 *   - prints every message and every reply as one JSON line on stdout:
 *       {"type":"message","topic":"room:lobby","event":"new_msg","payload":{"body":"hi"}}
 *       {"type":"reply","event":"new_msg","status":"ok","response":{}}
 *       {"type":"reply","event":"noreply","status":null,"error":"timed out"}
 *     (a binary payload is printed as {"binary":"<base64>"});
 *   - reads lines "EVENT JSON" from stdin and pushes them (JSON defaults to {});
 *   - at end of input waits for the replies still due, leaves, disconnects and exits 0.
 *
 * Exits 1 when it cannot connect or join, or when the server closes the channel.
 *
 *     printf 'new_msg {"body":"hi"}\n' | phx-cat ws://localhost:4000/socket/websocket room:lobby
 *
 * It is also the example of libphx in a single-threaded event loop: no callback runs any of
 * its code. Replies and messages are queued as owned events (phx_socket_events_enable), the
 * queue's file descriptor (phx_socket_event_fd) goes into poll() beside stdin, and events are
 * taken with phx_socket_try_event and freed with phx_event_free.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <phx.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JOIN_TAG 0
#define LEAVE_TAG 1
#define FIRST_PUSH_TAG 2

/* ---- output -------------------------------------------------------------------------------- */

/* Writes s[0..n) as a JSON string. */
static void put_json_string(const char *s, size_t n) {
    size_t i;
    putchar('"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            putchar('\\');
            putchar(c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static void put_cstring(const char *s) {
    if (s) {
        put_json_string(s, strlen(s));
    } else {
        fputs("null", stdout);
    }
}

/* Writes a payload: JSON text as is, bytes as {"binary":"<base64>"}. */
static void put_payload(uint32_t kind, const uint8_t *p, size_t n) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;
    if (kind == PHX_PAYLOAD_JSON) {
        fwrite(p, 1, n, stdout);
        return;
    }
    fputs("{\"binary\":\"", stdout);
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        putchar(b64[v >> 18 & 63]);
        putchar(b64[v >> 12 & 63]);
        putchar(b64[v >> 6 & 63]);
        putchar(b64[v & 63]);
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        putchar(b64[v >> 18 & 63]);
        putchar(b64[v >> 12 & 63]);
        fputs("==", stdout);
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        putchar(b64[v >> 18 & 63]);
        putchar(b64[v >> 12 & 63]);
        putchar(b64[v >> 6 & 63]);
        putchar('=');
    }
    fputs("\"}", stdout);
}

/* ---- state ---------------------------------------------------------------------------------- */

typedef struct cat {
    phx_socket_t *socket;
    phx_channel_t *channel;
    const char *topic;
    char **events;     /* event name of each push, by tag - FIRST_PUSH_TAG */
    size_t n_events, cap_events;
    size_t outstanding; /* pushes not completed yet */
    int connected;      /* 0: connecting, 1: connected once, -1: the first attempt failed */
    int joined;         /* 0: joining, 1: joined, -1: the join failed */
    int left;           /* the leave completed */
    int leaving;        /* we asked to leave */
    int closed;         /* the channel closed without our asking */
} cat;

static const char *event_of_tag(const cat *c, uint64_t tag) {
    if (tag == JOIN_TAG) return "phx_join";
    if (tag == LEAVE_TAG) return "phx_leave";
    if (tag - FIRST_PUSH_TAG < c->n_events) return c->events[tag - FIRST_PUSH_TAG];
    return "?";
}

/* Prints one owned event and updates the state. */
static void handle_event(cat *c, const phx_event_t *ev) {
    switch (ev->kind) {
    case PHX_EVENT_MESSAGE:
        fputs("{\"type\":\"message\",\"topic\":", stdout);
        put_cstring(ev->topic);
        fputs(",\"event\":", stdout);
        put_cstring(ev->event);
        fputs(",\"payload\":", stdout);
        put_payload(ev->payload_kind, ev->payload, ev->payload_len);
        fputs("}\n", stdout);
        break;
    case PHX_EVENT_REPLY:
        fputs("{\"type\":\"reply\",\"event\":", stdout);
        put_cstring(event_of_tag(c, ev->tag));
        fputs(",\"status\":", stdout);
        put_cstring(ev->reply_status); /* null when the server did not answer */
        if (ev->reply_status) {
            fputs(",\"response\":", stdout);
            put_payload(ev->payload_kind, ev->payload, ev->payload_len);
        } else {
            fputs(",\"error\":", stdout);
            put_cstring(phx_status_str(ev->status));
        }
        fputs("}\n", stdout);
        if (ev->tag == JOIN_TAG) {
            c->joined = ev->status == PHX_OK ? 1 : -1;
        } else if (ev->tag == LEAVE_TAG) {
            c->left = 1;
        } else if (c->outstanding > 0) {
            c->outstanding--;
        }
        break;
    case PHX_EVENT_SOCKET_STATE:
        if (ev->state == PHX_SOCKET_CONNECTED) {
            if (c->connected) fprintf(stderr, "phx-cat: reconnected\n");
            c->connected = 1;
        } else if (ev->state == PHX_SOCKET_RECONNECTING || ev->state == PHX_SOCKET_DISCONNECTED) {
            if (c->connected == 0) {
                fprintf(stderr, "phx-cat: cannot connect: %s\n", ev->reason->text);
                c->connected = -1;
            } else if (ev->state == PHX_SOCKET_RECONNECTING) {
                fprintf(stderr, "phx-cat: connection lost (%s), reconnecting\n", ev->reason->text);
            }
        }
        break;
    case PHX_EVENT_CHANNEL_STATE:
        if (ev->state == PHX_CHANNEL_CLOSED && c->joined == 1 && !c->leaving) {
            fprintf(stderr, "phx-cat: the server closed %s\n", c->topic);
            c->closed = 1;
        } else if (ev->state == PHX_CHANNEL_ERRORED) {
            fprintf(stderr, "phx-cat: %s errored, rejoining\n", c->topic);
        }
        break;
    case PHX_EVENT_REJOIN:
        fprintf(stderr, "phx-cat: rejoin of %s: %s\n", c->topic, phx_status_str(ev->status));
        break;
    case PHX_EVENT_OVERFLOW:
        fprintf(stderr, "phx-cat: the event queue overflowed, %llu events dropped\n",
                (unsigned long long)ev->dropped);
        break;
    default:
        break;
    }
    fflush(stdout);
}

/* Takes and handles every queued event. */
static void drain(cat *c) {
    phx_event_t *ev = NULL;
    while (phx_socket_try_event(c->socket, &ev) == PHX_OK) {
        handle_event(c, ev);
        phx_event_free(ev);
    }
}

/* Waits (poll on the event fd) until `*flag` is set, or timeout_ms passed. */
static void wait_for(cat *c, int fd, const int *flag, int timeout_ms) {
    while (!*flag && timeout_ms > 0) {
        struct pollfd p;
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, 100) > 0) drain(c);
        timeout_ms -= 100;
    }
}

/* Pushes one input line "EVENT JSON". */
static void push_line(cat *c, char *line, size_t lineno) {
    char *event, *json, *end;
    phx_status_t st;

    while (*line == ' ' || *line == '\t') line++;
    end = line + strlen(line);
    while (end > line && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
    if (*line == '\0' || *line == '#') return;
    event = line;
    json = strpbrk(line, " \t");
    if (json) {
        *json++ = '\0';
        while (*json == ' ' || *json == '\t') json++;
    }
    if (!json || *json == '\0') json = (char *)"{}";

    if (c->n_events == c->cap_events) {
        size_t cap = c->cap_events ? c->cap_events * 2 : 16;
        char **grown = (char **)realloc(c->events, cap * sizeof *grown);
        if (!grown) {
            fprintf(stderr, "phx-cat: out of memory\n");
            exit(1);
        }
        c->events = grown;
        c->cap_events = cap;
    }
    st = phx_channel_push_tagged(c->channel, event, json, 0, FIRST_PUSH_TAG + c->n_events);
    if (st != PHX_OK) {
        fprintf(stderr, "phx-cat: line %zu: cannot push %s: %s\n", lineno, event, phx_status_str(st));
        return;
    }
    c->events[c->n_events] = (char *)malloc(strlen(event) + 1);
    if (!c->events[c->n_events]) {
        fprintf(stderr, "phx-cat: out of memory\n");
        exit(1);
    }
    strcpy(c->events[c->n_events], event);
    c->n_events++;
    c->outstanding++;
}

static int usage(const char *argv0) {
    fprintf(stderr, "usage: %s URL TOPIC [--params JSON] [--join JSON]\n", argv0);
    return 2;
}

int main(int argc, char **argv) {
    cat c;
    phx_options_t *opts;
    const char *url, *params = NULL, *join = "{}";
    int fd = -1, rc = 1, stdin_open = 1, i;
    char *buf = NULL;
    size_t len = 0, cap = 0, lineno = 0;
    phx_status_t st;

    if (argc < 3) return usage(argv[0]);
    url = argv[1];
    memset(&c, 0, sizeof c);
    c.topic = argv[2];
    for (i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--params") == 0 && i + 1 < argc) {
            params = argv[++i];
        } else if (strcmp(argv[i], "--join") == 0 && i + 1 < argc) {
            join = argv[++i];
        } else {
            return usage(argv[0]);
        }
    }

    /* The socket, with owned delivery: every reply and message becomes a queued event. */
    opts = phx_options_new();
    if (params && (st = phx_options_set_params_json(opts, params)) != PHX_OK) {
        fprintf(stderr, "phx-cat: --params: %s\n", phx_status_str(st));
        phx_options_free(opts);
        return 2;
    }
    st = phx_socket_new(url, opts, &c.socket);
    phx_options_free(opts);
    if (st != PHX_OK) {
        fprintf(stderr, "phx-cat: %s: %s\n", url, phx_status_str(st));
        return 2;
    }
    if ((st = phx_socket_events_enable(c.socket, 4096, NULL, NULL, NULL)) != PHX_OK ||
        (st = phx_socket_event_fd(c.socket, &fd)) != PHX_OK) {
        fprintf(stderr, "phx-cat: events: %s\n", phx_status_str(st));
        goto done;
    }

    /* Connect, and wait for the first attempt's outcome (a state event). */
    if ((st = phx_socket_connect(c.socket)) != PHX_OK) {
        fprintf(stderr, "phx-cat: connect: %s\n", phx_status_str(st));
        goto done;
    }
    while (c.connected == 0) {
        struct pollfd p;
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, -1) < 0 && errno != EINTR) goto done;
        drain(&c);
    }
    if (c.connected < 0) goto done;

    /* Join, and wait for the join's reply before reading input. */
    if ((st = phx_socket_channel(c.socket, c.topic, &c.channel)) != PHX_OK ||
        (st = phx_channel_join_tagged(c.channel, join, 0, JOIN_TAG)) != PHX_OK) {
        fprintf(stderr, "phx-cat: cannot join %s: %s\n", c.topic, phx_status_str(st));
        goto done;
    }
    while (c.joined == 0) {
        struct pollfd p;
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, -1) < 0 && errno != EINTR) goto done;
        drain(&c);
    }
    if (c.joined < 0) goto done;

    /* The loop: stdin lines become pushes, queued events become output lines. */
    while (stdin_open && !c.closed) {
        struct pollfd p[2];
        p[0].fd = fd;
        p[0].events = POLLIN;
        p[0].revents = 0;
        p[1].fd = STDIN_FILENO;
        p[1].events = POLLIN;
        p[1].revents = 0;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            perror("phx-cat: poll");
            goto done;
        }
        if (p[0].revents) drain(&c);
        if (p[1].revents) {
            ssize_t n;
            char *nl;
            if (cap - len < 4096) {
                char *grown = (char *)realloc(buf, cap + 65536);
                if (!grown) goto done;
                buf = grown;
                cap += 65536;
            }
            n = read(STDIN_FILENO, buf + len, cap - len - 1);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                stdin_open = 0; /* EOF: a last line without newline still counts */
                if (len > 0) {
                    buf[len] = '\0';
                    push_line(&c, buf, ++lineno);
                    len = 0;
                }
                break;
            }
            len += (size_t)n;
            buf[len] = '\0';
            while ((nl = (char *)memchr(buf, '\n', len)) != NULL) {
                size_t used = (size_t)(nl - buf) + 1;
                *nl = '\0';
                push_line(&c, buf, ++lineno);
                memmove(buf, buf + used, len - used);
                len -= used;
                buf[len] = '\0';
            }
        }
    }

    if (!c.closed) {
        /* End of input: let the replies still due arrive (each push has its own timeout,
         * 10 s by default), then leave. */
        while (c.outstanding > 0 && !c.closed) {
            struct pollfd p;
            p.fd = fd;
            p.events = POLLIN;
            p.revents = 0;
            if (poll(&p, 1, -1) < 0 && errno != EINTR) break;
            drain(&c);
        }
        c.leaving = 1;
        if (!c.closed && phx_channel_leave_tagged(c.channel, 0, LEAVE_TAG) == PHX_OK)
            wait_for(&c, fd, &c.left, 10000);
        rc = c.closed ? 1 : 0;
    }
    phx_socket_disconnect(c.socket);
    drain(&c);

done:
    for (i = 0; i < (int)c.n_events; i++) free(c.events[i]);
    free(c.events);
    free(buf);
    phx_channel_free(c.channel);
    phx_socket_free(c.socket);
    return rc;
}
