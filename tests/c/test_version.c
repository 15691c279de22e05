/* test_version.c: the version and status text, and (in the sanitizer build) that the
 * sanitizers really are in. */
#include "harness.h"

#include <dlfcn.h>
#include <stdlib.h>

static void test_version(void) {
    char macros[64];
    snprintf(macros, sizeof macros, "%d.%d.%d", PHX_VERSION_MAJOR, PHX_VERSION_MINOR, PHX_VERSION_PATCH);
    H_CHECK(phx_version() != NULL);
    H_EQ_STR(phx_version(), macros);
    H_EQ_STR(phx_version(), PHX_VERSION_STRING);
    /* Cargo.toml's version, read by CMake. */
    H_EQ_STR(phx_version(), PHX_CARGO_VERSION);
    /* Static text: the same pointer every time. */
    H_CHECK(phx_version() == phx_version());
}

static void test_status_strings(void) {
    uint32_t i, j;
    for (i = PHX_OK; i <= PHX_ERR_TOO_MANY_CHANNELS; i++) {
        const char *t = phx_status_str(i);
        H_CHECKF(t != NULL && t[0] != '\0', "status %u has no text", (unsigned)i);
        for (j = 0; j < i; j++)
            H_CHECKF(strcmp(t, phx_status_str(j)) != 0, "statuses %u and %u share the text \"%s\"",
                     (unsigned)i, (unsigned)j, t);
    }
    H_CHECK(phx_status_str(PHX_ERR_TOO_MANY_CHANNELS + 1) != NULL);
    H_CHECK(phx_status_str(UINT32_MAX) != NULL);
    /* The values are part of the ABI. */
    H_EQ_U(PHX_OK, 0);
    H_EQ_U(PHX_ERR_REPLY, 1);
    H_EQ_U(PHX_ERR_TIMEOUT, 2);
    H_EQ_U(PHX_ERR_DISCONNECTED, 3);
    H_EQ_U(PHX_ERR_CHANNEL_ERRORED, 4);
    H_EQ_U(PHX_ERR_CLOSED, 5);
    H_EQ_U(PHX_ERR_LEFT_BEFORE_JOIN, 6);
    H_EQ_U(PHX_ERR_STATE, 7);
    H_EQ_U(PHX_ERR_INVALID_ARGUMENT, 8);
    H_EQ_U(PHX_ERR_WRONG_THREAD, 9);
    H_EQ_U(PHX_ERR_AGAIN, 10);
    H_EQ_U(PHX_ERR_INTERNAL, 11);
    H_EQ_U(PHX_ERR_QUEUE_FULL, 12);
    H_EQ_U(PHX_ERR_BUFFER_FULL, 13);
    H_EQ_U(PHX_ERR_TOO_MANY_CHANNELS, 14);
    H_EQ_U(PHX_REASON_FRAME_TOO_LARGE, 10);
    H_EQ_U(PHX_EVENT_OVERFLOW, 6);
    H_EQ_U(PHX_REASON_CLIENT_CLOSED, 7);
    H_EQ_U(PHX_CHANNEL_ERRORED, 4);
    H_EQ_U(PHX_SOCKET_RECONNECTING, 3);
}

/* In the -fsanitize=address,undefined build (PHX_EXPECT_SANITIZERS), proves that the
 * sanitizers were compiled in and their runtimes linked; elsewhere there is nothing to prove. */
static void test_sanitizers(void) {
#ifdef PHX_EXPECT_SANITIZERS
#if defined(__SANITIZE_ADDRESS__)
    const int compiled_in = 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    const int compiled_in = 1;
#else
    const int compiled_in = 0;
#endif
#else
    const int compiled_in = 0;
#endif
    H_CHECKF(compiled_in, "%s", "AddressSanitizer is not enabled in this build");
    H_CHECKF(dlsym(RTLD_DEFAULT, "__asan_init") != NULL, "%s", "the ASan runtime is not linked");
    H_CHECKF(dlsym(RTLD_DEFAULT, "__ubsan_handle_add_overflow") != NULL, "%s",
             "the UBSan runtime is not linked");
    h_note("ASan and UBSan are linked");
#else
    h_note("not a sanitizer build: nothing to check");
#endif
}

static const h_case cases[] = {
    H_CASE(version),
    H_CASE(status_strings),
    H_CASE(sanitizers),
};

H_MAIN(cases)
