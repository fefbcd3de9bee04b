/*  =========================================================================
    cli_backup - `relais backup` and `relais restore`: hot, compacted copies
    of the services' stores, and putting one back

    @header
    backup opens each service's LMDB environment read-only beside the
    running service (LMDB allows a second reader process, as mdb_copy does)
    and writes a compacted, fsync'd, verified snapshot of its last commit
    under OUT/<service>/. A service's secret key file (intake's person_refs
    key) is copied beside it with mode 0600: without it, restored data
    would get new pseudonyms. restore refuses while the service answers,
    verifies the backup, keeps the current store aside (renamed with a
    timestamp, never deleted) and copies the backup into place.
    =========================================================================
*/
#include "cli.h"
#include "relais_deploy.h"
#include "relais_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char cli_backup_help [] =
    "usage: relais backup [--src SERVICE] --out DIR\n"
    "\n"
    "Hot backup of the services' stores while they run: for each service of\n"
    "the deployment (relais/services), or only --src, a compacted snapshot of\n"
    "its last committed transaction in DIR/SERVICE/ (LMDB mdb_env_copy2 with\n"
    "compaction), fsync'd and verified (schema, contiguous event log). Every\n"
    "report acknowledged before the backup started is in it. A service's\n"
    "secret key file (intake's person_refs key) is copied beside its store\n"
    "(DIR/SERVICE/SERVICE.key, mode 0600): keep backups as safe as the key.\n"
    "DIR/SERVICE must not exist or be empty.\n"
    "\n"
    "One line a service: SERVICE: log FIRST..LAST (N events, SIZE) in PATH\n"
    "\n"
    "exit codes:\n"
    "  0  every backup written and verified\n"
    "  1  a backup failed (the reason is on stderr)\n"
    "  2  usage error\n";

const char cli_restore_help [] =
    "usage: relais restore --src SERVICE [--force] FROM\n"
    "\n"
    "Put the backup in FROM (a folder written by `relais backup`, e.g.\n"
    "DIR/intake) back as SERVICE's store. The service must be stopped: restore\n"
    "asks its fetch endpoint first and refuses if it answers. The backup is\n"
    "verified, the current store is kept aside as STORE.before-restore-TIME,\n"
    "and the backup copied into place. A key file in the backup is installed\n"
    "when the service has none; a different key already in place is refused\n"
    "unless --force (pseudonyms would no longer match).\n"
    "\n"
    "exit codes:\n"
    "  0  restored\n"
    "  1  refused or failed (the reason is on stderr)\n"
    "  2  usage error\n";

//  Folder of svc's store: <svc>/store/path, else <data>/<svc>
static char *
s_store_dir (cli_t *cli, const char *svc)
{
    char key [96];
    snprintf (key, sizeof key, "%s/store/path", svc);
    char *dir = relais_config_path (cli->config, key);
    if (dir)
        return dir;
    char *data = relais_config_path (cli->config, "relais/data");
    if (!data)
        return NULL;
    size_t size = strlen (data) + strlen (svc) + 2;
    dir = (char *) malloc (size);
    if (dir)
        snprintf (dir, size, "%s/%s", data, svc);
    free (data);
    return dir;
}

//  svc's secret key file, when its section has one
static char *
s_key_file (cli_t *cli, const char *svc)
{
    char key [96];
    snprintf (key, sizeof key, "%s/person_key_file", svc);
    return relais_config_path (cli->config, key);
}

