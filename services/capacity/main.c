/*  =========================================================================
    relais-capacity - shelter capacity: structures, occupancy,
    reservations, alerts, forecasts

    Usage: relais-capacity [--config FILE] [--dump]
    FILE defaults to $RELAIS_CONFIG, else /etc/relais/relais.cfg.
    --dump prints the stored state as JSON lines and exits.
    =========================================================================
*/
#include "capacity_server.h"
#include "relais_clock.h"
#include "relais_bus.h"
#include "relais_deploy.h"
#include "relais_log.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

int
main (int argc, char *argv [])
{
    const char *path = getenv ("RELAIS_CONFIG");
    bool dump = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--config") == 0 && i + 1 < argc)
            path = argv [++i];
        else
        if (strcmp (argv [i], "--dump") == 0)
            dump = true;
        else {
            fprintf (stderr, "usage: relais-capacity [--config FILE] [--dump]\n");
            return EXIT_FAILURE;
        }
    }
    if (!path)
        path = "/etc/relais/relais.cfg";
    relais_log_init ("capacity");
    relais_clock_from_env ();
    zsys_handler_set (NULL);                //  libuv's uv_signal_t owns SIGINT/SIGTERM
    relais_config_t *config = relais_config_load (path);
    if (!config || relais_deploy_declare (config) || capacity_declare (config)
    ||  relais_service_setup (config, "capacity", !dump)) {
        relais_config_destroy (&config);
        return EXIT_FAILURE;                //  the loader said why
    }
    if (dump) {
        int rc = capacity_dump (config, stdout);
        relais_service_teardown ();
        relais_config_destroy (&config);
        fflush (stdout);
        return rc == 0? EXIT_SUCCESS: EXIT_FAILURE;
    }
    uv_loop_t loop;
    uv_loop_init (&loop);
    capacity_server_t *server = capacity_server_new (&loop, config);
    int rc = server? capacity_server_start (server): -ENOMEM;
    uv_run (&loop, UV_RUN_DEFAULT);         //  returns once every handle is closed
    capacity_server_destroy (&server);
    int closed = uv_loop_close (&loop);     //  UV_EBUSY: a leaked handle
    relais_service_teardown ();
    relais_config_destroy (&config);
    if (closed)
        relais_error ("handles left open at exit: %s", uv_strerror (closed));
    relais_notice ("stopped");
    return rc == 0 && closed == 0? EXIT_SUCCESS: EXIT_FAILURE;
}
