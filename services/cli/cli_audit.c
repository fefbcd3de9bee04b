/*  =========================================================================
    cli_audit - `relais audit`: who read which personal data, when and why,
    and whether the log is intact
    =========================================================================
*/
#include "cli.h"
#include "router_server.h"
#include "plans_server.h"
#include "relais_audit.h"

#include <stdlib.h>
#include <string.h>

const char cli_audit_help [] =
    "usage: relais audit [--src SERVICE] [--who NAME] [--key ID] [--last N] [--verify]\n"
    "\n"
    "Every read of personal data (a full record of a report) is written to the\n"
    "service's audit log before the data is sent: who (the certificate's name\n"
    "with CURVE), their role, what (action and id), when, and why (the purpose\n"
    "the caller gave). Each line is chained to the previous one by an HMAC\n"
    "under a key only the service's host holds: a changed, removed or inserted\n"
    "line breaks the chain.\n"
    "\n"
    "  --src SERVICE   whose log (default intake): SERVICE/audit_file\n"
    "  --who NAME      only the reads by NAME\n"
    "  --key ID        only the reads of ID (e.g. SIG-00000042)\n"
    "  --last N        only the last N matching entries\n"
    "  --verify        check the whole chain; print the number of entries and\n"
    "                  the last MAC (keep it elsewhere: it anchors the chain)\n"
    "\n"
    "exit codes: 0 listed / intact, 1 the chain is broken (the first bad line\n"
    "is named) or the log cannot be read, 2 usage error\n";

int
cli_audit (cli_t *cli, int argc, char **argv)
{
    const char *svc = "intake", *who = NULL, *key = NULL;
    long last = 0;
    bool verify = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--src") == 0 && i + 1 < argc)
            svc = argv [++i];
        else
        if (strcmp (argv [i], "--who") == 0 && i + 1 < argc)
            who = argv [++i];
        else
        if (strcmp (argv [i], "--key") == 0 && i + 1 < argc)
            key = argv [++i];
        else
        if (strcmp (argv [i], "--last") == 0 && i + 1 < argc && atol (argv [i + 1]) > 0)
            last = atol (argv [++i]);
        else
        if (strcmp (argv [i], "--verify") == 0)
            verify = true;
        else {
            fprintf (stderr, "audit: unexpected '%s' (see `relais help audit`)\n", argv [i]);
            return CLI_USAGE;
        }
    }
    //  Router's section is declared on demand (its rules are checked then)
    if (strcmp (svc, "router") == 0 && router_declare (cli->config))
        return CLI_USAGE;
    if (strcmp (svc, "plans") == 0 && plans_declare (cli->config))
        return CLI_USAGE;
    char path_key [96], key_key [96];
    snprintf (path_key, sizeof path_key, "%s/audit_file", svc);
    snprintf (key_key, sizeof key_key, "%s/audit_key_file", svc);
    char *path = relais_config_path (cli->config, path_key);
    char *keyfile = relais_config_path (cli->config, key_key);
    if (!path || !keyfile) {
        fprintf (stderr, "audit: %s keeps no audit log in this deployment\n", svc);
        free (path);
        free (keyfile);
        return CLI_USAGE;
    }
    int result = CLI_OK;
    if (verify) {
        uint64_t entries, bad;
        char mac [65];
        int rc = relais_audit_verify (path, keyfile, &entries, &bad, mac);
        if (rc == 0)
            printf ("%s: intact, %llu entries, last mac %s\n", path,
                    (unsigned long long) entries, *mac? mac: "-");
        else
        if (bad)
            printf ("%s: BROKEN at line %llu (of %llu read)\n", path,
                    (unsigned long long) bad, (unsigned long long) entries);
        else
            fprintf (stderr, "audit: cannot read %s: %s\n", path, relais_strerror (rc));
        result = rc? CLI_FAILED: CLI_OK;
    }
    else {
        FILE *file = fopen (path, "r");
        if (!file) {
            fprintf (stderr, "audit: cannot read %s\n", path);
            result = CLI_FAILED;
        }
        else {
            //  Keep the last N matches in a ring, print them in order
            size_t cap = last > 0? (size_t) last: 0, n = 0;
            char **ring = cap? (char **) calloc (cap, sizeof *ring): NULL;
            char line [1100];
            char want_who [96], want_key [96];
            snprintf (want_who, sizeof want_who, "\"who\":\"%s\"", who? who: "");
            snprintf (want_key, sizeof want_key, "\"key\":\"%s\"", key? key: "");
            while (fgets (line, sizeof line, file)) {
                if ((who && !strstr (line, want_who)) || (key && !strstr (line, want_key)))
                    continue;
                if (!ring)
                    fputs (line, stdout);
                else {
                    free (ring [n % cap]);
                    ring [n % cap] = strdup (line);
                    n++;
                }
            }
            for (size_t i = n > cap? n - cap: 0; ring && i < n; i++)
                fputs (ring [i % cap], stdout);
            for (size_t i = 0; ring && i < cap; i++)
                free (ring [i]);
            free (ring);
            fclose (file);
        }
    }
    free (path);
    free (keyfile);
    return result;
}
