/* A program built against an installed libphx (find_package(phx CONFIG)). */
#include <phx.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    phx_socket_t *s = NULL;
    const char *v = phx_version();
    if (strcmp(v, PHX_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header says %s, library says %s\n", PHX_VERSION_STRING, v);
        return 1;
    }
    /* Creating and freeing a socket (no connection) exercises the library's runtime. */
    if (phx_socket_new("ws://127.0.0.1:9/socket/websocket", NULL, &s) != PHX_OK) {
        fprintf(stderr, "consumer: phx_socket_new failed\n");
        return 1;
    }
    phx_socket_free(s);
    printf("consumer: libphx %s\n", v);
    return 0;
}
