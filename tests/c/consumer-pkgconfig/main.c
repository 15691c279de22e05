/* A program built against an installed libphx with pkg-config only:
 *   cc main.c $(pkg-config --cflags --libs phx)                            (shared)
 *   cc main.c $(pkg-config --cflags phx) <libdir>/libphx.a $(pkg-config --static --libs-only-l phx | sed 's/-lphx//')
 * scripts/c-tests.sh builds and runs both. */
#include <phx.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    phx_socket_t *s = NULL;
    const char *v = phx_version();
    if (strcmp(v, PHX_VERSION_STRING) != 0) {
        fprintf(stderr, "pkg-config consumer: header says %s, library says %s\n", PHX_VERSION_STRING, v);
        return 1;
    }
    if (phx_socket_new("ws://127.0.0.1:9/socket/websocket", NULL, &s) != PHX_OK) {
        fprintf(stderr, "pkg-config consumer: phx_socket_new failed\n");
        return 1;
    }
    phx_socket_free(s);
    printf("pkg-config consumer: libphx %s\n", v);
    return 0;
}
