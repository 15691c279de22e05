/* with_server: runs a command against a fresh phx-testserver (used to test the examples).
 *
 *   with_server [--stdin TEXT] [--expect TEXT]... -- COMMAND ARG...
 *
 * Starts $PHX_TESTSERVER_BIN, replaces every argument "{URL}" by the server's URL, runs the
 * command with TEXT on its stdin (empty by default), and exits 0 if the command exited 0 and
 * its stdout contains every --expect TEXT; 1 otherwise. The command's output is echoed. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    const char *input = "";
    const char *expect[16];
    size_t n_expect = 0, in_off = 0, out_len = 0, out_cap = 65536, i;
    char *out = (char *)malloc(out_cap);
    char **args;
    int first = -1, in_p[2], out_p[2], status = 0, rc, in_open = 1, out_open = 1;
    pid_t pid;
    posix_spawn_file_actions_t fa;
    h_server *srv;

    H_CHECK(out != NULL);
    for (i = 1; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--stdin") == 0 && i + 1 < (size_t)argc) {
            input = argv[++i];
        } else if (strcmp(argv[i], "--expect") == 0 && i + 1 < (size_t)argc && n_expect < 16) {
            expect[n_expect++] = argv[++i];
        } else if (strcmp(argv[i], "--") == 0) {
            first = (int)i + 1;
            break;
        }
    }
    if (first < 0 || first >= argc) {
        fprintf(stderr, "usage: with_server [--stdin TEXT] [--expect TEXT]... -- COMMAND ARG...\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    srv = h_server_start();
    args = (char **)calloc((size_t)(argc - first + 1), sizeof *args);
    H_CHECK(args != NULL);
    for (i = (size_t)first; i < (size_t)argc; i++)
        args[i - (size_t)first] = strcmp(argv[i], "{URL}") == 0 ? (char *)h_server_url(srv) : argv[i];

    H_CHECK(pipe2(in_p, O_CLOEXEC) == 0 && pipe2(out_p, O_CLOEXEC) == 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_p[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_p[1], 1);
    rc = posix_spawn(&pid, args[0], &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    H_CHECKF(rc == 0, "cannot run %s: %s", args[0], strerror(rc));
    close(in_p[0]);
    close(out_p[1]);
    fcntl(in_p[1], F_SETFL, O_NONBLOCK);

    /* Feed stdin and collect stdout until the command closes its output. */
    while (out_open) {
        struct pollfd p[2];
        int n = 0;
        p[n].fd = out_p[0];
        p[n].events = POLLIN;
        p[n++].revents = 0;
        if (in_open) {
            p[n].fd = in_p[1];
            p[n].events = POLLOUT;
            p[n++].revents = 0;
        }
        if (poll(p, (nfds_t)n, 60000) <= 0) break;
        if (in_open && p[1].revents) {
            size_t left = strlen(input) - in_off;
            ssize_t w = left ? write(in_p[1], input + in_off, left) : 0;
            if (w > 0) in_off += (size_t)w;
            if (in_off == strlen(input) || (w < 0 && errno != EAGAIN)) {
                close(in_p[1]);
                in_open = 0;
            }
        }
        if (p[0].revents) {
            ssize_t r;
            if (out_cap - out_len < 4096) {
                out_cap *= 2;
                out = (char *)realloc(out, out_cap);
                H_CHECK(out != NULL);
            }
            r = read(out_p[0], out + out_len, out_cap - out_len - 1);
            if (r <= 0) {
                out_open = 0;
            } else {
                out_len += (size_t)r;
            }
        }
    }
    out[out_len] = '\0';
    if (in_open) close(in_p[1]);
    close(out_p[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    h_server_stop(srv);
    fwrite(out, 1, out_len, stdout);

    rc = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "with_server: %s exited with status %d\n", args[0],
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        rc = 1;
    }
    for (i = 0; i < n_expect; i++) {
        if (!strstr(out, expect[i])) {
            fprintf(stderr, "with_server: the output lacks: %s\n", expect[i]);
            rc = 1;
        }
    }
    free(args);
    free(out);
    return rc;
}
