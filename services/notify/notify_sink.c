/*  =========================================================================
    notify_sink - sinks and the state file of a partner's notifier
    (see notify_sink.h)
    =========================================================================
*/
#include "notify_sink.h"
#include "relais_log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef enum { S_STDOUT, S_FILE, S_EXEC, S_WEBHOOK } s_kind_t;

struct notify_sink_t {
    s_kind_t kind;
    char *arg;                  //  file path or command
    int fd;                     //  file sink
    CURL *curl;                 //  webhook sink
    struct curl_slist *headers;
    long timeout_ms;
    char error [CURL_ERROR_SIZE];
};

notify_sink_t *
notify_sink_new (const char *spec, char *why, size_t size)
{
    notify_sink_t *self = (notify_sink_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->fd = -1;
    if (strcmp (spec, "stdout") == 0)
        self->kind = S_STDOUT;
    else
    if (strncmp (spec, "file:", 5) == 0 && spec [5]) {
        self->kind = S_FILE;
        self->arg = strdup (spec + 5);
        self->fd = open (self->arg, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (self->fd < 0) {
            snprintf (why, size, "cannot open %s: %s", spec + 5, strerror (errno));
            notify_sink_destroy (&self);
            return NULL;
        }
    }
    else
    if (strncmp (spec, "exec:", 5) == 0 && spec [5]) {
        self->kind = S_EXEC;
        self->arg = strdup (spec + 5);
    }
    else
    if (strncmp (spec, "webhook:", 8) == 0
    &&  (strncmp (spec + 8, "http://", 7) == 0 || strncmp (spec + 8, "https://", 8) == 0)) {
        self->kind = S_WEBHOOK;
        self->arg = strdup (spec + 8);
        self->timeout_ms = 10000;
        self->curl = curl_easy_init ();
        self->headers = curl_slist_append (NULL, "Content-Type: application/json");
        if (!self->curl || !self->headers) {
            snprintf (why, size, "cannot set up libcurl");
            notify_sink_destroy (&self);
            return NULL;
        }
    }
    else {
        snprintf (why, size, "sink must be stdout, file:PATH, exec:CMD or webhook:http(s)://...");
        free (self);
        return NULL;
    }
    return self;
}

void
notify_sink_destroy (notify_sink_t **self_p)
{
    notify_sink_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (self->fd >= 0)
        close (self->fd);
    if (self->curl)
        curl_easy_cleanup (self->curl);
    curl_slist_free_all (self->headers);
    free (self->arg);
    free (self);
}

static int
s_write_all (int fd, const char *data, size_t size)
{
    while (size) {
        ssize_t n = write (fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        size -= (size_t) n;
    }
    return 0;
}

static int
s_exec (notify_sink_t *self, uint64_t mseq, const char *line, size_t size)
{
    int pipefd [2];
    if (pipe (pipefd))
        return -1;
    pid_t pid = fork ();
    if (pid < 0) {
        close (pipefd [0]);
        close (pipefd [1]);
        return -1;
    }
    if (pid == 0) {
        dup2 (pipefd [0], STDIN_FILENO);
        close (pipefd [0]);
        close (pipefd [1]);
        char env [32];
        snprintf (env, sizeof env, "%" PRIu64, mseq);
        setenv ("RELAIS_MSEQ", env, 1);
        execl ("/bin/sh", "sh", "-c", self->arg, (char *) NULL);
        _exit (127);
    }
    close (pipefd [0]);
    //  A command that exits without reading must not kill us with SIGPIPE
    void (*old) (int) = signal (SIGPIPE, SIG_IGN);
    int rc = s_write_all (pipefd [1], line, size);
    if (rc == 0)
        rc = s_write_all (pipefd [1], "\n", 1);
    close (pipefd [1]);
    signal (SIGPIPE, old);
    int status = 0;
    while (waitpid (pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
        relais_warning ("exec sink mseq=%" PRIu64 " failed status=%d", mseq,
                        WIFEXITED (status)? WEXITSTATUS (status): -1);
        return -1;
    }
    return 0;
}

void
notify_sink_set_timeout (notify_sink_t *self, long timeout_ms)
{
    if (timeout_ms > 0)
        self->timeout_ms = timeout_ms;
}

static size_t
s_discard (char *data, size_t size, size_t nmemb, void *arg)
{
    return size * nmemb;                //  the reply body is not used
}

static int
s_webhook (notify_sink_t *self, uint64_t mseq, const char *line, size_t size)
{
    CURL *c = self->curl;
    curl_easy_reset (c);
    curl_easy_setopt (c, CURLOPT_URL, self->arg);
    curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, self->headers);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, line);
    curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) size);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, self->timeout_ms);
    curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT_MS, self->timeout_ms);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt (c, CURLOPT_ERRORBUFFER, self->error);
    self->error [0] = 0;
    CURLcode rc = curl_easy_perform (c);
    long status = 0;
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status < 200 || status > 299) {
        relais_warning ("webhook mseq=%" PRIu64 " failed status=%ld error=%s", mseq, status,
                        rc != CURLE_OK? curl_easy_strerror (rc): "not 2xx");
        return -1;
    }
    return 0;
}