//  Copy a small file with mode 0600, fsync'd. Returns 0 or -errno.
static int
s_copy_secret (const char *from, const char *to)
{
    int in = open (from, O_RDONLY);
    if (in < 0)
        return -errno;
    int out = open (to, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (out < 0) {
        int rc = -errno;
        close (in);
        return rc;
    }
    char buf [4096];
    ssize_t n;
    int rc = 0;
    while ((n = read (in, buf, sizeof buf)) > 0)
        if (write (out, buf, (size_t) n) != n) {
            rc = -EIO;
            break;
        }
    if (n < 0)
        rc = -errno;
    if (rc == 0 && fsync (out))
        rc = -errno;
    close (in);
    close (out);
    if (rc)
        unlink (to);
    return rc;
}

static bool
s_same_file_content (const char *a, const char *b)
{
    FILE *fa = fopen (a, "rb"), *fb = fopen (b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = fgetc (fa), cb = fgetc (fb);
        same = ca == cb;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose (fa);
    if (fb)
        fclose (fb);
    return same;
}

static void
s_print_info (const char *svc, const relais_store_info_t *info, const char *where)
{
    printf ("%s: log %llu..%llu (%llu events, %.1f MiB) in %s", svc,
            (unsigned long long) info->log_first, (unsigned long long) info->log_last,
            (unsigned long long) info->log_entries, (double) info->bytes / (1 << 20), where);
    if (info->wal_records)
        printf (", + %llu writes in the write-ahead log (applied at the next start)",
                (unsigned long long) info->wal_records);
    printf ("\n");
}

static int
s_backup_one (cli_t *cli, const char *svc, const char *out)
{
    char *dir = s_store_dir (cli, svc);
    size_t size = strlen (out) + strlen (svc) + 2;
    char *dest = (char *) malloc (size);
    if (!dir || !dest) {
        free (dir);
        free (dest);
        fprintf (stderr, "backup: %s: no store folder in the configuration\n", svc);
        return CLI_FAILED;
    }
    snprintf (dest, size, "%s/%s", out, svc);
    relais_store_info_t info;
    int rc = relais_store_backup (dir, dest, &info);
    if (rc)
        fprintf (stderr, "backup: %s: %s -> %s failed: %s\n", svc, dir, dest, relais_strerror (rc));
    char *keyfile = rc? NULL: s_key_file (cli, svc);
    if (keyfile && access (keyfile, F_OK) == 0) {
        size_t ksize = strlen (dest) + strlen (svc) + 6;
        char *kdest = (char *) malloc (ksize);
        if (!kdest)
            rc = -ENOMEM;
        else {
            snprintf (kdest, ksize, "%s/%s.key", dest, svc);
            rc = s_copy_secret (keyfile, kdest);
            if (rc)
                fprintf (stderr, "backup: %s: cannot copy the key file: %s\n", svc, strerror (-rc));
            free (kdest);
        }
    }
    if (rc == 0)
        s_print_info (svc, &info, dest);
    free (keyfile);
    free (dir);
    free (dest);
    return rc? CLI_FAILED: CLI_OK;
}

int
cli_backup (cli_t *cli, int argc, char **argv)
{
    const char *only = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--src") == 0 && i + 1 < argc)
            only = argv [++i];
        else
        if (strcmp (argv [i], "--out") == 0 && i + 1 < argc)
            out = argv [++i];
        else {
            fprintf (stderr, "backup: unexpected '%s' (see `relais help backup`)\n", argv [i]);
            return CLI_USAGE;
        }
    }
    if (!out) {
        fprintf (stderr, "backup: --out DIR is required\n");
        return CLI_USAGE;
    }
    if (only)
        return s_backup_one (cli, only, out);
    const char *list = relais_config_str (cli->config, "relais/services");
    char copy [256];
    snprintf (copy, sizeof copy, "%s", list? list: "");
    int result = CLI_OK;
    char *save = NULL;
    for (char *svc = strtok_r (copy, " ,", &save); svc; svc = strtok_r (NULL, " ,", &save))
        if (s_backup_one (cli, svc, out) != CLI_OK)
            result = CLI_FAILED;
    return result;
}

//  True when the service answers {op: "status"} on its fetch endpoint
static bool
s_service_answers (cli_t *cli, const char *svc)
{
    cli_source_t source;
    if (cli_sources (cli, svc, &source, 1) == 0)
        return false;
    zsock_t *dealer = cli_sock_new (ZMQ_DEALER, source.fetch, 0);
    if (!dealer)
        return false;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_str (&pk, "op", "status");
    relais_pack_kv_uint (&pk, "rid", 1);
    bool up = false;
    if (cli_send (dealer, sbuf.data, sbuf.size) == 0) {
        zframe_t *frame = NULL;
        relais_msg_t msg = { 0 };
        up = cli_wait_reply (dealer, 1, 1000, &frame, &msg) == 0;
        relais_msg_release (&msg);
        zframe_destroy (&frame);
    }
    msgpack_sbuffer_destroy (&sbuf);
    zsock_destroy (&dealer);
    return up;
}

int
cli_restore (cli_t *cli, int argc, char **argv)
{
    const char *svc = NULL, *from = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--src") == 0 && i + 1 < argc)
            svc = argv [++i];
        else
        if (strcmp (argv [i], "--force") == 0)
            force = true;
        else
        if (argv [i][0] != '-' && !from)
            from = argv [i];
        else {
            fprintf (stderr, "restore: unexpected '%s' (see `relais help restore`)\n", argv [i]);
            return CLI_USAGE;
        }
    }
    if (!svc || !from) {
        fprintf (stderr, "restore: --src SERVICE and FROM are required\n");
        return CLI_USAGE;
    }
    if (s_service_answers (cli, svc)) {
        fprintf (stderr, "restore: %s is running: stop it first\n", svc);
        return CLI_FAILED;
    }
    relais_store_info_t info;
    int rc = relais_store_verify (from, &info);
    if (rc) {
        fprintf (stderr, "restore: %s is not a usable backup: %s\n", from, relais_strerror (rc));
        return CLI_FAILED;
    }
    char *dir = s_store_dir (cli, svc);
    char *keyfile = s_key_file (cli, svc);
    char keyback [4096];
    snprintf (keyback, sizeof keyback, "%s/%s.key", from, svc);
    bool has_key = access (keyback, F_OK) == 0;
    int result = CLI_FAILED;
    if (!dir)
        goto done;
    if (has_key && keyfile && access (keyfile, F_OK) == 0
    &&  !s_same_file_content (keyback, keyfile) && !force) {
        fprintf (stderr, "restore: %s has a key that differs from the backup's: pseudonyms would "
                         "change (use --force to keep the current key)\n", keyfile);
        goto done;
    }
    struct stat st;
    if (stat (dir, &st) == 0) {
        char aside [4200];
        char stamp [32];
        time_t now = time (NULL);
        strftime (stamp, sizeof stamp, "%Y%m%dT%H%M%S", gmtime (&now));
        snprintf (aside, sizeof aside, "%s.before-restore-%s", dir, stamp);
        if (rename (dir, aside)) {
            fprintf (stderr, "restore: cannot move %s aside: %s\n", dir, strerror (errno));
            goto done;
        }
        printf ("%s: the current store is kept in %s\n", svc, aside);
    }
    rc = relais_store_backup (from, dir, &info);
    if (rc) {
        fprintf (stderr, "restore: copy into %s failed: %s\n", dir, relais_strerror (rc));
        goto done;
    }
    if (has_key && keyfile && access (keyfile, F_OK) != 0) {
        rc = s_copy_secret (keyback, keyfile);
        if (rc) {
            fprintf (stderr, "restore: cannot install the key file %s: %s\n", keyfile, strerror (-rc));
            goto done;
        }
    }
    s_print_info (svc, &info, dir);
    result = CLI_OK;
done:
    free (dir);
    free (keyfile);
    return result;
}
