/*  =========================================================================
    cli_config - `relais config`: read the deployment file as the services do

    @header
    `relais config get PATH` prints one value of the deployment file (the
    file's value, else the declared default), resolved exactly as the
    services resolve it: scripts such as deploy/demo.sh read the service
    list and the data folder through it instead of parsing ZPL themselves.
    `relais config path PATH` prints a filesystem path resolved against
    relais/data. `relais config check` loads and checks the file (main.c
    has already declared every section the CLI knows) and says so.
    =========================================================================
*/
#include "cli.h"

#include <stdlib.h>
#include <string.h>

const char cli_config_help [] =
    "usage: relais config get PATH | path PATH | check\n"
    "\n"
    "Read the deployment file the way the services read it.\n"
    "\n"
    "  get PATH     print the value at PATH (section/key), or the default\n"
    "               the programs declare; exit 1 when there is none\n"
    "  path PATH    print PATH as a filesystem path: relative values are\n"
    "               resolved under relais/data, itself relative to the file\n"
    "  check        load and check the file; print its name when it is fine\n"
    "\n"
    "examples:\n"
    "  relais --config deploy/config/demo.cfg config get relais/services\n"
    "  relais config path relais/logs\n"
    "\n"
    "exit codes:\n"
    "  0  printed\n"
    "  1  no value at PATH\n"
    "  2  usage error, or the file is refused (the reason is on stderr)\n";

int
cli_config (cli_t *cli, int argc, char **argv)
{
    if (argc == 2 && strcmp (argv [1], "check") == 0) {
        printf ("%s: ok\n", *cli->config_path? cli->config_path: "(defaults)");
        return CLI_OK;
    }
    if (argc != 3 || (strcmp (argv [1], "get") != 0 && strcmp (argv [1], "path") != 0)) {
        fputs (cli_config_help, stderr);
        return CLI_USAGE;
    }
    if (strcmp (argv [1], "get") == 0) {
        const char *value = relais_config_str (cli->config, argv [2]);
        if (!value) {
            fprintf (stderr, "relais: no value at %s\n", argv [2]);
            return CLI_FAILED;
        }
        printf ("%s\n", value);
        return CLI_OK;
    }
    char *path = relais_config_path (cli->config, argv [2]);
    if (!path) {
        fprintf (stderr, "relais: no value at %s\n", argv [2]);
        return CLI_FAILED;
    }
    printf ("%s\n", path);
    free (path);
    return CLI_OK;
}
