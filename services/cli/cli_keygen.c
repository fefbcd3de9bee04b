/*  =========================================================================
    cli_keygen - `relais keygen`: a CURVE certificate for a service, a
    producer, a partner, an operator or the gateway
    =========================================================================
*/
#include "cli.h"
#include "relais_security.h"

#include <stdlib.h>
#include <string.h>

const char cli_keygen_help [] =
    "usage: relais keygen NAME --role ROLE [--partner ID] [--source KIND[:NAME]]\n"
    "                     [--dir FOLDER]\n"
    "\n"
    "Make the certificate NAME in the certificate folder (security/certs of the\n"
    "deployment, or --dir): NAME.cert, public, to copy to every host, and\n"
    "NAME.cert_secret (mode 0600), to keep on NAME's host only. With\n"
    "security/curve on, a connection is admitted only with a certificate of\n"
    "this folder, and only to the endpoints its role may use:\n"
    "\n"
    "  producer    submits reports (intake/submit); --source gives the\n"
    "              source.kind (and name) intake records for it, whatever the\n"
    "              reports say\n"
    "  partner     its own mailbox only (router/partners); --partner ID\n"
    "  operations  the bus, fetch, status, services' APIs, full records\n"
    "  gateway     submits for its users; the bus and the APIs\n"
    "  service     a Relais service (name it after the service: intake, ...)\n"
    "\n"
    "examples:\n"
    "  relais keygen intake --role service\n"
    "  relais keygen cellule-18 --role producer --source cellule:'Cellule 18e'\n"
    "  relais keygen uasa --role partner --partner uasa\n"
    "\n"
    "exit codes: 0 made, 1 refused (exists, bad name or role), 2 usage error\n";

int
cli_keygen (cli_t *cli, int argc, char **argv)
{
    const char *name = NULL, *role = NULL, *partner = NULL, *source = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--role") == 0 && i + 1 < argc)
            role = argv [++i];
        else
        if (strcmp (argv [i], "--partner") == 0 && i + 1 < argc)
            partner = argv [++i];
        else
        if (strcmp (argv [i], "--source") == 0 && i + 1 < argc)
            source = argv [++i];
        else
        if (strcmp (argv [i], "--dir") == 0 && i + 1 < argc)
            dir = argv [++i];
        else
        if (argv [i][0] != '-' && !name)
            name = argv [i];
        else {
            fprintf (stderr, "keygen: unexpected '%s' (see `relais help keygen`)\n", argv [i]);
            return CLI_USAGE;
        }
    }
    if (!name || !role) {
        fputs (cli_keygen_help, stderr);
        return CLI_USAGE;
    }
    char kind [32] = "";
    const char *source_name = NULL;
    if (source) {
        snprintf (kind, sizeof kind, "%.*s", (int) strcspn (source, ":"), source);
        const char *colon = strchr (source, ':');
        source_name = colon? colon + 1: NULL;
    }
    char *folder = dir? strdup (dir): relais_config_path (cli->config, "security/certs");
    if (!folder) {
        fprintf (stderr, "keygen: no certificate folder (security/certs or --dir)\n");
        return CLI_USAGE;
    }
    int rc = relais_security_keygen (folder, name, role, partner, kind, source_name);
    if (rc == -EEXIST)
        fprintf (stderr, "keygen: %s/%s.cert exists: a certificate is never overwritten\n", folder, name);
    else
    if (rc == -EINVAL)
        fprintf (stderr, "keygen: bad name (a-z, 0-9, '-', '_', '.') or role (producer, partner "
                         "with --partner, operations, gateway, service)\n");
    else
    if (rc)
        fprintf (stderr, "keygen: cannot write in %s: %s\n", folder, strerror (-rc));
    else
        printf ("%s/%s.cert (public) and %s.cert_secret (mode 0600) made, role %s\n",
                folder, name, name, role);
    free (folder);
    return rc == 0? CLI_OK: CLI_FAILED;
}
