/*
 * chat.c: the libphx quick start.
 *
 * Connects to a Phoenix server, joins "room:lobby", prints every message the channel receives,
 * pushes "new_msg" {"body":"hello"}, prints the server's reply, then leaves, disconnects and
 * frees everything.
 *
 *     chat ws://localhost:4000/socket/websocket
 *
 * Exits 0 on success; prints what failed and exits 1 otherwise.
 *
 * The blocking calls (phx_*_wait) make this read top to bottom. Messages arrive on a libphx
 * thread through the channel's on_message callback, which must not block and must not call
 * the blocking functions (they would return PHX_ERR_WRONG_THREAD there).
 */
#include <phx.h>

#include <stdio.h>
#include <string.h>

/* Called on a libphx thread for every application message of the channel. Everything it
 * receives is borrowed for the duration of the call. */
static void on_message(void *user_data, const phx_message_t *msg) {
    (void)user_data;
    if (msg->payload_kind == PHX_PAYLOAD_JSON) {
        /* The payload is not NUL-terminated: print it with its length. */
        printf("message: %s %s %.*s\n", msg->topic, msg->event, (int)msg->payload_len,
               (const char *)msg->payload);
    } else {
        printf("message: %s %s (%zu bytes of binary)\n", msg->topic, msg->event, msg->payload_len);
    }
    fflush(stdout);
}

/* Prints why `what` failed; returns 1 for main's exit status. */
static int fail(const char *what, phx_status_t status) {
    fprintf(stderr, "chat: %s failed: %s\n", what, phx_status_str(status));
    return 1;
}

int main(int argc, char **argv) {
    phx_socket_t *sock = NULL;
    phx_channel_t *channel = NULL;
    phx_response_t *reply = NULL;
    phx_channel_handler_t handler;
    phx_status_t st;
    int rc = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s ws://HOST:PORT/socket/websocket\n", argv[0]);
        return 2;
    }
    printf("libphx %s\n", phx_version());

    /* 1. A socket for the URL (default options), then connect and wait until connected. */
    st = phx_socket_new(argv[1], NULL, &sock);
    if (st != PHX_OK) return fail("phx_socket_new", st);
    st = phx_socket_connect_wait(sock, 5000);
    if (st != PHX_OK) {
        rc = fail("connecting", st);
        goto done;
    }
    printf("connected to %s\n", argv[1]);

    /* 2. The channel, with a callback for its messages, joined. */
    st = phx_socket_channel(sock, "room:lobby", &channel);
    if (st != PHX_OK) {
        rc = fail("phx_socket_channel", st);
        goto done;
    }
    memset(&handler, 0, sizeof handler);
    handler.on_message = on_message;
    st = phx_channel_set_handler(channel, &handler, NULL, NULL);
    if (st != PHX_OK) {
        rc = fail("phx_channel_set_handler", st);
        goto done;
    }
    st = phx_channel_join_wait(channel, "{}", 5000, &reply);
    if (st != PHX_OK) {
        if (reply)
            fprintf(stderr, "chat: join refused: %.*s\n", (int)reply->payload_len,
                    (const char *)reply->payload);
        rc = fail("joining room:lobby", st);
        goto done;
    }
    /* No payload is NUL-terminated: print it with its length. */
    printf("joined room:lobby: %.*s\n", (int)reply->payload_len, (const char *)reply->payload);
    phx_response_free(reply);
    reply = NULL;

    /* 3. Push a message and wait for the reply. The server broadcasts it to everyone in the
     *    room, us included, so on_message prints it too (before the reply arrives). */
    st = phx_channel_push_wait(channel, "new_msg", "{\"body\":\"hello\"}", 5000, &reply);
    if (reply)
        printf("reply: %s %.*s\n", reply->status, (int)reply->payload_len,
               (const char *)reply->payload);
    if (st != PHX_OK) {
        rc = fail("pushing new_msg", st);
        goto done;
    }

    /* 4. Leave the channel and disconnect. */
    st = phx_channel_leave_wait(channel, 5000);
    if (st != PHX_OK) {
        rc = fail("leaving", st);
        goto done;
    }
    st = phx_socket_disconnect(sock);
    if (st != PHX_OK) {
        rc = fail("disconnecting", st);
        goto done;
    }
    printf("left and disconnected\n");
    rc = 0;

done:
    /* 5. Free everything (each free function accepts NULL). Once phx_socket_free returns, no
     *    callback runs any more. */
    phx_response_free(reply);
    phx_channel_free(channel);
    phx_socket_free(sock);
    return rc;
}