int
notify_sink_put (notify_sink_t *self, uint64_t mseq, const char *line, size_t size)
{
    switch (self->kind) {
        case S_STDOUT:
            if (fwrite (line, 1, size, stdout) != size || fputc ('\n', stdout) == EOF
            ||  fflush (stdout))
                return -1;
            return 0;
        case S_FILE: {
            //  One write per line (O_APPEND): a line is whole or absent
            char *buf = (char *) malloc (size + 1);
            if (!buf)
                return -1;
            memcpy (buf, line, size);
            buf [size] = '\n';
            int rc = s_write_all (self->fd, buf, size + 1);
            free (buf);
            return rc;
        }
        case S_EXEC:
            return s_exec (self, mseq, line, size);
        case S_WEBHOOK:
            return s_webhook (self, mseq, line, size);
    }
    return -1;
}

int
notify_sink_flush (notify_sink_t *self)
{
    if (self->kind == S_FILE)
        return fsync (self->fd) == 0? 0: -1;
    return 0;
}

uint64_t
notify_sink_last (notify_sink_t *self)
{
    if (self->kind != S_FILE)
        return 0;
    //  The last complete line; a torn tail (no newline) is ignored
    struct stat st;
    if (fstat (self->fd, &st) || st.st_size == 0)
        return 0;
    int fd = open (self->arg, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    off_t tail = st.st_size > 65536? st.st_size - 65536: 0;
    size_t size = (size_t) (st.st_size - tail);
    char *buf = (char *) malloc (size + 1);
    uint64_t last = 0;
    if (buf && pread (fd, buf, size, tail) == (ssize_t) size) {
        buf [size] = 0;
        char *end = strrchr (buf, '\n');
        if (end) {
            *end = 0;
            char *start = strrchr (buf, '\n');
            start = start? start + 1: buf;
            const char *m = strstr (start, "\"mseq\":");
            if (m)
                last = strtoull (m + 7, NULL, 10);
        }
    }
    free (buf);
    close (fd);
    return last;
}

int
notify_state_read (const char *path, uint64_t *mseq)
{
    *mseq = 0;
    FILE *f = fopen (path, "r");
    if (!f)
        return errno == ENOENT? 0: -1;
    char text [64] = "";
    size_t n = fread (text, 1, sizeof text - 1, f);
    fclose (f);
    text [n] = 0;
    char *end;
    unsigned long long v = strtoull (text, &end, 10);
    if (end == text || (*end && *end != '\n'))
        return -1;
    *mseq = v;
    return 0;
}

int
notify_state_write (const char *path, uint64_t mseq)
{
    char tmp [4096];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    char text [32];
    int len = snprintf (text, sizeof text, "%" PRIu64 "\n", mseq);
    if (s_write_all (fd, text, (size_t) len) || fsync (fd)) {
        close (fd);
        return -1;
    }
    close (fd);
    if (rename (tmp, path))
        return -1;
    char dir [4096];
    snprintf (dir, sizeof dir, "%s", path);
    int dfd = open (dirname (dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync (dfd);
    close (dfd);
    return rc == 0? 0: -1;
}
